# Warnings and sanitizers as INTERFACE targets, linked where wanted instead of global flags.
add_library(shopd_warnings INTERFACE)
# -Wnull-dereference and -Wrestrict report, in some builds, paths GCC 12 invented inside libstdc++
# and Boost.Asio code inlined into ours (io_context executor comparison, scheduler thread info,
# std::string concatenation: GCC bug 105329), never actionable. -Wnull-dereference is kept by the
# dev and asan builds and left out of Release (-O2) and ThreadSanitizer builds; Release also drops
# -Wrestrict.
set(_null_dereference $<$<NOT:$<CONFIG:Release>>:-Wnull-dereference>)
if(SHOPD_SANITIZE STREQUAL "thread")
  set(_null_dereference "")
endif()
target_compile_options(shopd_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
  -Wcast-align -Wunused -Woverloaded-virtual ${_null_dereference} -Wimplicit-fallthrough
  $<$<CONFIG:Release>:-Wno-restrict>)

add_library(shopd_sanitizers INTERFACE)
if(SHOPD_SANITIZE STREQUAL "address")
  # -fno-sanitize=vptr: Debian's SOCI hides the typeinfo UBSan's vptr check needs (toolchain.md).
  set(_san -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(SHOPD_SANITIZE STREQUAL "thread")
  set(_san -fsanitize=thread -fno-omit-frame-pointer)
  # ThreadSanitizer does not model std::atomic_thread_fence (GCC 12 says so with -Wtsan). With
  # std::atomic, the reference counts of Asio's type-erased executors (detail/atomic_count.hpp: a
  # release decrement, then an acquire fence) rely on one, so TSan would miss their ordering and
  # report races on executors that are properly released. Without std::atomic, Asio counts with
  # Boost's atomic_count (acq_rel read-modify-writes, which TSan sees) and fences its handler
  # invocations with inline assembly (invisible either way; the hand-over between threads goes
  # through the scheduler's mutex, which TSan sees). Every translation unit that includes Asio
  # links this target, so they all agree on the macro.
  target_compile_definitions(shopd_sanitizers INTERFACE BOOST_ASIO_DISABLE_STD_ATOMIC)
elseif(NOT SHOPD_SANITIZE STREQUAL "")
  message(FATAL_ERROR "SHOPD_SANITIZE must be empty, 'address' or 'thread', not '${SHOPD_SANITIZE}'")
endif()
if(_san)
  target_compile_options(shopd_sanitizers INTERFACE ${_san})
  target_link_options(shopd_sanitizers INTERFACE ${_san})
endif()
