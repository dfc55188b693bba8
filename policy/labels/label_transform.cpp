// LabelTransformFilter (see label_transform.h).
#include "policy/labels/label_transform.h"

#include "policy/labels/label_access.h"
#include "policy/labels/stanza_labels.h"

namespace portcullis::policy::labels {

using xmpp::StanzaErrorCondition;

LabelTransformFilter::LabelTransformFilter(std::string name, LabelTransformConfig config)
    : name_(std::move(name)), config_(std::move(config)) {}

Verdict LabelTransformFilter::evaluate(xmpp::Element& stanza, const StanzaContext&) const {
  LabelScan scan = scan_stanza_labels(stanza);
  if (scan.early) return *scan.early;
  const Spif& from = *config_.from;
  const Spif& to = *config_.to;
  auto reject = [&](std::string_view text, std::string why) {
    Verdict v = Verdict::reject(config_.rule, StanzaErrorCondition::PolicyViolation, std::string(text));
    v.notes.emplace_back("label.original", scan.view ? summary(*scan.view) : "(unlabelled)");
    v.notes.emplace_back("label.error", std::move(why));
    return v;
  };

  // The source label, and the policy it is under.
  std::optional<Label> source;
  const Spif* source_spif = nullptr;
  const xmpp::Element* source_element = nullptr;
  if (!scan.view) {
    if (!config_.default_label) {
      ++counters_.unlabelled;
      Verdict v = Verdict::no_opinion(config_.rule);
      v.notes.emplace_back("label.original", "(unlabelled)");
      return v;
    }
    source = config_.default_label;
    source_spif = &from;
    ++counters_.defaulted;
  } else {
    for (const Spif* spif : {&from, &to}) {
      for (auto& c : scan.candidates)
        if (spif->owns(c.label)) {
          std::string why;
          if (!spif->canonicalize(c.label, &why)) {
            ++counters_.invalid;
            return reject(kTextNotValid, why);
          }
          source = std::move(c.label);
          source_spif = spif;
          source_element = c.element;
          break;
        }
      if (source) break;
    }
    if (!source && !scan.view->label && config_.default_label) {
      source = config_.default_label;   // empty <label/>: the source policy's default
      source_spif = &from;
      ++counters_.defaulted;
    }
    if (!source) {
      ++counters_.no_equivalent;
      return reject(kTextNoEquivalent, "no label under policy " + from.policy_name() + " or " + to.policy_name());
    }
  }

  // The sender's marking is checked here, against the label it came with:
  // once mapped, the stanza carries the marking this filter writes.
  if (config_.check_marking && source_element != nullptr && !scan.view->display_marking.empty() &&
      scan.view->display_marking != source_spif->marking(*source)) {
    ++counters_.marking_mismatch;
    Verdict v = Verdict::reject("marking-mismatch", StanzaErrorCondition::PolicyViolation, std::string(kTextNotValid));
    v.notes.emplace_back("label.original", summary(*scan.view));
    v.notes.emplace_back("marking.expected", source_spif->marking(*source));
    return v;
  }

  std::string why;
  std::optional<Label> mapped = translate(*source, *source_spif, to, &why);
  if (!mapped) {
    ++counters_.no_equivalent;
    return reject(kTextNoEquivalent, why);
  }
  const LabelFormat format = config_.format.value_or(source->format);
  mapped->format = format;
  const std::optional<xmpp::Element> mapped_element = label_element(*mapped);
  if (!mapped_element) {
    ++counters_.no_equivalent;
    return reject(kTextNoEquivalent, "the mapped label cannot be written");
  }

  std::optional<xmpp::Element> label;      // what goes in <label>
  std::vector<xmpp::Element> equivalents;
  if (config_.mode == TransformMode::Replace) {
    label = *mapped_element;
  } else {
    if (scan.view && scan.view->label) {
      label = *scan.view->label;
    } else {
      label = label_element(*source);   // the default label we applied, in the source policy
      if (!label) return reject(kTextNoEquivalent, "the source label cannot be written");
    }
    for (const auto& c : scan.candidates)
      if (c.equivalent && !to.owns(c.label) && c.element != source_element) equivalents.push_back(*c.element);
    if (source_spif != &to) equivalents.push_back(*mapped_element);
  }
  xmpp::Element securitylabel = make_security_label(to.marking(*mapped), to.color(*mapped), &*label, equivalents);
  if (scan.view) {
    if (!replace_child(stanza, scan.view->element, std::move(securitylabel)))
      return reject(kTextNoEquivalent, "securitylabel not found");   // cannot happen: fail closed anyway
  } else {
    stanza.add_child(std::move(securitylabel));
  }
  ++counters_.mapped;
  Verdict v = Verdict::modify(config_.rule, std::string(kTransformLabelMap));
  v.notes.emplace_back("label.original", source_spif->policy_name() + ": " + source_spif->marking(*source));
  v.notes.emplace_back("label.mapped", to.policy_name() + ": " + to.marking(*mapped));
  v.notes.emplace_back("label.mode", config_.mode == TransformMode::Replace ? "replace" : "add-equivalent");
  return v;
}

LabelTransformConfig LabelTransformFilter::config_from_node(const PolicyNode& node) {
  LabelTransformConfig cfg;
  cfg.rule = node.required("rule");
  cfg.from = std::make_shared<Spif>(Spif::load(node.resolve_path(node.required("from-spif"))));
  cfg.to = std::make_shared<Spif>(Spif::load(node.resolve_path(node.required("to-spif"))));
  if (cfg.from->policy_id() == cfg.to->policy_id())
    node.fail("from-spif and to-spif are the same policy (" + cfg.from->policy_name() + ")");
  const std::string mode = node.attr_or("mode", "replace");
  if (mode == "add-equivalent") cfg.mode = TransformMode::AddEquivalent;
  else if (mode != "replace") node.fail("attribute 'mode' must be replace or add-equivalent, not '" + mode + "'");
  const std::string marking = node.attr_or("marking", "ignore");
  if (marking == "check") cfg.check_marking = true;
  else if (marking != "ignore") node.fail("attribute 'marking' must be check or ignore, not '" + marking + "'");
  const std::string format = node.attr_or("format", "same");
  if (format == "ess") cfg.format = LabelFormat::Ess;
  else if (format == "nato") cfg.format = LabelFormat::Nato4774;
  else if (format != "same") node.fail("attribute 'format' must be ess, nato or same, not '" + format + "'");
  if (const PolicyNode* d = node.child("default-label")) {
    cfg.default_label = cfg.from->label_from_node(*d);
    cfg.default_label->format = cfg.format.value_or(LabelFormat::Ess);
    std::string why;
    if (!translate(*cfg.default_label, *cfg.from, *cfg.to, &why))
      d->fail("the default label has no equivalent in policy " + cfg.to->policy_name() + ": " + why);
  }
  return cfg;
}

}  // namespace portcullis::policy::labels
