#include "runtime/pem_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <openssl/pem.h>

namespace sandboxd {

namespace {

template <class Write>
result<std::string> to_pem(Write write) {
  std::unique_ptr<BIO, decltype(&BIO_free_all)> bio{BIO_new(BIO_s_mem()), BIO_free_all};
  if (!bio || write(bio.get()) != 1)
    return internal_error("cannot encode as PEM");
  char* data = nullptr;
  auto n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

} // namespace

result<std::string> certificate_pem(X509* cert) {
  return to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert); });
}

result<std::string> private_key_pem(EVP_PKEY* key) {
  return to_pem(
    [&](BIO* b) { return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
}

status write_file_atomically(const std::string& path, const std::string& text, mode_t mode) {
  auto tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0)
    return internal_error("cannot write " + tmp + ": " + std::strerror(errno));
  auto n = ::write(fd, text.data(), text.size());
  bool ok = n == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0)
    return internal_error("cannot write " + path + ": " + std::strerror(errno));
  return success();
}

result<std::string> read_pem_file(const std::string& path) {
  constexpr size_t max = 1 << 20;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return bad_request("cannot read " + path + ": " + std::strerror(errno));
  std::string text(max + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > max)
    return bad_request(path + " is larger than 1 MiB: no PEM file is");
  return text;
}

} // namespace sandboxd
