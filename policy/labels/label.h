// The common security-label model (format-independent) and the clearance.
//
// A Label is what an ESS label (RFC 2634) or a STANAG 4774 confidentiality
// label says, decoded but not yet checked against a policy: the decoders fill
// what the format carries (ESS: policy OID, classification LACV, categories by
// tag-set OID and LACV; 4774: policy name/URI, classification name, categories
// by tag-set name and category name). Spif::canonicalize() then resolves the
// label against its SPIF and fills in the rest (names, LACVs, tag kinds), so
// the ACDF, the markings and the translations work on one form.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace portcullis::policy::labels {

// What a tag (category group) means to the ACDF (protocols.md §2.7).
enum class TagKind { Unknown, Restrictive, Permissive, Informative };
// How the categories of a tag are encoded in ESS (SDN.801c / ACP-145(A)
// security-category syntaxes): a bitmap, a list of enumerated attributes, or
// not said (STANAG 4774, informative tags).
enum class TagSyntax { Any, Bitmap, Enumerated };

std::string_view to_string(TagKind k);

struct LabelCategory {
  std::string tag_set_id;     // tag-set OID (ESS), or "" until canonicalized
  std::string tag_set_name;   // tag-set name (4774), or "" until canonicalized
  TagKind kind = TagKind::Unknown;
  TagSyntax syntax = TagSyntax::Any;
  std::optional<long> lacv;   // ESS carries the LACV
  std::string name;           // 4774 carries the category name

  // Identity once canonicalized: (tag set OID, kind, LACV). The SPIF loader
  // rejects a tag set that defines one LACV twice for one kind.
  std::tuple<std::string, TagKind, long> key() const {
    return {tag_set_id, kind, lacv.value_or(-1)};
  }
};

enum class LabelFormat { Ess, Nato4774 };

struct Label {
  LabelFormat format = LabelFormat::Ess;     // the syntax it came in (or is to be written in)
  std::string policy_id;                     // OID, dotted ("1.3.26.1.2"), may be "" for 4774
  std::string policy_name;                   // 4774 PolicyIdentifier text; SPIF name after canonicalize
  std::optional<long> classification;        // LACV
  std::string classification_name;          // 4774 text; SPIF name after canonicalize
  std::string privacy_mark;                  // empty = none
  std::vector<LabelCategory> categories;
  bool canonical = false;                    // set by Spif::canonicalize
};

// A clearance under one policy: the classifications (LACVs) and categories
// (canonical keys) its holder may see. An empty policy_id is the nil
// clearance, which the ACDF always denies.
struct Clearance {
  std::string id;                 // the officer's id, for verdicts and notes
  std::string policy_id;          // SPIF policy OID
  std::set<long> classifications;
  std::set<std::tuple<std::string, TagKind, long>> categories;
};

}  // namespace portcullis::policy::labels
