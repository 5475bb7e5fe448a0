// core/template_files: what a files hash is, where an org's uploaded files
// live, how their upload URL is signed and shaped; and the start-up sweep of
// interrupted uploads (http/envd_template_files.cpp), on a temporary dir.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "core/crypto.hpp"
#include "core/template_files.hpp"
#include "http/envd.hpp"

namespace fs = std::filesystem;
using namespace sandboxd;

namespace {

const std::string hash_a(64, 'a');
const std::string tid = "abcdefghij0123456789";

TEST(TemplateFilesHash, ExactlySixtyFourLowercaseHex) {
  EXPECT_TRUE(valid_files_hash(hash_a));
  EXPECT_TRUE(valid_files_hash(sha256_hex("files")));
  EXPECT_FALSE(valid_files_hash(""));
  EXPECT_FALSE(valid_files_hash(std::string(63, 'a')));
  EXPECT_FALSE(valid_files_hash(std::string(65, 'a')));
  EXPECT_FALSE(valid_files_hash(std::string(64, 'A')));          // uppercase
  EXPECT_FALSE(valid_files_hash(std::string(63, 'a') + "g"));    // not hex
  EXPECT_FALSE(valid_files_hash("../" + std::string(61, 'a')));  // a path
  EXPECT_FALSE(valid_files_hash(std::string(63, 'a') + '\0'));
}

TEST(TemplateFilesPath, PerOrgUnderTheDataDir) {
  EXPECT_EQ(template_files_dir("/var/lib/sandboxd"), "/var/lib/sandboxd/template-files");
  auto org = sha256_hex("default").substr(0, 16);
  EXPECT_EQ(template_files_org_dir_name("default"), org);
  EXPECT_EQ(template_file_path("/d", "default", hash_a),
            "/d/template-files/" + org + "/" + hash_a + ".tar");
  // Another org, another directory; an org id never becomes a path itself.
  EXPECT_NE(template_file_path("/d", "other", hash_a), template_file_path("/d", "default", hash_a));
  auto hostile = template_file_path("/d", "../../etc", hash_a);
  EXPECT_EQ(hostile.find(".."), std::string::npos);
  EXPECT_EQ(fs::path(hostile).parent_path().parent_path(), "/d/template-files");
}

TEST(TemplateFilesSignature, IsTheHmacOfEveryInput) {
  auto base = template_upload_signature("secret", "org", tid, hash_a, 1700000000);
  EXPECT_EQ(base, hmac_sha256_hex("secret", "template-files:org:" + tid + ":" + hash_a
                                              + ":1700000000"));
  EXPECT_EQ(base.size(), 64u);
  std::set<std::string> all{
    base,
    template_upload_signature("secret2", "org", tid, hash_a, 1700000000),
    template_upload_signature("secret", "org2", tid, hash_a, 1700000000),
    template_upload_signature("secret", "org", "bbcdefghij0123456789", hash_a, 1700000000),
    template_upload_signature("secret", "org", tid, std::string(64, 'b'), 1700000000),
    template_upload_signature("secret", "org", tid, hash_a, 1700000001),
  };
  EXPECT_EQ(all.size(), 6u); // each input changes it
  // The same inputs, the same signature (the API signs, envd checks).
  EXPECT_EQ(template_upload_signature("secret", "org", tid, hash_a, 1700000000), base);
}

TEST(TemplateFilesUrl, PointsAtTheEnvdRouteWithItsQuery) {
  auto url = template_upload_url("http://127.0.0.1:49983", "secret", "my org/é", tid, hash_a,
                                 1700000000);
  auto sig = template_upload_signature("secret", "my org/é", tid, hash_a, 1700000000);
  EXPECT_EQ(url, "http://127.0.0.1:49983/template-files/" + tid + "/" + hash_a
                   + "?org=my%20org%2F%C3%A9&expires=1700000000&signature=" + sig);
  EXPECT_EQ(template_upload_url("http://h:1", "s", "default", tid, hash_a, 5),
            "http://h:1/template-files/" + tid + "/" + hash_a + "?org=default&expires=5&signature="
              + template_upload_signature("s", "default", tid, hash_a, 5));
}

TEST(TemplateFilesTemp, NamesAreRecognizedAndNothingElse) {
  auto name = template_upload_temp_name(hash_a, "0123456789abcdef");
  EXPECT_EQ(name, ".upload-" + hash_a + "-0123456789abcdef.part");
  EXPECT_TRUE(is_template_upload_temp(name));
  EXPECT_FALSE(is_template_upload_temp(hash_a + ".tar"));
  EXPECT_FALSE(is_template_upload_temp(".upload-" + hash_a + "-.part"));
  EXPECT_FALSE(is_template_upload_temp(".upload-" + hash_a + "-xyz.part"));
  EXPECT_FALSE(is_template_upload_temp(".upload-" + std::string(63, 'a') + "-01.part"));
  EXPECT_FALSE(is_template_upload_temp(name + ".tar"));
  EXPECT_FALSE(is_template_upload_temp("upload-" + hash_a + "-01.part"));
}

class TemplateFilesSweep : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sandboxd-template-files-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void touch(const fs::path& p) { std::ofstream{p} << "x"; }
  std::string dir_;
};

TEST_F(TemplateFilesSweep, NoDirectoryIsNothingToRemove) {
  auto n = http::remove_interrupted_template_uploads(dir_);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 0u);
}

TEST_F(TemplateFilesSweep, RemovesOnlyTemporaryFilesOfUploads) {
  auto org = fs::path(template_files_dir(dir_)) / template_files_org_dir_name("default");
  fs::create_directories(org);
  auto temp = org / template_upload_temp_name(hash_a, "0011223344556677");
  auto done = fs::path(template_file_path(dir_, "default", hash_a));
  auto other = org / "notes.txt";
  touch(temp);
  touch(done);
  touch(other);
  // A symlinked directory is not followed: what it points at stays.
  auto outside = fs::path(dir_) / "outside";
  fs::create_directories(outside);
  auto bait = outside / template_upload_temp_name(hash_a, "aa");
  touch(bait);
  fs::create_directory_symlink(outside, fs::path(template_files_dir(dir_)) / "link");
  auto n = http::remove_interrupted_template_uploads(dir_);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 1u);
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_TRUE(fs::exists(done));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(fs::exists(bait));
}

} // namespace
