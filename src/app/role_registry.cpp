#include "shopd/app/role.hpp"

#include "shopd/config/config.hpp"
#include "shopd/relay/relay_role.hpp"
#include "shopd/roles/analytics/analytics_role.hpp"
#include "shopd/roles/email/email_role.hpp"
#include "shopd/roles/inventory/inventory_role.hpp"
#include "shopd/roles/orders/orders_role.hpp"

#include <algorithm>
#include <string>

namespace shopd::app {

namespace {

constexpr role_entry table[] = {
    {"orders", &config::settings::orders_port, &roles::orders::make_orders_role},
    {"email", &config::settings::email_port, &roles::email::make_email_role, true},
    {"inventory", &config::settings::inventory_port, &inventory::make_inventory_role},
    {"analytics", &config::settings::analytics_port, &roles::analytics::make_analytics_role},
    {"relay", &config::settings::relay_port, &relay::make_relay_role},
};

std::string valid_names() {
  std::string out;
  for (const auto& r : table) out += std::string(r.name) + ", ";
  return out + "all";
}

void trim(std::string_view& s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
}

}  // namespace

std::span<const role_entry> roles() {
  return table;
}

std::vector<const role_entry*> resolve_roles(std::span<const std::string> values) {
  std::vector<bool> wanted(std::size(table), false);
  bool any = false;
  for (std::string_view value : values) {
    while (true) {
      const auto comma = value.find(',');
      std::string_view name = value.substr(0, comma);
      trim(name);
      if (name.empty()) {
        throw config::config_error("--role: empty role name in \"" + std::string(value) +
                                   "\" (valid: " + valid_names() + ")");
      }
      if (name == "all") {
        std::fill(wanted.begin(), wanted.end(), true);
      } else {
        const auto it = std::find_if(std::begin(table), std::end(table),
                                     [&](const role_entry& r) { return r.name == name; });
        if (it == std::end(table)) {
          throw config::config_error("--role: unknown role \"" + std::string(name) +
                                     "\" (valid: " + valid_names() + ")");
        }
        wanted[static_cast<std::size_t>(it - std::begin(table))] = true;
      }
      any = true;
      if (comma == std::string_view::npos) break;
      value.remove_prefix(comma + 1);
    }
  }
  if (!any) throw config::config_error("--role is required (valid: " + valid_names() + ")");
  std::vector<const role_entry*> out;
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    if (wanted[i]) out.push_back(&table[i]);
  }
  return out;
}

}  // namespace shopd::app
