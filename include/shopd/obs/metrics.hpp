#pragma once
/// Prometheus metrics: counters, gauges and histograms with labels, rendered in the text
/// exposition format (version 0.0.4). All operations are thread-safe. Metric objects are owned by
/// their registry and live as long as it; the references handed out stay valid.
/// Names are prefixed `shopd_` by the callers and use base units (seconds, bytes).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace shopd::obs {

/// Label values in the order of the family's label names.
using label_values = std::vector<std::string>;

/// A monotonically increasing count.
class counter {
 public:
  void inc(double by = 1.0) noexcept;
  [[nodiscard]] double value() const noexcept;

 private:
  std::atomic<double> value_{0.0};
};

/// A value that goes up and down.
class gauge {
 public:
  void set(double v) noexcept;
  void inc(double by = 1.0) noexcept;
  void dec(double by = 1.0) noexcept;
  [[nodiscard]] double value() const noexcept;

 private:
  std::atomic<double> value_{0.0};
};

/// Cumulative buckets with fixed upper bounds (seconds for latencies).
class histogram {
 public:
  /// Bounds must be finite and strictly increasing (a trailing +Inf is dropped: it is implicit);
  /// throws std::invalid_argument otherwise.
  explicit histogram(std::vector<double> upper_bounds);
  void observe(double v) noexcept;

  struct snapshot {
    std::vector<double> upper_bounds;
    std::vector<std::uint64_t> cumulative_counts;  ///< one per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  [[nodiscard]] snapshot read() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // per bound + the +Inf bucket; count = their sum
  std::atomic<double> sum_{0.0};
};

/// Latency buckets in seconds, 100 µs to 10 s.
[[nodiscard]] std::vector<double> default_latency_buckets();

template <typename Metric>
class family;

/// Owns metric families and renders them.
class registry {
 public:
  registry();
  ~registry();
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// Families are created once (usually at start-up); asking again for the same name returns the
  /// same family. Label names are fixed per family. Throws std::invalid_argument for a name or label
  /// name Prometheus would refuse, or when `name` already exists with another type, other label
  /// names or (histograms) other buckets. A family without labels starts with its one child at 0.
  family<counter>& counter_family(std::string name, std::string help, std::vector<std::string> labels = {});
  family<gauge>& gauge_family(std::string name, std::string help, std::vector<std::string> labels = {});
  family<histogram>& histogram_family(std::string name, std::string help,
                                      std::vector<std::string> labels = {},
                                      std::vector<double> buckets = default_latency_buckets());

  /// A function render() calls first, for values cheaper to read when scraped than to keep current
  /// (pool occupancy, the age of the oldest unsent event). It sets gauges; it must not create
  /// families or call render(). Collectors run in the order they were added, one render at a time.
  using collector_id = std::uint64_t;
  collector_id add_collector(std::function<void()> collect);
  /// After this returns the collector never runs again (a render running it is waited for).
  /// Unknown ids are ignored.
  void remove_collector(collector_id id) noexcept;

  /// Runs the collectors, then renders the whole registry in the Prometheus text format, families
  /// sorted by name.
  [[nodiscard]] std::string render() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// A metric with one child per distinct combination of label values.
template <typename Metric>
class family {
 public:
  family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> buckets = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        buckets_(std::move(buckets)) {}

  /// The child for these label values (created on first use). Hot paths should keep the reference.
  /// Throws std::invalid_argument when the number of values is not the number of label names.
  Metric& with(const label_values& values);
  /// The child of a family without labels.
  Metric& get() { return with({}); }

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& help() const { return help_; }
  [[nodiscard]] const std::vector<std::string>& label_names() const { return labels_; }
  /// The bucket upper bounds of a histogram family (without +Inf); empty for other metrics.
  [[nodiscard]] const std::vector<double>& bucket_bounds() const { return buckets_; }
  /// Calls f(label_values, const Metric&) for each child, in label order.
  template <typename F>
  void for_each(F&& f) const {
    std::lock_guard lock(mutex_);
    for (const auto& [values, child] : children_) f(values, *child);
  }

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> labels_;
  std::vector<double> buckets_;
  mutable std::mutex mutex_;
  std::map<label_values, std::unique_ptr<Metric>> children_;
};

extern template class family<counter>;
extern template class family<gauge>;
extern template class family<histogram>;

}  // namespace shopd::obs
