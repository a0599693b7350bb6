// Fuzzes configuration: config::parse_env_entries / parse_env_text on the text of an `--env-file`,
// then config::load with the assignments as the environment (every key's kind, bounds and extra
// rule). Input: the env-file text.
// Properties besides "no crash, leak or UB": errors are config_error, one line; parse_env_text is
// parse_env_entries with later assignments winning; a loaded snapshot shows every key without
// throwing and never shows a secret.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "shopd/config/config.hpp"

namespace {

using namespace shopd::config;
using shopd::fuzz::check;

void check_one_line(const config_error& e) {
  const std::string_view what = e.what();
  check(what.find('\n') == std::string_view::npos && what.find('\r') == std::string_view::npos,
        "a config error spans several lines");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  string_map last_wins;
  try {
    for (auto& entry : parse_env_entries(text, "fuzz.env")) last_wins[entry.key] = std::move(entry.value);
  } catch (const config_error& e) {
    check_one_line(e);
    bool also_refused = false;
    try {
      (void)parse_env_text(text, "fuzz.env");
    } catch (const config_error&) {
      also_refused = true;
    }
    check(also_refused, "parse_env_text accepted what parse_env_entries refused");
    return 0;
  }
  check(parse_env_text(text, "fuzz.env") == last_wins, "parse_env_text differs from parse_env_entries");

  try {
    const settings s = load(sources{.env_file = std::nullopt, .environment = last_wins, .flags = {}});
    for (const key_spec& key : keys()) {
      const std::string shown = display_value(s, key);
      if (key.type == kind::secret) {
        const auto& value = s.*std::get<std::string settings::*>(key.target);
        check(shown == (value.empty() ? "" : "***"), "a secret is displayed");
      }
    }
  } catch (const config_error& e) {
    check_one_line(e);
  }
  return 0;
}
