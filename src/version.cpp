#include "shopd/app/commands.hpp"

namespace shopd {

std::string version_string() {
  return std::string("shopd ") + SHOPD_VERSION;
}

}  // namespace shopd
