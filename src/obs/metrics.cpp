#include "shopd/obs/metrics.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <variant>

namespace shopd::obs {
namespace {

bool valid_metric_name(std::string_view s) noexcept {
  if (s.empty()) return false;
  const auto first = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
  };
  if (!first(s.front())) return false;
  return std::all_of(s.begin() + 1, s.end(), [&](char c) { return first(c) || (c >= '0' && c <= '9'); });
}

bool valid_label_name(std::string_view s) noexcept {
  if (s.empty() || s.starts_with("__")) return false;  // "__" names are reserved to Prometheus
  const auto first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!first(s.front())) return false;
  return std::all_of(s.begin() + 1, s.end(), [&](char c) { return first(c) || (c >= '0' && c <= '9'); });
}

std::vector<double> validated_bounds(std::vector<double> bounds) {
  if (!bounds.empty() && bounds.back() == std::numeric_limits<double>::infinity()) bounds.pop_back();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) throw std::invalid_argument("histogram bucket bounds must be finite");
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      throw std::invalid_argument("histogram bucket bounds must be strictly increasing");
    }
  }
  return bounds;
}

/// Sample values as Prometheus clients print them: integers without a fraction, the shortest
/// representation that reads back exactly, exponent notation only for very small or large values.
void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  if (v == 0) {
    out += '0';  // also for -0
    return;
  }
  std::array<char, 64> buf{};
  const auto sci = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::scientific);
  const std::string_view sci_text(buf.data(), static_cast<std::size_t>(sci.ptr - buf.data()));
  int exponent = 0;
  const auto e = sci_text.find('e');
  const char* exp_begin = sci_text.data() + e + 1;
  if (*exp_begin == '+') ++exp_begin;
  std::from_chars(exp_begin, sci.ptr, exponent);
  if (exponent < -4 || exponent >= 21) {
    out += sci_text;
    return;
  }
  const auto fixed = std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed);
  out.append(buf.data(), fixed.ptr);
}

void append_uint(std::string& out, std::uint64_t v) {
  std::array<char, 24> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

void append_help(std::string& out, std::string_view help) {
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_label_value(std::string& out, std::string_view value) {
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

/// `{a="x",b="y"}`, with an optional extra label last (`le` of histogram buckets); nothing when
/// there are no labels at all.
void append_labels(std::string& out, const std::vector<std::string>& names, const label_values& values,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    append_label_value(out, values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void render_family(std::string& out, const family<counter>& f) {
  f.for_each([&](const label_values& values, const counter& c) {
    out += f.name();
    append_labels(out, f.label_names(), values);
    out += ' ';
    append_value(out, c.value());
    out += '\n';
  });
}

void render_family(std::string& out, const family<gauge>& f) {
  f.for_each([&](const label_values& values, const gauge& g) {
    out += f.name();
    append_labels(out, f.label_names(), values);
    out += ' ';
    append_value(out, g.value());
    out += '\n';
  });
}

void render_family(std::string& out, const family<histogram>& f) {
  f.for_each([&](const label_values& values, const histogram& h) {
    const auto snap = h.read();
    std::string le;
    for (std::size_t i = 0; i <= snap.upper_bounds.size(); ++i) {
      le.clear();
      if (i < snap.upper_bounds.size()) {
        append_value(le, snap.upper_bounds[i]);
      } else {
        le = "+Inf";
      }
      out += f.name();
      out += "_bucket";
      append_labels(out, f.label_names(), values, "le", le);
      out += ' ';
      append_uint(out, snap.cumulative_counts[i]);
      out += '\n';
    }
    out += f.name();
    out += "_sum";
    append_labels(out, f.label_names(), values);
    out += ' ';
    append_value(out, snap.sum);
    out += '\n';
    out += f.name();
    out += "_count";
    append_labels(out, f.label_names(), values);
    out += ' ';
    append_uint(out, snap.count);
    out += '\n';
  });
}

template <typename Metric>
constexpr std::string_view type_name() {
  if constexpr (std::is_same_v<Metric, counter>) return "counter";
  if constexpr (std::is_same_v<Metric, gauge>) return "gauge";
  if constexpr (std::is_same_v<Metric, histogram>) return "histogram";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Metrics

void counter::inc(double by) noexcept {
  if (!(by >= 0)) return;  // a counter never goes down; NaN is dropped too
  value_.fetch_add(by, std::memory_order_relaxed);
}

double counter::value() const noexcept {
  return value_.load(std::memory_order_relaxed);
}

void gauge::set(double v) noexcept {
  value_.store(v, std::memory_order_relaxed);
}
void gauge::inc(double by) noexcept {
  value_.fetch_add(by, std::memory_order_relaxed);
}
void gauge::dec(double by) noexcept {
  value_.fetch_sub(by, std::memory_order_relaxed);
}
double gauge::value() const noexcept {
  return value_.load(std::memory_order_relaxed);
}

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(validated_bounds(std::move(upper_bounds))),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void histogram::observe(double v) noexcept {
  if (std::isnan(v)) return;
  // Buckets are stored per interval; read() accumulates them, so observe() touches one counter.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  const auto index = static_cast<std::size_t>(it - bounds_.begin());
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot s;
  s.upper_bounds = bounds_;
  s.cumulative_counts.reserve(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative_counts.push_back(running);
  }
  // The count is the +Inf bucket by construction, so the rendered text is always consistent.
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> default_latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
}

// ---------------------------------------------------------------------------------------------
// Families

template <typename Metric>
Metric& family<Metric>::with(const label_values& values) {
  if (values.size() != labels_.size()) {
    throw std::invalid_argument("metric " + name_ + " takes " + std::to_string(labels_.size()) +
                                " label value(s), got " + std::to_string(values.size()));
  }
  std::lock_guard lock(mutex_);
  auto it = children_.find(values);
  if (it == children_.end()) {
    std::unique_ptr<Metric> child;
    if constexpr (std::is_same_v<Metric, histogram>) {
      child = std::make_unique<histogram>(buckets_);
    } else {
      child = std::make_unique<Metric>();
    }
    it = children_.emplace(values, std::move(child)).first;
  }
  return *it->second;
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

// ---------------------------------------------------------------------------------------------
// Registry

struct registry::impl {
  using any_family = std::variant<std::unique_ptr<family<counter>>, std::unique_ptr<family<gauge>>,
                                  std::unique_ptr<family<histogram>>>;

  mutable std::mutex mutex;
  std::map<std::string, any_family, std::less<>> families;  // sorted by name: the render order

  // Apart from `mutex`, so that a collector may use families it holds without deadlocking, and
  // removal waits for a render in progress.
  mutable std::mutex collectors_mutex;
  std::map<collector_id, std::function<void()>> collectors;  // ids increase: insertion order
  collector_id next_collector = 1;

  template <typename Metric>
  family<Metric>& get_or_create(std::string name, std::string help, std::vector<std::string> labels,
                                std::vector<double> buckets) {
    if (!valid_metric_name(name)) throw std::invalid_argument("invalid metric name '" + name + "'");
    for (const auto& l : labels) {
      if (!valid_label_name(l) || (std::is_same_v<Metric, histogram> && l == "le")) {
        throw std::invalid_argument("invalid label name '" + l + "' for metric " + name);
      }
    }
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (std::find(labels.begin() + static_cast<std::ptrdiff_t>(i) + 1, labels.end(), labels[i]) !=
          labels.end()) {
        throw std::invalid_argument("duplicate label name '" + labels[i] + "' for metric " + name);
      }
    }
    if constexpr (std::is_same_v<Metric, histogram>) buckets = validated_bounds(std::move(buckets));

    std::lock_guard lock(mutex);
    if (const auto it = families.find(name); it != families.end()) {
      auto* existing = std::get_if<std::unique_ptr<family<Metric>>>(&it->second);
      if (existing == nullptr) {
        throw std::invalid_argument("metric " + name + " already exists with another type");
      }
      if ((*existing)->label_names() != labels) {
        throw std::invalid_argument("metric " + name + " already exists with other labels");
      }
      if constexpr (std::is_same_v<Metric, histogram>) {
        if ((*existing)->bucket_bounds() != buckets) {
          throw std::invalid_argument("metric " + name + " already exists with other buckets");
        }
      }
      return **existing;
    }
    auto created =
        std::make_unique<family<Metric>>(name, std::move(help), std::move(labels), std::move(buckets));
    auto& ref = *created;
    if (ref.label_names().empty()) ref.get();  // so that the series renders (at 0) before first use
    families.emplace(std::move(name), std::move(created));
    return ref;
  }
};

registry::registry() : impl_(std::make_unique<impl>()) {}
registry::~registry() = default;

family<counter>& registry::counter_family(std::string name, std::string help,
                                          std::vector<std::string> labels) {
  return impl_->get_or_create<counter>(std::move(name), std::move(help), std::move(labels), {});
}

family<gauge>& registry::gauge_family(std::string name, std::string help, std::vector<std::string> labels) {
  return impl_->get_or_create<gauge>(std::move(name), std::move(help), std::move(labels), {});
}

family<histogram>& registry::histogram_family(std::string name, std::string help,
                                              std::vector<std::string> labels, std::vector<double> buckets) {
  return impl_->get_or_create<histogram>(std::move(name), std::move(help), std::move(labels),
                                         std::move(buckets));
}

registry::collector_id registry::add_collector(std::function<void()> collect) {
  std::lock_guard lock(impl_->collectors_mutex);
  const auto id = impl_->next_collector++;
  impl_->collectors.emplace(id, std::move(collect));
  return id;
}

void registry::remove_collector(collector_id id) noexcept {
  std::lock_guard lock(impl_->collectors_mutex);
  impl_->collectors.erase(id);
}

std::string registry::render() const {
  {
    std::lock_guard lock(impl_->collectors_mutex);
    for (const auto& [id, collect] : impl_->collectors) collect();
  }
  std::string out;
  std::lock_guard lock(impl_->mutex);
  for (const auto& [name, any] : impl_->families) {
    std::visit(
        [&]<typename Metric>(const std::unique_ptr<family<Metric>>& f) {
          out += "# HELP ";
          out += name;
          out += ' ';
          append_help(out, f->help());
          out += "\n# TYPE ";
          out += name;
          out += ' ';
          out += type_name<Metric>();
          out += '\n';
          render_family(out, *f);
        },
        any);
  }
  return out;
}

}  // namespace shopd::obs
