#include "shopd/app/sign.hpp"

#include "shopd/bus/signature.hpp"

#include <array>
#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>

namespace shopd {
namespace {

// Binary and whole: the signature covers the exact bytes curl will send with --data-binary.
// istream::read rather than `<< rdbuf()`, whose read errors (EISDIR, EIO) land on the other stream.
std::optional<std::string> read_all(std::istream& in) {
  std::string body;
  std::array<char, 64 * 1024> chunk{};
  while (in.read(chunk.data(), chunk.size()) || in.gcount() > 0) {
    body.append(chunk.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) return std::nullopt;
  return body;
}

}  // namespace

int sign(const sign_options& opts) {
  return sign(opts, std::cin, std::cout, std::cerr);
}

int sign(const sign_options& opts, std::istream& in, std::ostream& out, std::ostream& err) {
  if (opts.url.empty()) {
    err << "shopd sign: --url is required (the exact URL the request will be sent to)\n";
    return 2;
  }
  const std::string* key = nullptr;
  std::string_view key_name;
  if (opts.key == "current") {
    key = &opts.settings.qstash_current_signing_key;
    key_name = "QSTASH_CURRENT_SIGNING_KEY";
  } else if (opts.key == "next") {
    key = &opts.settings.qstash_next_signing_key;
    key_name = "QSTASH_NEXT_SIGNING_KEY";
  } else {
    err << "shopd sign: --key must be \"current\" or \"next\", not \"" << opts.key << "\"\n";
    return 2;
  }
  if (key->empty()) {
    err << "shopd sign: " << key_name << " is empty; set it in the environment or the --env-file\n";
    return 2;
  }

  std::string body;
  const std::string_view arg = opts.body_arg;
  if (arg == "@-") {
    auto text = read_all(in);
    if (!text) {
      err << "shopd sign: cannot read the body from stdin\n";
      return 2;
    }
    body = std::move(*text);
  } else if (arg.starts_with('@')) {
    const std::string path{arg.substr(1)};
    std::ifstream file(path, std::ios::binary);
    std::optional<std::string> text;
    if (file) text = read_all(file);
    if (!text) {
      err << "shopd sign: cannot read the body file \"" << path << "\"\n";
      return 2;
    }
    body = std::move(*text);
  } else {
    body = opts.body_arg;
  }

  out << bus::sign(*key, opts.url, body, std::chrono::system_clock::now()) << '\n';
  out.flush();
  return out ? 0 : 1;
}

}  // namespace shopd
