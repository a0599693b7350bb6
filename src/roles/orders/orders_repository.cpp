#include "shopd/roles/orders/orders_repository.hpp"

#include "shopd/db/execute.hpp"

#include <soci/soci.h>
#include <boost/json.hpp>

#include <chrono>
#include <limits>
#include <string>

namespace shopd::roles::orders::repository {

namespace {

namespace json = boost::json;

constexpr const char* order_columns =
    "order_id, checkout_id, customer_email, customer_name, currency, subtotal_cents, status, "
    "shipping_address, "
    "note, correlation_id, created_at_ms";

// One row of `orders` as SOCI fills it: statements bind into these members, then to_order() reads them.
struct order_row {
  std::string order_id;
  std::string checkout_id;
  std::string email;
  std::string name;
  std::string currency;
  long long subtotal_cents = 0;
  std::string status;
  std::string shipping_address;
  soci::indicator shipping_address_ind = soci::i_null;
  std::string note;
  soci::indicator note_ind = soci::i_null;
  std::string correlation_id;
  soci::indicator correlation_id_ind = soci::i_null;
  long long created_at_ms = 0;

  // In the order of order_columns.
  void bind(soci::details::prepare_temp_type& p) {
    p, soci::into(order_id), soci::into(checkout_id), soci::into(email), soci::into(name),
        soci::into(currency), soci::into(subtotal_cents), soci::into(status),
        soci::into(shipping_address, shipping_address_ind), soci::into(note, note_ind),
        soci::into(correlation_id, correlation_id_ind), soci::into(created_at_ms);
  }

  [[nodiscard]] stored_order to_order() const {
    stored_order o;
    o.order.order_id = order_id;
    o.order.checkout_id = checkout_id;
    o.order.customer = {email, name};
    o.order.subtotal_cents = subtotal_cents;
    o.order.currency = currency;
    o.order.created_at = bus::timestamp(std::chrono::milliseconds(created_at_ms));
    o.status = status;
    // The address was written by insert_order from a validated command: a row that does not parse
    // back is a damaged database, and json::parse throws rather than hide it.
    if (shipping_address_ind == soci::i_ok) o.shipping_address = json::parse(shipping_address).as_object();
    if (note_ind == soci::i_ok) o.note = note;
    if (correlation_id_ind == soci::i_ok) o.correlation_id = correlation_id;
    return o;
  }
};

void load_items(soci::session& s, std::vector<stored_order>& orders) {
  if (orders.empty()) return;
  std::string order_id;
  std::string sku;
  std::string name;
  long long quantity = 0;
  long long unit_price = 0;
  long long line_total = 0;
  soci::statement st = (s.prepare << "SELECT sku, name, quantity, unit_price_cents, line_total_cents "
                                     "FROM order_items WHERE order_id = :order_id ORDER BY line_no",
                        soci::into(sku), soci::into(name), soci::into(quantity), soci::into(unit_price),
                        soci::into(line_total), soci::use(order_id));
  for (stored_order& o : orders) {
    order_id = o.order.order_id;
    st.execute();
    while (st.fetch()) o.order.items.push_back({sku, name, quantity, unit_price, line_total});
  }
}

}  // namespace

catalogue find_products(soci::session& s, std::span<const bus::checkout_item> items) {
  catalogue out;
  std::string sku;
  std::string name;
  long long price_cents = 0;
  std::string currency;
  int active = 0;
  soci::statement st =
      (s.prepare << "SELECT name, price_cents, currency, active FROM products WHERE sku = :sku",
       soci::into(name), soci::into(price_cents), soci::into(currency), soci::into(active), soci::use(sku));
  for (const bus::checkout_item& item : items) {
    sku = item.sku;
    if (st.execute(true)) out.insert_or_assign(sku, product{sku, name, price_cents, currency, active != 0});
  }
  return out;
}

std::optional<checkout_record> find_checkout(soci::session& s, std::string_view checkout_id) {
  const std::string id(checkout_id);
  std::string status;
  std::string order_id;
  std::string reason;
  std::string event_id;
  std::string correlation_id;
  soci::indicator order_id_ind = soci::i_null;
  soci::indicator reason_ind = soci::i_null;
  soci::indicator event_id_ind = soci::i_null;
  soci::indicator correlation_id_ind = soci::i_null;
  long long created_at_ms = 0;
  if (!db::query_one(
          s,
          "SELECT status, order_id, reason, event_id, correlation_id, created_at_ms FROM checkouts "
          "WHERE checkout_id = :checkout_id",
          [&](soci::statement& st) {
            st.exchange(soci::into(status));
            st.exchange(soci::into(order_id, order_id_ind));
            st.exchange(soci::into(reason, reason_ind));
            st.exchange(soci::into(event_id, event_id_ind));
            st.exchange(soci::into(correlation_id, correlation_id_ind));
            st.exchange(soci::into(created_at_ms));
            st.exchange(soci::use(id));
          })) {
    return std::nullopt;
  }
  checkout_record r;
  r.checkout_id = id;
  r.status = status == "accepted" ? checkout_status::accepted : checkout_status::rejected;
  if (order_id_ind == soci::i_ok) r.order_id = order_id;
  if (reason_ind == soci::i_ok) r.reason = reason;
  if (event_id_ind == soci::i_ok) r.event_id = event_id;
  if (correlation_id_ind == soci::i_ok) r.correlation_id = correlation_id;
  r.created_at_ms = created_at_ms;
  return r;
}

bool insert_checkout(soci::session& tx, const checkout_record& record) {
  const std::string status(to_string(record.status));
  const std::string order_id = record.order_id.value_or("");
  soci::indicator order_id_ind = record.order_id ? soci::i_ok : soci::i_null;
  const std::string reason = record.reason.value_or("");
  soci::indicator reason_ind = record.reason ? soci::i_ok : soci::i_null;
  const long long created_at_ms = record.created_at_ms;
  return db::execute(
             tx,
             "INSERT INTO checkouts (checkout_id, status, order_id, reason, event_id, correlation_id, "
             "created_at_ms) VALUES (:checkout_id, :status, :order_id, :reason, :event_id, :correlation_id, "
             ":created_at_ms) ON CONFLICT (checkout_id) DO NOTHING",
             soci::use(record.checkout_id), soci::use(status), soci::use(order_id, order_id_ind),
             soci::use(reason, reason_ind), soci::use(record.event_id), soci::use(record.correlation_id),
             soci::use(created_at_ms)) == 1;
}

void insert_order(soci::session& tx, const stored_order& order) {
  const bus::order_created& o = order.order;
  const long long subtotal_cents = o.subtotal_cents;
  const long long created_at_ms = o.created_at.time_since_epoch().count();
  const std::string shipping_address = order.shipping_address ? json::serialize(*order.shipping_address) : "";
  soci::indicator shipping_address_ind = order.shipping_address ? soci::i_ok : soci::i_null;
  const std::string note = order.note.value_or("");
  soci::indicator note_ind = order.note ? soci::i_ok : soci::i_null;
  db::execute(
      tx,
      "INSERT INTO orders (order_id, checkout_id, customer_email, customer_name, currency, subtotal_cents, "
      "status, shipping_address, note, correlation_id, created_at_ms) VALUES (:order_id, :checkout_id, "
      ":email, :name, :currency, :subtotal_cents, :status, :shipping_address, :note, :correlation_id, "
      ":created_at_ms)",
      soci::use(o.order_id), soci::use(o.checkout_id), soci::use(o.customer.email),
      soci::use(o.customer.name), soci::use(o.currency), soci::use(subtotal_cents), soci::use(order.status),
      soci::use(shipping_address, shipping_address_ind), soci::use(note, note_ind),
      soci::use(order.correlation_id), soci::use(created_at_ms));

  int line_no = 0;
  for (const bus::order_line& l : o.items) {
    ++line_no;
    const long long quantity = l.quantity;
    const long long unit_price = l.unit_price_cents;
    const long long line_total = l.line_total_cents;
    db::execute(
        tx,
        "INSERT INTO order_items (order_id, line_no, sku, name, quantity, unit_price_cents, "
        "line_total_cents) VALUES (:order_id, :line_no, :sku, :name, :quantity, :unit_price, :line_total)",
        soci::use(o.order_id), soci::use(line_no), soci::use(l.sku), soci::use(l.name), soci::use(quantity),
        soci::use(unit_price), soci::use(line_total));
  }
}

std::optional<stored_order> find_order(soci::session& s, std::string_view order_id) {
  const std::string id(order_id);
  order_row row;
  auto prep = (s.prepare << "SELECT " << order_columns << " FROM orders WHERE order_id = :order_id");
  row.bind(prep);
  prep, soci::use(id);
  soci::statement st(prep);
  if (!st.execute(true)) return std::nullopt;
  std::vector<stored_order> found{row.to_order()};
  load_items(s, found);
  return std::move(found.front());
}

std::vector<stored_order> orders_by_email(soci::session& s, std::string_view email,
                                          const std::optional<page_key>& after, std::size_t limit) {
  const std::string email_s(email);
  // Without a cursor the bound is past every row: (max, "") sorts after any (created_at_ms, order_id).
  const long long after_ms = after ? after->created_at_ms : std::numeric_limits<long long>::max();
  const std::string after_id = after ? after->order_id : std::string();
  const long long max_rows = static_cast<long long>(limit);
  order_row row;
  // A row-value comparison (SQLite >= 3.15, PostgreSQL) walks the (customer_email, created_at_ms,
  // order_id) index backwards from the cursor.
  auto prep = (s.prepare << "SELECT " << order_columns
                         << " FROM orders WHERE customer_email = :email"
                            " AND (created_at_ms, order_id) < (:after_ms, :after_id)"
                            " ORDER BY created_at_ms DESC, order_id DESC LIMIT :max_rows");
  row.bind(prep);
  prep, soci::use(email_s), soci::use(after_ms), soci::use(after_id), soci::use(max_rows);
  soci::statement st(prep);
  std::vector<stored_order> out;
  st.execute();
  while (st.fetch()) out.push_back(row.to_order());
  load_items(s, out);
  return out;
}

}  // namespace shopd::roles::orders::repository
