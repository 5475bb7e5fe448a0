// Owns a file descriptor and closes it on scope exit (host and agent alike).
#pragma once

#include <unistd.h>

namespace sandboxd {

class fd_closer {
public:
  explicit fd_closer(int fd = -1) : fd_(fd) {}
  ~fd_closer() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  fd_closer(const fd_closer&) = delete;
  fd_closer& operator=(const fd_closer&) = delete;
  fd_closer(fd_closer&& other) noexcept : fd_(other.release()) {}
  fd_closer& operator=(fd_closer&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0)
        ::close(fd_);
      fd_ = other.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  /// Gives the descriptor up: the caller closes it.
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

private:
  int fd_;
};

} // namespace sandboxd
