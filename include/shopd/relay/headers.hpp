#pragma once
/// Header lists as the relay's pure functions see them. Inputs are non-owning views (over a Beast
/// request or a parsed JSON batch element); what the relay keeps is an owning list. Order is kept
/// and a name may repeat, as in HTTP. Names compare case-insensitively everywhere.

#include <boost/json/object.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shopd/relay/error.hpp"

namespace shopd::relay {

/// One header, borrowed. The viewed strings must outlive the call that receives it.
struct header_view {
  std::string_view name{};
  std::string_view value{};
};

/// One header, owned.
struct header {
  std::string name{};
  std::string value{};

  friend bool operator==(const header&, const header&) = default;
};

using header_list = std::vector<header>;

/// ASCII case-insensitive equality (header names, `true`, method names).
[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;

/// The first header named `name` (case-insensitive), or nullopt.
[[nodiscard]] std::optional<std::string_view> find_header(std::span<const header_view> headers,
                                                          std::string_view name) noexcept;

/// Go's `http.CanonicalHeaderKey`: "content-type" -> "Content-Type", "x-h" -> "X-H". A name that is
/// not an RFC 9110 token is returned unchanged (as Go does).
[[nodiscard]] std::string canonical_header_name(std::string_view name);

/// True when `name` is a non-empty RFC 9110 token (what a field name may be).
[[nodiscard]] bool is_header_name(std::string_view name) noexcept;

/// True when `value` can be sent as a field value: no CR, LF or NUL (no header injection).
[[nodiscard]] bool is_header_value(std::string_view value) noexcept;

/// Go's `http.Header` JSON shape, the one QStash uses everywhere (`header`, `responseHeader`,
/// `sourceHeader`, and the relay_messages.headers column): `{"Name": ["v1", "v2"], ...}`.
/// Names are canonicalised; repeated names are merged into one array in order of appearance;
/// objects keep the order in which names first appear.
[[nodiscard]] boost::json::object headers_to_json(std::span<const header> headers);
[[nodiscard]] boost::json::object headers_to_json(std::span<const header_view> headers);

/// The inverse of headers_to_json. Also accepts a plain string value (`{"Name": "v"}`) for
/// leniency. Fails with errc::invalid_stored_value on any other shape.
[[nodiscard]] result<header_list> headers_from_json(const boost::json::value& v);

}  // namespace shopd::relay
