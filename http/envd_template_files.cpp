// PUT /template-files/<templateID>/<hash>: the tar of a template build's
// `copy()` files, sent by the SDK to the URL the API handed out (core/
// template_files.hpp). No sandbox and no envd token: the URL's signature is
// the only authority, so everything is hostile until it checks, and it is
// checked on the head, before a byte of the body is read. The body streams
// into a private temporary file that is renamed over the final one only once
// complete and synced; any other ending removes it.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <vector>

#include "core/clock.hpp"
#include "core/crypto.hpp"
#include "core/fd_closer.hpp"
#include "core/ids.hpp"
#include "core/template_files.hpp"
#include "http/envd_call.hpp"
#include "storage/store.hpp"

namespace sandboxd::http {

namespace {

constexpr const char* route_prefix = "/template-files/";
// Org ids are operator-chosen names; far longer is no org of ours.
constexpr size_t max_org_id = 256;

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// mkdir (0700) then open `name` under `parent`, never through a symlink: a
// symlink where the directory should be makes mkdirat report EEXIST and the
// O_NOFOLLOW open fail.
result<fd_closer> private_dir(int parent, const std::string& name, const std::string& shown) {
  if (::mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST)
    return internal_error(errno_text("cannot create " + shown));
  fd_closer fd{::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  if (fd.get() < 0)
    return internal_error(errno_text("cannot open " + shown));
  return result<fd_closer>{std::move(fd)};
}

// The org's directory of files, created if missing.
result<fd_closer> org_dir(const std::string& data_dir, const std::string& org_id) {
  fd_closer data{::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (data.get() < 0)
    return internal_error(errno_text("cannot open " + data_dir));
  auto all = private_dir(data.get(), "template-files", template_files_dir(data_dir));
  if (!all)
    return all.error();
  auto name = template_files_org_dir_name(org_id);
  return private_dir(all->get(), name, template_files_dir(data_dir) + "/" + name);
}

// Bytes into the temporary file; finish() makes it the final one.
class template_file_sink : public upload_sink {
public:
  template_file_sink(fd_closer dir, fd_closer file, std::string temp, std::string final_name)
    : dir_(std::move(dir)), file_(std::move(file)), temp_(std::move(temp)),
      final_(std::move(final_name)) {}

  // Whatever ended the request short of finish() (an error, a client gone
  // mid-body: MHD's completion callback destroys the request) removes the
  // partial file.
  ~template_file_sink() override { discard(); }

  status feed(const char* data, size_t size) override {
    if (file_.get() < 0)
      return internal_error("the upload was already abandoned");
    if (received_ + size > max_template_file_bytes) {
      discard();
      return failure{413, "template files are larger than "
                            + std::to_string(max_template_file_bytes >> 20) + " MiB"};
    }
    for (size_t done = 0; done < size;) {
      auto n = ::write(file_.get(), data + done, size - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        auto f = internal_error(errno_text("cannot write the template files"));
        discard();
        return f;
      }
      done += static_cast<size_t>(n);
    }
    received_ += size;
    return success();
  }

  envd_reply finish() override {
    if (file_.get() < 0)
      return envd_reply::rest_error(internal_error("the upload was already abandoned"));
    // Synced before the rename, the directory after it: a crash leaves the
    // old file or the whole new one, never a torn one under the final name.
    if (::fsync(file_.get()) != 0) {
      auto f = internal_error(errno_text("cannot sync the template files"));
      discard();
      return envd_reply::rest_error(f);
    }
    file_ = fd_closer{};
    if (::renameat(dir_.get(), temp_.c_str(), dir_.get(), final_.c_str()) != 0) {
      auto f = internal_error(errno_text("cannot store the template files"));
      discard();
      return envd_reply::rest_error(f);
    }
    renamed_ = true;
    if (::fsync(dir_.get()) != 0)
      return envd_reply::rest_error(internal_error(errno_text("cannot sync the template files")));
    return envd_reply::json_body(200, json::object());
  }

private:
  void discard() {
    file_ = fd_closer{};
    if (!renamed_ && !removed_) {
      removed_ = true;
      ::unlinkat(dir_.get(), temp_.c_str(), 0); // nothing more to do if this fails: swept at start
    }
  }

  fd_closer dir_;
  fd_closer file_;
  std::string temp_, final_;
  uint64_t received_ = 0;
  bool renamed_ = false, removed_ = false;
};

// The head's verdict: 400 for a malformed URL, 403 for a signature that is
// missing, wrong or expired, 413 for an announced body over the cap.
status check_head(const envd_call& call, std::string& template_id, std::string& hash) {
  if (call.method != "PUT")
    return failure{405, "template files are uploaded with PUT"};
  auto rest = call.path.substr(std::string{route_prefix}.size());
  auto slash = rest.find('/');
  if (slash == std::string::npos)
    return bad_request("expected /template-files/<templateID>/<hash>");
  template_id = rest.substr(0, slash);
  hash = rest.substr(slash + 1);
  if (!is_valid_sandbox_id(template_id)) // template ids are drawn like sandbox ids
    return bad_request("invalid template id: 20 characters of [a-z0-9] expected");
  if (!valid_files_hash(hash))
    return bad_request("invalid files hash: 64 lowercase hex characters expected");
  auto org = call.param("org").value_or("");
  if (org.empty() || org.size() > max_org_id)
    return bad_request("org is required (at most " + std::to_string(max_org_id) + " bytes)");
  auto expires = call.param("expires").value_or("");
  if (!all_digits(expires) || expires.size() > 12)
    return bad_request("expires must be a Unix time in seconds");
  auto given = call.param("signature").value_or("");
  if (given.empty())
    return failure{403, "missing signature"};
  auto want = template_upload_signature(call.ctx->db->secret(), org, template_id, hash,
                                        std::stoll(expires));
  if (!secure_equals(given, want))
    return failure{403, "invalid signature"};
  // Only a genuine signature learns that it expired.
  if (std::stoll(expires) < static_cast<long long>(std::time(nullptr)))
    return failure{403, "the upload URL expired at " + to_rfc3339(std::stoll(expires) * 1000)};
  auto length = call.header("content-length");
  if (!length.empty()
      && (!all_digits(length) || length.size() > 12 || std::stoull(length) > max_template_file_bytes))
    return failure{413, "template files are larger than "
                          + std::to_string(max_template_file_bytes >> 20) + " MiB"};
  return success();
}

} // namespace

bool is_template_files_path(const std::string& path) {
  return path.rfind(route_prefix, 0) == 0 || path == "/template-files";
}

result<std::unique_ptr<upload_sink>> template_file_upload(envd_call& call) {
  if (call.path == "/template-files")
    return bad_request("expected /template-files/<templateID>/<hash>");
  std::string template_id, hash;
  if (auto head = check_head(call, template_id, hash); !head)
    return head.error();
  auto org = *call.param("org");
  auto dir = org_dir(call.ctx->data_dir, org);
  if (!dir)
    return dir.error();
  auto temp = template_upload_temp_name(hash, random_hex(8));
  fd_closer file{::openat(dir->get(), temp.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)};
  if (file.get() < 0)
    return internal_error(errno_text("cannot create a file for the template files"));
  return std::unique_ptr<upload_sink>(std::make_unique<template_file_sink>(
    std::move(*dir), std::move(file), std::move(temp), hash + ".tar"));
}

result<size_t> remove_interrupted_template_uploads(const std::string& data_dir) {
  auto root = template_files_dir(data_dir);
  fd_closer all{::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
  if (all.get() < 0)
    return errno == ENOENT ? result<size_t>{size_t{0}}
                           : result<size_t>{internal_error(errno_text("cannot open " + root))};
  // Lists the entries of `fd` (taken over: closedir closes it).
  auto names = [](int fd) -> result<std::vector<std::string>> {
    DIR* d = ::fdopendir(fd);
    if (!d) {
      ::close(fd);
      return internal_error(errno_text("cannot list a directory"));
    }
    std::vector<std::string> out;
    errno = 0;
    while (auto* e = ::readdir(d))
      if (std::string n = e->d_name; n != "." && n != "..")
        out.push_back(n);
    auto err = errno;
    ::closedir(d);
    if (err != 0)
      return internal_error("cannot list a directory: " + std::string{std::strerror(err)});
    return out;
  };
  auto orgs = names(::dup(all.get()));
  if (!orgs)
    return orgs.error();
  size_t removed = 0;
  for (auto& org : *orgs) {
    fd_closer dir{::openat(all.get(), org.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (dir.get() < 0)
      continue; // not a directory of ours: left alone
    auto files = names(::dup(dir.get()));
    if (!files)
      return files.error();
    for (auto& f : *files) {
      if (!is_template_upload_temp(f))
        continue;
      if (::unlinkat(dir.get(), f.c_str(), 0) != 0)
        return internal_error(errno_text("cannot remove " + root + "/" + org + "/" + f));
      ++removed;
    }
  }
  return removed;
}

} // namespace sandboxd::http
