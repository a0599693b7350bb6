#pragma once
/// `shopd sign`: print an `Upstash-Signature` token for a URL and body, for use with curl against a
/// role's webhook (`curl -H "Upstash-Signature: $(shopd sign --url U --body @f)" --data-binary @f U`).

#include "shopd/config/config.hpp"

#include <iosfwd>
#include <string>

namespace shopd {

struct sign_options {
  config::settings settings;  ///< supplies QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY
  std::string url;            ///< the `sub` claim: the exact URL the request will be sent to
  std::string body_arg;       ///< "@path" reads the file, "@-" reads stdin, anything else is the body itself
  std::string key = "current";  ///< which configured key signs: "current" or "next"
};

/// Sign and print the token plus a newline on stdout; 0 on success. Refused input (empty URL, unknown
/// key name, that key not configured, unreadable body file) prints one line on stderr and returns 2;
/// an output that cannot be written returns 1.
int sign(const sign_options& opts);

/// Same, with the streams given (stdin for "@-", output, errors); what `sign(opts)` calls.
int sign(const sign_options& opts, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace shopd
