// A small JSON value for the audit record metadata: deterministic output
// (object keys in lexicographic order, no whitespace, integers only) so the
// same record always encodes to the same bytes, and a strict parser for the
// tools. Only what the audit format needs: null, bool, integers, strings,
// arrays and objects; no floating point.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace portcullis::audit::json {

class Value;
using Array = std::vector<Value>;
using Object = std::map<std::string, Value, std::less<>>;

class Value {
 public:
  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(std::int64_t i) : v_(i) {}
  Value(std::uint64_t i) : v_(static_cast<std::int64_t>(i)) {}
  Value(int i) : v_(static_cast<std::int64_t>(i)) {}
  Value(std::uint32_t i) : v_(static_cast<std::int64_t>(i)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Object o) : v_(std::move(o)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_int() const { return std::holds_alternative<std::int64_t>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_object() const { return std::holds_alternative<Object>(v_); }

  // Typed accessors with a fallback when the value has another type.
  bool as_bool(bool dflt = false) const { return is_bool() ? std::get<bool>(v_) : dflt; }
  std::int64_t as_int(std::int64_t dflt = 0) const { return is_int() ? std::get<std::int64_t>(v_) : dflt; }
  std::uint64_t as_uint(std::uint64_t dflt = 0) const {
    return is_int() && std::get<std::int64_t>(v_) >= 0 ? static_cast<std::uint64_t>(std::get<std::int64_t>(v_)) : dflt;
  }
  const std::string& as_string() const;   // "" if not a string
  const Array& as_array() const;          // empty if not an array
  const Object& as_object() const;        // empty if not an object

  // Object member or a null Value when absent / not an object.
  const Value& operator[](std::string_view key) const;
  bool has(std::string_view key) const;

  Array& array() { return std::get<Array>(v_); }
  Object& object() { return std::get<Object>(v_); }

 private:
  std::variant<std::monostate, bool, std::int64_t, std::string, Array, Object> v_;
};

// Deterministic compact encoding. Strings are written as UTF-8 with the JSON
// escapes; a byte sequence that is not valid UTF-8 is replaced by U+FFFD.
std::string dump(const Value& v);
void dump_to(const Value& v, std::string& out);
// Appends `s` as a JSON string literal (quotes included).
void dump_string(std::string_view s, std::string& out);

// Strict parse of one JSON text (surrounding whitespace allowed). Returns
// nullopt and sets `error` on any syntax error, depth over 64, a number that is
// not an integer in int64 range, or trailing data.
std::optional<Value> parse(std::string_view text, std::string* error = nullptr);

}  // namespace portcullis::audit::json
