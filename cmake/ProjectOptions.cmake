# Warnings and sanitizers as INTERFACE targets, linked where wanted instead of global flags.
add_library(shopd_warnings INTERFACE)
target_compile_options(shopd_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
  -Wcast-align -Wunused -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)

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
