#include "shopd/mail/transport.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace shopd::mail {

namespace {

namespace fs = std::filesystem;

std::string errno_text(int err) {
  return std::system_category().message(err);
}

// The Message-ID without brackets, reduced to characters that are safe in a file name everywhere.
std::string file_name_part(std::string_view message_id) {
  std::string out;
  for (const char c : message_id) {
    if (c == '<' || c == '>') continue;
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '@' || c == '-';
    out += safe ? c : '_';
    if (out.size() == 200) break;
  }
  return out.empty() ? std::string("message") : out;
}

class file_descriptor {
 public:
  explicit file_descriptor(int fd) noexcept : fd_(fd) {}
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  ~file_descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const noexcept { return fd_; }
  // close(2) reports deferred write errors (NFS and the like), so it is checked where it matters.
  int close() noexcept {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

class file_transport final : public transport {
 public:
  explicit file_transport(fs::path directory) : directory_(std::move(directory)) {
    std::error_code ec;
    fs::create_directories(directory_, ec);
    if (ec || !fs::is_directory(directory_)) {
      throw std::invalid_argument("MAIL_TRANSPORT: cannot create directory " + directory_.string() + ": " +
                                  (ec ? ec.message() : std::string("not a directory")));
    }
  }

  send_result send(const outgoing_mail& mail) override {
    if (mail.recipients.empty()) return permanent_failure{"message has no recipients"};
    std::error_code ec;
    fs::create_directories(directory_, ec);
    if (ec) return transient_failure{"cannot create " + directory_.string() + ": " + ec.message()};

    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    const auto name = std::to_string(ms) + "-" + file_name_part(mail.message_id) + ".eml";
    const auto final_path = directory_ / name;
    // Hidden and without the .eml suffix: readers listing *.eml skip it. Unique per process and
    // send, so concurrent sends of the same message cannot share a temporary file.
    const auto temp_path = directory_ / ("." + name + "." + std::to_string(::getpid()) + "-" +
                                         std::to_string(++counter_) + ".tmp");

    file_descriptor file(::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (file.get() < 0)
      return transient_failure{"cannot create " + temp_path.string() + ": " + errno_text(errno)};
    const auto fail = [&](std::string_view what) {
      const int err = errno;
      ::unlink(temp_path.c_str());
      return transient_failure{std::string(what) + " " + temp_path.string() + ": " + errno_text(err)};
    };
    if (!write_all(file.get(), mail.data)) return fail("cannot write");
    if (::fsync(file.get()) != 0) return fail("cannot fsync");
    if (file.close() != 0) return fail("cannot close");
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0) return fail("cannot rename");

    // The rename itself is durable only once the directory is synced.
    file_descriptor dir(::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0 || ::fsync(dir.get()) != 0) {
      return transient_failure{"cannot fsync directory " + directory_.string() + ": " + errno_text(errno)};
    }
    return sent{final_path.string()};
  }

  std::string describe() const override { return "file:" + directory_.string(); }

 private:
  fs::path directory_;
  std::atomic<std::uint64_t> counter_{0};
};

}  // namespace

std::unique_ptr<transport> make_file_transport(const std::filesystem::path& directory) {
  if (directory.empty()) throw std::invalid_argument("MAIL_TRANSPORT: file: needs a directory (file:DIR)");
  return std::make_unique<file_transport>(directory);
}

}  // namespace shopd::mail
