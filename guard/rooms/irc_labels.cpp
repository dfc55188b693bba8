#include "guard/rooms/irc_labels.h"

#include <optional>

#include "guard/config/xml_tree.h"
#include "policy/labels/acdf.h"
#include "policy/labels/security_label.h"
#include "policy/labels/spif.h"
#include "policy/labels/stanza_labels.h"

namespace portcullis::rooms {

namespace labels = policy::labels;

struct IrcLabels::Impl {
  labels::Spif spif;
  labels::Label irc_label;
  labels::Clearance clearance;
  std::optional<labels::Label> unlabelled;
  xmpp::Element irc_element{std::string(labels::kNsSecLabel), "securitylabel"};
  std::string clearance_text;
};

namespace {

// "UNCLASSIFIED, RESTRICTED": the classifications a clearance grants, in the SPIF's order.
std::string clearance_text(const labels::Spif& spif, const labels::Clearance& c) {
  std::string out;
  for (const auto& cls : spif.classifications()) {
    if (c.classifications.count(cls.lacv) == 0) continue;
    if (!out.empty()) out += ", ";
    out += cls.name;
  }
  return out;
}

}  // namespace

IrcLabels::IrcLabels(const config::IrcLinkSpec& spec) {
  if (spec.spif_file.empty()) return;
  auto impl = std::make_unique<Impl>();
  impl->spif = labels::Spif::load(spec.spif_file);
  impl->irc_label = impl->spif.label_from_node(*spec.label);
  impl->clearance = impl->spif.clearance_from_node(*spec.clearance);
  if (spec.unlabelled) impl->unlabelled = impl->spif.label_from_node(*spec.unlabelled);
  // What IRC says enters the room labelled, and the link's clearance must let
  // it back out: a link whose own label it may not carry is a configuration
  // mistake (IRC users would see replies to what they cannot have said).
  if (const labels::AcdfResult r = labels::acdf(impl->spif, impl->clearance, impl->irc_label); !r.grant) {
    spec.label->fail("<label>: expected a label that the link's <clearance> grants (what IRC says must be "
                     "sayable to IRC), got " + impl->spif.marking(impl->irc_label) + ": " + r.reason);
  }
  const std::optional<xmpp::Element> el = labels::label_element(impl->irc_label);
  if (!el) spec.label->fail("<label>: this label cannot be written as an ESS label (its policy has no OID)");
  impl->irc_element = labels::make_security_label(impl->spif.marking(impl->irc_label),
                                                 impl->spif.color(impl->irc_label), &*el, {});
  impl->clearance_text = clearance_text(impl->spif, impl->clearance);
  impl_ = std::move(impl);
}

IrcLabels::~IrcLabels() = default;

const xmpp::Element* IrcLabels::irc_label() const { return impl_ ? &impl_->irc_element : nullptr; }

std::string IrcLabels::irc_marking() const { return impl_ ? impl_->spif.marking(impl_->irc_label) : std::string(); }

std::string IrcLabels::summary() const {
  if (!impl_) return "no labels (labelled messages stay off IRC)";
  return "labels of policy " + impl_->spif.policy_name() + ": IRC messages enter as " + irc_marking() +
         "; cleared for " + impl_->clearance_text +
         (impl_->unlabelled ? "; unlabelled messages judged as " + impl_->spif.marking(*impl_->unlabelled)
                            : std::string("; unlabelled messages go unmarked"));
}

IrcLabelJudgement IrcLabels::judge(const xmpp::Element& message) const {
  IrcLabelJudgement j;
  labels::LabelScan scan = labels::scan_stanza_labels(message);
  if (scan.early && scan.early->kind == policy::VerdictKind::Reject) {
    j.why = "its security label is malformed or misplaced; it is not sent to IRC";
    j.audit = "label refused: " + scan.early->rule_id;
    return j;
  }
  if (!impl_) {
    if (scan.view) {
      j.why = "a message with a security label is not sent to IRC (this IRC link has no labels configured)";
      j.audit = "labelled (" + labels::summary(*scan.view) + "), the link has no labels";
      return j;
    }
    j.send = true;
    j.audit = "unlabelled";
    return j;
  }
  const labels::Spif& spif = impl_->spif;
  std::optional<labels::Label> effective;
  std::string source;
  if (!scan.view) {
    if (!impl_->unlabelled) {
      j.send = true;
      j.audit = "unlabelled";
      return j;
    }
    effective = impl_->unlabelled;
    source = "unlabelled, judged as ";
  } else {
    for (auto& c : scan.candidates) {
      if (!spif.owns(c.label)) continue;
      std::string why;
      if (!spif.canonicalize(c.label, &why)) {
        j.why = "its security label is not valid under this IRC link's policy; it is not sent to IRC";
        j.audit = "label not valid under " + spif.policy_name() + ": " + why;
        return j;
      }
      effective = std::move(c.label);
      source = c.equivalent ? "equivalent label " : "label ";
      break;
    }
    if (!effective) {
      j.why = "its security label is not of this IRC link's policy (" + spif.policy_name() + "); it is not sent to IRC";
      j.audit = "no label of policy " + spif.policy_name() + " (" + labels::summary(*scan.view) + ")";
      return j;
    }
  }
  const std::string marking = spif.marking(*effective);
  const labels::AcdfResult r = labels::acdf(spif, impl_->clearance, *effective);
  if (!r.grant) {
    const bool class_granted =
        effective->classification && impl_->clearance.classifications.count(*effective->classification) != 0;
    // The reason in the sender's terms: the level, or (the level being cleared)
    // a category of the label the link is not cleared for.
    j.why = class_granted ? "its security label " + marking +
                                " carries a category this IRC link is not cleared for (it is cleared for " +
                                impl_->clearance_text + " without it); it is not sent to IRC"
                          : "its security label " + marking + " is above what this IRC link is cleared for (" +
                                impl_->clearance_text + "); it is not sent to IRC";
    j.audit = source + marking + " denied by clearance " + impl_->clearance.id + ": " + r.reason;
    return j;
  }
  j.send = true;
  j.marking = marking;
  j.audit = source + marking + " granted by clearance " + impl_->clearance.id;
  return j;
}

}  // namespace portcullis::rooms
