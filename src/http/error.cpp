#include "shopd/http/message.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace shopd::http {

response json_response(status st, const boost::json::value& body) {
  return json_response(st, boost::json::serialize(body));
}

response json_response(status st, std::string serialized_json) {
  response res{st, 11};
  res.set(field::content_type, "application/json");
  res.body() = std::move(serialized_json);
  return res;
}

response json_error(status st, std::string_view code, std::string_view message, std::string_view field_name) {
  boost::json::object body;
  body["error"] = message;
  body["code"] = code;
  if (!field_name.empty()) body["field"] = field_name;
  return json_response(st, boost::json::serialize(body));
}

response http_error::to_response() const {
  response res = json_error(status_, code_, what(), field_);
  for (const auto& [name, value] : headers_) res.set(name, value);
  return res;
}

std::string_view default_code(status st) noexcept {
  switch (static_cast<unsigned>(st)) {
    case 400:
      return "bad_request";
    case 401:
      return "unauthorized";
    case 402:
      return "payment_required";
    case 403:
      return "forbidden";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 406:
      return "not_acceptable";
    case 408:
      return "request_timeout";
    case 409:
      return "conflict";
    case 410:
      return "gone";
    case 411:
      return "length_required";
    case 412:
      return "precondition_failed";
    case 413:
      return "payload_too_large";
    case 414:
      return "uri_too_long";
    case 415:
      return "unsupported_media_type";
    case 416:
      return "range_not_satisfiable";
    case 417:
      return "expectation_failed";
    case 422:
      return "unprocessable_entity";
    case 423:
      return "locked";
    case 425:
      return "too_early";
    case 426:
      return "upgrade_required";
    case 428:
      return "precondition_required";
    case 429:
      return "too_many_requests";
    case 431:
      return "request_header_fields_too_large";
    case 500:
      return "internal_error";
    case 501:
      return "not_implemented";
    case 502:
      return "bad_gateway";
    case 503:
      return "service_unavailable";
    case 504:
      return "gateway_timeout";
    case 505:
      return "http_version_not_supported";
    default:
      break;
  }
  const auto n = static_cast<unsigned>(st);
  if (n >= 400 && n < 500) return "client_error";
  if (n >= 500 && n < 600) return "server_error";
  return "error";
}

}  // namespace shopd::http
