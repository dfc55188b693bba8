// XEP-0258 view, decoder and generator (see security_label.h).
#include "policy/labels/security_label.h"

#include <algorithm>
#include <cctype>

#include "policy/labels/ess_label.h"
#include "policy/labels/nato_label.h"

namespace portcullis::policy::labels {

namespace {

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n") == std::string_view::npos; }

bool fail(std::string* why, const char* m) {
  if (why) *why = m;
  return false;
}

// The single element inside <label>/<equivalentlabel>; *out null if empty.
bool single_child(const xmpp::Element& e, const xmpp::Element** out, std::string* why) {
  *out = nullptr;
  if (!e.attributes().empty()) return fail(why, "unexpected attribute");
  for (const auto& n : e.children()) {
    if (!n.is_element()) {
      if (!blank(n.text)) return fail(why, "text in a label container");
      continue;
    }
    if (*out) return fail(why, "more than one label in a label container");
    *out = n.element.get();
  }
  return true;
}

bool allowed_color(const std::string& c) {
  static constexpr std::string_view kNames[] = {"aqua", "black", "blue", "fuschia", "gray", "green",
                                                "lime", "maroon", "navy", "olive", "purple", "red",
                                                "silver", "teal", "white", "yellow", "orange"};
  if (std::find(std::begin(kNames), std::end(kNames), c) != std::end(kNames)) return true;
  return c.size() == 7 && c[0] == '#' &&
         std::all_of(c.begin() + 1, c.end(), [](char x) { return std::isxdigit(static_cast<unsigned char>(x)); });
}

}  // namespace

std::vector<const xmpp::Element*> find_security_labels(const xmpp::Element& stanza) {
  std::vector<const xmpp::Element*> out;
  for (const xmpp::Element* c : stanza.child_elements())
    if (c->ns() == kNsSecLabel && c->name() == "securitylabel") out.push_back(c);
  return out;
}

std::optional<SecurityLabelView> view_security_label(const xmpp::Element& sl, std::string* why) {
  SecurityLabelView v;
  v.element = &sl;
  bool have_marking = false, have_label = false;
  for (const auto& n : sl.children()) {
    if (!n.is_element()) {
      if (!blank(n.text)) {
        fail(why, "text in securitylabel");
        return std::nullopt;
      }
      continue;
    }
    const xmpp::Element& c = *n.element;
    if (c.ns() != kNsSecLabel) {
      fail(why, "foreign element in securitylabel");
      return std::nullopt;
    }
    if (c.name() == "displaymarking" && !have_marking && !have_label) {
      if (!c.child_elements().empty()) {
        fail(why, "element in displaymarking");
        return std::nullopt;
      }
      v.display_marking = c.text();
      have_marking = true;
    } else if (c.name() == "label" && !have_label) {
      if (!single_child(c, &v.label, why)) return std::nullopt;
      have_label = true;
    } else if (c.name() == "equivalentlabel" && have_label) {
      const xmpp::Element* inner = nullptr;
      if (!single_child(c, &inner, why)) return std::nullopt;
      if (!inner) {
        fail(why, "empty equivalentlabel");
        return std::nullopt;
      }
      v.equivalents.push_back(inner);
    } else {
      fail(why, "unexpected, repeated or misplaced element in securitylabel");
      return std::nullopt;
    }
  }
  if (!have_label) {
    fail(why, "securitylabel without label");
    return std::nullopt;
  }
  return v;
}

DecodedLabel decode_label_element(const xmpp::Element& e) {
  DecodedLabel d;
  if (e.ns() == kNsEss && e.name() == "esssecuritylabel") {
    if (!e.child_elements().empty()) {
      d.why = "element inside esssecuritylabel";
      return d;
    }
    const std::string text = e.text();
    if (text.size() > kMaxEssBytes * 2) {
      d.why = "label too large";
      return d;
    }
    const auto der = base64_decode(text);
    if (!der) {
      d.why = "bad base64";
      return d;
    }
    auto label = decode_ess(*der, &d.why);
    if (!label) return d;
    d.label = std::move(*label);
    d.status = DecodedLabel::Status::Ok;
    return d;
  }
  if (e.ns() == kNsNato4774) {
    auto label = parse_nato(e, &d.why);
    if (!label) return d;
    d.label = std::move(*label);
    d.status = DecodedLabel::Status::Ok;
    return d;
  }
  d.status = DecodedLabel::Status::UnknownFormat;
  return d;
}

std::optional<xmpp::Element> label_element(const Label& label) {
  if (label.format == LabelFormat::Nato4774) return write_nato(label);
  const auto der = encode_ess(label);
  if (!der) return std::nullopt;
  xmpp::Element e(std::string(kNsEss), "esssecuritylabel");
  e.add_text(base64_encode(*der));
  return e;
}

xmpp::Element make_security_label(const std::string& marking, const std::string& bgcolor,
                                  const xmpp::Element* label, const std::vector<xmpp::Element>& equivalents) {
  const std::string ns(kNsSecLabel);
  xmpp::Element sl(ns, "securitylabel");
  xmpp::Element& dm = sl.add_child(ns, "displaymarking");
  if (!bgcolor.empty() && allowed_color(bgcolor)) {
    dm.set_attr("fgcolor", "black");
    dm.set_attr("bgcolor", bgcolor);
  }
  dm.add_text(marking);
  xmpp::Element& l = sl.add_child(ns, "label");
  if (label) l.add_child(*label);
  for (const auto& e : equivalents) sl.add_child(ns, "equivalentlabel").add_child(e);
  return sl;
}

std::string summary(const SecurityLabelView& view) {
  if (!view.display_marking.empty()) return view.display_marking.substr(0, 128);
  return view.label ? "(no marking)" : "(default label)";
}

}  // namespace portcullis::policy::labels
