#include "hookvault/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <stdexcept>

namespace hookvault {
namespace {

std::atomic<bool> g_json{true};

spdlog::level::level_enum to_spdlog(LogLevel l) {
  switch (l) {
    case LogLevel::trace:
      return spdlog::level::trace;
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warn:
      return spdlog::level::warn;
    case LogLevel::error:
      return spdlog::level::err;
    case LogLevel::critical:
      return spdlog::level::critical;
    case LogLevel::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

spdlog::level::level_enum parse_level(std::string_view level) {
  if (level == "trace") return spdlog::level::trace;
  if (level == "debug") return spdlog::level::debug;
  if (level == "info") return spdlog::level::info;
  if (level == "warn") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  if (level == "critical") return spdlog::level::critical;
  if (level == "off") return spdlog::level::off;
  throw std::invalid_argument("unknown log level '" + std::string(level) + "'");
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (char c : s) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

}  // namespace

void init_logging(std::string_view format, std::string_view level) {
  if (format != "json" && format != "text") {
    throw std::invalid_argument("unknown log format '" + std::string(format) + "'");
  }
  auto lvl = parse_level(level);
  g_json = format == "json";
  auto logger = spdlog::stderr_logger_mt("hookvault");
  spdlog::set_default_logger(logger);
  if (g_json) {
    spdlog::set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})",
                        spdlog::pattern_time_type::utc);
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
  }
  spdlog::set_level(lvl);
  spdlog::flush_on(spdlog::level::trace);
}

void set_log_level(std::string_view level) { spdlog::set_level(parse_level(level)); }

bool log_enabled(LogLevel level) noexcept {
  return spdlog::default_logger_raw()->should_log(to_spdlog(level));
}

void log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  auto* logger = spdlog::default_logger_raw();
  const auto lvl = to_spdlog(level);
  if (!logger->should_log(lvl)) return;
  std::string line;
  line.reserve(128);
  if (g_json) {
    line += "\"msg\":\"";
    json_escape(msg, line);
    line += '"';
    for (const auto& f : fields) {
      line += ",\"";
      json_escape(f.key, line);
      line += "\":";
      if (const auto* s = std::get_if<std::string_view>(&f.value)) {
        line += '"';
        json_escape(*s, line);
        line += '"';
      } else if (const auto* b = std::get_if<bool>(&f.value)) {
        line += *b ? "true" : "false";
      } else {
        line += std::to_string(std::get<std::int64_t>(f.value));
      }
    }
  } else {
    line += msg;
    for (const auto& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      if (const auto* s = std::get_if<std::string_view>(&f.value)) {
        if (needs_quotes(*s)) {
          line += '"';
          json_escape(*s, line);
          line += '"';
        } else {
          line += *s;
        }
      } else if (const auto* b = std::get_if<bool>(&f.value)) {
        line += *b ? "true" : "false";
      } else {
        line += std::to_string(std::get<std::int64_t>(f.value));
      }
    }
  }
  logger->log(lvl, "{}", line);
}

}  // namespace hookvault
