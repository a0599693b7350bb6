#include "shopd/roles/orders/pricing.hpp"

#include "shopd/text/space.hpp"
#include "shopd/text/utf8.hpp"

#include <boost/throw_exception.hpp>

#include <stdexcept>

namespace shopd::roles::orders {

namespace {

// The rule bus::order_created applies to a line's name: the order.created event must pass its
// consumers' validation, so a catalogue name that would not is caught here, before anything is
// written.
bool is_line_name(std::string_view name) noexcept {
  if (name.empty() || !bus::is_single_line(name)) return false;
  std::size_t chars = 0;
  bool blank = true;
  for (std::size_t i = 0; i < name.size();) {
    const char32_t cp = shopd::text::next_code_point(name, i).value_or(U'\uFFFD');  // valid: checked above
    blank = blank && shopd::text::is_space(cp);
    ++chars;
  }
  return !blank && chars <= bus::max_name_chars;
}

std::string item_path(std::size_t i, std::string_view member) {
  return "items[" + std::to_string(i) + "]." + std::string(member);
}

pricing_error fail(pricing_errc code, std::string field, std::string message) {
  return pricing_error{code, std::move(field), std::move(message)};
}

}  // namespace

std::string_view to_string(pricing_errc e) noexcept {
  switch (e) {
    case pricing_errc::unknown_sku:
      return "unknown_sku";
    case pricing_errc::product_unavailable:
      return "product_unavailable";
    case pricing_errc::currency_mismatch:
      return "currency_mismatch";
    case pricing_errc::amount_out_of_range:
      return "amount_out_of_range";
  }
  return "unknown_sku";
}

void throw_exception_from_error(const pricing_error& e, const boost::source_location& loc) {
  boost::throw_exception(std::invalid_argument(std::string(to_string(e.code)) + ": " + e.message), loc);
}

pricing_result<priced_order> price_checkout(const bus::checkout_command& cmd, const catalogue& products) {
  priced_order out;
  out.lines.reserve(cmd.items.size());
  for (std::size_t i = 0; i < cmd.items.size(); ++i) {
    const bus::checkout_item& item = cmd.items[i];
    const auto it = products.find(item.sku);
    if (it == products.end()) {
      return fail(pricing_errc::unknown_sku, item_path(i, "sku"), "no product has sku \"" + item.sku + "\"");
    }
    const product& p = it->second;
    if (!p.active || !is_line_name(p.name)) {
      return fail(pricing_errc::product_unavailable, item_path(i, "sku"),
                  "product \"" + item.sku + "\" is not available");
    }
    if (p.currency != cmd.currency) {
      // The catalogue's currency is echoed only when it has the ISO shape, so a damaged row
      // cannot put arbitrary text into the answer.
      const std::string priced_in =
          bus::is_valid_currency(p.currency) ? " " + p.currency : " another currency";
      return fail(pricing_errc::currency_mismatch, "currency",
                  "product \"" + item.sku + "\" is priced in" + priced_in + ", not " + cmd.currency);
    }
    if (p.price_cents < 0 || p.price_cents > bus::max_money_cents) {
      return fail(pricing_errc::amount_out_of_range, item_path(i, "sku"),
                  "the price of product \"" + item.sku + "\" is out of range");
    }
    std::int64_t line_total = 0;
    if (item.quantity < 0 || __builtin_mul_overflow(item.quantity, p.price_cents, &line_total) ||
        line_total > bus::max_money_cents) {
      return fail(
          pricing_errc::amount_out_of_range, item_path(i, "quantity"),
          "the total of the line for \"" + item.sku + "\" exceeds the largest amount an order may have");
    }
    // Both terms are within [0, max_money_cents], so the sum fits int64 before it is compared.
    out.subtotal_cents += line_total;
    if (out.subtotal_cents > bus::max_money_cents) {
      return fail(pricing_errc::amount_out_of_range, "items",
                  "the order total exceeds the largest amount an order may have");
    }
    out.lines.push_back(bus::order_line{.sku = item.sku,
                                        .name = p.name,
                                        .quantity = item.quantity,
                                        .unit_price_cents = p.price_cents,
                                        .line_total_cents = line_total});
  }
  return out;
}

}  // namespace shopd::roles::orders
