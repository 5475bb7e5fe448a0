#include "core/template_files.hpp"
#include "core/url_encode.hpp"

#include "core/crypto.hpp"

namespace sandboxd {

namespace {

constexpr const char* temp_prefix = ".upload-";
constexpr const char* temp_suffix = ".part";

bool lower_hex(const std::string& s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}


} // namespace

bool valid_files_hash(const std::string& hash) {
  return hash.size() == 64 && lower_hex(hash);
}

std::string template_files_dir(const std::string& data_dir) {
  return data_dir + "/template-files";
}

std::string template_files_org_dir_name(const std::string& org_id) {
  return sha256_hex(org_id).substr(0, 16);
}

std::string template_file_path(const std::string& data_dir, const std::string& org_id,
                               const std::string& hash) {
  return template_files_dir(data_dir) + "/" + template_files_org_dir_name(org_id) + "/" + hash
         + ".tar";
}

std::string template_upload_signature(const std::string& secret, const std::string& org_id,
                                      const std::string& template_id, const std::string& hash,
                                      int64_t expires_unix_s) {
  return hmac_sha256_hex(secret, "template-files:" + org_id + ":" + template_id + ":" + hash
                                   + ":" + std::to_string(expires_unix_s));
}

std::string template_upload_url(const std::string& envd_endpoint, const std::string& secret,
                                const std::string& org_id, const std::string& template_id,
                                const std::string& hash, int64_t expires_unix_s) {
  return envd_endpoint + "/template-files/" + template_id + "/" + hash
         + "?org=" + url_encode(org_id) + "&expires=" + std::to_string(expires_unix_s)
         + "&signature="
         + template_upload_signature(secret, org_id, template_id, hash, expires_unix_s);
}

std::string template_upload_temp_name(const std::string& hash, const std::string& nonce) {
  return temp_prefix + hash + "-" + nonce + temp_suffix;
}

bool is_template_upload_temp(const std::string& file_name) {
  const std::string prefix = temp_prefix, suffix = temp_suffix;
  // prefix, 64 hex of the hash, '-', a non-empty hex nonce, suffix
  if (file_name.size() < prefix.size() + 64 + 2 + suffix.size()
      || file_name.compare(0, prefix.size(), prefix) != 0
      || file_name.compare(file_name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  auto middle = file_name.substr(prefix.size(), file_name.size() - prefix.size() - suffix.size());
  return valid_files_hash(middle.substr(0, 64)) && middle[64] == '-'
         && lower_hex(middle.substr(65));
}

} // namespace sandboxd
