// envd's /files: downloads stream out of the sandbox as the agent reads
// them; uploads (multipart parts or a raw octet-stream, optionally gzip)
// stream in as they arrive, so a 100 MB file never sits in memory.
#include <microhttpd.h>
#include <poll.h>
#include <zlib.h>

#include <algorithm>
#include <string_view>
#include <cstring>
#include <ctime>
#include <functional>

#include "core/crypto.hpp"
#include "http/envd_call.hpp"
#include "runtime/agent_client.hpp"
#include "runtime/base64.hpp"

namespace sandboxd::http {

namespace {

using std::chrono::seconds;

constexpr size_t upload_piece = 1024 * 1024; // raw bytes per agent frame

// `?username=`, else the caller's user: for a signed URL that is the
// default user, never one an Authorization header names (authorize).
std::string file_user(const envd_call& call) {
  auto u = call.param("username");
  return u && !u->empty() ? *u : call.user;
}

// -- download -------------------------------------------------------------------

class file_source : public body_source {
public:
  explicit file_source(std::unique_ptr<agent::connection> c) : conn_(std::move(c)) {}

  ssize_t read(char* buf, size_t max) override {
    while (pending_.empty() && !done_) {
      json f;
      if (conn_->next(f, seconds(60)) != agent::connection::next_status::frame)
        return -1;
      auto type = f.value("type", "");
      if (type == "chunk") {
        auto bytes = base64::decode(f.value("data", ""));
        if (!bytes)
          return -1;
        pending_ = std::move(*bytes);
        offset_ = 0;
      } else if (type == "result") {
        done_ = true;
      } else {
        return -1; // an error mid-file: cut the response short
      }
    }
    auto n = std::min(max, pending_.size() - offset_);
    if (n == 0)
      return 0;
    std::memcpy(buf, pending_.data() + offset_, n);
    offset_ += n;
    if (offset_ == pending_.size()) {
      pending_.clear();
      offset_ = 0;
    }
    return static_cast<ssize_t>(n);
  }

private:
  std::unique_ptr<agent::connection> conn_;
  std::string pending_;
  size_t offset_ = 0;
  bool done_ = false;
};

std::string base_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// -- upload -------------------------------------------------------------------

// One file flowing into the agent's write_stream.
class agent_upload {
public:
  static result<std::unique_ptr<agent_upload>> begin(const std::string& socket,
                                                     const std::string& path,
                                                     const std::string& user,
                                                     const json& metadata) {
    auto c = agent::connection::open(
      socket, {{"op", "write_stream"}, {"path", path}, {"user", user}, {"metadata", metadata}});
    if (!c)
      return c.error();
    auto up = std::make_unique<agent_upload>();
    up->conn_ = std::move(*c);
    return up;
  }

  status write(const char* data, size_t size) {
    buffer_.append(data, size);
    while (buffer_.size() >= upload_piece) {
      if (auto s = send(buffer_.substr(0, upload_piece)); !s)
        return s;
      buffer_.erase(0, upload_piece);
    }
    return success();
  }

  result<json> end() {
    if (!buffer_.empty())
      if (auto s = send(buffer_); !s)
        return s.error();
    buffer_.clear();
    if (auto s = conn_->send({{"end", true}}, seconds(60)); !s)
      return s.error();
    json f;
    std::string detail;
    if (conn_->next(f, seconds(120), &detail) != agent::connection::next_status::frame)
      return bad_gateway("sandbox agent did not confirm the upload: " + detail);
    if (f.value("type", "") == "error")
      return agent::failure_from_error_frame(f);
    return f.value("entry", json::object());
  }

private:
  status send(const std::string& bytes) {
    // The agent answers early only to refuse: stop feeding it then.
    pollfd p{conn_->fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) {
      json f;
      if (conn_->next(f, seconds(5)) == agent::connection::next_status::frame
          && f.value("type", "") == "error")
        return agent::failure_from_error_frame(f);
      return bad_gateway("sandbox agent ended the upload");
    }
    return conn_->send({{"data", base64::encode(bytes)}}, seconds(60));
  }

  std::unique_ptr<agent::connection> conn_;
  std::string buffer_;
};

json uploaded(const json& entry) {
  json out{{"path", entry.value("path", "")}, {"name", entry.value("name", "")}, {"type", "file"}};
  if (entry.contains("metadata") && entry["metadata"].is_object())
    out["metadata"] = entry["metadata"]; // read back from the file, as envd does
  return out;
}

// The upload's `X-Metadata-<key>: <value>` headers (keys lowercased), stored
// on each file as user.e2b.<key>: HTTP token keys, printable ASCII values.
result<json> upload_metadata(const envd_call& call) {
  constexpr std::string_view prefix = "x-metadata-";
  json out = json::object();
  for (auto& [name, value] : call.headers) {
    if (name.compare(0, prefix.size(), prefix) != 0)
      continue;
    auto key = name.substr(prefix.size());
    bool key_ok = !key.empty() && key.size() <= 128
                  && key.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~")
                       == std::string::npos;
    if (!key_ok)
      return bad_request("invalid metadata: key \"" + key + "\" (HTTP token characters, at most 128)");
    bool value_ok = value.size() <= 4096
                    && std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
    if (!value_ok)
      return bad_request("invalid metadata: the value of \"" + key
                         + "\" must be printable US-ASCII of at most 4096 bytes");
    out[key] = value;
  }
  if (out.size() > 64)
    return bad_request("invalid metadata: at most 64 keys");
  return out;
}

// Content-Encoding: gzip, inflated as it streams.
class gunzip {
public:
  gunzip() {
    std::memset(&z_, 0, sizeof z_);
    inflateInit2(&z_, 15 + 16);
  }
  ~gunzip() { inflateEnd(&z_); }

  status feed(const char* data, size_t size, const std::function<status(const char*, size_t)>& out) {
    if (ended_)
      return size == 0 ? success() : bad_request("data after the end of the gzip stream");
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    z_.avail_in = static_cast<uInt>(size);
    char buf[64 * 1024];
    while (z_.avail_in > 0) {
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = sizeof buf;
      auto rc = inflate(&z_, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        return bad_request("body is not valid gzip");
      auto n = sizeof buf - z_.avail_out;
      if (n > 0)
        if (auto s = out(buf, n); !s)
          return s;
      if (rc == Z_STREAM_END) {
        ended_ = true;
        break;
      }
      if (rc == Z_BUF_ERROR && n == 0)
        break;
    }
    return success();
  }

private:
  z_stream z_;
  bool ended_ = false;
};

class octet_upload : public upload_sink {
public:
  octet_upload(std::unique_ptr<agent_upload> up, bool gz)
    : up_(std::move(up)), gz_(gz ? std::make_unique<gunzip>() : nullptr) {}

  status feed(const char* data, size_t size) override {
    if (gz_)
      return gz_->feed(data, size, [&](const char* d, size_t n) { return up_->write(d, n); });
    return up_->write(data, size);
  }

  envd_reply finish() override {
    auto entry = up_->end();
    if (!entry)
      return envd_reply::rest_error(entry.error());
    return envd_reply::json_body(200, json::array({uploaded(*entry)}));
  }

private:
  std::unique_ptr<agent_upload> up_;
  std::unique_ptr<gunzip> gz_;
};

class multipart_upload : public upload_sink {
public:
  multipart_upload(const envd_call& call, MHD_Connection* conn, bool gz, json metadata)
    : socket_(call.socket), user_(file_user(call)), path_(call.param("path").value_or("")),
      metadata_(std::move(metadata)),
      gz_(gz ? std::make_unique<gunzip>() : nullptr) {
    pp_ = MHD_create_post_processor(conn, 64 * 1024, &multipart_upload::on_part, this);
  }
  ~multipart_upload() override {
    if (pp_)
      MHD_destroy_post_processor(pp_);
  }
  bool ok() const { return pp_ != nullptr; }

  status feed(const char* data, size_t size) override {
    auto post = [&](const char* d, size_t n) -> status {
      if (MHD_post_process(pp_, d, n) != MHD_YES && !error_)
        error_ = bad_request("malformed multipart body");
      if (error_)
        return *error_;
      return success();
    };
    if (gz_)
      return gz_->feed(data, size, post);
    return post(data, size);
  }

  envd_reply finish() override {
    MHD_destroy_post_processor(pp_);
    pp_ = nullptr;
    if (!error_)
      end_part();
    if (error_)
      return envd_reply::rest_error(*error_);
    if (entries_.empty())
      return envd_reply::rest_error(bad_request("no file part in the multipart body"));
    return envd_reply::json_body(200, entries_);
  }

private:
  static MHD_Result on_part(void* cls, MHD_ValueKind, const char* key, const char* filename,
                            const char*, const char*, const char* data, uint64_t off,
                            size_t size) {
    auto* self = static_cast<multipart_upload*>(cls);
    if (self->error_)
      return MHD_NO;
    if (!filename && (!key || std::strcmp(key, "file") != 0))
      return MHD_YES; // a plain form field: not a file
    // A part starts at offset 0, but libmicrohttpd may hand over its first
    // bytes in several calls at offset 0 (an empty one first): a new part is
    // offset 0 after data, or another filename.
    std::string name = filename ? filename : "";
    bool new_part = !self->current_
                    || (off == 0 && (self->received_ > 0 || name != self->current_name_));
    if (new_part) {
      self->end_part();
      if (self->error_)
        return MHD_NO;
      std::string path = !self->path_.empty() ? self->path_ : (filename ? filename : "");
      if (path.empty()) {
        self->error_ = bad_request("path is required (?path= or the part's filename)");
        return MHD_NO;
      }
      auto up = agent_upload::begin(self->socket_, path, self->user_, self->metadata_);
      if (!up) {
        self->error_ = up.error();
        return MHD_NO;
      }
      self->current_ = std::move(*up);
      self->current_name_ = name;
      self->received_ = 0;
    }
    self->received_ += size;
    if (size > 0)
      if (auto s = self->current_->write(data, size); !s) {
        self->error_ = s.error();
        return MHD_NO;
      }
    return MHD_YES;
  }

  void end_part() {
    if (!current_)
      return;
    auto entry = current_->end();
    current_.reset();
    if (!entry)
      error_ = entry.error();
    else
      entries_.push_back(uploaded(*entry));
  }

  std::string socket_, user_, path_;
  json metadata_;
  std::unique_ptr<gunzip> gz_;
  MHD_PostProcessor* pp_ = nullptr;
  std::unique_ptr<agent_upload> current_;
  std::string current_name_;
  uint64_t received_ = 0;
  json entries_ = json::array();
  std::optional<failure> error_;
};

} // namespace

envd_reply files_download(envd_call& call) {
  auto path = call.param("path");
  if (!path || path->empty())
    return envd_reply::rest_error(bad_request("path is required"));
  auto conn = agent::connection::open(call.socket,
                                      {{"op", "read_stream"}, {"path", *path}, {"user", file_user(call)}});
  if (!conn)
    return envd_reply::rest_error(conn.error());
  json first;
  std::string detail;
  if ((*conn)->next(first, seconds(30), &detail) != agent::connection::next_status::frame)
    return envd_reply::rest_error(bad_gateway("sandbox agent did not answer: " + detail));
  if (first.value("type", "") == "error")
    return envd_reply::rest_error(agent::failure_from_error_frame(first));
  envd_reply r;
  r.content_type = "application/octet-stream";
  r.stream_size = first.value("size", uint64_t{0});
  r.headers.emplace_back("Content-Disposition",
                         "attachment; filename=\"" + base_name(*path) + "\"");
  r.stream = std::make_unique<file_source>(std::move(*conn));
  return r;
}

result<std::unique_ptr<upload_sink>> files_upload(envd_call& call, void* mhd_connection) {
  auto encoding = call.header("content-encoding");
  bool gz = encoding == "gzip";
  if (!encoding.empty() && !gz && encoding != "identity")
    return bad_request("unsupported Content-Encoding: " + encoding);
  auto type = call.header("content-type");
  if (type.rfind("multipart/form-data", 0) == 0) {
    auto metadata = upload_metadata(call);
    if (!metadata)
      return metadata.error();
    auto up = std::make_unique<multipart_upload>(call, static_cast<MHD_Connection*>(mhd_connection), gz,
                                                 std::move(*metadata));
    if (!up->ok())
      return bad_request("malformed multipart Content-Type (boundary missing?)");
    return std::unique_ptr<upload_sink>(std::move(up));
  }
  auto path = call.param("path");
  if (!path || path->empty())
    return bad_request("path is required for an octet-stream upload");
  auto metadata = upload_metadata(call);
  if (!metadata)
    return metadata.error();
  auto up = agent_upload::begin(call.socket, *path, file_user(call), *metadata);
  if (!up)
    return up.error();
  return std::unique_ptr<upload_sink>(std::make_unique<octet_upload>(std::move(*up), gz));
}

std::string files_signature(const std::string& path, const std::string& operation,
                            const std::string& username, const std::string& token,
                            const std::string& expiration) {
  auto raw = path + ":" + operation + ":" + username + ":" + token
             + (expiration.empty() ? "" : ":" + expiration);
  auto digest = base64::encode(sha256_raw(raw));
  while (!digest.empty() && digest.back() == '=')
    digest.pop_back();
  return "v1_" + digest;
}

signature_verdict judge_signature(const envd_call& call, const std::string& operation,
                                  const std::string& token) {
  auto sig = call.param("signature").value_or("");
  auto exp = call.param("signature_expiration");
  if (exp && !exp->empty()
      && (exp->find_first_not_of("0123456789") != std::string::npos || exp->size() > 12))
    return signature_verdict::bad_expiration;
  // The SDK signs the username as given in the URL, "" when absent.
  auto expected = files_signature(call.param("path").value_or(""), operation,
                                  call.param("username").value_or(""), token, exp.value_or(""));
  if (!secure_equals(sig, expected))
    return signature_verdict::invalid;
  // Only a genuine signature learns that it expired.
  if (exp && !exp->empty() && std::stoll(*exp) < static_cast<long long>(std::time(nullptr)))
    return signature_verdict::expired;
  return signature_verdict::valid;
}

status check_signature(const envd_call& call, const std::string& operation,
                       const std::string& token) {
  switch (judge_signature(call, operation, token)) {
  case signature_verdict::valid:
    return success();
  case signature_verdict::expired:
    return failure{401, "signature is already expired"}; // envd's words
  case signature_verdict::bad_expiration:
    return failure{401, "invalid signature_expiration"};
  case signature_verdict::invalid:
    break;
  }
  return failure{401, "invalid signature"};
}

} // namespace sandboxd::http
