// XML SPIF (Security Policy Information File, namespace
// http://www.xmlspif.org/spif): the security policy a label is judged under.
//
// What is read (everything else in a SPIF is ignored, and listed in the
// policy guide as not enforced: requiredCategory, excludedCategory,
// markingQualifier, privacyMarks, obsolete flags, date limits):
//   securityPolicyId @name @id
//   equivalentPolicies/equivalentPolicy @name @id
//   securityClassifications/securityClassification @name @lacv @hierarchy @color?
//     markingData @phrase?                  first phrase = the display marking
//     equivalentClassification @policyRef @lacv @applied (encrypt|decrypt|both)
//   securityCategoryTagSets/securityCategoryTagSet @name @id
//     securityCategoryTag @name? @tagType (restrictive|permissive|enumerated|tagType7)
//                         @enumType (permissive|restrictive; for enumerated)
//       tagCategory @name @lacv
//         markingData @phrase?
//         equivalentSecCategoryTag @policyRef @tagSetId @tagType @enumType? @lacv @applied
//         excludedClass (text: a classification name the category may not be used with)
//
// Loading is the control plane: any error (XML or meaning) throws
// config::ConfigError with the file, line and column of the offending node.
//
// Equivalences (protocols.md §2.8, X.841 Applied): in policy S,
// equivalentClassification(policyRef=T, lacv=x, applied=encrypt) on class C
// says "C, sent out to T, becomes T's x"; applied=decrypt on T's class D with
// (policyRef=S, lacv=y) says "S's y, received into T, becomes D". translate()
// from S to T uses S's encrypt/both entries first, then T's decrypt/both entries.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/labels/label.h"
#include "policy/policy_node.h"

namespace portcullis::policy::labels {

inline constexpr std::string_view kNsSpif = "http://www.xmlspif.org/spif";

enum class Applied { Encrypt, Decrypt, Both };

struct SpifEquivalentClassification {
  std::string policy_id;   // OID of the other policy (policyRef resolved)
  long lacv = 0;
  Applied applied = Applied::Both;
};

struct SpifEquivalentCategory {
  std::string policy_id;
  std::string tag_set_id;
  TagKind kind = TagKind::Unknown;
  TagSyntax syntax = TagSyntax::Any;
  long lacv = 0;
  Applied applied = Applied::Both;
};

struct SpifClassification {
  std::string name;
  long lacv = 0;
  long hierarchy = 0;
  std::string color;       // as in the SPIF ("" = none)
  std::string marking;     // display text (markingData phrase, else name)
  std::vector<SpifEquivalentClassification> equivalents;
};

struct SpifCategory {
  std::string name;
  long lacv = 0;
  std::string marking;
  std::vector<long> excluded_classes;   // LACVs
  std::vector<SpifEquivalentCategory> equivalents;
};

struct SpifTag {
  std::string name;
  TagKind kind = TagKind::Unknown;
  TagSyntax syntax = TagSyntax::Any;
  std::vector<SpifCategory> categories;
};

struct SpifTagSet {
  std::string name;
  std::string id;    // OID
  std::vector<SpifTag> tags;
};

class Spif {
 public:
  // Loads and checks a SPIF file. Throws config::ConfigError.
  static Spif load(const std::string& path);
  // Builds from an already-read tree (root element <SPIF>). Throws config::ConfigError.
  static Spif from_tree(const PolicyNode& root);

  const std::string& policy_name() const { return name_; }
  const std::string& policy_id() const { return id_; }
  const std::string& file() const { return file_; }
  const std::vector<SpifClassification>& classifications() const { return classes_; }
  const std::vector<SpifTagSet>& tag_sets() const { return tag_sets_; }

  const SpifClassification* classification(long lacv) const;
  const SpifClassification* classification_named(std::string_view name) const;
  const SpifTagSet* tag_set_by_id(std::string_view id) const;
  const SpifTagSet* tag_set_named(std::string_view name) const;

  // True if the label names this policy (OID, or for 4774 without a URI, the
  // policy name).
  bool owns(const Label& label) const;

  // Resolves `label` against this SPIF: classification and categories must
  // exist (by LACV or name, matching tag kind and syntax), the policy name
  // and OID must agree, no category may exclude the classification. Fills
  // in every name, OID, LACV and kind and sets canonical. Returns false with
  // *why (policy terms only, for the audit) if the label is not valid here.
  bool canonicalize(Label& label, std::string* why = nullptr) const;

  // Display marking of a canonical label: classification marking, then each
  // category's marking in SPIF order. And the classification colour, if any.
  std::string marking(const Label& canonical) const;
  std::string color(const Label& canonical) const;

  // A canonical label of this policy built from a policy-file element:
  //   <... classification="NAME"> <category tag-set="TAGSET NAME" value="CATEGORY NAME"/>* </...>
  // Throws config::ConfigError at the node if a name is unknown here.
  Label label_from_node(const PolicyNode& node) const;
  // A clearance of this policy from a policy-file element:
  //   <clearance id="ID" up-to="NAME"?> <classification name="NAME"/>* <category .../>* </clearance>
  // up-to grants every classification whose hierarchy is <= that one's.
  Clearance clearance_from_node(const PolicyNode& node) const;

 private:
  std::string file_;
  std::string name_, id_;
  std::vector<SpifClassification> classes_;
  std::vector<SpifTagSet> tag_sets_;
};

// Maps a canonical label of policy `from` to policy `to` (see file comment).
// The result is canonical in `to` and keeps the label's format and privacy
// mark. nullopt with *why when the classification or any category has no
// equivalent: the caller must deny (never map silently).
std::optional<Label> translate(const Label& label, const Spif& from, const Spif& to, std::string* why = nullptr);

}  // namespace portcullis::policy::labels
