#pragma once
/// tests/integration/smtp_server.py (a real SMTP server on python3-aiosmtpd) as a child process of
/// the test, in one of its modes: "sink", "reject-rcpt", "tempfail", ... (see the script).

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace shopd::test {

/// The server, on a port the kernel picked unless the mode's arguments name one. It is stopped when
/// this object goes away, also when a REQUIRE failed; and it stops by itself when the test process
/// dies, because its stdin (our pipe) then reaches end of file. Its stderr goes to
/// `log_dir`/smtp-server.log. Throws std::runtime_error when it cannot start (the log's text
/// included) within 30 s.
class smtp_server {
 public:
  smtp_server(const std::filesystem::path& log_dir, std::vector<std::string> mode_args);
  smtp_server(const smtp_server&) = delete;
  smtp_server& operator=(const smtp_server&) = delete;
  ~smtp_server();

  [[nodiscard]] int port() const noexcept { return port_; }
  /// "127.0.0.1:<port>".
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  /// "smtp://127.0.0.1:<port>".
  [[nodiscard]] std::string url() const { return "smtp://" + address(); }

 private:
  int wait_until_listening();
  [[nodiscard]] std::string read_log() const;
  void close_pipes() noexcept;
  void stop() noexcept;

  std::filesystem::path log_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  int port_ = 0;
};

}  // namespace shopd::test
