#pragma once
/// The systemd service notification protocol (sd_notify(3)), spoken directly: one datagram to the
/// AF_UNIX socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). Without
/// systemd (no NOTIFY_SOCKET) every call is a no-op, so the binary runs the same anywhere.

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

namespace shopd::app::systemd {

/// Send `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=..."; several joined by '\n').
/// Returns true when a datagram was sent. Never throws.
bool notify(std::string_view state) noexcept;

/// The watchdog interval systemd asks for (WatchdogSec=), when it is meant for this process.
[[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval() noexcept;

/// Sends WATCHDOG=1 at half the interval systemd asked for, from its own thread, while alive.
/// Does nothing when no watchdog is configured.
class watchdog {
 public:
  watchdog();
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace shopd::app::systemd
