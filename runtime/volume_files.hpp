// The files of a volume as the volume-content API (E2B's `Volume` instance
// methods) reaches them from the host: stat, list, mkdir, chown/chmod,
// remove, read and a streamed write, all under the directory fd of the
// volume's mounted root.
//
// Everything in a volume was possibly made by a sandbox, at any time and
// concurrently with us: names, symlinks (`a -> /etc`, `b -> ../../..`), a
// directory swapped for a symlink between two calls. So no path is ever
// resolved by the host's namespace: every lookup is an openat2 from the root
// fd with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV (an
// absolute or climbing symlink resolves inside the volume, as it would in a
// sandbox that mounts it), and the final component is acted on with *at
// calls on its parent's fd without following it:
//   - stat reports a symlink itself (with its `target`);
//   - read and list follow a final symlink, inside the root;
//   - write replaces a final symlink (force) instead of writing through it;
//   - chown applies to a symlink itself, chmod refuses one (links have no
//     mode); both act on an fd opened O_NOFOLLOW, never on a path;
//   - remove unlinks a symlink, never what it names, and walks directories
//     with O_NOFOLLOW opens relative to their parent's fd.
// Request paths are relative to the volume root ("/a/b" and "a/b" are the
// same), normalized lexically: "." parts and repeated slashes go, ".." drops
// the previous part and never climbs above the root.
//
// Files are stored with the ids they have inside a sandbox; new ones belong
// to `user` (1000:1000) unless told otherwise. The host sees those as real
// ids, so setuid and setgid bits are refused (a setuid file of uid 0 would be
// a host-root setuid file; `<data>/volumes` is 0700, but not relied on).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fd_closer.hpp"
#include "core/result.hpp"

namespace sandboxd::volume_files {

/// A listing recurses at most this deep (depth 1: the directory's entries).
constexpr unsigned max_list_depth = 16;
/// A listing holding more entries is refused (400), not cut short: a client
/// could not tell a truncated listing from a complete one.
constexpr size_t max_list_entries = 10000;
/// A recursive remove descends at most this deep (400 beyond).
constexpr unsigned max_remove_depth = 256;
/// A request path (before normalization).
constexpr size_t max_path_bytes = 4096;
/// Ids and modes a client may set.
constexpr uint32_t max_id = 65535;
constexpr uint32_t max_mode = 07777;
constexpr uint32_t default_uid = 1000, default_gid = 1000;
constexpr uint32_t default_file_mode = 0644, default_dir_mode = 0755;

/// E2B's VolumeEntryStat.
struct entry_stat {
  std::string name;   // the last component ("/" for the root), as stored
  std::string path;   // "/" + the normalized request path (+ "/" + name in listings)
  std::string type;   // "file", "directory", "symlink" or "unknown"
  int64_t size = 0;
  uint32_t mode = 0;  // permission bits only (st_mode & 07777)
  uint32_t uid = 0, gid = 0;
  int64_t atime_ms = 0, mtime_ms = 0, ctime_ms = 0;
  std::optional<std::string> target; // symlinks: what they point to, as stored
};

/// The JSON of the API: names, paths and targets that are not UTF-8 are
/// rendered lossily (U+FFFD); times as RFC 3339 (UTC, milliseconds).
nlohmann::json to_json(const entry_stat& e);
nlohmann::json to_json(const std::vector<entry_stat>& entries);

/// The request path relative to the root, normalized ("" is the root).
/// 400: empty, longer than max_path_bytes, a NUL byte, a part over 255 bytes.
result<std::string> normalize(const std::string& path);

/// Owner and mode to set; absent parts keep (update) or default (create).
struct attributes {
  std::optional<uint32_t> uid, gid, mode;
};

/// 400 for an id over max_id, a mode over max_mode or with setuid/setgid.
status check(const attributes& a);

/// The entry at `path`; a final symlink is reported, not followed.
result<entry_stat> stat(int root, const std::string& path);

/// The entries under the directory at `path` (a final symlink followed
/// inside the root), `depth` levels deep (1..max_list_depth), depth-first,
/// each directory's entries by name. Symlinks are listed, never descended.
result<std::vector<entry_stat>> list(int root, const std::string& path, unsigned depth);

/// Creates the directory at `path` (owner and mode from `a`, defaults
/// 1000:1000 0755). `parents`: missing parents are created alike, and an
/// existing directory is no error (its stat is returned). 404 for a missing
/// parent, 409 for an existing entry.
result<entry_stat> make_dir(int root, const std::string& path, const attributes& a, bool parents);

/// Sets the owner and/or mode of the entry at `path` (a symlink: its owner
/// only; 400 for a mode).
result<entry_stat> update(int root, const std::string& path, const attributes& a);

/// Removes the entry at `path`; a directory with everything under it. 400
/// for the root.
status remove(int root, const std::string& path);

/// A regular file opened for reading (a final symlink followed inside the
/// root); 400 for a directory or anything but a regular file.
struct opened_file {
  fd_closer fd;
  uint64_t size = 0;
};
result<opened_file> open_file(int root, const std::string& path);

/// A streamed write of the file at `path`: bytes go to a temporary file in
/// the target directory, renamed over `path` by commit(); destroyed before
/// that, it removes the temporary file and leaves nothing behind. The parent
/// must exist (404); an existing directory is a conflict (409), so is an
/// existing file unless `force`. 507 when the volume is full.
class upload {
public:
  static result<upload> begin(int root, const std::string& path, const attributes& a, bool force);
  upload(upload&& other) noexcept;
  upload& operator=(upload&&) = delete;
  upload(const upload&) = delete;
  ~upload();

  status write(const char* data, size_t size);
  /// Syncs, sets the mode, renames; the written file's stat.
  result<entry_stat> commit();
  uint64_t written() const { return written_; }

private:
  upload() = default;
  void discard();

  fd_closer dir_, file_;
  std::string temp_, name_, shown_;
  uint32_t mode_ = default_file_mode;
  bool force_ = false, done_ = false;
  uint64_t written_ = 0;
};

/// Whether `name` is an upload's temporary file (".sandboxd-upload-…").
bool is_upload_temp(const std::string& name);

} // namespace sandboxd::volume_files
