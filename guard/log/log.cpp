#include "guard/log/log.h"

#include <syslog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace portcullis {

std::string_view to_string(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warning: return "warning";
    case LogLevel::Error: return "error";
  }
  return "?";
}

bool parse_log_level(std::string_view s, LogLevel& out) {
  if (s == "debug") out = LogLevel::Debug;
  else if (s == "info") out = LogLevel::Info;
  else if (s == "warning") out = LogLevel::Warning;
  else if (s == "error") out = LogLevel::Error;
  else return false;
  return true;
}

Logger::Logger(std::string process_name, Target target, LogLevel min_level)
    : name_(std::move(process_name)), target_(target), min_(min_level) {
  if (target_ == Target::Syslog) openlog("portcullis", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

Logger::~Logger() {
  if (target_ == Target::Syslog) closelog();
}

void Logger::log(LogLevel l, std::string_view line) {
  if (!enabled(l)) return;
  switch (target_) {
    case Target::Capture:
      if (capture_) capture_(l, std::string(line));
      return;
    case Target::Syslog: {
      int prio = l == LogLevel::Error ? LOG_ERR : l == LogLevel::Warning ? LOG_WARNING
               : l == LogLevel::Info ? LOG_INFO : LOG_DEBUG;
      syslog(prio, "%s: %.*s", name_.c_str(), static_cast<int>(line.size()), line.data());
      return;
    }
    case Target::Stderr: {
      // One write per line so lines from the sandwich's processes do not interleave.
      auto now = std::chrono::system_clock::now();
      auto t = std::chrono::system_clock::to_time_t(now);
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
      std::tm tm{};
      gmtime_r(&t, &tm);
      char ts[32];
      std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
      std::string out;
      out.reserve(line.size() + 64);
      out += ts;
      char msbuf[8];
      std::snprintf(msbuf, sizeof msbuf, ".%03dZ ", static_cast<int>(ms));
      out += msbuf;
      out += name_;
      out += ' ';
      out += to_string(l);
      out += ": ";
      out += line;
      out += '\n';
      ssize_t ignored = ::write(2, out.data(), out.size());
      (void)ignored;
      return;
    }
  }
}

}  // namespace portcullis
