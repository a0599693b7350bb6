#pragma once
/// Scratch directories and files for one test (tests/support/temp_dir.cpp; both test executables link it).

#include <filesystem>
#include <string>
#include <string_view>

namespace shopd::test {

/// A directory under the system temp directory, removed with everything in it on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  /// Write `content` to `name` inside the directory; returns the file's path.
  std::filesystem::path write(std::string_view name, std::string_view content) const;

 private:
  std::filesystem::path path_;
};

/// The bytes of the file at `p`; throws std::runtime_error when it cannot be read.
[[nodiscard]] std::string read_file(const std::filesystem::path& p);

}  // namespace shopd::test
