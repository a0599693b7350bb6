#include "shopd/roles/analytics/replay.hpp"

#include "shopd/roles/analytics/failure_callback.hpp"

#include <boost/json.hpp>

namespace shopd::roles::analytics {

namespace {

constexpr std::size_t max_error_text_bytes = 512;

bool is_unreserved(unsigned char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::optional<boost::json::object> json_object_of(std::string_view body) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.get_object());
}

}  // namespace

std::string replay_url(std::string_view qstash_url, std::string_view dlq_id) {
  while (!qstash_url.empty() && qstash_url.back() == '/') qstash_url.remove_suffix(1);
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string url(qstash_url);
  url += "/v2/dlq/retry/";
  for (const char ch : dlq_id) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      url.push_back(ch);
    } else {
      url.push_back('%');
      url.push_back(hex[c >> 4]);
      url.push_back(hex[c & 0x0F]);
    }
  }
  return url;
}

std::optional<std::string> replayed_message_id(std::string_view body) {
  const auto o = json_object_of(body);
  if (!o) return std::nullopt;
  const auto* id = o->if_contains("messageId");
  if (id == nullptr || !id->is_string() || id->get_string().empty()) return std::nullopt;
  return std::string(id->get_string());
}

std::string upstream_error(unsigned status, std::string_view body) {
  std::string text(body);
  if (const auto o = json_object_of(body)) {
    if (const auto* e = o->if_contains("error"); e != nullptr && e->is_string()) text = e->get_string();
  }
  text = to_stored_text(text, max_error_text_bytes);
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  }
  if (text.empty()) text = "(empty body)";
  return "QStash answered " + std::to_string(status) + ": " + text;
}

}  // namespace shopd::roles::analytics
