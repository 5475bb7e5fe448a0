// The files of template builds (E2B's Template.build `copy()` steps): the SDK
// asks the API whether a tar of its files, named by their hash, is present,
// and if not PUTs it to a signed URL on the envd listener. Where such a file
// lives, what its upload URL is and how that URL is signed: pure functions,
// shared by the API route handing URLs out, the envd route receiving the
// bytes and the builder reading them.
#pragma once

#include <cstdint>
#include <string>

namespace sandboxd {

/// The largest tar an upload may store (what the SDK sends is gzipped).
constexpr uint64_t max_template_file_bytes = 512ull << 20;

/// A files hash as the SDK computes it (sha256 hex): exactly 64 of [0-9a-f].
/// Anything else never reaches a path.
bool valid_files_hash(const std::string& hash);

/// `<data_dir>/template-files`: every org's uploaded files.
std::string template_files_dir(const std::string& data_dir);

/// The directory name of `org_id`'s files: the first 16 hex of its sha256
/// (an org id is the operator's free text, never a path component itself).
std::string template_files_org_dir_name(const std::string& org_id);

/// `<data_dir>/template-files/<org dir name>/<hash>.tar`. Per org, so one
/// org can never read another's upload by guessing its hash.
std::string template_file_path(const std::string& data_dir, const std::string& org_id,
                               const std::string& hash);

/// The signature of an upload URL: hex HMAC-SHA256 under the server secret
/// of "template-files:<org>:<template>:<hash>:<expires>". Unambiguous for
/// valid template ids and hashes (neither holds a ':'), whatever the org id.
std::string template_upload_signature(const std::string& secret, const std::string& org_id,
                                      const std::string& template_id, const std::string& hash,
                                      int64_t expires_unix_s);

/// `<envd_endpoint>/template-files/<template_id>/<hash>?org=<org, url-encoded>
/// &expires=<expires_unix_s>&signature=<hex>`; `envd_endpoint` is
/// "http://HOST:PORT" without a trailing slash.
std::string template_upload_url(const std::string& envd_endpoint, const std::string& secret,
                                const std::string& org_id, const std::string& template_id,
                                const std::string& hash, int64_t expires_unix_s);

/// The name of the temporary file an upload of `hash` streams into before
/// it is renamed over `<hash>.tar`; `nonce` (random hex) keeps concurrent
/// uploads of one hash apart.
std::string template_upload_temp_name(const std::string& hash, const std::string& nonce);

/// Whether `file_name` is one template_upload_temp_name makes (what an
/// interrupted upload leaves, removed at server start).
bool is_template_upload_temp(const std::string& file_name);

} // namespace sandboxd
