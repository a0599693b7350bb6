#pragma once
/// When to try a failed delivery again (reference §2.3): a delay asked for by the destination's
/// response, else the publisher's `Upstash-Retry-Delay` expression, else the default back-off.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "shopd/relay/error.hpp"
#include "shopd/relay/headers.hpp"

namespace shopd::relay {

/// A parsed `Upstash-Retry-Delay` expression: the wait before a retry, in milliseconds, as a
/// function of `retried` (retries already scheduled; 0 before the first retry).
///
/// Grammar (whitespace between tokens is ignored):
///   expr    := term (('+' | '-') term)*
///   term    := unary (('*' | '/' | '%') unary)*
///   unary   := ('-' | '+') unary | primary
///   primary := number | 'retried' | name '(' expr (',' expr)* ')' | '(' expr ')'
///   number  := digits ['.' digits] | '.' digits
/// Functions: pow(x, y), exp(x), sqrt(x), abs(x), floor(x), ceil(x), round(x) (halves away from
/// zero), min(x, y, ...), max(x, y, ...). `%` is the floating remainder (C's fmod). Anything else
/// (other names, `^`, `**`, comparison, strings, ...) is rejected when parsing.
/// Bounds: at most max_text_length characters, max_nodes AST nodes and max_depth nesting levels, so
/// neither parsing nor evaluation can blow the stack or take long.
///
/// Immutable after parse; copies share the tree; safe to evaluate from several threads at once.
class retry_delay_expression {
 public:
  static constexpr std::size_t max_text_length = 1024;
  static constexpr std::size_t max_nodes = 256;
  static constexpr std::size_t max_depth = 32;

  /// Parse `text`. Fails with errc::invalid_expression and a message naming the position, e.g.
  /// "unknown identifier 'foo' at position 6"; `field` is "Upstash-Retry-Delay".
  [[nodiscard]] static result<retry_delay_expression> parse(std::string_view text);

  /// Evaluate with `retried`, round to the nearest millisecond and clamp to [0, one day].
  /// Fails with errc::evaluation_failed for a division or remainder by zero, or a non-finite result
  /// (NaN or infinity, e.g. `sqrt(-1)` or `exp(1000)`).
  [[nodiscard]] result<std::int64_t> evaluate_ms(std::int64_t retried) const;

  /// The text it was parsed from.
  [[nodiscard]] const std::string& text() const noexcept { return text_; }

  struct tree;  ///< opaque; defined in the .cpp

 private:
  retry_delay_expression(std::string text, std::shared_ptr<const tree> t)
      : text_(std::move(text)), tree_(std::move(t)) {}

  std::string text_;
  std::shared_ptr<const tree> tree_;
};

/// The default back-off before retry number `retry_number` (1 for the first retry):
/// `min(86400 s, e^(2.5 n)) * scale`, in milliseconds rounded to the nearest. With scale 1:
/// 12182, 148413, 1808042, 22026466, 86400000, 86400000 ms for n = 1..6. `scale` lets tests run
/// fast (0.001 gives 12, 148, 1808, ... ms); a negative or NaN scale counts as 0, one above 1000 as
/// 1000, and n < 1 as 1.
[[nodiscard]] std::int64_t default_backoff_ms(std::int64_t retry_number, double scale = 1.0) noexcept;

/// Where a retry delay came from.
enum class retry_delay_source {
  response,    ///< Retry-After / X-RateLimit-Reset(-Requests/-Tokens) of the failed attempt
  expression,  ///< the message's Upstash-Retry-Delay
  backoff,     ///< default_backoff_ms
};

[[nodiscard]] std::string_view to_string(retry_delay_source s) noexcept;

/// What next_retry_delay looks at.
struct retry_delay_input {
  std::int64_t retried = 0;  ///< retries already scheduled for this message (0 before the first)
  /// Response headers of the failed attempt; empty when there was no response (connect error,
  /// timeout).
  std::span<const header_view> response_headers{};
  /// The message's parsed Upstash-Retry-Delay, or nullptr.
  const retry_delay_expression* expression = nullptr;
  double backoff_scale = 1.0;  ///< scales only the default back-off
  std::int64_t now_ms = 0;     ///< for HTTP-date forms of Retry-After
};

struct retry_delay_decision {
  std::int64_t delay_ms = 0;
  retry_delay_source source = retry_delay_source::backoff;
  /// Set when an expression was given but failed to evaluate for this `retried` (the default
  /// back-off was used instead); worth logging against the message.
  std::optional<error> expression_error{};
};

/// The delay before the next retry, picked in order:
///  1. a usable response-driven value (parse_retry_after_ms) of Retry-After, X-RateLimit-Reset,
///     X-RateLimit-Reset-Requests or X-RateLimit-Reset-Tokens; when several are present, the
///     longest wait (all the limits they describe must have reset);
///  2. the expression evaluated with `retried`;
///  3. default_backoff_ms(retried + 1, backoff_scale).
/// Neither a response-driven delay nor an expression is scaled: both are what someone asked for.
[[nodiscard]] retry_delay_decision next_retry_delay(const retry_delay_input& in);

}  // namespace shopd::relay
