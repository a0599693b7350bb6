#include "shopd/app/dlq.hpp"

#include "shopd/app/text_table.hpp"

#include "shopd/http/client.hpp"

#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <ostream>
#include <sstream>
#include <string_view>
#include <utility>

namespace shopd {

namespace {

namespace json = boost::json;
using verb = boost::beast::http::verb;

std::string percent_encode(std::string_view s) {
  constexpr std::string_view hex = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 0xf];
    }
  }
  return out;
}

// One line for an error message: a server's multi-line or huge answer stays readable.
std::string one_line(std::string_view text, std::size_t max = 300) {
  std::string out;
  for (char c : text.substr(0, max)) out += (c == '\n' || c == '\r') ? ' ' : c;
  if (text.size() > max) out += "...";
  return out;
}

class qstash_api {
 public:
  explicit qstash_api(const dlq_options& opts) : base_(opts.settings.qstash_url), opts_(opts) {
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
  }

  /// The parsed JSON answer of a 2xx; an error line on `err` and nullopt otherwise.
  std::optional<json::value> call(verb method, const std::string& path_and_query, std::ostream& err) const {
    http::client_request req;
    req.method = method;
    req.url = base_ + path_and_query;
    req.headers.emplace_back("Authorization", "Bearer " + opts_.settings.qstash_token);
    req.timeout = opts_.timeout;
    const std::string what = std::string(boost::beast::http::to_string(method)) + " " + path_and_query;
    const auto res = http::send_blocking(std::move(req));
    if (!res) {
      err << "shopd dlq: " << what << ": " << res.error().message << '\n';
      return std::nullopt;
    }
    if (res->status < 200 || res->status > 299) {
      err << "shopd dlq: " << what << ": " << res->status << ": " << one_line(res->body) << '\n';
      return std::nullopt;
    }
    if (res->body.empty()) return json::value{};
    boost::system::error_code ec;
    auto v = json::parse(res->body, ec);
    if (ec) {
      err << "shopd dlq: " << what << ": the answer is not JSON: " << one_line(res->body) << '\n';
      return std::nullopt;
    }
    return v;
  }

 private:
  std::string base_;
  const dlq_options& opts_;
};

void pretty(std::ostream& out, const json::value& v, int indent = 0) {
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  const std::string inner(static_cast<std::size_t>(indent + 1) * 2, ' ');
  if (const auto* o = v.if_object()) {
    if (o->empty()) {
      out << "{}";
      return;
    }
    out << "{\n";
    bool first = true;
    for (const auto& [k, val] : *o) {
      if (!first) out << ",\n";
      first = false;
      out << inner << json::serialize(json::string(k)) << ": ";
      pretty(out, val, indent + 1);
    }
    out << '\n' << pad << '}';
  } else if (const auto* a = v.if_array()) {
    if (a->empty()) {
      out << "[]";
      return;
    }
    out << "[\n";
    for (std::size_t i = 0; i < a->size(); ++i) {
      if (i > 0) out << ",\n";
      out << inner;
      pretty(out, (*a)[i], indent + 1);
    }
    out << '\n' << pad << ']';
  } else {
    out << json::serialize(v);
  }
}

std::string text_of(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return "-";
  if (const auto* s = v->if_string()) return std::string(*s);
  return json::serialize(*v);
}

// The time at `key` (Unix milliseconds); "-" when absent.
std::string utc_time(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_number()) return "-";
  return shopd::utc_time(v->to_number<std::int64_t>());
}

int list(const qstash_api& api, const dlq_options& opts, std::ostream& out, std::ostream& err) {
  std::string query;
  const auto add = [&](std::string_view key, const std::string& value) {
    query += query.empty() ? '?' : '&';
    query += key;
    query += '=';
    query += percent_encode(value);
  };
  if (opts.cursor) add("cursor", *opts.cursor);
  if (opts.count) add("count", std::to_string(*opts.count));
  if (opts.url) add("url", *opts.url);
  if (opts.message_id) add("messageId", *opts.message_id);
  if (opts.response_status) add("responseStatus", std::to_string(*opts.response_status));
  if (opts.latest_first) add("order", "latestFirst");
  const auto answer = api.call(verb::get, "/v2/dlq" + query, err);
  if (!answer) return 1;
  if (opts.json) {
    pretty(out, *answer);
    out << '\n';
    return 0;
  }
  const auto* o = answer->if_object();
  const auto* messages = o == nullptr ? nullptr : o->if_contains("messages");
  if (messages == nullptr || !messages->is_array()) {
    err << "shopd dlq: GET /v2/dlq: unexpected answer: " << one_line(json::serialize(*answer)) << '\n';
    return 1;
  }
  if (messages->as_array().empty()) {
    out << "The DLQ is empty.\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"DLQ ID", "MESSAGE ID", "STATUS", "URL", "CREATED (UTC)"}};
  for (const auto& m : messages->as_array()) {
    const auto* e = m.if_object();
    if (e == nullptr) continue;
    rows.push_back({text_of(*e, "dlqId"), text_of(*e, "messageId"), text_of(*e, "responseStatus"),
                    text_of(*e, "url"), utc_time(*e, "createdAt")});
  }
  print_table(out, rows);
  if (const auto* c = o->if_contains("cursor"); c != nullptr && c->is_string() && !c->as_string().empty()) {
    out << "More entries: shopd dlq list --cursor " << std::string(c->as_string()) << '\n';
  }
  return 0;
}

int show(const qstash_api& api, const dlq_options& opts, std::ostream& out, std::ostream& err) {
  const auto answer = api.call(verb::get, "/v2/dlq/" + percent_encode(opts.ids.front()), err);
  if (!answer) return 1;
  pretty(out, *answer);
  out << '\n';
  return 0;
}

// `--all`: the bulk endpoint page by page (count=100), until the server gives no cursor. Every page
// asks only for the entries that failed before the millisecond the command started (toDate is
// inclusive): a replay that fails again at once is a new entry, after the cursor, and without the
// bound a walk over a DLQ that keeps filling would not end (and a delete would take entries nobody
// has looked at yet).
int all_pages(const qstash_api& api, verb method, const std::string& path, std::string_view verb_done,
              std::ostream& out, std::ostream& err) {
  const auto started_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  const auto failed_until = "&toDate=" + std::to_string(started_ms - 1);
  std::optional<std::string> cursor;
  std::size_t total = 0;
  do {
    std::string q = path + "?count=100" + failed_until;
    if (cursor) q += "&cursor=" + percent_encode(*cursor);
    const auto answer = api.call(method, q, err);
    if (!answer) return 1;
    const auto* o = answer->if_object();
    if (o == nullptr) {
      err << "shopd dlq: " << path << ": unexpected answer: " << one_line(json::serialize(*answer)) << '\n';
      return 1;
    }
    if (const auto* r = o->if_contains("responses"); r != nullptr && r->is_array()) {
      for (const auto& e : r->as_array()) {
        if (e.is_object()) out << verb_done << " as " << text_of(e.as_object(), "messageId") << '\n';
      }
      total += r->as_array().size();
    }
    if (const auto* d = o->if_contains("deleted"); d != nullptr && d->is_number()) {
      total += static_cast<std::size_t>(d->to_number<std::int64_t>());
    }
    cursor.reset();
    if (const auto* c = o->if_contains("cursor"); c != nullptr && c->is_string() && !c->as_string().empty()) {
      cursor = std::string(c->as_string());
    }
  } while (cursor);
  out << verb_done << ": " << total << " entr" << (total == 1 ? "y" : "ies") << '\n';
  return 0;
}

int replay(const qstash_api& api, const dlq_options& opts, std::ostream& out, std::ostream& err) {
  if (opts.all) return all_pages(api, verb::post, "/v2/dlq/retry", "replayed", out, err);
  int rc = 0;
  for (const auto& id : opts.ids) {
    const auto answer = api.call(verb::post, "/v2/dlq/retry/" + percent_encode(id), err);
    if (!answer || !answer->is_object()) {
      rc = 1;
      continue;
    }
    out << "replayed " << id << " as " << text_of(answer->as_object(), "messageId") << '\n';
  }
  return rc;
}

int remove(const qstash_api& api, const dlq_options& opts, std::ostream& out, std::ostream& err) {
  if (opts.all) return all_pages(api, verb::delete_, "/v2/dlq", "deleted", out, err);
  int rc = 0;
  for (const auto& id : opts.ids) {
    if (!api.call(verb::delete_, "/v2/dlq/" + percent_encode(id), err)) {
      rc = 1;
      continue;
    }
    out << "deleted " << id << '\n';
  }
  return rc;
}

}  // namespace

int dlq(const dlq_options& opts) {
  return dlq(opts, std::cout, std::cerr);
}

int dlq(const dlq_options& opts, std::ostream& out, std::ostream& err) {
  const auto usage = [&](std::string_view why) {
    err << "shopd dlq: " << why << '\n';
    return 2;
  };
  if (opts.settings.qstash_token.empty())
    return usage("QSTASH_TOKEN is empty; set it in the environment or the --env-file");
  if (opts.count && (*opts.count < 1 || *opts.count > 100)) return usage("--count must be between 1 and 100");
  const qstash_api api(opts);
  if (opts.action == "list") {
    if (!opts.ids.empty()) return usage("list takes no ids (filter with --message-id)");
    return list(api, opts, out, err);
  }
  if (opts.action == "show") {
    if (opts.ids.size() != 1) return usage("show takes exactly one DLQ id");
    return show(api, opts, out, err);
  }
  if (opts.action == "replay" || opts.action == "delete") {
    if (opts.all == !opts.ids.empty()) return usage(opts.action + " takes DLQ ids or --all (not both)");
    return opts.action == "replay" ? replay(api, opts, out, err) : remove(api, opts, out, err);
  }
  return usage("unknown action \"" + opts.action + "\" (list, show, replay, delete)");
}

}  // namespace shopd
