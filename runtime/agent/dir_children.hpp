// Listing a directory's children: one way for recursive removal and for
// arming recursive watches.
#pragma once

#include <dirent.h>

#include <string>
#include <vector>

namespace sandboxd::agent {

struct dir_child {
  std::string name;
  bool is_dir = false; // a real directory, never a symlink to one
};

/// The entries of an open directory stream, without "." and "..".
std::vector<dir_child> read_children(DIR* d);

}  // namespace sandboxd::agent
