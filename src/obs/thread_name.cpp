#include "shopd/obs/thread_name.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>

namespace shopd::obs {

namespace {

void set_name(pthread_t thread, std::string_view name) noexcept {
  std::array<char, 16> buf{};  // the kernel's limit, with the terminating NUL
  const auto n = std::min(name.size(), buf.size() - 1);
  std::copy_n(name.data(), n, buf.data());
  pthread_setname_np(thread, buf.data());
}

}  // namespace

void name_this_thread(std::string_view name) noexcept {
  set_name(pthread_self(), name);
}

void name_thread(std::thread& t, std::string_view name) noexcept {
  if (t.joinable()) set_name(t.native_handle(), name);
}

}  // namespace shopd::obs
