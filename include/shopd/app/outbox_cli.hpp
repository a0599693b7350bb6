#pragma once
/// `shopd outbox list|requeue`: the outbox rows the relay or QStash refused for good, set aside by
/// the dispatchers (bus/outbox_dispatcher.hpp), read from and changed in DATABASE_URL directly.
///
///   list [--role R] [--after ID] [--count N] [--json]
///                        a table (id, role, event type, event id, refused at, attempts, error), in
///                        id order; `--json` prints every field, the event's body included
///   requeue ID... | --all [--role R]
///                        offer them again: due at once, the running dispatcher sends them within
///                        its poll interval (a second), in their place in id order
///
/// Exit status: 0 on success; 1 when the database failed, or when some of the ids given were not
/// set aside (each is named on stderr); 2 for a usage error; 3 when the database needs
/// `shopd migrate`.

#include "shopd/config/config.hpp"

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace shopd {

struct outbox_options {
  config::settings settings;      ///< DATABASE_URL and its settings
  std::string action;             ///< "list" or "requeue"
  std::string role;               ///< only this producing role's rows; empty for every role
  std::vector<std::int64_t> ids;  ///< requeue: these rows
  bool all = false;               ///< requeue: every refused row (of `role`, when given)
  std::int64_t after = 0;         ///< list: rows with a greater id (the next page)
  int count = 100;                ///< list: at most this many rows
  bool json = false;              ///< list: one JSON array with every field
};

/// Run the command, printing to stdout/stderr.
int outbox(const outbox_options& opts);

/// Same, with the output streams given.
int outbox(const outbox_options& opts, std::ostream& out, std::ostream& err);

}  // namespace shopd
