// The warm pool's bookkeeping: per template, sandboxes booted ahead of any
// create and not yet claimed. Pure state, no actors: the registry owns one,
// asks it what to do and does the messaging.
//
// The rules it keeps: one boot at a time; none while a create is under way
// nor for a quiet period after the last one began (a refill never competes
// with a caller's create or the first commands it runs); none for a while
// after a boot failed; warm sandboxes count against the host's sandbox limit with the
// live ones, and give way to a create that needs their room.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sandboxd {

class warm_pool {
public:
  /// How long refilling rests after a failed boot.
  static constexpr int64_t backoff_ms = 5000;
  /// How long after the last create began refilling waits.
  static constexpr int64_t quiet_ms = 1000;

  /// `sizes`: warm sandboxes wanted per template name (0 or absent: none).
  explicit warm_pool(std::map<std::string, size_t> sizes = {});

  /// The template to boot a warm sandbox of now, if any. `live`: the host's
  /// live sandboxes; `capacity`: its limit; `bootable(name)`: whether that
  /// template can be booted (it is built).
  std::optional<std::string> next(size_t live, size_t capacity, int64_t now_ms,
                                  const std::function<bool(const std::string&)>& bootable) const;
  /// A boot `next` proposed has started; then exactly one of the two below.
  void boot_started();
  void boot_done(const std::string& name, const std::string& id);
  void boot_failed(int64_t now_ms);

  /// Creates under way, and the quiet period after one began, hold
  /// refilling back.
  void create_started(int64_t now_ms) {
    ++creating_;
    quiet_until_ms_ = now_ms + quiet_ms;
  }
  void create_done() { creating_ -= creating_ > 0; }
  /// Milliseconds until a backoff or a quiet period ends (0: none).
  int64_t rests_for(int64_t now_ms) const;

  /// A warm sandbox of `name` for a caller (the longest ready), if any.
  std::optional<std::string> take(const std::string& name);
  /// One warm sandbox to remove so that a create fits under the limit
  /// (from the template with most ready), if any.
  std::optional<std::string> give_way();
  /// Stops refilling for good; returns every ready sandbox, to be removed.
  std::vector<std::string> drain();

  size_t ready() const;
  bool booting() const { return booting_; }
  bool draining() const { return draining_; }
  /// Ready per configured template (0s included): for operators.
  std::map<std::string, uint64_t> ready_by_template() const;
  /// Whether some template is short of its size (a refill is still due).
  bool short_of_target() const;

private:
  std::map<std::string, size_t> sizes_;
  std::map<std::string, std::deque<std::string>> ready_;
  bool booting_ = false;
  bool draining_ = false;
  size_t creating_ = 0;
  int64_t resume_at_ms_ = 0; // after a failed boot
  int64_t quiet_until_ms_ = 0; // after the last create began
};

} // namespace sandboxd
