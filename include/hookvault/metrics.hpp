// Metrics in the Prometheus text exposition format (version 0.0.4), served by
// the admin listener's GET /metrics.
//
// A Metrics registry holds families, each with a name, help text, type and
// fixed label names. Components define their families once at start-up and
// keep the references; on the request path they look up a series by label
// values (one short mutex-protected map lookup that allocates nothing once the
// series exists; the series' value itself is a lock-free atomic) and add to
// it. Values the store already knows (Nodit gaps, commit counters) are not
// copied into counters: a collector computes them when /metrics is scraped,
// several families from one read of their source.
//
// Written by hand: Debian 12 packages no Prometheus client library for C++,
// and the text format needs no more than this file.
//
// Thread-safety: everything is safe from any thread. Family and series
// references stay valid for the registry's lifetime.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace hookvault {

enum class MetricType { counter, gauge, histogram };

// Seconds: 0.5 ms .. 10 s, for request and stage latencies.
std::vector<double> latency_buckets();

class MetricSeries {
 public:
  explicit MetricSeries(const std::vector<double>* buckets);
  void inc(double n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  void dec(double n = 1) noexcept { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }
  // Histograms: counts the observation in its bucket, adds it to the sum.
  void observe(double v) noexcept;

 private:
  friend class Metrics;
  std::atomic<double> value_{0};  // counter/gauge value; histogram sum
  const std::vector<double>* bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket, +Inf last
};

// Orders label-value lists of std::string and std::string_view alike, so a
// lookup needs no temporary key.
struct LabelValuesLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

class MetricFamily {
 public:
  // The series for these label values (as many as the family has label
  // names), created at zero on first use.
  MetricSeries& with(std::initializer_list<std::string_view> label_values);

 private:
  friend class Metrics;
  std::string name_;
  std::string help_;
  MetricType type_ = MetricType::counter;
  std::vector<std::string> label_names_;
  std::vector<double> buckets_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<MetricSeries>, LabelValuesLess> series_;
};

// A sample computed at scrape time: label values (matching its family's label
// names) and a value.
struct MetricSample {
  std::vector<std::string> label_values;
  double value = 0;
};

// A family computed at scrape time (counter or gauge).
struct CollectedFamily {
  std::string name;
  std::string help;
  MetricType type = MetricType::gauge;
  std::vector<std::string> labels;
  std::vector<MetricSample> samples;
};

class Metrics {
 public:
  MetricFamily& counter(std::string name, std::string help, std::vector<std::string> labels = {});
  MetricFamily& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  MetricFamily& histogram(std::string name, std::string help, std::vector<std::string> labels = {},
                          std::vector<double> buckets = latency_buckets());
  // Families computed when scraped: `collect` runs once per render() and may
  // return several families from one read of what it observes.
  void collector(std::function<std::vector<CollectedFamily>()> collect);

  // The whole registry in the text format, families in name order.
  std::string render() const;

 private:
  MetricFamily& define(std::string name, std::string help, MetricType type,
                       std::vector<std::string> labels, std::vector<double> buckets);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<MetricFamily>, std::less<>> families_;
  std::vector<std::function<std::vector<CollectedFamily>()>> collectors_;
};

}  // namespace hookvault
