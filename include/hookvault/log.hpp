// Structured logging on spdlog: one line per record, JSON or text.
//
// JSON:  {"ts":"2026-11-22T15:13:26.348Z","level":"info","msg":"request","source":"dynamic",...}
// text:  2026-11-22T15:13:26.348Z info request source=dynamic status=200 ...
//
// Fields are key/value pairs of strings or integers, escaped for the format.
// There is deliberately no overload for SecretBytes: a secret cannot be logged.
// Callers must not pass payloads either; log ids, names, sizes, statuses.
//
// Thread-safety: safe from any thread after init_logging().
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace hookvault {

enum class LogLevel { trace, debug, info, warn, error, critical, off };

struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  template <class I, class = std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>>>
  LogField(std::string_view k, I v) : key(k), value(static_cast<std::int64_t>(v)) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
  std::string_view key;
  std::variant<std::string_view, std::int64_t, bool> value;
};

// format: "json" or "text"; level: trace|debug|info|warn|error|critical|off.
// Throws std::invalid_argument on an unknown value. Logs go to stderr.
void init_logging(std::string_view format, std::string_view level);
void set_log_level(std::string_view level);
bool log_enabled(LogLevel level) noexcept;

void log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

// Appends `s` to `out` as the body of a JSON string (no quotes): \" \\ \n \r \t
// and other control characters as \u00xx. `Out` is any container of char with
// insert(end, first, last) and push_back (std::string, a wiping vector, ...).
template <class Out>
void json_escape_to(std::string_view s, Out& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const char* esc = nullptr;
    switch (c) {
      case '"':
        esc = "\\\"";
        break;
      case '\\':
        esc = "\\\\";
        break;
      case '\n':
        esc = "\\n";
        break;
      case '\r':
        esc = "\\r";
        break;
      case '\t':
        esc = "\\t";
        break;
      default:
        break;
    }
    if (esc != nullptr) {
      out.insert(out.end(), esc, esc + 2);
    } else if (u < 0x20) {
      const char hex[] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 0xF]};
      out.insert(out.end(), hex, hex + sizeof hex);
    } else {
      out.push_back(c);
    }
  }
}
inline void json_escape(std::string_view s, std::string& out) { json_escape_to(s, out); }
// `s` as a quoted JSON string ("..." with the escapes above).
inline std::string json_quoted(std::string_view s) {
  std::string out = "\"";
  json_escape(s, out);
  out += '"';
  return out;
}

}  // namespace hookvault
