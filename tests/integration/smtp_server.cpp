#include "smtp_server.hpp"

#include "temp_dir.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace shopd::test {
namespace {

// The script lives in this directory; CMake compiles sources by absolute path, but a compiler
// launcher may have made __FILE__ relative, so the source directory comes from CMake.
const std::filesystem::path server_script =
    std::filesystem::path(SHOPD_TEST_SOURCE_DIR) / "tests" / "integration" / "smtp_server.py";
// Debian's interpreter has python3-aiosmtpd; the python3 first on PATH may not.
constexpr const char* python = "/usr/bin/python3";

}  // namespace

smtp_server::smtp_server(const std::filesystem::path& log_dir, std::vector<std::string> mode_args)
    : log_(log_dir / "smtp-server.log") {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    throw std::runtime_error("pipe2 failed");
  }
  std::vector<std::string> args{python, server_script.string()};
  args.insert(args.end(), mode_args.begin(), mode_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const int rc = ::posix_spawn(&pid_, python, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  stdin_ = in[1];
  stdout_ = out[0];
  if (rc != 0) {
    pid_ = -1;
    close_pipes();
    throw std::runtime_error("cannot start " + std::string(python));
  }
  try {
    port_ = wait_until_listening();
  } catch (...) {
    stop();
    throw;
  }
}

smtp_server::~smtp_server() {
  stop();
}

// Reads the "LISTENING <port>" line, waiting at most 30 s in total (a slow machine, not a timing
// assertion: normally it takes a fraction of a second).
int smtp_server::wait_until_listening() {
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (line.find('\n') == std::string::npos) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("SMTP test server did not start: " + read_log());
    pollfd p{stdout_, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n <= 0) continue;  // EINTR or the deadline: the loop decides
    char buf[256];
    const auto got = ::read(stdout_, buf, sizeof buf);
    if (got <= 0) throw std::runtime_error("SMTP test server exited: " + read_log());
    line.append(buf, static_cast<std::size_t>(got));
  }
  if (!line.starts_with("LISTENING ")) throw std::runtime_error("SMTP test server said: " + line);
  return std::stoi(line.substr(10));
}

std::string smtp_server::read_log() const {
  try {
    return read_file(log_);
  } catch (const std::exception& e) {
    return e.what();  // for the error message this goes into
  }
}

void smtp_server::close_pipes() noexcept {
  if (stdin_ >= 0) ::close(stdin_);
  if (stdout_ >= 0) ::close(stdout_);
  stdin_ = stdout_ = -1;
}

void smtp_server::stop() noexcept {
  close_pipes();
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 500; ++i) {  // up to 10 s for a clean exit, then SIGKILL
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace shopd::test
