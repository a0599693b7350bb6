#include "shopd/app/outbox_cli.hpp"

#include "shopd/app/text_table.hpp"
#include "shopd/bus/dispatch.hpp"
#include "shopd/bus/outbox.hpp"
#include "shopd/db/database.hpp"
#include "shopd/db/migrations.hpp"
#include "shopd/obs/log.hpp"
#include "shopd/text/utf8.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <exception>
#include <iostream>
#include <ostream>

namespace shopd {

namespace {

namespace json = boost::json;

// One line for a table cell: an error that spans lines or pages stays on its row.
std::string one_line(std::string_view s, std::size_t max = 120) {
  std::string out;
  for (char c : text::utf8_prefix(s, max)) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (s.size() > max) out += "...";
  return out;
}

int list(db::database& db, const outbox_options& opts, std::ostream& out) {
  const auto rows = bus::outbox::list_refused(db, opts.role, opts.after, opts.count);
  if (opts.json) {
    json::array a;
    for (const auto& r : rows) {
      a.push_back(json::object{{"id", r.id},
                               {"role", r.producer},
                               {"eventId", r.event.event_id},
                               {"eventType", r.event.event_type},
                               {"destination", r.event.destination},
                               {"body", r.event.body},
                               {"headers", r.event.headers},
                               {"attempts", r.attempts},
                               {"createdAt", r.created_at_ms},
                               {"refusedAt", r.refused_at_ms},
                               {"error", r.error}});
    }
    out << json::serialize(a) << '\n';
    return 0;
  }
  if (rows.empty()) {
    out << (opts.after > 0 ? "No more refused outbox events.\n" : "No outbox event is set aside.\n");
    return 0;
  }
  std::vector<std::vector<std::string>> table{
      {"ID", "ROLE", "EVENT TYPE", "EVENT ID", "REFUSED (UTC)", "ATTEMPTS", "ERROR"}};
  for (const auto& r : rows) {
    table.push_back({std::to_string(r.id), r.producer, r.event.event_type, r.event.event_id,
                     utc_time(r.refused_at_ms), std::to_string(r.attempts), one_line(r.error)});
  }
  print_table(out, table);
  if (static_cast<int>(rows.size()) == opts.count) {
    out << "More entries: shopd outbox list --after " << rows.back().id << '\n';
  }
  return 0;
}

int requeue(db::database& db, const outbox_options& opts, std::ostream& out, std::ostream& err) {
  const auto now = bus::now_ms();
  if (opts.all) {
    const auto n = bus::outbox::requeue(db, opts.role, {}, now);
    out << "requeued " << n << " event" << (n == 1 ? "" : "s") << '\n';
    return 0;
  }
  int rc = 0;
  for (const auto id : opts.ids) {
    if (bus::outbox::requeue(db, opts.role, {id}, now) == 1) {
      out << "requeued " << id << '\n';
    } else {
      err << "shopd outbox: " << id << " is not a refused outbox event"
          << (opts.role.empty() ? "" : " of role " + opts.role) << '\n';
      rc = 1;
    }
  }
  return rc;
}

}  // namespace

int outbox(const outbox_options& opts) {
  return outbox(opts, std::cout, std::cerr);
}

int outbox(const outbox_options& opts, std::ostream& out, std::ostream& err) {
  const auto usage = [&](std::string_view why) {
    err << "shopd outbox: " << why << '\n';
    return 2;
  };
  if (opts.action == "list") {
    if (opts.count < 1 || opts.count > 1000) return usage("--count must be between 1 and 1000");
    if (opts.after < 0) return usage("--after must not be negative");
  } else if (opts.action == "requeue") {
    if (opts.all == !opts.ids.empty()) return usage("requeue takes outbox ids or --all (not both)");
  } else {
    return usage("unknown action \"" + opts.action + "\" (list, requeue)");
  }
  try {
    obs::configure(obs::parse_level(opts.settings.log_level), obs::parse_format(opts.settings.log_format));
    const auto url = db::database_url::parse(opts.settings.database_url);
    db::database database(
        url,
        {.pool_size = 1, .busy_timeout = std::chrono::milliseconds(opts.settings.database_busy_timeout_ms)});
    if (const auto st = db::status(database); !st.up_to_date()) {
      err << "shopd outbox: database " << url.redacted << " is at schema version " << st.current << " of "
          << st.latest << "; run shopd migrate first\n";
      return 3;
    }
    return opts.action == "list" ? list(database, opts, out) : requeue(database, opts, out, err);
  } catch (const std::exception& e) {
    err << "shopd outbox: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace shopd
