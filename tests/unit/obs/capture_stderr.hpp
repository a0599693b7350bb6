#pragma once
/// For the obs tests: capture what the process writes to stderr (the log sink).

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <string>

namespace shopd::test {

/// Runs f(so_far) with stderr sent to a temporary file (so_far() returns what the file holds now);
/// returns everything written.
template <typename F>
std::string capture_stderr(F f) {
  std::FILE* tmp = std::tmpfile();
  REQUIRE(tmp != nullptr);
  const int saved = ::dup(STDERR_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(::dup2(::fileno(tmp), STDERR_FILENO) >= 0);
  const auto so_far = [tmp] {
    std::string out;
    std::rewind(tmp);
    char buf[512];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0) out.append(buf, n);
    return out;
  };
  f(so_far);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  auto out = so_far();
  std::fclose(tmp);
  return out;
}

}  // namespace shopd::test
