// jwt_tool: shopd's Upstash-Signature signer and verifier as a command, for the node interop test.
//   jwt_tool sign KEY URL BODYFILE                     prints a token (signed now)
//   jwt_tool verify CURRENT NEXT URL BODYFILE TOKEN    exit 0, or "<reason>: <description>" and exit 1
// An empty URL skips the subject check; "-" as BODYFILE reads stdin. Usage errors exit 2.

#include "shopd/bus/signature.hpp"

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace {

std::optional<std::string> read_body(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::nullopt;
  std::string body(std::istreambuf_iterator<char>(file), {});
  if (file.bad()) return std::nullopt;
  return body;
}

int usage() {
  std::cerr << "usage: jwt_tool sign KEY URL BODYFILE\n"
               "       jwt_tool verify CURRENT NEXT URL BODYFILE TOKEN\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view command = argc > 1 ? argv[1] : "";
  if (command == "sign" && argc == 5) {
    const auto body = read_body(argv[4]);
    if (!body) {
      std::cerr << "jwt_tool: cannot read " << argv[4] << "\n";
      return 2;
    }
    std::cout << shopd::bus::sign(argv[2], argv[3], *body, std::chrono::system_clock::now()) << "\n";
    return 0;
  }
  if (command == "verify" && argc == 7) {
    const auto body = read_body(argv[5]);
    if (!body) {
      std::cerr << "jwt_tool: cannot read " << argv[5] << "\n";
      return 2;
    }
    shopd::bus::verify_options opts;
    if (const std::string_view url = argv[4]; !url.empty()) opts.expected_url = std::string(url);
    const auto r =
        shopd::bus::verify(argv[6], {argv[2], argv[3]}, *body, std::chrono::system_clock::now(), opts);
    if (!r) {
      std::cout << shopd::bus::to_string(r.error()) << ": " << shopd::bus::describe(r.error()) << "\n";
      return 1;
    }
    return 0;
  }
  return usage();
}
