// Operator log: one line per event, to stderr (with --foreground) or syslog.
// A Logger is passed to whatever logs; there is no global logger, so tests can
// capture lines and each process names itself (edge(low), filter, ...).
#pragma once

#include <functional>
#include <sstream>
#include <string>
#include <string_view>

namespace portcullis {

enum class LogLevel { Debug = 0, Info = 1, Warning = 2, Error = 3 };

std::string_view to_string(LogLevel l);
// Parses "debug|info|warning|error"; returns false on anything else.
bool parse_log_level(std::string_view s, LogLevel& out);

class Logger {
 public:
  enum class Target { Stderr, Syslog, Capture };
  Logger(std::string process_name, Target target, LogLevel min_level);
  ~Logger();

  bool enabled(LogLevel l) const { return l >= min_; }
  void log(LogLevel l, std::string_view line);
  void debug(std::string_view line) { log(LogLevel::Debug, line); }
  void info(std::string_view line) { log(LogLevel::Info, line); }
  void warning(std::string_view line) { log(LogLevel::Warning, line); }
  void error(std::string_view line) { log(LogLevel::Error, line); }

  // For Target::Capture (tests): every line goes here.
  void set_capture(std::function<void(LogLevel, const std::string&)> sink) { capture_ = std::move(sink); }
  const std::string& process_name() const { return name_; }
  Target target() const { return target_; }

 private:
  std::string name_;
  Target target_;
  LogLevel min_;
  std::function<void(LogLevel, const std::string&)> capture_;
};

// Small helper to build a line: LogLine(log, LogLevel::Info) << "a " << 1;
class LogLine {
 public:
  LogLine(Logger& l, LogLevel level) : log_(l), level_(level) {}
  ~LogLine() { if (log_.enabled(level_)) log_.log(level_, os_.str()); }
  template <typename T> LogLine& operator<<(const T& v) { if (log_.enabled(level_)) os_ << v; return *this; }

 private:
  Logger& log_;
  LogLevel level_;
  std::ostringstream os_;
};

}  // namespace portcullis
