#include "shopd/relay/relay_metrics.hpp"

#include "shopd/obs/metrics.hpp"

namespace shopd::relay {

namespace {

// Deliveries wait on other services: the buckets reach further than request latencies do.
std::vector<double> delivery_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

obs::family<obs::counter>& attempts_started(obs::registry& r) {
  return r.counter_family("shopd_relay_attempts_started_total",
                          "Delivery attempts started, by how: a publish handed over at once (the fast "
                          "path) or a claim",
                          {"via"});
}

obs::family<obs::gauge>& queue_depth(obs::registry& r) {
  return r.gauge_family("shopd_relay_queue_depth", "Relay messages waiting or in flight, by state",
                        {"state"});
}

}  // namespace

relay_metrics::relay_metrics(obs::registry& r)
    : published(
          r.counter_family("shopd_relay_published_total", "Messages the relay accepted (duplicates excluded)")
              .get()),
      delivered(
          r.counter_family("shopd_relay_delivered_total", "Delivery attempts answered with a 2xx").get()),
      retries(
          r.counter_family("shopd_relay_retries_total", "Failed delivery attempts scheduled to be retried")
              .get()),
      failed(r.counter_family("shopd_relay_failed_total",
                              "Messages that exhausted their retries or were refused")
                 .get()),
      dlq_size(r.gauge_family("shopd_relay_dlq_size", "Entries in the relay's dead-letter queue").get()),
      queue_created(queue_depth(r).with({"CREATED"})),
      queue_active(queue_depth(r).with({"ACTIVE"})),
      queue_retry(queue_depth(r).with({"RETRY"})),
      duration(r.histogram_family("shopd_relay_delivery_duration_seconds", "Duration of one delivery attempt",
                                  {}, delivery_buckets())
                   .get()),
      in_flight(
          r.gauge_family("shopd_relay_deliveries_in_flight", "Delivery attempts in flight in this process")
              .get()),
      started_by_publish(attempts_started(r).with({"publish"})),
      started_by_claim(attempts_started(r).with({"claim"})) {}

}  // namespace shopd::relay
