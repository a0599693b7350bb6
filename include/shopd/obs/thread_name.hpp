#pragma once
/// Names the calling thread as `top -H`, `ps -L`, perf and gdb show it (/proc/self/task/TID/comm):
/// "shopd-io-0", "shopd-work-3", "outbox-orders", "sqlite-ckpt"... Linux keeps 15 bytes; a longer
/// name is cut. Never fails (a name is a diagnostic aid).

#include <string_view>
#include <thread>

namespace shopd::obs {

void name_this_thread(std::string_view name) noexcept;
/// The same for a thread just started, named by its creator (named once this returns).
void name_thread(std::thread& t, std::string_view name) noexcept;

}  // namespace shopd::obs
