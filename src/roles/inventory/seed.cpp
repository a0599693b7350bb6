#include "shopd/roles/inventory/seed.hpp"

#include "shopd/bus/dispatch.hpp"
#include "shopd/db/database.hpp"
#include "shopd/roles/inventory/inventory_repository.hpp"

#include <boost/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace shopd::inventory {

namespace {

namespace json = boost::json;

std::string entry_name(std::size_t i) {
  return "products[" + std::to_string(i) + "]";
}

// `products[2] (sku "MUG-LOGO")`, or just `products[2]` when the entry has no usable sku.
std::string entry_label(std::size_t i, const json::value& entry) {
  std::string label = entry_name(i);
  if (const auto* o = entry.if_object()) {
    const auto it = o->find("sku");
    if (it != o->end() && it->value().is_string() && bus::is_valid_sku(it->value().get_string())) {
      label += " (sku \"" + std::string(it->value().get_string()) + "\")";
    }
  }
  return label;
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot open the catalogue: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw std::runtime_error(file.string() + ": cannot read the catalogue");
  return std::move(text).str();
}

}  // namespace

bus::result<std::vector<product_upsert>> parse_catalogue(std::string_view json_text) {
  auto doc = bus::parse_json(json_text);
  if (!doc) {
    const auto& e = doc.error();
    return bus::validation_error{
        e.field, "not valid JSON" + (e.field.empty() ? "" : " at " + e.field) + ": " + e.message};
  }
  const auto* root = doc->if_object();
  if (root == nullptr)
    return bus::validation_error{"", "the catalogue must be a JSON object {\"products\": [...]}"};
  for (const auto& kv : *root) {
    if (kv.key() != "products") {
      return bus::validation_error{kv.key(), std::string(kv.key()) + ": is not a field of a catalogue"};
    }
  }
  const auto it = root->find("products");
  if (it == root->end() || !it->value().is_array()) {
    return bus::validation_error{"products", "products: must be an array of products"};
  }
  const auto& entries = it->value().get_array();
  std::vector<product_upsert> out;
  out.reserve(entries.size());
  std::map<std::string, std::size_t, std::less<>> seen;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto p = parse_product_upsert(entries[i]);
    if (!p) {
      const auto& e = p.error();
      const std::string label = entry_label(i, entries[i]);
      return bus::validation_error{e.field.empty() ? entry_name(i) : entry_name(i) + "." + e.field,
                                   label + ": " + (e.field.empty() ? "" : e.field + " ") + e.message};
    }
    if (const auto [prev, inserted] = seen.emplace(p->sku, i); !inserted) {
      return bus::validation_error{
          entry_name(i) + ".sku",
          entry_label(i, entries[i]) + ": repeats the sku of " + entry_name(prev->second)};
    }
    out.push_back(std::move(*p));
  }
  return out;
}

int seed_catalogue(db::database& db, const std::filesystem::path& file) {
  auto parsed = parse_catalogue(read_file(file));
  if (!parsed) throw std::runtime_error(file.string() + ": " + parsed.error().message);
  return db.in_transaction([&](soci::session& tx) {
    inventory_repository repo(tx);
    const std::int64_t now = bus::now_ms();
    int added = 0;
    for (const product_upsert& entry : *parsed) {
      product p;
      p.sku = entry.sku;
      p.name = entry.name;
      p.price_cents = entry.price_cents;
      p.currency = entry.currency;
      p.stock = entry.stock.value_or(0);
      p.active = entry.active.value_or(true);
      p.created_at_ms = now;
      p.updated_at_ms = now;
      if (!repo.insert_product(p)) continue;
      ++added;
      if (p.stock > 0) {
        ledger_row row;
        row.sku = p.sku;
        row.requested_delta = p.stock;
        row.applied_delta = p.stock;
        row.stock_after = p.stock;
        row.reason = "restock";
        row.status = "applied";
        row.created_at_ms = now;
        repo.append_movement(std::move(row));
      }
    }
    return added;
  });
}

}  // namespace shopd::inventory
