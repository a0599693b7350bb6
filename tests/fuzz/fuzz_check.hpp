#pragma once
/// What every fuzz target shares: a property check that stops the run loudly. A failed check
/// aborts, which libFuzzer reports as a crash and saves the input as an artifact.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace shopd::fuzz {

/// Abort with `what` on stderr unless `ok`.
inline void check(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

}  // namespace shopd::fuzz
