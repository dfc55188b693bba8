// STANAG 4774 label view and generator (see nato_label.h).
#include "policy/labels/nato_label.h"

#include <map>
#include <utility>

namespace portcullis::policy::labels {

namespace {

constexpr std::size_t kMaxText = 256;
constexpr std::size_t kMaxCategories = 64;
constexpr std::size_t kMaxValues = 256;

bool fail(std::string* why, const char* msg) {
  if (why) *why = msg;
  return false;
}

bool blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// Element with only character data: its trimmed text, or false.
bool leaf_text(const xmpp::Element& e, std::string& out, std::string* why) {
  for (const auto& n : e.children())
    if (n.is_element()) return fail(why, "unexpected element in a text field");
  out = trim(e.text());
  if (out.empty()) return fail(why, "empty text field");
  if (out.size() > kMaxText) return fail(why, "text field too long");
  return true;
}

// Container: only whitespace text allowed between its elements.
bool container_ok(const xmpp::Element& e, std::string* why) {
  for (const auto& n : e.children())
    if (!n.is_element() && !blank(n.text)) return fail(why, "unexpected text");
  return true;
}

bool read_category(const xmpp::Element& c, Label& label, std::size_t& values, std::string* why) {
  if (!container_ok(c, why)) return false;
  const std::string* tag_name = c.attr("TagName");
  const std::string* type = c.attr("Type");
  if (!tag_name || trim(*tag_name).empty() || !type) return fail(why, "Category needs TagName and Type");
  TagKind kind;
  if (*type == "RESTRICTIVE") kind = TagKind::Restrictive;
  else if (*type == "PERMISSIVE") kind = TagKind::Permissive;
  else if (*type == "INFORMATIVE") kind = TagKind::Informative;
  else return fail(why, "unknown Category Type");
  std::string tag_set_id;
  if (const std::string* uri = c.attr("URI")) {
    if (uri->rfind("urn:oid:", 0) != 0) return fail(why, "Category URI is not urn:oid:");
    tag_set_id = uri->substr(8);
  }
  std::size_t here = 0;
  for (const xmpp::Element* v : c.child_elements()) {
    if (v->ns() != kNsNato4774 || v->name() != "GenericValue") return fail(why, "unexpected element in Category");
    if (++values > kMaxValues) return fail(why, "too many category values");
    LabelCategory cat;
    cat.tag_set_name = trim(*tag_name);
    cat.tag_set_id = tag_set_id;
    cat.kind = kind;
    if (!leaf_text(*v, cat.name, why)) return false;
    label.categories.push_back(std::move(cat));
    ++here;
  }
  if (here == 0) return fail(why, "Category without GenericValue");
  return true;
}

}  // namespace

bool is_nato_label(const xmpp::Element& e) {
  return e.ns() == kNsNato4774 &&
         (e.name() == "originatorConfidentialityLabel" || e.name() == "alternativeConfidentialityLabel" ||
          e.name() == "ConfidentialityLabel");
}

std::optional<Label> parse_nato(const xmpp::Element& e, std::string* why) {
  if (!is_nato_label(e)) {
    fail(why, "not a STANAG 4774 label");
    return std::nullopt;
  }
  if (!container_ok(e, why)) return std::nullopt;
  Label label;
  label.format = LabelFormat::Nato4774;
  const xmpp::Element* info = nullptr;
  bool have_created = false;
  for (const xmpp::Element* c : e.child_elements()) {
    if (c->ns() == kNsNato4774 && c->name() == "ConfidentialityInformation" && !info) {
      info = c;
    } else if (c->ns() == kNsNato4774 && c->name() == "CreationDateTime" && !have_created) {
      std::string ignored;
      if (!leaf_text(*c, ignored, why)) return std::nullopt;
      have_created = true;
    } else {
      fail(why, "unexpected or repeated element in the confidentiality label");
      return std::nullopt;
    }
  }
  if (!info) {
    fail(why, "no ConfidentialityInformation");
    return std::nullopt;
  }
  if (!container_ok(*info, why)) return std::nullopt;
  bool have_policy = false, have_class = false, have_mark = false;
  std::size_t categories = 0, values = 0;
  for (const xmpp::Element* c : info->child_elements()) {
    const bool ours = c->ns() == kNsNato4774;
    if (ours && c->name() == "PolicyIdentifier" && !have_policy) {
      if (!leaf_text(*c, label.policy_name, why)) return std::nullopt;
      if (const std::string* uri = c->attr("URI")) {
        if (uri->rfind("urn:oid:", 0) != 0 || uri->size() == 8) {
          fail(why, "PolicyIdentifier URI is not urn:oid:");
          return std::nullopt;
        }
        label.policy_id = uri->substr(8);
      }
      have_policy = true;
    } else if (ours && c->name() == "Classification" && !have_class && have_policy) {
      if (!leaf_text(*c, label.classification_name, why)) return std::nullopt;
      have_class = true;
    } else if (ours && c->name() == "PrivacyMark" && !have_mark && have_class) {
      if (!leaf_text(*c, label.privacy_mark, why)) return std::nullopt;
      have_mark = true;
    } else if (ours && c->name() == "Category" && have_class) {
      if (++categories > kMaxCategories) {
        fail(why, "too many categories");
        return std::nullopt;
      }
      if (!read_category(*c, label, values, why)) return std::nullopt;
    } else {
      fail(why, "unexpected, repeated or misplaced element in ConfidentialityInformation");
      return std::nullopt;
    }
  }
  if (!have_policy || !have_class) {
    fail(why, "PolicyIdentifier and Classification are required");
    return std::nullopt;
  }
  return label;
}

xmpp::Element write_nato(const Label& label) {
  const std::string ns(kNsNato4774);
  xmpp::Element root(ns, "originatorConfidentialityLabel");
  xmpp::Element& info = root.add_child(ns, "ConfidentialityInformation");
  xmpp::Element& pid = info.add_child(ns, "PolicyIdentifier");
  if (!label.policy_id.empty()) pid.set_attr("URI", "urn:oid:" + label.policy_id);
  pid.add_text(label.policy_name);
  info.add_child(ns, "Classification").add_text(label.classification_name);
  if (!label.privacy_mark.empty()) info.add_child(ns, "PrivacyMark").add_text(label.privacy_mark);
  // One Category per (tag set, kind), in the order first seen.
  std::vector<std::pair<std::pair<std::string, TagKind>, std::vector<const LabelCategory*>>> groups;
  for (const auto& c : label.categories) {
    const auto key = std::make_pair(c.tag_set_name, c.kind);
    auto it = groups.begin();
    while (it != groups.end() && it->first != key) ++it;
    if (it == groups.end()) it = groups.insert(groups.end(), {key, {}});
    it->second.push_back(&c);
  }
  for (const auto& [key, cats] : groups) {
    xmpp::Element& c = info.add_child(ns, "Category");
    c.set_attr("TagName", key.first);
    c.set_attr("Type", key.second == TagKind::Restrictive   ? "RESTRICTIVE"
                       : key.second == TagKind::Permissive ? "PERMISSIVE"
                                                           : "INFORMATIVE");
    if (!cats.front()->tag_set_id.empty()) c.set_attr("URI", "urn:oid:" + cats.front()->tag_set_id);
    for (const LabelCategory* v : cats) c.add_child(ns, "GenericValue").add_text(v->name);
  }
  return root;
}

}  // namespace portcullis::policy::labels
