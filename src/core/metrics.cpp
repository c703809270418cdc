#include "hookvault/metrics.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace hookvault {
namespace {

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
}

void append_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc() ? end : buf);
  }
}

// Label values escape backslash, double quote and newline; help text escapes
// backslash and newline.
void append_escaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    append_escaped(out, values[i], true);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void append_header(std::string& out, std::string_view name, std::string_view help,
                   MetricType type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  append_escaped(out, help, false);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type_name(type);
  out += '\n';
}

}  // namespace

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

MetricSeries::MetricSeries(const std::vector<double>* buckets) : bounds_(buckets) {
  if (bounds_ != nullptr) {
    counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_->size() + 1);
  }
}

void MetricSeries::observe(double v) noexcept {
  if (!counts_) return;
  std::size_t i = 0;
  while (i < bounds_->size() && v > (*bounds_)[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  value_.fetch_add(v, std::memory_order_relaxed);
}

MetricSeries& MetricFamily::with(std::initializer_list<std::string_view> label_values) {
  std::lock_guard lock(mu_);
  if (auto it = series_.find(label_values); it != series_.end()) return *it->second;
  std::vector<std::string> key(label_values.begin(), label_values.end());
  key.resize(label_names_.size());  // values not given are empty
  auto [it, fresh] = series_.try_emplace(std::move(key));
  if (fresh) {
    it->second =
        std::make_unique<MetricSeries>(type_ == MetricType::histogram ? &buckets_ : nullptr);
  }
  return *it->second;
}

MetricFamily& Metrics::define(std::string name, std::string help, MetricType type,
                              std::vector<std::string> labels, std::vector<double> buckets) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second->type_ != type || it->second->label_names_ != labels) {
      throw std::logic_error("metric " + name + " defined twice with different shapes");
    }
    return *it->second;
  }
  auto family = std::make_unique<MetricFamily>();
  family->name_ = name;
  family->help_ = std::move(help);
  family->type_ = type;
  family->label_names_ = std::move(labels);
  family->buckets_ = std::move(buckets);
  return *families_.emplace(std::move(name), std::move(family)).first->second;
}

MetricFamily& Metrics::counter(std::string name, std::string help,
                               std::vector<std::string> labels) {
  return define(std::move(name), std::move(help), MetricType::counter, std::move(labels), {});
}

MetricFamily& Metrics::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  return define(std::move(name), std::move(help), MetricType::gauge, std::move(labels), {});
}

MetricFamily& Metrics::histogram(std::string name, std::string help,
                                 std::vector<std::string> labels, std::vector<double> buckets) {
  return define(std::move(name), std::move(help), MetricType::histogram, std::move(labels),
                std::move(buckets));
}

void Metrics::collector(std::function<std::vector<CollectedFamily>()> collect) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Metrics::render() const {
  // Collectors may take time (store reads): copy them out, run them unlocked.
  std::vector<std::function<std::vector<CollectedFamily>()>> collectors;
  std::vector<const MetricFamily*> families;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
    for (const auto& [name, f] : families_) families.push_back(f.get());
  }
  std::map<std::string, std::string, std::less<>> blocks;  // name -> text, to sort both kinds
  for (const auto& collect : collectors) {
    for (const CollectedFamily& f : collect()) {
      std::string out;
      append_header(out, f.name, f.help, f.type);
      for (const auto& s : f.samples) {
        out += f.name;
        append_labels(out, f.labels, s.label_values);
        out += ' ';
        append_number(out, s.value);
        out += '\n';
      }
      blocks[f.name] = std::move(out);
    }
  }
  for (const MetricFamily* f : families) {
    std::string out;
    append_header(out, f->name_, f->help_, f->type_);
    std::lock_guard lock(f->mu_);
    for (const auto& [labels, series] : f->series_) {
      if (f->type_ != MetricType::histogram) {
        out += f->name_;
        append_labels(out, f->label_names_, labels);
        out += ' ';
        append_number(out, series->value());
        out += '\n';
        continue;
      }
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i <= f->buckets_.size(); ++i) {
        cumulative += series->counts_[i].load(std::memory_order_relaxed);
        std::string le;
        if (i < f->buckets_.size()) {
          append_number(le, f->buckets_[i]);
        } else {
          le = "+Inf";
        }
        out += f->name_ + "_bucket";
        append_labels(out, f->label_names_, labels, "le", le);
        out += ' ' + std::to_string(cumulative) + '\n';
      }
      out += f->name_ + "_sum";
      append_labels(out, f->label_names_, labels);
      out += ' ';
      append_number(out, series->value());
      out += '\n' + f->name_ + "_count";
      append_labels(out, f->label_names_, labels);
      out += ' ' + std::to_string(cumulative) + '\n';
    }
    blocks[f->name_] = std::move(out);
  }
  std::string text;
  for (auto& [name, block] : blocks) text += block;
  return text;
}

}  // namespace hookvault
