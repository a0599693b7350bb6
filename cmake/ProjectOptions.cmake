# Warnings and sanitizers as INTERFACE targets, linked where wanted instead of global flags.
add_library(shopd_warnings INTERFACE)
# Release (-O2) leaves out two warnings whose GCC 12 reports there are about paths the optimiser
# invented inside libstdc++ and Boost.Asio code inlined into ours, never actionable:
# -Wnull-dereference (io_context::basic_executor_type, std::string) and -Wrestrict on std::string
# concatenation (GCC bug 105329). The other presets keep -Wnull-dereference.
target_compile_options(shopd_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
  -Wcast-align -Wunused -Woverloaded-virtual $<$<NOT:$<CONFIG:Release>>:-Wnull-dereference>
  -Wimplicit-fallthrough $<$<CONFIG:Release>:-Wno-restrict>)

add_library(shopd_sanitizers INTERFACE)
if(SHOPD_SANITIZE STREQUAL "address")
  # -fno-sanitize=vptr: Debian's SOCI hides the typeinfo UBSan's vptr check needs (toolchain.md).
  set(_san -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(SHOPD_SANITIZE STREQUAL "thread")
  set(_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT SHOPD_SANITIZE STREQUAL "")
  message(FATAL_ERROR "SHOPD_SANITIZE must be empty, 'address' or 'thread', not '${SHOPD_SANITIZE}'")
endif()
if(_san)
  target_compile_options(shopd_sanitizers INTERFACE ${_san})
  target_link_options(shopd_sanitizers INTERFACE ${_san})
endif()
