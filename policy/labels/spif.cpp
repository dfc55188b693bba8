// XML SPIF loading, label canonicalization, markings and translation (see spif.h).
#include "policy/labels/spif.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "policy/labels/xml_tree.h"

namespace portcullis::policy::labels {

std::string_view to_string(TagKind k) {
  switch (k) {
    case TagKind::Restrictive: return "restrictive";
    case TagKind::Permissive: return "permissive";
    case TagKind::Informative: return "informative";
    case TagKind::Unknown: break;
  }
  return "unknown";
}

namespace {

bool fail(std::string* why, std::string msg) {
  if (why) *why = std::move(msg);
  return false;
}

std::vector<const PolicyNode*> spif_children(const PolicyNode& n, std::string_view name) {
  std::vector<const PolicyNode*> out;
  for (const auto& c : n.children)
    if (c.ns == kNsSpif && c.name == name) out.push_back(&c);
  return out;
}

const PolicyNode* spif_child(const PolicyNode& n, std::string_view name) {
  for (const auto& c : n.children)
    if (c.ns == kNsSpif && c.name == name) return &c;
  return nullptr;
}

long number(const PolicyNode& n, std::string_view key, long max = 1L << 30) {
  const std::string& s = n.required(key);
  long v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0 || v > max)
    n.fail("attribute '" + std::string(key) + "' must be a whole number from 0 to " + std::to_string(max) +
           ", not '" + s + "'");
  return v;
}

bool valid_oid(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  int dots = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i + 1] == '.') return false;
      ++dots;
    } else if (s[i] < '0' || s[i] > '9') {
      return false;
    }
  }
  return dots >= 1;
}

std::string oid_attr(const PolicyNode& n, std::string_view key) {
  const std::string& s = n.required(key);
  if (!valid_oid(s)) n.fail("attribute '" + std::string(key) + "' must be an OID (dotted numbers), not '" + s + "'");
  return s;
}

Applied applied_attr(const PolicyNode& n) {
  const std::string& s = n.required("applied");
  if (s == "encrypt") return Applied::Encrypt;
  if (s == "decrypt") return Applied::Decrypt;
  if (s == "both") return Applied::Both;
  n.fail("attribute 'applied' must be encrypt, decrypt or both, not '" + s + "'");
}

void tag_type(const PolicyNode& n, TagKind& kind, TagSyntax& syntax) {
  const std::string& t = n.required("tagType");
  if (t == "restrictive") {
    kind = TagKind::Restrictive;
    syntax = TagSyntax::Bitmap;
  } else if (t == "permissive") {
    kind = TagKind::Permissive;
    syntax = TagSyntax::Bitmap;
  } else if (t == "tagType7" || t == "informative") {
    kind = TagKind::Informative;
    syntax = TagSyntax::Any;
  } else if (t == "enumerated") {
    syntax = TagSyntax::Enumerated;
    const std::string& e = n.required("enumType");
    if (e == "permissive") kind = TagKind::Permissive;
    else if (e == "restrictive") kind = TagKind::Restrictive;
    else n.fail("attribute 'enumType' must be permissive or restrictive, not '" + e + "'");
  } else {
    n.fail("attribute 'tagType' must be restrictive, permissive, enumerated or tagType7, not '" + t + "'");
  }
}

std::string marking_of(const PolicyNode& n, const std::string& fallback) {
  for (const PolicyNode* m : spif_children(n, "markingData"))
    if (const std::string* phrase = m->attr("phrase"); phrase && !phrase->empty()) return *phrase;
  return fallback;
}

// A label category type matches a SPIF tag: same kind (ESS enumerated leaves
// the kind to the SPIF) and same encoding syntax when both say one.
bool tag_matches(const SpifTag& tag, const LabelCategory& c) {
  if (c.kind != TagKind::Unknown && c.kind != tag.kind) return false;
  if (c.syntax != TagSyntax::Any && tag.syntax != TagSyntax::Any && c.syntax != tag.syntax) return false;
  return true;
}

bool applies(Applied a, bool outgoing) {
  return a == Applied::Both || (outgoing ? a == Applied::Encrypt : a == Applied::Decrypt);
}

}  // namespace

Spif Spif::load(const std::string& path) { return from_tree(read_xml_tree(path)); }

Spif Spif::from_tree(const PolicyNode& root) {
  if (root.ns != kNsSpif || root.name != "SPIF")
    root.fail("expected the root element <SPIF xmlns='" + std::string(kNsSpif) + "'>");
  Spif s;
  s.file_ = root.file;
  const PolicyNode* pid = spif_child(root, "securityPolicyId");
  if (!pid) root.fail("the SPIF has no <securityPolicyId>");
  s.name_ = pid->required("name");
  s.id_ = oid_attr(*pid, "id");

  // Equivalent policy names -> OIDs, for policyRef.
  std::map<std::string, std::string, std::less<>> equiv_policies;
  if (const PolicyNode* eps = spif_child(root, "equivalentPolicies"))
    for (const PolicyNode* ep : spif_children(*eps, "equivalentPolicy")) {
      const std::string& name = ep->required("name");
      if (!equiv_policies.emplace(name, oid_attr(*ep, "id")).second)
        ep->fail("equivalent policy '" + name + "' is declared twice");
    }
  auto policy_ref = [&](const PolicyNode& n) {
    const std::string& ref = n.required("policyRef");
    const auto it = equiv_policies.find(ref);
    if (it == equiv_policies.end())
      n.fail("policyRef '" + ref + "' is not declared in <equivalentPolicies>");
    return it->second;
  };

  const PolicyNode* classes = spif_child(root, "securityClassifications");
  if (!classes || spif_children(*classes, "securityClassification").empty())
    root.fail("the SPIF defines no <securityClassification>");
  for (const PolicyNode* c : spif_children(*classes, "securityClassification")) {
    SpifClassification sc;
    sc.name = c->required("name");
    sc.lacv = number(*c, "lacv", 256);
    sc.hierarchy = number(*c, "hierarchy");
    sc.color = c->attr_or("color", "");
    sc.marking = marking_of(*c, sc.name);
    if (s.classification_named(sc.name)) c->fail("classification '" + sc.name + "' is defined twice");
    if (s.classification(sc.lacv)) c->fail("classification LACV " + std::to_string(sc.lacv) + " is used twice");
    for (const PolicyNode* e : spif_children(*c, "equivalentClassification"))
      sc.equivalents.push_back({policy_ref(*e), number(*e, "lacv", 256), applied_attr(*e)});
    s.classes_.push_back(std::move(sc));
  }

  // Category exclusions name classifications; resolved after all are known.
  if (const PolicyNode* sets = spif_child(root, "securityCategoryTagSets")) {
    for (const PolicyNode* ts : spif_children(*sets, "securityCategoryTagSet")) {
      SpifTagSet set;
      set.name = ts->required("name");
      set.id = oid_attr(*ts, "id");
      if (s.tag_set_named(set.name)) ts->fail("tag set '" + set.name + "' is defined twice");
      if (s.tag_set_by_id(set.id)) ts->fail("tag set id " + set.id + " is used twice");
      std::set<std::pair<TagKind, long>> lacvs;
      std::set<std::string> names;
      for (const PolicyNode* t : spif_children(*ts, "securityCategoryTag")) {
        SpifTag tag;
        tag.name = t->attr_or("name", "");
        tag_type(*t, tag.kind, tag.syntax);
        for (const PolicyNode* c : spif_children(*t, "tagCategory")) {
          SpifCategory cat;
          cat.name = c->required("name");
          cat.lacv = number(*c, "lacv", 65536);
          cat.marking = marking_of(*c, cat.name);
          if (!lacvs.emplace(tag.kind, cat.lacv).second)
            c->fail("tag set '" + set.name + "' defines " + std::string(to_string(tag.kind)) + " LACV " +
                    std::to_string(cat.lacv) + " twice");
          if (!names.insert(cat.name).second)
            c->fail("tag set '" + set.name + "' defines the category '" + cat.name + "' twice");
          for (const PolicyNode* x : spif_children(*c, "excludedClass")) {
            const SpifClassification* ex = s.classification_named(x->text);
            if (!ex) x->fail("excludedClass '" + x->text + "' is not a classification of this SPIF");
            cat.excluded_classes.push_back(ex->lacv);
          }
          for (const PolicyNode* e : spif_children(*c, "equivalentSecCategoryTag")) {
            SpifEquivalentCategory ec;
            ec.policy_id = policy_ref(*e);
            ec.tag_set_id = oid_attr(*e, "tagSetId");
            tag_type(*e, ec.kind, ec.syntax);
            ec.lacv = number(*e, "lacv", 65536);
            ec.applied = applied_attr(*e);
            cat.equivalents.push_back(std::move(ec));
          }
          tag.categories.push_back(std::move(cat));
        }
        set.tags.push_back(std::move(tag));
      }
      s.tag_sets_.push_back(std::move(set));
    }
  }
  return s;
}

const SpifClassification* Spif::classification(long lacv) const {
  for (const auto& c : classes_)
    if (c.lacv == lacv) return &c;
  return nullptr;
}

const SpifClassification* Spif::classification_named(std::string_view name) const {
  for (const auto& c : classes_)
    if (c.name == name) return &c;
  return nullptr;
}

const SpifTagSet* Spif::tag_set_by_id(std::string_view id) const {
  for (const auto& t : tag_sets_)
    if (t.id == id) return &t;
  return nullptr;
}

const SpifTagSet* Spif::tag_set_named(std::string_view name) const {
  for (const auto& t : tag_sets_)
    if (t.name == name) return &t;
  return nullptr;
}

bool Spif::owns(const Label& label) const {
  if (!label.policy_id.empty()) return label.policy_id == id_;
  return !label.policy_name.empty() && label.policy_name == name_;
}

bool Spif::canonicalize(Label& label, std::string* why) const {
  if (!owns(label)) return fail(why, "label is not under policy " + name_);
  if (label.format == LabelFormat::Nato4774 && !label.policy_id.empty() && label.policy_name != name_)
    return fail(why, "policy name and OID disagree");
  label.policy_id = id_;
  label.policy_name = name_;

  const SpifClassification* cls = nullptr;
  if (label.classification) cls = classification(*label.classification);
  else if (!label.classification_name.empty()) cls = classification_named(label.classification_name);
  else return fail(why, "label has no classification");
  if (!cls) return fail(why, "classification not defined by policy " + name_);
  if (label.classification && !label.classification_name.empty() && label.classification_name != cls->name)
    return fail(why, "classification name and LACV disagree");
  label.classification = cls->lacv;
  label.classification_name = cls->name;

  std::vector<LabelCategory> out;
  for (const LabelCategory& c : label.categories) {
    const SpifTagSet* set = !c.tag_set_id.empty() ? tag_set_by_id(c.tag_set_id) : tag_set_named(c.tag_set_name);
    if (!set) return fail(why, "tag set not defined by policy " + name_);
    if (!c.tag_set_name.empty() && c.tag_set_name != set->name) return fail(why, "tag set name and OID disagree");
    const SpifTag* found_tag = nullptr;
    const SpifCategory* found = nullptr;
    for (const SpifTag& tag : set->tags) {
      if (!tag_matches(tag, c)) continue;
      for (const SpifCategory& sc : tag.categories)
        if (c.lacv ? sc.lacv == *c.lacv : sc.name == c.name) {
          found_tag = &tag;
          found = &sc;
          break;
        }
      if (found) break;
    }
    if (!found) return fail(why, "category not defined in tag set " + set->name);
    if (std::find(found->excluded_classes.begin(), found->excluded_classes.end(), cls->lacv) !=
        found->excluded_classes.end())
      return fail(why, "category " + found->name + " is excluded with classification " + cls->name);
    LabelCategory r;
    r.tag_set_id = set->id;
    r.tag_set_name = set->name;
    r.kind = found_tag->kind;
    r.syntax = found_tag->syntax;
    r.lacv = found->lacv;
    r.name = found->name;
    const bool dup = std::any_of(out.begin(), out.end(), [&](const LabelCategory& o) { return o.key() == r.key(); });
    if (!dup) out.push_back(std::move(r));
  }
  label.categories = std::move(out);
  label.canonical = true;
  return true;
}

std::string Spif::marking(const Label& canonical) const {
  std::string text;
  if (canonical.classification)
    if (const SpifClassification* c = classification(*canonical.classification)) text = c->marking;
  // Categories in SPIF order so two equal labels give the same marking.
  for (const SpifTagSet& set : tag_sets_)
    for (const SpifTag& tag : set.tags)
      for (const SpifCategory& sc : tag.categories)
        for (const LabelCategory& c : canonical.categories)
          if (c.tag_set_id == set.id && c.kind == tag.kind && c.lacv == sc.lacv) {
            text += text.empty() ? "" : " ";
            text += sc.marking;
          }
  return text;
}

std::string Spif::color(const Label& canonical) const {
  if (canonical.classification)
    if (const SpifClassification* c = classification(*canonical.classification)) return c->color;
  return {};
}

namespace {

LabelCategory category_from_node(const Spif& spif, const PolicyNode& n) {
  const std::string& set_name = n.required("tag-set");
  const std::string& value = n.required("value");
  const SpifTagSet* set = spif.tag_set_named(set_name);
  if (!set) n.fail("tag set '" + set_name + "' is not defined by the SPIF of policy " + spif.policy_name());
  for (const SpifTag& tag : set->tags)
    for (const SpifCategory& sc : tag.categories)
      if (sc.name == value) {
        LabelCategory c;
        c.tag_set_id = set->id;
        c.tag_set_name = set->name;
        c.kind = tag.kind;
        c.syntax = tag.syntax;
        c.lacv = sc.lacv;
        c.name = sc.name;
        return c;
      }
  n.fail("category '" + value + "' is not defined in tag set '" + set_name + "'");
}

}  // namespace

Label Spif::label_from_node(const PolicyNode& node) const {
  const std::string& cname = node.required("classification");
  const SpifClassification* c = classification_named(cname);
  if (!c) node.fail("classification '" + cname + "' is not defined by the SPIF of policy " + name_);
  Label l;
  l.policy_id = id_;
  l.policy_name = name_;
  l.classification = c->lacv;
  l.classification_name = c->name;
  for (const PolicyNode* cat : node.children_named("category")) l.categories.push_back(category_from_node(*this, *cat));
  std::string why;
  Label check = l;
  if (!canonicalize(check, &why)) node.fail("this label is not valid under policy " + name_ + ": " + why);
  check.format = LabelFormat::Ess;
  return check;
}

Clearance Spif::clearance_from_node(const PolicyNode& node) const {
  Clearance cl;
  cl.id = node.required("id");
  cl.policy_id = id_;
  if (const std::string* up_to = node.attr("up-to")) {
    const SpifClassification* top = classification_named(*up_to);
    if (!top) node.fail("classification '" + *up_to + "' is not defined by the SPIF of policy " + name_);
    for (const auto& c : classes_)
      if (c.hierarchy <= top->hierarchy) cl.classifications.insert(c.lacv);
  }
  for (const PolicyNode* n : node.children_named("classification")) {
    const std::string& name = n->required("name");
    const SpifClassification* c = classification_named(name);
    if (!c) n->fail("classification '" + name + "' is not defined by the SPIF of policy " + name_);
    cl.classifications.insert(c->lacv);
  }
  if (cl.classifications.empty())
    node.fail("clearance '" + cl.id + "' grants no classification (give up-to or <classification>)");
  for (const PolicyNode* n : node.children_named("category")) cl.categories.insert(category_from_node(*this, *n).key());
  return cl;
}

std::optional<Label> translate(const Label& label, const Spif& from, const Spif& to, std::string* why) {
  if (!label.canonical || !from.owns(label)) {
    fail(why, "label is not a canonical label of policy " + from.policy_name());
    return std::nullopt;
  }
  if (from.policy_id() == to.policy_id()) return label;
  Label out;
  out.format = label.format;
  out.privacy_mark = label.privacy_mark;
  out.policy_id = to.policy_id();
  out.policy_name = to.policy_name();

  // Classification: the source's encrypt entries, else the target's decrypt
  // entries; several candidates -> the highest in the target's hierarchy
  // (never map down because of an ambiguous table).
  const SpifClassification* src = from.classification(*label.classification);
  const SpifClassification* best = nullptr;
  auto consider = [&](const SpifClassification* c) {
    if (c && (!best || c->hierarchy > best->hierarchy)) best = c;
  };
  for (const auto& e : src->equivalents)
    if (e.policy_id == to.policy_id() && applies(e.applied, true)) consider(to.classification(e.lacv));
  if (!best)
    for (const auto& c : to.classifications())
      for (const auto& e : c.equivalents)
        if (e.policy_id == from.policy_id() && e.lacv == src->lacv && applies(e.applied, false)) consider(&c);
  if (!best) {
    fail(why, "no equivalent classification in policy " + to.policy_name());
    return std::nullopt;
  }
  out.classification = best->lacv;
  out.classification_name = best->name;

  for (const LabelCategory& c : label.categories) {
    std::optional<LabelCategory> mapped;
    // Source category's own encrypt/both equivalents first.
    if (const SpifTagSet* set = from.tag_set_by_id(c.tag_set_id))
      for (const SpifTag& tag : set->tags)
        if (tag.kind == c.kind)
          for (const SpifCategory& sc : tag.categories)
            if (sc.lacv == c.lacv)
              for (const auto& e : sc.equivalents)
                if (!mapped && e.policy_id == to.policy_id() && applies(e.applied, true)) {
                  LabelCategory probe;
                  probe.tag_set_id = e.tag_set_id;
                  probe.kind = e.kind;
                  probe.syntax = e.syntax;
                  probe.lacv = e.lacv;
                  mapped = probe;
                }
    // Else a target category that declares it decrypts from this one.
    if (!mapped)
      for (const SpifTagSet& set : to.tag_sets())
        for (const SpifTag& tag : set.tags)
          for (const SpifCategory& sc : tag.categories)
            for (const auto& e : sc.equivalents)
              if (!mapped && e.policy_id == from.policy_id() && e.tag_set_id == c.tag_set_id && e.kind == c.kind &&
                  e.lacv == c.lacv && applies(e.applied, false)) {
                LabelCategory probe;
                probe.tag_set_id = set.id;
                probe.kind = tag.kind;
                probe.syntax = tag.syntax;
                probe.lacv = sc.lacv;
                mapped = probe;
              }
    if (!mapped) {
      fail(why, "no equivalent in policy " + to.policy_name() + " for a category of tag set " + c.tag_set_name);
      return std::nullopt;
    }
    out.categories.push_back(*mapped);
  }
  // The target SPIF must accept the result (names, exclusions).
  std::string reason;
  if (!to.canonicalize(out, &reason)) {
    fail(why, "mapped label is not valid under policy " + to.policy_name() + ": " + reason);
    return std::nullopt;
  }
  return out;
}

}  // namespace portcullis::policy::labels
