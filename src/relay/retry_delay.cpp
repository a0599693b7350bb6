#include "shopd/relay/retry_delay.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <optional>

#include "shopd/relay/duration.hpp"

namespace shopd::relay {

namespace {

enum class op : std::uint8_t { number, retried, neg, add, sub, mul, div, mod, call };
enum class fn : std::uint8_t { pow, exp, sqrt, abs, floor, ceil, round, min, max };

struct function_info {
  std::string_view name;
  fn id;
  std::uint32_t min_args;
  std::uint32_t max_args;
};

constexpr std::uint32_t variadic = retry_delay_expression::max_nodes;

constexpr std::array<function_info, 9> functions{{
    {"pow", fn::pow, 2, 2},
    {"exp", fn::exp, 1, 1},
    {"sqrt", fn::sqrt, 1, 1},
    {"abs", fn::abs, 1, 1},
    {"floor", fn::floor, 1, 1},
    {"ceil", fn::ceil, 1, 1},
    {"round", fn::round, 1, 1},
    {"min", fn::min, 2, variadic},
    {"max", fn::max, 2, variadic},
}};

constexpr std::string_view field_name = "Upstash-Retry-Delay";

}  // namespace

// Nodes in post-order (children before parents; the root is last). A node's operands are
// `args[first .. first + count)`, indices into `nodes`.
struct retry_delay_expression::tree {
  struct node {
    op kind = op::number;
    fn func = fn::pow;
    double value = 0;
    std::uint32_t first = 0;
    std::uint32_t count = 0;
  };
  std::vector<node> nodes;
  std::vector<std::uint32_t> args;
};

namespace {

using tree = retry_delay_expression::tree;

constexpr bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}
constexpr bool is_ident_start(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
constexpr bool is_ident_char(char c) noexcept {
  return is_ident_start(c) || is_digit(c);
}

// Recursive descent over the grammar in the header. Every step returns the index of the node it
// built, or nullopt after recording the first error (later ones would only be consequences).
class parser {
 public:
  explicit parser(std::string_view src) : src_(src) {}

  result<tree> run() {
    skip_blanks();
    if (pos_ == src_.size())
      return make_error(errc::invalid_expression, "empty expression", std::string(field_name));
    auto root = expr();
    if (root) {
      skip_blanks();
      if (pos_ != src_.size()) fail_unexpected();
    }
    if (error_) return std::move(*error_);
    return std::move(tree_);
  }

 private:
  std::optional<std::uint32_t> expr() {
    depth_guard guard(*this);
    if (!guard.ok) return std::nullopt;
    auto lhs = term();
    while (lhs) {
      skip_blanks();
      if (!peek('+') && !peek('-')) break;
      op kind = src_[pos_++] == '+' ? op::add : op::sub;
      auto rhs = term();
      if (!rhs) return std::nullopt;
      lhs = add(kind, {*lhs, *rhs});
    }
    return lhs;
  }

  std::optional<std::uint32_t> term() {
    auto lhs = unary();
    while (lhs) {
      skip_blanks();
      op kind = op::mul;
      if (peek('*')) {
        // `**` is a power operator in some languages; say so rather than "unexpected '*'".
        if (pos_ + 1 < src_.size() && src_[pos_ + 1] == '*')
          return fail_at(pos_, "'**' is not an operator (use pow(x, y))");
        kind = op::mul;
      } else if (peek('/')) {
        kind = op::div;
      } else if (peek('%')) {
        kind = op::mod;
      } else {
        break;
      }
      ++pos_;
      auto rhs = unary();
      if (!rhs) return std::nullopt;
      lhs = add(kind, {*lhs, *rhs});
    }
    return lhs;
  }

  std::optional<std::uint32_t> unary() {
    skip_blanks();
    if (peek('-') || peek('+')) {
      depth_guard guard(*this);
      if (!guard.ok) return std::nullopt;
      bool negate = src_[pos_++] == '-';
      auto operand = unary();
      if (!operand || !negate) return operand;
      return add(op::neg, {*operand});
    }
    return primary();
  }

  std::optional<std::uint32_t> primary() {
    skip_blanks();
    if (pos_ == src_.size()) return fail_at(pos_, "unexpected end of expression");
    char c = src_[pos_];
    if (is_digit(c) || c == '.') return number();
    if (is_ident_start(c)) return identifier();
    if (c == '(') {
      ++pos_;
      auto inner = expr();
      if (!inner) return std::nullopt;
      if (!expect(')')) return std::nullopt;
      return inner;
    }
    return fail_unexpected();
  }

  std::optional<std::uint32_t> number() {
    std::size_t start = pos_;
    while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
    bool whole = pos_ > start;
    bool fraction = false;
    if (pos_ < src_.size() && src_[pos_] == '.') {
      ++pos_;
      std::size_t frac_start = pos_;
      while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
      fraction = pos_ > frac_start;
    }
    if (!whole && !fraction) return fail_at(start, "malformed number");
    double v = 0;
    auto [ptr, ec] = std::from_chars(src_.data() + start, src_.data() + pos_, v, std::chars_format::fixed);
    if (ec != std::errc{} || ptr != src_.data() + pos_ || !std::isfinite(v))
      return fail_at(start, "number out of range");
    tree::node n;
    n.kind = op::number;
    n.value = v;
    return add_node(n, {});
  }

  std::optional<std::uint32_t> identifier() {
    std::size_t start = pos_;
    while (pos_ < src_.size() && is_ident_char(src_[pos_])) ++pos_;
    std::string_view name = src_.substr(start, pos_ - start);
    if (name == "retried") {
      tree::node n;
      n.kind = op::retried;
      return add_node(n, {});
    }
    auto f = std::find_if(functions.begin(), functions.end(),
                          [&](const function_info& i) { return i.name == name; });
    if (f == functions.end()) return fail_at(start, "unknown identifier '" + std::string(name) + "'");
    skip_blanks();
    if (!peek('(')) return fail_at(pos_, "expected '(' after function " + std::string(name));
    ++pos_;
    std::vector<std::uint32_t> args;
    while (true) {
      auto arg = expr();
      if (!arg) return std::nullopt;
      args.push_back(*arg);
      skip_blanks();
      if (peek(',')) {
        ++pos_;
        continue;
      }
      if (!expect(')')) return std::nullopt;
      break;
    }
    if (args.size() < f->min_args || args.size() > f->max_args) {
      std::string want = f->min_args == f->max_args
                             ? std::to_string(f->min_args) + " argument" + (f->min_args == 1 ? "" : "s")
                             : "at least " + std::to_string(f->min_args) + " arguments";
      return fail_at(
          start, "function " + std::string(name) + " takes " + want + ", got " + std::to_string(args.size()));
    }
    tree::node n;
    n.kind = op::call;
    n.func = f->id;
    return add_node(n, args);
  }

  std::optional<std::uint32_t> add(op kind, std::initializer_list<std::uint32_t> operands) {
    tree::node n;
    n.kind = kind;
    return add_node(n, std::vector<std::uint32_t>(operands));
  }

  std::optional<std::uint32_t> add_node(tree::node n, const std::vector<std::uint32_t>& operands) {
    if (tree_.nodes.size() >= retry_delay_expression::max_nodes)
      return fail("expression too large (more than " + std::to_string(retry_delay_expression::max_nodes) +
                  " numbers, operators and calls)");
    n.first = static_cast<std::uint32_t>(tree_.args.size());
    n.count = static_cast<std::uint32_t>(operands.size());
    tree_.args.insert(tree_.args.end(), operands.begin(), operands.end());
    tree_.nodes.push_back(n);
    return static_cast<std::uint32_t>(tree_.nodes.size() - 1);
  }

  bool expect(char c) {
    skip_blanks();
    if (peek(c)) {
      ++pos_;
      return true;
    }
    if (pos_ == src_.size())
      fail_at(pos_, std::string("expected '") + c + "' before the end of the expression");
    else
      fail_at(pos_, std::string("expected '") + c + "', found '" + src_[pos_] + "'");
    return false;
  }

  [[nodiscard]] bool peek(char c) const { return pos_ < src_.size() && src_[pos_] == c; }

  void skip_blanks() {
    while (pos_ < src_.size() &&
           (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\n' || src_[pos_] == '\r'))
      ++pos_;
  }

  std::nullopt_t fail_unexpected() {
    unsigned char c = static_cast<unsigned char>(src_[pos_]);
    if (c == '^') return fail_at(pos_, "'^' is not an operator (use pow(x, y))");
    if (c < 0x20 || c >= 0x7f) return fail_at(pos_, "unexpected byte 0x" + hex(c));
    return fail_at(pos_, std::string("unexpected character '") + src_[pos_] + "'");
  }

  std::nullopt_t fail_at(std::size_t at, const std::string& what) {
    return fail(what + " at position " + std::to_string(at + 1));
  }

  std::nullopt_t fail(std::string what) {
    if (!error_) error_ = make_error(errc::invalid_expression, std::move(what), std::string(field_name));
    return std::nullopt;
  }

  static std::string hex(unsigned char c) {
    constexpr char digits[] = "0123456789abcdef";
    return {digits[c >> 4], digits[c & 15]};
  }

  // Bounds the recursion of the parser (and so the height of the tree) by max_depth.
  struct depth_guard {
    parser& p;
    bool ok;
    explicit depth_guard(parser& pp) : p(pp), ok(++pp.depth_ <= retry_delay_expression::max_depth) {
      if (!ok)
        p.fail("expression nested too deeply (more than " +
               std::to_string(retry_delay_expression::max_depth) + " levels)");
    }
    ~depth_guard() { --p.depth_; }
    depth_guard(const depth_guard&) = delete;
    depth_guard& operator=(const depth_guard&) = delete;
  };

  std::string_view src_;
  std::size_t pos_ = 0;
  std::size_t depth_ = 0;
  tree tree_;
  std::optional<error> error_;
};

// Evaluation recurses over the tree, whose height the parser bounded.
class evaluator {
 public:
  evaluator(const tree& t, double retried) : t_(t), retried_(retried) {}

  double eval(std::uint32_t i) {
    const auto& n = t_.nodes[i];
    auto arg = [&](std::uint32_t k) { return eval(t_.args[n.first + k]); };
    switch (n.kind) {
      case op::number:
        return n.value;
      case op::retried:
        return retried_;
      case op::neg:
        return -arg(0);
      case op::add:
        return arg(0) + arg(1);
      case op::sub:
        return arg(0) - arg(1);
      case op::mul:
        return arg(0) * arg(1);
      case op::div:
      case op::mod: {
        double a = arg(0);
        double b = arg(1);
        if (b == 0) {
          division_by_zero_ = true;
          return 0;
        }
        return n.kind == op::div ? a / b : std::fmod(a, b);
      }
      case op::call:
        return call(n);
    }
    return 0;
  }

  [[nodiscard]] bool division_by_zero() const { return division_by_zero_; }

 private:
  double call(const tree::node& n) {
    auto arg = [&](std::uint32_t k) { return eval(t_.args[n.first + k]); };
    switch (n.func) {
      case fn::pow:
        return std::pow(arg(0), arg(1));
      case fn::exp:
        return std::exp(arg(0));
      case fn::sqrt:
        return std::sqrt(arg(0));
      case fn::abs:
        return std::fabs(arg(0));
      case fn::floor:
        return std::floor(arg(0));
      case fn::ceil:
        return std::ceil(arg(0));
      case fn::round:
        return std::round(arg(0));
      case fn::min:
      case fn::max: {
        double best = arg(0);
        for (std::uint32_t k = 1; k < n.count; ++k) {
          double v = arg(k);
          // NaN must not vanish in min/max (std::min would drop it depending on the order).
          if (std::isnan(v) || std::isnan(best))
            best = std::nan("");
          else
            best = n.func == fn::min ? std::min(best, v) : std::max(best, v);
        }
        return best;
      }
    }
    return 0;
  }

  const tree& t_;
  double retried_;
  bool division_by_zero_ = false;
};

}  // namespace

result<retry_delay_expression> retry_delay_expression::parse(std::string_view text) {
  if (text.size() > max_text_length)
    return make_error(errc::invalid_expression,
                      "expression too long (more than " + std::to_string(max_text_length) + " characters)",
                      std::string(field_name));
  auto t = parser(text).run();
  if (!t) return t.error();
  return retry_delay_expression(std::string(text), std::make_shared<const tree>(std::move(*t)));
}

result<std::int64_t> retry_delay_expression::evaluate_ms(std::int64_t retried) const {
  evaluator ev(*tree_, static_cast<double>(retried));
  double v = ev.eval(static_cast<std::uint32_t>(tree_->nodes.size() - 1));
  if (ev.division_by_zero())
    return make_error(errc::evaluation_failed,
                      "division by zero evaluating '" + text_ + "' with retried=" + std::to_string(retried),
                      std::string(field_name));
  if (!std::isfinite(v))
    return make_error(errc::evaluation_failed,
                      "'" + text_ + "' with retried=" + std::to_string(retried) + " is not a finite number",
                      std::string(field_name));
  return std::llround(std::clamp(v, 0.0, static_cast<double>(one_day_ms)));
}

std::int64_t default_backoff_ms(std::int64_t retry_number, double scale) noexcept {
  if (!(scale >= 0)) scale = 0;  // also catches NaN
  scale = std::min(scale, 1000.0);
  double n = static_cast<double>(std::max<std::int64_t>(retry_number, 1));
  double seconds = std::min(86'400.0, std::exp(2.5 * n));
  return std::llround(seconds * 1000.0 * scale);
}

std::string_view to_string(retry_delay_source s) noexcept {
  switch (s) {
    case retry_delay_source::response:
      return "response";
    case retry_delay_source::expression:
      return "expression";
    case retry_delay_source::backoff:
      return "backoff";
  }
  return "unknown";
}

retry_delay_decision next_retry_delay(const retry_delay_input& in) {
  static constexpr std::array<std::string_view, 4> names{
      "Retry-After", "X-RateLimit-Reset", "X-RateLimit-Reset-Requests", "X-RateLimit-Reset-Tokens"};
  std::optional<std::int64_t> from_response;
  for (const auto& h : in.response_headers) {
    if (std::none_of(names.begin(), names.end(), [&](std::string_view n) { return iequals(n, h.name); }))
      continue;
    if (auto wait = parse_retry_after_ms(h.value, in.now_ms))
      from_response = std::max(from_response.value_or(0), *wait);
  }
  if (from_response) return {*from_response, retry_delay_source::response, std::nullopt};

  retry_delay_decision out;
  if (in.expression != nullptr) {
    auto v = in.expression->evaluate_ms(in.retried);
    if (v) return {*v, retry_delay_source::expression, std::nullopt};
    out.expression_error = v.error();
  }
  out.delay_ms = default_backoff_ms(in.retried + 1, in.backoff_scale);
  out.source = retry_delay_source::backoff;
  return out;
}

}  // namespace shopd::relay
