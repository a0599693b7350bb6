#pragma once
/// `shopd dlq list|show|replay|delete`: the dead-letter queue of QSTASH_URL (the embedded relay or
/// Upstash QStash, through the same QStash v2 REST API) with QSTASH_TOKEN.
///
///   list                 a table (DLQ id, message id, last status, URL, created) of one page, oldest
///                        first; `--cursor` continues where the previous page ended (printed last)
///   show ID              the DLQ message as indented JSON
///   replay ID... | --all re-publish (a new message id each; the entry leaves the DLQ)
///   delete ID... | --all remove the entries
///
/// `--all` takes the entries that failed before the command started (toDate on every page): a
/// replay that fails again, or a message failing meanwhile, is left for the next run.
///
/// Exit status: 0 on success; 1 when a request failed (each failure is one line on stderr, naming
/// the request and the server's answer, never the token); 2 for a usage error.

#include "shopd/config/config.hpp"

#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace shopd {

struct dlq_options {
  config::settings settings;     ///< QSTASH_URL, QSTASH_TOKEN
  std::string action;            ///< "list", "show", "replay" or "delete"
  std::vector<std::string> ids;  ///< DLQ ids: one for show, one or more for replay/delete
  bool all = false;              ///< replay/delete: every entry, page by page (instead of ids)
  // list
  std::optional<std::string> cursor;
  std::optional<int> count;  ///< 1..100 (QStash's page limit)
  std::optional<std::string> url;
  std::optional<std::string> message_id;
  std::optional<int> response_status;
  bool latest_first = false;
  bool json = false;                          ///< list: print the API's JSON answer instead of a table
  std::chrono::milliseconds timeout{30'000};  ///< per HTTP request
};

/// Run the command, printing to stdout/stderr.
int dlq(const dlq_options& opts);

/// Same, with the output streams given.
int dlq(const dlq_options& opts, std::ostream& out, std::ostream& err);

}  // namespace shopd
