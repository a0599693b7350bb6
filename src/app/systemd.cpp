#include "shopd/app/systemd.hpp"

#include "shopd/obs/thread_name.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

namespace shopd::app::systemd {

namespace {

std::optional<long long> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  long long n = 0;
  const auto* end = v + std::strlen(v);
  const auto [p, ec] = std::from_chars(v, end, n);
  if (ec != std::errc{} || p != end) return std::nullopt;
  return n;
}

}  // namespace

bool notify(std::string_view state) noexcept {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@')) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::size_t len = std::strlen(path);
  if (len >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
  const auto sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&addr), addr_len);
  ::close(fd);
  return sent == static_cast<ssize_t>(state.size());
}

std::optional<std::chrono::microseconds> watchdog_interval() noexcept {
  const auto usec = env_number("WATCHDOG_USEC");
  if (!usec || *usec <= 0) return std::nullopt;
  // WATCHDOG_PID, when set, names the process the watchdog is for (not a child we exec'd).
  if (const auto pid = env_number("WATCHDOG_PID"); pid && *pid != static_cast<long long>(::getpid())) {
    return std::nullopt;
  }
  return std::chrono::microseconds(*usec);
}

watchdog::watchdog() {
  const auto interval = watchdog_interval();
  if (!interval) return;
  thread_ = std::thread([this, period = *interval / 2] {
    obs::name_this_thread("sd-watchdog");
    std::unique_lock lock(mutex_);
    while (!stop_) {
      notify("WATCHDOG=1");
      wake_.wait_for(lock, period, [this] { return stop_; });
    }
  });
}

watchdog::~watchdog() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace shopd::app::systemd
