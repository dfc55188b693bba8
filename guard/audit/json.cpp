#include "guard/audit/json.h"

#include <cstdio>
#include <limits>

namespace portcullis::audit::json {

namespace {

const std::string kEmptyString;
const Array kEmptyArray;
const Object kEmptyObject;
const Value kNull;

// Length of the valid UTF-8 sequence at s[i], or 0 if invalid (overlong forms,
// surrogates and code points over U+10FFFF are invalid).
std::size_t utf8_len(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  std::size_t n;
  std::uint32_t cp;
  if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

void put_utf8(std::uint32_t cp, std::string& out) {
  if (cp < 0x80) out += static_cast<char>(cp);
  else if (cp < 0x800) { out += static_cast<char>(0xC0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12)); out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18)); out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)); out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  explicit Parser(std::string_view t) : t_(t) {}

  // Out-parameters instead of optional<Value>: GCC 12 at -O3 reports false
  // maybe-uninitialized warnings for moved optional<variant<...>>.
  bool run(Value& out, std::string* error) {
    ws();
    bool ok = value(0, out);
    if (ok) {
      ws();
      if (p_ != t_.size()) { fail("trailing data"); ok = false; }
    }
    if (!ok && error) *error = err_ + " at offset " + std::to_string(p_);
    return ok;
  }

 private:
  void fail(const char* m) { if (err_.empty()) err_ = m; }
  void ws() { while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_; }
  bool lit(std::string_view w) {
    if (t_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }

  bool value(int depth, Value& out) {
    if (depth > 64) { fail("nesting too deep"); return false; }
    if (p_ >= t_.size()) { fail("unexpected end"); return false; }
    const char c = t_[p_];
    if (c == '{') return object(depth, out);
    if (c == '[') return array(depth, out);
    if (c == '"') {
      std::string s;
      if (!string(s)) return false;
      out = Value(std::move(s));
      return true;
    }
    if (lit("true")) { out = Value(true); return true; }
    if (lit("false")) { out = Value(false); return true; }
    if (lit("null")) { out = Value(nullptr); return true; }
    if (c == '-' || (c >= '0' && c <= '9')) return number(out);
    fail("unexpected character");
    return false;
  }

  bool number(Value& out) {
    bool neg = false;
    if (t_[p_] == '-') { neg = true; ++p_; }
    if (p_ >= t_.size() || t_[p_] < '0' || t_[p_] > '9') { fail("bad number"); return false; }
    if (t_[p_] == '0' && p_ + 1 < t_.size() && t_[p_ + 1] >= '0' && t_[p_ + 1] <= '9') { fail("leading zero"); return false; }
    std::uint64_t v = 0;
    while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') {
      const std::uint64_t d = static_cast<std::uint64_t>(t_[p_] - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) { fail("number out of range"); return false; }
      v = v * 10 + d;
      ++p_;
    }
    if (p_ < t_.size() && (t_[p_] == '.' || t_[p_] == 'e' || t_[p_] == 'E')) { fail("not an integer"); return false; }
    const auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (v > max + (neg ? 1 : 0)) { fail("number out of range"); return false; }
    if (neg) out = Value(v == max + 1 ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(v));
    else out = Value(static_cast<std::int64_t>(v));
    return true;
  }

  bool hex4(std::uint32_t& out) {
    if (p_ + 4 > t_.size()) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = t_[p_++];
      out <<= 4;
      if (c >= '0' && c <= '9') out |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') out |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') out |= static_cast<std::uint32_t>(c - 'A' + 10);
      else return false;
    }
    return true;
  }

  bool string(std::string& out) {
    ++p_;  // opening quote
    while (true) {
      if (p_ >= t_.size()) { fail("unterminated string"); return false; }
      const char c = t_[p_];
      if (c == '"') { ++p_; return true; }
      if (static_cast<unsigned char>(c) < 0x20) { fail("control character in string"); return false; }
      if (c != '\\') {
        const std::size_t n = utf8_len(t_, p_);
        if (n == 0) { fail("invalid UTF-8"); return false; }
        out.append(t_.substr(p_, n));
        p_ += n;
        continue;
      }
      ++p_;
      if (p_ >= t_.size()) { fail("bad escape"); return false; }
      const char e = t_[p_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp;
          if (!hex4(cp)) { fail("bad \\u escape"); return false; }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t lo;
            if (!lit("\\u") || !hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) { fail("bad surrogate pair"); return false; }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("lone surrogate");
            return false;
          }
          put_utf8(cp, out);
          break;
        }
        default: fail("bad escape"); return false;
      }
    }
  }

  bool array(int depth, Value& out) {
    ++p_;
    out = Value(Array{});
    Array& a = out.array();
    ws();
    if (p_ < t_.size() && t_[p_] == ']') { ++p_; return true; }
    while (true) {
      ws();
      a.emplace_back();
      if (!value(depth + 1, a.back())) return false;
      ws();
      if (p_ < t_.size() && t_[p_] == ',') { ++p_; continue; }
      if (p_ < t_.size() && t_[p_] == ']') { ++p_; return true; }
      fail("expected , or ]");
      return false;
    }
  }

  bool object(int depth, Value& out) {
    ++p_;
    out = Value(Object{});
    Object& o = out.object();
    ws();
    if (p_ < t_.size() && t_[p_] == '}') { ++p_; return true; }
    while (true) {
      ws();
      if (p_ >= t_.size() || t_[p_] != '"') { fail("expected key"); return false; }
      std::string k;
      if (!string(k)) return false;
      ws();
      if (p_ >= t_.size() || t_[p_] != ':') { fail("expected :"); return false; }
      ++p_;
      ws();
      auto [it, fresh] = o.try_emplace(std::move(k));
      if (!fresh) { fail("duplicate key"); return false; }
      if (!value(depth + 1, it->second)) return false;
      ws();
      if (p_ < t_.size() && t_[p_] == ',') { ++p_; continue; }
      if (p_ < t_.size() && t_[p_] == '}') { ++p_; return true; }
      fail("expected , or }");
      return false;
    }
  }

  std::string_view t_;
  std::size_t p_ = 0;
  std::string err_;
};

}  // namespace

const std::string& Value::as_string() const { return is_string() ? std::get<std::string>(v_) : kEmptyString; }
const Array& Value::as_array() const { return is_array() ? std::get<Array>(v_) : kEmptyArray; }
const Object& Value::as_object() const { return is_object() ? std::get<Object>(v_) : kEmptyObject; }

const Value& Value::operator[](std::string_view key) const {
  if (!is_object()) return kNull;
  const auto& o = std::get<Object>(v_);
  auto it = o.find(key);
  return it == o.end() ? kNull : it->second;
}

bool Value::has(std::string_view key) const {
  return is_object() && std::get<Object>(v_).find(key) != std::get<Object>(v_).end();
}

void dump_string(std::string_view s, std::string& out) {
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    // A run of printable ASCII other than '"' and '\\' goes out in one append
    // (the common case: the archive's cost per record, issue 9).
    std::size_t j = i;
    while (j < s.size()) {
      const auto a = static_cast<unsigned char>(s[j]);
      if (a < 0x20 || a >= 0x80 || a == '"' || a == '\\') break;
      ++j;
    }
    if (j > i) {
      out.append(s.data() + i, j - i);
      i = j;
      continue;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') { out += "\\\""; ++i; continue; }
    if (c == '\\') { out += "\\\\"; ++i; continue; }
    if (c < 0x20) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        }
      }
      ++i;
      continue;
    }
    const std::size_t n = utf8_len(s, i);
    if (n == 0) { out += "\xEF\xBF\xBD"; ++i; continue; }  // U+FFFD for invalid bytes
    out.append(s.substr(i, n));
    i += n;
  }
  out += '"';
}

void dump_to(const Value& v, std::string& out) {
  if (v.is_null()) out += "null";
  else if (v.is_bool()) out += v.as_bool() ? "true" : "false";
  else if (v.is_int()) out += std::to_string(v.as_int());
  else if (v.is_string()) dump_string(v.as_string(), out);
  else if (v.is_array()) {
    out += '[';
    bool first = true;
    for (const auto& e : v.as_array()) {
      if (!first) out += ',';
      first = false;
      dump_to(e, out);
    }
    out += ']';
  } else {
    out += '{';
    bool first = true;
    for (const auto& [k, e] : v.as_object()) {  // std::map: lexicographic key order
      if (!first) out += ',';
      first = false;
      dump_string(k, out);
      out += ':';
      dump_to(e, out);
    }
    out += '}';
  }
}

std::string dump(const Value& v) {
  std::string out;
  dump_to(v, out);
  return out;
}

std::optional<Value> parse(std::string_view text, std::string* error) {
  std::optional<Value> out(std::in_place);
  if (!Parser(text).run(*out, error)) out.reset();
  return out;
}

}  // namespace portcullis::audit::json
