// KeywordsFilter (policy element <keywords>): word lists matched on the <body>
// and <subject> of messages; a match rejects the message or flags it.
//
// LOW-ASSURANCE HEURISTIC. A keyword ("dirty word") list catches careless
// mistakes, not a determined sender. It is defeated by misspelling ("b0mb"),
// spacing or punctuation inside a word ("b o m b", "b.o.m.b"), homoglyphs
// that Unicode normalisation does not unify (Cyrillic "о" for Latin "o"),
// other languages and scripts, text in images or files, encodings (base64,
// rot13), splitting a phrase over several messages, and any payload other
// than body/subject (XHTML-IM, forms, file names). Scripts written without
// spaces (Chinese, Japanese, Thai) defeat whole-word matching. Never rely on it
// as the control that keeps classified text from crossing: that is what
// labels and the other filters are for.
//
// Matching: the text and every list entry are normalised the same way:
// Unicode NFKC, full case folding (libunistring u8_casefold, language
// independent), removal of default-ignorable code points (soft hyphen,
// zero-width space/joiners, ...), every run of white space turned into one
// space, and trimmed. An entry then matches where it occurs as whole words: the
// code point before and after the match is not a letter, digit, combining mark
// or connector (unless the entry itself begins/ends with a non-word character).
// Phrases are entries with spaces ("operation overlord").
//
// Policy (lists in order; entries inline and/or from a file, one per line,
// UTF-8, '#' starts a comment line; a relative path is relative to the policy
// file):
//   <keywords name="dirty-words">
//     <list id="codewords" action="reject" file="codewords.txt"/>
//     <list id="watch" action="flag">
//       <word>neptune</word>
//       <word>operation overlord</word>
//     </list>
//   </keywords>
// A list without entries fails the load.
//
// Entries are reported by position, never by their text, so the decision
// record does not repeat the sensitive word: "<list id> entry <n>" (n counts
// the inline <word>s from 1, then the file's entries) and, for a file entry,
// " (<file name> line <n>)".
// Verdicts (messages only; anything else -> NoOpinion()):
//  - an enforcing reject list matches -> Reject(list id, policy-violation),
//    note ("keyword.match", entry); the first such list (in order) decides;
//  - flag lists that match -> NoOpinion(first flagging list id) with one
//    ("keyword.flag", entry) note per matching entry;
//  - shadow="true" on a reject list -> ("shadow", "<id> would reject:
//    policy-violation") and ("keyword.match", entry), no enforcement;
//  - a body/subject that is not valid UTF-8 (cannot happen after the XML
//    parser; checked anyway) cannot be checked: an enforcing reject list then
//    rejects (fail closed) with ("keyword.unreadable", "body"|"subject").
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/content/common.h"

namespace portcullis::policy::content {

inline constexpr std::string_view kTypeKeywords = "keywords";

// The normalised form described above, as code points; nullopt when `utf8` is
// not valid UTF-8. Never throws (except std::bad_alloc).
std::optional<std::u32string> normalize_for_matching(std::string_view utf8);

// True when `entry` (normalised) occurs in `text` (normalised) as whole words.
bool contains_words(const std::u32string& text, const std::u32string& entry);

enum class KeywordAction { Reject, Flag };

struct KeywordEntry {
  std::u32string text;   // normalised
  std::string label;     // how the decision names it (never the word)
};

struct KeywordList {
  std::string id;
  KeywordAction action = KeywordAction::Reject;
  bool shadow = false;
  std::vector<KeywordEntry> entries;
};

struct KeywordsConfig {
  std::vector<KeywordList> lists;
};

class KeywordsFilter : public Filter {
 public:
  KeywordsFilter(std::string name, KeywordsConfig config);
  // Factory: reads <keywords>, loads and normalises the word files (control
  // plane: throws config::ConfigError on an unreadable file or a bad entry).
  static std::shared_ptr<const Filter> from_spec(const FilterSpec& spec);

  Verdict evaluate(xmpp::Element& stanza, const StanzaContext& ctx) const override;
  const std::string& name() const override { return name_; }
  std::string_view type() const override { return kTypeKeywords; }

 private:
  std::string name_;
  KeywordsConfig config_;
};

}  // namespace portcullis::policy::content
