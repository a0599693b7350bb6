#include "shopd/bus/outbox_publish.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using namespace shopd::bus;

batch_result answer(unsigned status, std::string body, std::size_t entries) {
  return parse_batch_response(
      shopd::http::client_response{.status = status, .headers = {}, .body = std::move(body)}, entries);
}

}  // namespace

TEST_SUITE("bus.outbox_publish") {
  TEST_CASE("outbox_outcomes: accepted, refused for good, and what waits") {
    SUBCASE("every entry accepted") {
      const auto o = outbox_outcomes(answer(200, R"([{"messageId":"m1"},{"messageId":"m2"}])", 2), 2);
      REQUIRE(o.size() == 2);
      CHECK(o[0].message_id == "m1");
      CHECK(o[1].message_id == "m2");
      CHECK_FALSE(o[0].refused);
    }
    SUBCASE("an entry's own error refuses that row alone; the rows after it are answered too") {
      const auto o = outbox_outcomes(
          answer(200, R"([{"messageId":"m1"},{"error":"invalid destination"},{"messageId":"m3"}])", 3), 3);
      REQUIRE(o.size() == 3);
      CHECK(o[0].message_id == "m1");
      CHECK(o[1].message_id.empty());
      CHECK(o[1].refused);
      CHECK(o[1].error == "batch entry 1: invalid destination");
      CHECK(o[2].message_id == "m3");
    }
    SUBCASE("a one-row batch refused as a bad request or too large is that row refused") {
      for (const unsigned status : {400U, 413U}) {
        CAPTURE(status);
        const auto o = outbox_outcomes(answer(status, R"({"error":"request body too large"})", 1), 1);
        REQUIRE(o.size() == 1);
        CHECK(o[0].refused);
        CHECK(o[0].error.find(std::to_string(status)) != std::string::npos);
      }
    }
    SUBCASE("a larger batch refused whole for its content is sent again one row at a time") {
      CHECK_THROWS_AS((void)outbox_outcomes(answer(413, R"({"error":"too large"})", 4), 4), batch_refused);
      CHECK_THROWS_AS((void)outbox_outcomes(answer(400, R"({"error":"invalid_batch"})", 2), 2),
                      batch_refused);
    }
    SUBCASE("whole-batch failures that may pass later refuse nothing") {
      for (const unsigned status : {401U, 403U, 404U, 408U, 429U, 500U, 503U}) {
        CAPTURE(status);
        for (const std::size_t rows : {1U, 3U}) {
          CHECK_THROWS_AS((void)outbox_outcomes(answer(status, R"({"error":"no"})", rows), rows),
                          std::runtime_error);
          try {
            (void)outbox_outcomes(answer(status, R"({"error":"no"})", rows), rows);
          } catch (const batch_refused&) {
            FAIL("a " << status << " is not a refusal of the batch's content");
          } catch (const std::runtime_error&) {
          }
        }
      }
    }
  }
}
