// What the filter checks of each Stanza frame before any policy sees it: that
// the frame is consistent with what the edge that sent it may claim.
//
// An edge parses hostile XML and may be compromised; the filter trusts it only
// as far as it can check it. What it checks against is the appliance config the
// filter loads itself (never anything an edge says): each side's peering table
// (the domains of that side's servers) and the far-side domains that side
// fronts. A frame from edge(S) towards the far side F must have
//   - the direction of S's channel;
//   - a peer authentication (SASL EXTERNAL or dialback) consistent with S's
//     peering row for the peer domain (a row that demands SASL EXTERNAL cannot
//     have been met by dialback; a row that requires TLS, by a plain stream),
//     and a stanza kind that row permits; or auth Internal, which only an
//     error reply the edge generated may carry (a bounce of a released stanza);
//   - a valid `from` whose domain is the frame's peer domain (case-insensitive:
//     both are lower-cased as jid.cpp does), a domain S's peering table lists,
//     that F's peering table does not list and that S does not front (an
//     edge(low) cannot speak for a high-side domain);
//   - a valid `to` whose domain S fronts (one of F's domains);
//   - for an error stanza, a well-formed <error/> with a defined condition.
// A frame with auth Hosted comes from a room S's edge hosts: its peer domain
// and `from` domain are a room service of S, `from` names one of its rooms,
// `to` names a room of F's hosted services that the config pairs with it
// (<federate>/<accept>), and it is FMUC traffic (an <fmuc/> child), an IQ ping
// or its result, or an error reply.
// Anything else is refused with rule kRule and one check name.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "guard/config/config.h"
#include "guard/ipc/frame.h"
#include "guard/xmpp/element.h"

namespace portcullis::filterproc {

// The rule name refusals carry in the log and in the audit record.
inline constexpr const char* kFrameConsistencyRule = "frame-consistency";

// One side as the filter knows it from its own config.
struct SideDomains {
  std::string name;                     // "low" or "high"
  std::vector<config::Peer> peers;      // that side's peering table (first match wins)
  std::vector<std::string> fronts;      // far-side domains that side presents
  std::vector<config::RoomServiceSpec> hosted;   // MUC services that side's edge hosts
};

// Both sides. A default-constructed Boundary lists no peers, so every frame is
// refused (deny by default).
struct Boundary {
  SideDomains low, high;
  static Boundary from_config(const config::Config& cfg);
};

struct FrameRefusal {
  std::string check;     // short name: "direction", "auth", "from", "from-domain", "peer-domain", ...
  std::string reason;    // for the log and the audit record (may quote what the edge claimed)
};

// The result of checking one frame.
struct FrameCheck {
  std::optional<FrameRefusal> refusal;   // empty: consistent
  // True when an error reply to the stanza can be addressed safely: its `from`
  // is valid and is the peer domain, a domain of the origin side's peering
  // table (so the reply goes to a server of that side, not to whoever the
  // stanza names), and its `to` is a domain the origin side fronts (so the
  // origin edge can send the reply from it).
  bool sender_verified = false;
};

// Checks a Stanza frame that arrived on edge(low)'s channel (`from_low`) or
// edge(high)'s, with its parsed body. Pure: no side effects.
FrameCheck check_frame(const Boundary& boundary, bool from_low, const ipc::FrameHeader& header,
                       const xmpp::Element& stanza);

}  // namespace portcullis::filterproc
