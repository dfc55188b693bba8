// The FMUC (XEP-0289 v0.2) wire format, read and written as views on the
// lossless element tree (protocols.md §1.3, §1.14).
//
//   <fmuc xmlns='http://isode.com/protocol/fmuc' from='AUTHOR'/>   on every relayed stanza
//   <fmuc xmlns='...'><reject>text</reject></fmuc>                  join refused
//   <fmuc xmlns='...'><left/></fmuc>                                joined node confirms a leave
//
// Our nodes add the originating room's XEP-0359 <stanza-id by='ROOM'/> to each
// relayed message: (by, id) is the message's identity across the federation,
// the key by which every node drops a stanza it already has (loops, backfill).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "guard/xmpp/element.h"

namespace portcullis::rooms {

inline constexpr std::string_view kNsFmuc = "http://isode.com/protocol/fmuc";
inline constexpr std::string_view kNsMuc = "http://jabber.org/protocol/muc";
inline constexpr std::string_view kNsMucUser = "http://jabber.org/protocol/muc#user";
inline constexpr std::string_view kNsDelay = "urn:xmpp:delay";
inline constexpr std::string_view kNsSid = "urn:xmpp:sid:0";
inline constexpr std::string_view kNsOccupantId = "urn:xmpp:occupant-id:0";
inline constexpr std::string_view kNsPing = "urn:xmpp:ping";
inline constexpr std::string_view kNsDiscoInfo = "http://jabber.org/protocol/disco#info";
inline constexpr std::string_view kNsDiscoItems = "http://jabber.org/protocol/disco#items";

enum class FmucKind { None, Relay, Reject, Left };

struct FmucView {
  FmucKind kind = FmucKind::None;
  std::string from;          // Relay: the author's JID as the sending node knows it
  std::string reject_text;   // Reject: optional human text
  // Relay, our nodes' extension on a join and on the subject ending a join
  // answer: <resume by='ROOM' id='ID'/>, the last message the sender received
  // on this link (backfill starts after it).
  std::optional<std::pair<std::string, std::string>> resume;
};

// What the stanza's <fmuc/> child says (None if it has none).
FmucView read_fmuc(const xmpp::Element& stanza);
bool has_fmuc(const xmpp::Element& stanza);
// Replaces any <fmuc/> child by <fmuc from='author'/>.
void set_fmuc_from(xmpp::Element& stanza, const std::string& author);
// Removes every <fmuc/> child (they never reach local clients).
void strip_fmuc(xmpp::Element& stanza);

// The federation identity of a message: its first <stanza-id/> (XEP-0359).
struct OriginKey {
  std::string by, id;
  bool empty() const { return id.empty(); }
  bool operator==(const OriginKey&) const = default;
  bool operator<(const OriginKey& o) const { return by != o.by ? by < o.by : id < o.id; }
};
std::optional<OriginKey> read_origin(const xmpp::Element& stanza);

// XEP-0203 delay stamp: writes "YYYY-MM-DDThh:mm:ss.mmmZ"; reads XEP-0082
// date-times (with or without fraction, Z or +hh:mm) and the legacy XEP-0091
// form "YYYYMMDDThh:mm:ss" (the XEP-0289 examples use it). Milliseconds since
// the Unix epoch; nullopt when the text is not a date-time.
std::string format_stamp(std::int64_t unix_ms);
std::optional<std::int64_t> parse_stamp(std::string_view s);
// The stamp of a <delay/> (or legacy <x xmlns='urn:xmpp:delay'/>) child.
std::optional<std::int64_t> read_delay(const xmpp::Element& stanza);

}  // namespace portcullis::rooms
