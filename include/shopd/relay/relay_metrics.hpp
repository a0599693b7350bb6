#pragma once
/// The relay's Prometheus metrics, created once in the registry and shared by the REST API and the
/// delivery engine. The references stay valid as long as the registry.

namespace shopd::obs {
class registry;
class counter;
class gauge;
class histogram;
}  // namespace shopd::obs

namespace shopd::relay {

struct relay_metrics {
  explicit relay_metrics(obs::registry& r);

  obs::counter& published;    ///< shopd_relay_published_total: messages accepted (not duplicates)
  obs::counter& delivered;    ///< shopd_relay_delivered_total: attempts answered 2xx
  obs::counter& retries;      ///< shopd_relay_retries_total: failed attempts scheduled again
  obs::counter& failed;       ///< shopd_relay_failed_total: messages that went to the DLQ
  obs::gauge& dlq_size;       ///< shopd_relay_dlq_size
  obs::gauge& queue_created;  ///< shopd_relay_queue_depth{state="CREATED"}
  obs::gauge& queue_active;   ///< shopd_relay_queue_depth{state="ACTIVE"}
  obs::gauge& queue_retry;    ///< shopd_relay_queue_depth{state="RETRY"}
  obs::histogram& duration;   ///< shopd_relay_delivery_duration_seconds: one HTTP attempt
  obs::gauge& in_flight;      ///< shopd_relay_deliveries_in_flight (this process)
  /// shopd_relay_attempts_started_total{via="publish"}: attempts the fast path started
  obs::counter& started_by_publish;
  /// shopd_relay_attempts_started_total{via="claim"}: attempts started by a claim
  obs::counter& started_by_claim;
};

}  // namespace shopd::relay
