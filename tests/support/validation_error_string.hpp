#pragma once
/// How doctest prints a shopd::bus::validation_error in a failed CHECK: {"field", "message"}.

#include "shopd/bus/envelope.hpp"

#include <doctest/doctest.h>

namespace doctest {
template <>
struct StringMaker<shopd::bus::validation_error> {
  static String convert(const shopd::bus::validation_error& e) {
    return ("{\"" + e.field + "\", \"" + e.message + "\"}").c_str();
  }
};
}  // namespace doctest
