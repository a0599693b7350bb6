#include "shopd/app/systemd.hpp"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// A datagram socket standing where systemd's notify socket would, bound to `name` (a path, or
// "@..." for the abstract namespace), with a receive timeout so a missing datagram fails the test.
class notify_socket {
 public:
  explicit notify_socket(std::string name) : name_(std::move(name)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name_.data(), name_.size());
    if (name_[0] == '@') addr.sun_path[0] = '\0';
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size())) == 0);
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setenv("NOTIFY_SOCKET", name_.c_str(), 1);
  }
  ~notify_socket() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd_);
    if (name_[0] == '/') ::unlink(name_.c_str());
  }
  std::string receive() {
    char buf[256];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  std::string name_;
  int fd_ = -1;
};

}  // namespace

TEST_SUITE("app/systemd") {
  TEST_CASE("without NOTIFY_SOCKET nothing is sent") {
    ::unsetenv("NOTIFY_SOCKET");
    CHECK_FALSE(shopd::app::systemd::notify("READY=1"));
  }

  TEST_CASE("READY and STOPPING reach the notify socket") {
    SUBCASE("a socket path") {
      notify_socket sock("/tmp/shopd-notify-" + std::to_string(::getpid()));
      CHECK(shopd::app::systemd::notify("READY=1\nSTATUS=serving"));
      CHECK(sock.receive() == "READY=1\nSTATUS=serving");
    }
    SUBCASE("the abstract namespace") {
      notify_socket sock("@shopd-notify-" + std::to_string(::getpid()));
      CHECK(shopd::app::systemd::notify("STOPPING=1"));
      CHECK(sock.receive() == "STOPPING=1");
    }
  }

  TEST_CASE("the watchdog pings while it lives, only when systemd asks for it") {
    ::unsetenv("WATCHDOG_USEC");
    CHECK_FALSE(shopd::app::systemd::watchdog_interval().has_value());

    ::setenv("WATCHDOG_USEC", "40000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
    CHECK_FALSE(shopd::app::systemd::watchdog_interval().has_value());  // meant for another process
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    REQUIRE(shopd::app::systemd::watchdog_interval() == std::chrono::microseconds(40000));

    notify_socket sock("/tmp/shopd-watchdog-" + std::to_string(::getpid()));
    {
      const shopd::app::systemd::watchdog dog;
      CHECK(sock.receive() == "WATCHDOG=1");
      CHECK(sock.receive() == "WATCHDOG=1");  // a second ping after half the interval
    }
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
  }
}
