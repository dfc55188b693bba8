#include "policy/content/payload_filter.h"

#include <algorithm>
#include <array>

namespace portcullis::policy::content {

namespace {

constexpr unsigned bit(PayloadClass c) { return c == PayloadClass::FileTransfer ? 1u : 2u; }

bool starts_with_any(std::string_view s, const std::string_view* first, const std::string_view* last) {
  return std::any_of(first, last, [&](std::string_view p) { return s.substr(0, p.size()) == p; });
}

// Namespace prefixes per class. Prefixes, not exact names, so later versions
// of the same protocol (file-transfer:6, omemo:3, sfs:1) are caught too.
constexpr std::array<std::string_view, 13> kFileTransferNs{
    "jabber:x:oob",
    "jabber:iq:oob",
    "http://jabber.org/protocol/si",   // also si/profile/file-transfer, sipub
    "http://jabber.org/protocol/bytestreams",
    "http://jabber.org/protocol/ibb",
    "urn:xmpp:jingle:apps:file-transfer:",
    "urn:xmpp:jingle:transports:ibb:",
    "urn:xmpp:jingle:transports:s5b:",
    "urn:xmpp:http:upload",            // :0 and the pre-namespace-bump form
    "eu:siacs:conversations:http:upload",
    "urn:xmpp:sims:",
    "urn:xmpp:sfs:",
    "urn:xmpp:esfs:",                  // XEP-0448 encrypted SFS
};
constexpr std::array<std::string_view, 6> kEncryptedNs{
    "eu.siacs.conversations.axolotl",  // OMEMO 0.3 (also its PEP nodes)
    "urn:xmpp:omemo:",
    "urn:xmpp:openpgp:",
    "jabber:x:encrypted",
    "jabber:x:signed",
    "urn:xmpp:eme:",
};
// PEP nodes carrying key material (device lists, bundles, public keys).
constexpr std::array<std::string_view, 3> kEncryptedNodes{
    "eu.siacs.conversations.axolotl", "urn:xmpp:omemo:", "urn:xmpp:openpgp:"};

constexpr std::string_view kOtrWhitespaceTag = " \t  \t\t\t\t \t \t \t  ";

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool is_otr(std::string_view body) {
  return body.substr(0, 4) == "?OTR" || body.find("?OTR:") != std::string_view::npos ||
         body.find(kOtrWhitespaceTag) != std::string_view::npos;
}

std::string_view class_text(PayloadClass c) {
  return c == PayloadClass::FileTransfer ? "file transfer is not allowed across this boundary"
                                         : "encrypted content is not allowed across this boundary";
}

bool is_content(const xmpp::Element& stanza, const xmpp::Element& child) {
  return child.ns() == stanza.ns() && (child.name() == "body" || child.name() == "subject");
}

}  // namespace

std::string_view to_string(PayloadClass c) {
  return c == PayloadClass::FileTransfer ? "file-transfer" : "encrypted";
}

bool element_in_class(const xmpp::Element& e, PayloadClass c) {
  if (c == PayloadClass::FileTransfer) {
    if (starts_with_any(e.ns(), kFileTransferNs.begin(), kFileTransferNs.end())) return true;
  } else {
    if (starts_with_any(e.ns(), kEncryptedNs.begin(), kEncryptedNs.end())) return true;
    if (const std::string* node = e.attr("node");
        node && starts_with_any(*node, kEncryptedNodes.begin(), kEncryptedNodes.end())) {
      return true;
    }
  }
  // Depth is bounded by the parser's limits (ParserLimits::max_depth).
  for (const xmpp::Node& n : e.children()) {
    if (n.is_element() && element_in_class(*n.element, c)) return true;
  }
  return false;
}

PayloadFilter::PayloadFilter(std::string name, PayloadFilterConfig config)
    : name_(std::move(name)), config_(std::move(config)) {}

std::shared_ptr<const Filter> PayloadFilter::from_spec(const FilterSpec& spec) {
  const PolicyNode& node = node_of(spec);
  PayloadFilterConfig cfg;
  for (const PolicyNode* r : node.children_named("rule")) {
    PayloadRule rule;
    rule.id = rule_id_of(*r);
    const std::string& cls = r->required("class");
    if (cls == "file-transfer") rule.cls = PayloadClass::FileTransfer;
    else if (cls == "encrypted") rule.cls = PayloadClass::Encrypted;
    else r->fail("class must be file-transfer or encrypted, not '" + cls + "'");
    const std::string& action = r->required("action");
    if (action == "strip") rule.action = PayloadAction::Strip;
    else if (action == "reject") rule.action = PayloadAction::Reject;
    else r->fail("action must be strip or reject, not '" + action + "'");
    rule.shadow = bool_attr(*r, "shadow", false);
    cfg.rules.push_back(std::move(rule));
  }
  if (cfg.rules.empty()) node.fail("<payload-filter> has no <rule>: it would do nothing");
  return std::make_shared<PayloadFilter>(spec.name, std::move(cfg));
}

Verdict PayloadFilter::evaluate(xmpp::Element& stanza, const StanzaContext&) const {
  const StanzaKind kind = kind_of(stanza);
  if (kind == StanzaKind::Other) return Verdict::no_opinion();
  auto& children = stanza.children();

  // The URLs of OOB elements: a body that is just one of them is part of the
  // offer (XEP-0363 sharing puts the link in both places).
  // The URLs of OOB elements: a body that is just one of them is part of the
  // offer (XEP-0363 sharing puts the link in both places).
  std::vector<std::string> url_texts;
  for (const xmpp::Node& n : children) {
    if (!n.is_element() || n.element->ns() != "jabber:x:oob") continue;
    if (const xmpp::Element* url = n.element->find_child("url", "jabber:x:oob")) {
      url_texts.emplace_back(trim(url->text()));
    }
  }

  // Classify each top-level child (decide first; change only on Modify).
  std::vector<unsigned> mask(children.size(), 0);
  bool any = false;
  for (std::size_t i = 0; i < children.size(); ++i) {
    if (!children[i].is_element()) continue;
    const xmpp::Element& c = *children[i].element;
    if (element_in_class(c, PayloadClass::FileTransfer)) mask[i] |= bit(PayloadClass::FileTransfer);
    if (element_in_class(c, PayloadClass::Encrypted)) mask[i] |= bit(PayloadClass::Encrypted);
    if (kind == StanzaKind::Message && c.ns() == stanza.ns() && c.name() == "body") {
      const std::string text = c.text();
      const std::string_view t = trim(text);
      if (is_otr(text)) mask[i] |= bit(PayloadClass::Encrypted);
      if (t.substr(0, 9) == "aesgcm://" ||
          (!t.empty() && std::find(url_texts.begin(), url_texts.end(), t) != url_texts.end())) {
        mask[i] |= bit(PayloadClass::FileTransfer);
      }
    }
    any = any || mask[i] != 0;
  }
  if (!any) return Verdict::no_opinion();

  Notes notes;
  std::string first_shadow;   // a shadow-only outcome carries its rule id
  std::vector<bool> strip(children.size(), false);
  std::vector<std::string> strip_rules;
  std::vector<PayloadClass> strip_classes;
  for (const PayloadRule& r : config_.rules) {
    const unsigned b = bit(r.cls);
    if (std::none_of(mask.begin(), mask.end(), [&](unsigned m) { return (m & b) != 0; })) continue;
    if (r.shadow) {
      if (first_shadow.empty()) first_shadow = r.id;
      add_shadow_note(notes, r.id,
                      r.action == PayloadAction::Reject || kind == StanzaKind::Iq
                          ? "reject: policy-violation"
                          : "modify: payload-strip");
      continue;
    }
    if (r.action == PayloadAction::Reject || kind == StanzaKind::Iq) {
      Verdict v = Verdict::reject(r.id, xmpp::StanzaErrorCondition::PolicyViolation,
                                  std::string(class_text(r.cls)));
      v.notes.emplace_back("class", std::string(to_string(r.cls)));
      if (r.action == PayloadAction::Strip) v.notes.emplace_back("check", "iq-payload-not-strippable");
      return with_notes(std::move(v), std::move(notes));
    }
    bool took = false;
    for (std::size_t i = 0; i < children.size(); ++i) {
      if ((mask[i] & b) != 0 && !strip[i]) strip[i] = took = true;
    }
    if (took) {
      strip_rules.push_back(r.id);
      strip_classes.push_back(r.cls);
    }
  }
  if (strip_rules.empty()) return with_notes(Verdict::no_opinion(first_shadow), std::move(notes));

  if (kind == StanzaKind::Message) {
    bool content_left = false;
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (!strip[i] && children[i].is_element() && is_content(stanza, *children[i].element)) {
        content_left = true;
      }
    }
    if (!content_left) {
      Verdict v = Verdict::reject(strip_rules.front(), xmpp::StanzaErrorCondition::PolicyViolation,
                                  std::string(class_text(strip_classes.front())));
      for (PayloadClass c : strip_classes) v.notes.emplace_back("class", std::string(to_string(c)));
      v.notes.emplace_back("check", "empty-after-strip");
      return with_notes(std::move(v), std::move(notes));
    }
  }

  Verdict v = Verdict::modify(strip_rules.front(), std::string(kTransformPayloadStrip));
  for (std::size_t k = 1; k < strip_rules.size(); ++k) v.notes.emplace_back("rule", strip_rules[k]);
  for (PayloadClass c : strip_classes) v.notes.emplace_back("class", std::string(to_string(c)));
  std::vector<xmpp::Node> kept;
  kept.reserve(children.size());
  for (std::size_t i = 0; i < children.size(); ++i) {
    if (strip[i]) v.notes.emplace_back("removed", note_name(stanza, *children[i].element));
    else kept.push_back(std::move(children[i]));
  }
  children = std::move(kept);
  return with_notes(std::move(v), std::move(notes));
}

}  // namespace portcullis::policy::content
