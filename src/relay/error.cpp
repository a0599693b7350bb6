#include "shopd/relay/error.hpp"

#include <boost/throw_exception.hpp>

namespace shopd::relay {

std::string_view to_string(errc c) noexcept {
  switch (c) {
    case errc::invalid_duration:
      return "invalid_duration";
    case errc::invalid_expression:
      return "invalid_expression";
    case errc::evaluation_failed:
      return "evaluation_failed";
    case errc::invalid_destination:
      return "invalid_destination";
    case errc::url_groups_unsupported:
      return "url_groups_unsupported";
    case errc::invalid_target:
      return "invalid_target";
    case errc::invalid_header:
      return "invalid_header";
    case errc::invalid_batch:
      return "invalid_batch";
    case errc::invalid_stored_value:
      return "invalid_stored_value";
  }
  return "unknown";
}

void throw_exception_from_error(const error& e, const boost::source_location& loc) {
  boost::throw_with_location(relay_exception(e), loc);
}

}  // namespace shopd::relay
