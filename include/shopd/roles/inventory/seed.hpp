#pragma once
/// The starting catalogue (`shopd migrate --seed FILE`, `make run`): a JSON file of products added
/// to a database that does not have them yet.
///
/// The file is one object, `{"products": [ENTRY, ...]}`, each ENTRY having the fields of
/// `POST /api/products` (api_input.hpp: sku, name, priceCents, currency, optional active and stock;
/// stock defaults to 0). Skus must be unique within the file.

#include "shopd/bus/envelope.hpp"
#include "shopd/roles/inventory/api_input.hpp"

#include <filesystem>
#include <string_view>
#include <vector>

namespace shopd::db {
class database;
}

namespace shopd::inventory {

/// Parse and validate a catalogue document (pure). The error's field is the JSON path
/// (`products[2].priceCents`) and its message reads on its own, naming the entry and its sku:
/// `products[2] (sku "MUG-LOGO"): priceCents must be an integer from 0 to ...`.
[[nodiscard]] bus::result<std::vector<product_upsert>> parse_catalogue(std::string_view json_text);

/// Add every product of `file` whose sku the database does not have, in one transaction, with a
/// `restock` ledger row for a positive initial stock. Existing products are left exactly as they are
/// (their stock is never reset), so seeding twice adds nothing the second time. Returns how many
/// products were added. Throws std::runtime_error starting with the file name when the file cannot
/// be read or an entry is invalid (nothing is written then); database errors propagate.
int seed_catalogue(db::database& db, const std::filesystem::path& file);

}  // namespace shopd::inventory
