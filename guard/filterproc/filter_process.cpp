#include "guard/filterproc/filter_process.h"

#include <sstream>

#include "guard/filterproc/error_text.h"
#include "guard/xmpp/jid.h"
#include "guard/xmpp/stream_parser.h"

namespace portcullis::filterproc {

using xmpp::StanzaErrorCondition;
using xmpp::StanzaErrorType;

std::string PolicyIdentity::short_id() const { return version + "/" + sha256.substr(0, 12); }

// One stanza between its decision and its action. Shared by the async steps
// (guards, audit) so nothing depends on the order callbacks run in.
struct FilterProcess::InFlight {
  bool from_low = true;
  ipc::FrameHeader header;
  std::string original;                 // exact bytes received
  std::optional<xmpp::Element> stanza;  // parsed (absent: refused frame)
  policy::Decision decision;
  std::vector<policy::GuardResult> guards;
  bool release = false;                 // what we intend to do once durable
  xmpp::StanzaError error;              // for a rejection
  std::string refused;                  // why a frame was refused (no decision ran)
  std::string refused_check;            // which frame-consistency check refused it
  bool sender_verified = false;         // an error reply can be addressed safely (frame_check.h)
  bool modified = false;                // released_bytes differ from what arrived
  bool error_text_removed = false;      // an error stanza rewritten by remove_error_text
  std::string released_bytes;           // what would cross
  PolicyIdentity policy;
};

namespace {

audit::Direction audit_direction(ipc::Direction d) {
  switch (d) {
    case ipc::Direction::LowToHigh: return audit::Direction::LowToHigh;
    case ipc::Direction::HighToLow: return audit::Direction::HighToLow;
    case ipc::Direction::Local: return audit::Direction::Local;
  }
  return audit::Direction::None;
}

audit::PeerInfo peer_info(const ipc::FrameHeader& h) {
  audit::PeerInfo p;
  p.domain = h.peer_domain;
  p.auth = std::string(ipc::to_string(h.auth));
  p.tls = (h.flags & ipc::kFlagTls) != 0;
  p.cert_identity = h.cert_identity;
  return p;
}

// Connection event text from an edge -> a record kind, by what the edge says.
std::string event_kind(const std::string& text) {
  // A room's IRC traffic ("room JID irc-in ..."/"irc-out ..."/"irc-refused ..."/
  // "irc-puppet ..."): judged by its
  // prefix only, never by the message text it carries.
  if (text.rfind("room ", 0) == 0) {
    const std::size_t sp = text.find(' ', 5);
    if (sp != std::string::npos && text.compare(sp + 1, 7, "irc-in ") == 0) return "irc-in";
    if (sp != std::string::npos && text.compare(sp + 1, 8, "irc-out ") == 0) return "irc-out";
    if (sp != std::string::npos && text.compare(sp + 1, 12, "irc-refused ") == 0) return "irc-refused";
    if (sp != std::string::npos && text.compare(sp + 1, 11, "irc-puppet ") == 0) return "irc-puppet";
  }
  if (text.rfind("undelivered:", 0) == 0) return "undelivered";
  if (text.rfind("in-doubt:", 0) == 0) return "in-doubt";
  if (text.rfind("overload:", 0) == 0) return "overload";
  if (text.rfind("refusals:", 0) == 0) return "edge-refusals";
  // A stream's event is "<who>: <what>". <who> (the edge's describe(): the
  // stream's domains, which a peer chooses, and its address) holds no ": ", and
  // <what> starts with the edge's own words; only that start is read, never
  // words a peer could put anywhere in the text (a domain named
  // "authenticated.example" must not make a stream error an auth success).
  const std::size_t sep = text.find(": ");
  const std::string_view what = sep == std::string::npos ? std::string_view(text) : std::string_view(text).substr(sep + 2);
  auto starts = [&what](std::string_view p) { return what.substr(0, p.size()) == p; };
  if (starts("peer closed with stream error ")) return "peer-stream-error";
  if (starts("SASL failure") || starts("dialback refused") || starts("dialback key invalid") ||
      starts("dialback verification failed"))
    return "auth-failure";
  if (starts("authenticated")) return "auth-success";
  if (starts("TLS handshake failed")) return "tls-failure";
  if (starts("stream error")) return "stream-error";
  if (starts("failed")) return "link-failure";
  return "event";
}

}  // namespace

FilterProcess::FilterProcess(net::EventLoop& loop, audit::AuditArchive& archive, std::size_t max_stanza_bytes,
                             Logger& log, Boundary boundary)
    : loop_(loop), archive_(archive), boundary_(std::move(boundary)), max_stanza_bytes_(max_stanza_bytes), log_(log) {}

FilterProcess::~FilterProcess() {
  flush_delivered();
  *alive_ = false;
  if (delivered_timer_) loop_.cancel_timer(delivered_timer_);
  if (sweep_timer_) loop_.cancel_timer(sweep_timer_);
  if (summary_timer_) loop_.cancel_timer(summary_timer_);
}

void FilterProcess::replace_pipelines(policy::Pipeline low_to_high, policy::Pipeline high_to_low, PolicyIdentity id,
                                      std::shared_ptr<const void> owner) {
  // Pipelines first, owner last: the old filters go before the tree they point into.
  low_to_high_ = std::move(low_to_high);
  high_to_low_ = std::move(high_to_low);
  policy_ = std::move(id);
  policy_owner_ = std::move(owner);
}

void FilterProcess::set_guards(policy::GuardChain low_to_high, policy::GuardChain high_to_low) {
  guards_low_to_high_ = std::move(low_to_high);
  guards_high_to_low_ = std::move(high_to_low);
}

void FilterProcess::attach_low(int fd) { attach(true, fd); }
void FilterProcess::attach_high(int fd) { attach(false, fd); }

void FilterProcess::attach(bool low, int fd) {
  if (summary_timer_ == 0) log_summary();
  if (sweep_timer_ == 0) sweep_awaiting();
  if (channel_up(low)) far_gone(low, "its channel was replaced");
  auto ch = std::make_unique<ipc::FrameChannel>(loop_, fd);
  ipc::FrameChannel::Callbacks cb;
  cb.on_frame = [this, low](ipc::Frame&& f) { on_frame(low, std::move(f)); };
  // Flow control: while this edge's channel is full, the other edge's channel
  // is not read (its edge then holds its own streams back).
  cb.on_drained = [this, low] {
    auto& other = low ? high_ : low_;
    if (other) other->set_reading(true);
  };
  cb.on_closed = [this, low](const std::string& reason) {
    LogLine(log_, LogLevel::Warning) << "channel to edge(" << (low ? "low" : "high") << ") closed: " << reason;
    far_gone(low, "its channel closed: " + reason);
    if (auto& other = low ? high_ : low_) other->set_reading(true);
    // Destroy later: we are inside the channel's callback.
    auto alive = alive_;
    loop_.post([this, alive, low] {
      if (!*alive) return;
      auto& slot = low ? low_ : high_;
      if (slot && !slot->is_open()) slot.reset();
    });
  };
  ch->set_callbacks(std::move(cb));
  ch->start();
  (low ? low_ : high_) = std::move(ch);
  if (auto& other = low ? high_ : low_) other->set_reading(true);
  LogLine(log_, LogLevel::Info) << "channel to edge(" << (low ? "low" : "high") << ") attached";
}

bool FilterProcess::channel_up(bool low) const {
  const auto& ch = low ? low_ : high_;
  return ch && ch->is_open();
}

bool FilterProcess::send_to(bool low, const ipc::Frame& f) {
  auto& ch = low ? low_ : high_;
  return ch && ch->is_open() && ch->send(f);
}

bool FilterProcess::send_control_to(bool low, const ipc::Frame& f) {
  auto& ch = low ? low_ : high_;
  return ch && ch->is_open() && ch->send_control(f);
}

void FilterProcess::send_ack(bool to_low, std::uint64_t seq) {
  ipc::Frame ack;
  ack.header.kind = ipc::FrameKind::Ack;
  ack.header.seq = seq;
  send_control_to(to_low, ack);
}

void FilterProcess::on_far_ack(bool from_low, const ipc::Frame& f) {
  // An edge confirms what was released to it: the direction of such a frame
  // points at that edge. Anything else names nothing this filter gave it.
  const bool to_this_edge = f.header.direction == (from_low ? ipc::Direction::HighToLow : ipc::Direction::LowToHigh);
  auto it = to_this_edge ? awaiting_.find({!from_low, f.header.seq}) : awaiting_.end();
  if (it == awaiting_.end()) {
    ++counters_.unknown_acks;
    return;
  }
  Awaiting& a = it->second;
  if (!a.taken) {
    // Taken (or, without a plain Ack first, delivered or lost at once): the
    // sender's stream gets its credit back now; the accounting goes on.
    a.taken = true;
    taken_by_age_.insert({a.since, it->first});
    ++counters_.far_confirmed;
    send_ack(!from_low, f.header.seq);
  }
  const std::string text = f.body.substr(0, 256);
  if (f.header.flags & ipc::kAckDelivered) {
    delivered(*a.s, text.empty() ? "unspecified" : text);
  } else if (f.header.flags & ipc::kAckSettled) {
    // The far edge answered it itself: the error reply (if one was allowed)
    // comes back as a stanza and is decided like any other; this says why.
    audit::ConnectionEvent ev;
    ev.kind = "undelivered";
    ev.side = a.s->from_low ? "high" : "low";   // the far edge, which answered it
    ev.peer = peer_info(a.s->header);
    const xmpp::Element* st = a.s->stanza ? &*a.s->stanza : nullptr;
    ev.text = "undelivered: frame seq=" + std::to_string(f.header.seq) + " " + (st ? st->name() : "?") +
              " id=" + (st ? st->attr_or("id") : "") + " to=" + (st ? st->attr_or("to") : "") + " released to edge(" +
              ev.side + "), which " + (text.empty() ? std::string("did not deliver it") : text);
    audit::Record r;
    r.body = std::move(ev);
    archive_.append(std::move(r), [](audit::AppendResult) {});
  } else if (f.header.flags & ipc::kAckLost) {
    ++counters_.far_lost;
    in_doubt(*a.s, "wrote it to the far server, whose link ended before it acknowledged it (" +
                       (text.empty() ? std::string("no reason given") : text) + ")", true,
             "the link to the recipient's server ended before it acknowledged this stanza: it may not have been delivered");
  } else {
    return;   // taken: delivered or lost follows
  }
  drop_awaiting(it);
}

FilterProcess::AwaitMap::iterator FilterProcess::drop_awaiting(AwaitMap::iterator it) {
  if (it->second.taken) taken_by_age_.erase({it->second.since, it->first});
  else send_ack(it->first.first, it->first.second);   // never taken: the sender's credit comes back now
  return awaiting_.erase(it);
}

void FilterProcess::await_far(const std::shared_ptr<InFlight>& s) {
  const std::pair<bool, std::uint64_t> key{s->from_low, s->header.seq};
  if (auto old = awaiting_.find(key); old != awaiting_.end()) {
    // An edge that reuses a frame seq (edges never do; a compromised one
    // might) would make the far edge's word about one stanza settle another.
    in_doubt(*old->second.s, "was still owed an outcome when the sending edge reused its frame seq", true);
    drop_awaiting(old);
  }
  if (taken_by_age_.size() >= kMaxTaken) {
    // A far edge that takes stanzas and never says what became of them holds
    // memory here: beyond the bound, the oldest is given up (in doubt, bounced).
    auto oldest = awaiting_.find(taken_by_age_.begin()->second);
    if (oldest != awaiting_.end()) {
      in_doubt(*oldest->second.s, "took it and had not said delivered or lost when " + std::to_string(kMaxTaken) +
                                      " stanzas were waiting for that", true);
      drop_awaiting(oldest);
    } else {
      taken_by_age_.erase(taken_by_age_.begin());   // cannot happen: kept in step with awaiting_
    }
  }
  awaiting_[key] = Awaiting{s, loop_.now()};
}

void FilterProcess::delivered(const InFlight& s, const std::string& proof) {
  ++counters_.far_delivered;
  std::string far;
  if (s.stanza) {
    if (auto to = xmpp::parse_jid(s.stanza->attr_or("to"))) far = to->domain;
  }
  delivered_[{s.from_low, far, proof}].push_back(s.header.seq);
  if (++delivered_count_ >= kDeliveredBatch) {
    flush_delivered();
    return;
  }
  if (delivered_timer_ == 0) {
    auto alive = alive_;
    delivered_timer_ = loop_.add_timer(kDeliveredFlush, [this, alive] {
      if (!*alive) return;
      delivered_timer_ = 0;
      flush_delivered();
    });
  }
}

namespace {

// "3-7,9,12-13": sorted frame seqs as ranges.
std::string seq_ranges(std::vector<std::uint64_t> seqs) {
  std::sort(seqs.begin(), seqs.end());
  std::string out;
  for (std::size_t i = 0; i < seqs.size();) {
    std::size_t j = i;
    while (j + 1 < seqs.size() && seqs[j + 1] == seqs[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(seqs[i]);
    if (j > i) out += "-" + std::to_string(seqs[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace

void FilterProcess::flush_delivered() {
  // One record per (sending edge, far domain, proof): the archive can tell
  // released-and-acknowledged (this) from released-and-lost (in-doubt).
  auto batch = std::move(delivered_);
  delivered_.clear();
  delivered_count_ = 0;
  for (auto& [key, seqs] : batch) {
    const auto& [from_low, far, proof] = key;
    audit::ConnectionEvent ev;
    ev.kind = "delivered";
    ev.side = from_low ? "high" : "low";
    ev.peer.domain = far;
    const std::string ranges = seq_ranges(seqs);
    ev.text = "delivered: " + std::to_string(seqs.size()) + " released stanza(s) from edge(" +
              (from_low ? "low" : "high") + ") acknowledged by " + (far.empty() ? std::string("?") : far) + " (" +
              proof + "): frame seq " + ranges;
    ev.notes.emplace_back("count", std::to_string(seqs.size()));
    ev.notes.emplace_back("proof", proof);
    ev.notes.emplace_back("seqs", ranges);
    ev.notes.emplace_back("from-edge", from_low ? "low" : "high");
    audit::Record r;
    r.body = std::move(ev);
    archive_.append(std::move(r), [](audit::AppendResult) {});
  }
}

void FilterProcess::in_doubt(const InFlight& s, const std::string& why, bool bounce, const std::string& error_text) {
  ++counters_.far_in_doubt;
  audit::ConnectionEvent ev;
  ev.kind = "in-doubt";
  ev.side = s.from_low ? "high" : "low";
  ev.peer = peer_info(s.header);
  ev.text = "in-doubt: frame seq=" + std::to_string(s.header.seq) + " " + (s.stanza ? s.stanza->name() : "?") +
            " id=" + (s.stanza ? s.stanza->attr_or("id") : "") + " from=" + (s.stanza ? s.stanza->attr_or("from") : "") +
            " to=" + (s.stanza ? s.stanza->attr_or("to") : "") + " was released to edge(" +
            (s.from_low ? "high" : "low") + "), which " + why +
            (bounce ? "; bounced to its sender (remote-server-timeout)" : "; its sender was not told");
  audit::Record r;
  r.body = std::move(ev);
  archive_.append(std::move(r), [](audit::AppendResult) {});
  if (bounce && s.stanza) {
    send_error(s.from_low, *s.stanza, {StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait, error_text, {}, {}});
  }
}

void FilterProcess::far_gone(bool low, const std::string& reason) {
  // Released to edge `low`, never confirmed: the edge may or may not have
  // delivered it before it went. The record says so; the sender hears of it,
  // and its stream gets its credit back.
  std::size_t n = 0;
  for (auto it = awaiting_.begin(); it != awaiting_.end();) {
    if (it->first.first == low) {   // sent by the other edge: released to `low`
      ++it;
      continue;
    }
    in_doubt(*it->second.s, std::string(it->second.taken ? "went away before the far server acknowledged it ("
                                                         : "went away before confirming it took it (") + reason + ")",
             true);
    it = drop_awaiting(it);
    ++n;
  }
  if (n > 0) {
    LogLine(log_, LogLevel::Warning) << n << " released stanza(s) not confirmed by edge(" << (low ? "low" : "high")
                                     << ") before it went: recorded as in doubt, senders told";
  }
}

void FilterProcess::sweep_awaiting() {
  const auto now = loop_.now();
  for (auto it = awaiting_.begin(); it != awaiting_.end();) {
    if (now - it->second.since < kFarConfirmTimeout) {
      ++it;
      continue;
    }
    in_doubt(*it->second.s, std::string(it->second.taken ? "took it but said neither delivered nor lost within "
                                                         : "did not confirm it within ") +
                                std::to_string(kFarConfirmTimeout.count()) + " s", true);
    it = drop_awaiting(it);
  }
  auto alive = alive_;
  sweep_timer_ = loop_.add_timer(std::chrono::seconds(5), [this, alive] {
    if (!*alive) return;
    sweep_timer_ = 0;
    sweep_awaiting();
  });
}

void FilterProcess::log_summary() {
  // Each decision is in the archive; the log gets a line a minute (released
  // decisions are logged one by one at debug level only).
  if (counters_.released != summarised_released_ || counters_.rejected != summarised_rejected_) {
    LogLine(log_, LogLevel::Info) << "decisions in the last minute: " << (counters_.released - summarised_released_)
                                  << " released, " << (counters_.rejected - summarised_rejected_) << " rejected; "
                                  << awaiting_.size() << " awaiting the far edge, " << pending_ << " being decided";
    summarised_released_ = counters_.released;
    summarised_rejected_ = counters_.rejected;
  }
  auto alive = alive_;
  summary_timer_ = loop_.add_timer(std::chrono::seconds(60), [this, alive] {
    if (!*alive) return;
    summary_timer_ = 0;
    log_summary();
  });
}

void FilterProcess::send_error(bool to_low, const xmpp::Element& stanza, const xmpp::StanzaError& err) {
  if (!xmpp::may_bounce(stanza)) return;
  ipc::Frame e;
  e.header.kind = ipc::FrameKind::Stanza;
  e.header.direction = ipc::Direction::Local;
  e.header.auth = ipc::AuthMethod::Internal;
  e.header.seq = out_seq_++;
  e.body = xmpp::make_error_reply(stanza, err).serialize();
  if (send_control_to(to_low, e)) ++counters_.errors_sent;
}

void FilterProcess::on_event(bool from_low, const ipc::Frame& f) {
  audit::ConnectionEvent ev;
  ev.kind = event_kind(f.body);
  ev.text = f.body;
  ev.side = from_low ? "low" : "high";
  ev.peer = peer_info(f.header);
  audit::Record r;
  r.body = std::move(ev);
  archive_.append(std::move(r), [](audit::AppendResult) {});
}

namespace {

// What an edge says of its own refusal, as text the archive may hold: printable
// ASCII (anything else becomes '?'), bounded.
std::string refusal_text(std::string_view s, std::size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  }
  return out;
}

}  // namespace

void FilterProcess::on_refusal(bool from_low, const ipc::Frame& f) {
  // A stanza the edge refused itself and answered (or, where no answer is
  // allowed, dropped): the archive records it as a rejected decision of that
  // edge. Nothing is forwarded or sent; the frame's own direction is not
  // trusted, the channel it came on says which side it is.
  const std::string edge = from_low ? "edge(low)" : "edge(high)";
  audit::DecisionRecord d;
  d.outcome = audit::Outcome::Rejected;
  d.direction = from_low ? audit::Direction::LowToHigh : audit::Direction::HighToLow;
  d.peer = peer_info(f.header);
  d.frame_seq = f.header.seq;
  d.stream_id = f.header.stream_id;
  const std::string_view body = f.body;
  const std::size_t nl = body.find('\n');
  const std::string_view head = body.substr(0, nl);
  const std::string_view bytes = nl == std::string_view::npos ? std::string_view{} : body.substr(nl + 1);
  std::string_view parts[3];
  std::size_t at = 0;
  for (int i = 0; i < 3; ++i) {
    const std::size_t tab = i < 2 ? head.find('\t', at) : std::string_view::npos;
    parts[i] = head.substr(std::min(at, head.size()), tab == std::string_view::npos ? std::string_view::npos : tab - at);
    at = tab == std::string_view::npos ? head.size() : tab + 1;
  }
  const std::string check = refusal_text(parts[1], 32), reason = refusal_text(parts[2], 512);
  const auto condition = xmpp::stanza_error_condition_from_string(parts[0]);
  xmpp::ParserLimits limits;   // as for stanza frames (on_frame)
  limits.max_stanza_bytes = std::max(max_stanza_bytes_, bytes.size() + 1);
  limits.max_depth = 256;
  limits.max_attributes = 1024;
  std::string perr;
  if (auto st = xmpp::parse_element(bytes, limits, &perr)) {
    d.from = st->attr_or("from");
    d.to = st->attr_or("to");
    d.stanza_kind = st->name();
    d.stanza_type = st->attr_or("type");
    d.stanza_id = st->attr_or("id");
  } else {
    d.notes.emplace_back("unparseable", refusal_text(perr, 256));
  }
  audit::FilterResult fr;
  fr.filter = edge;
  fr.type = "edge";
  fr.verdict = "reject";
  fr.rule_id = "edge:" + (check.empty() ? std::string("unnamed") : check);
  fr.notes.emplace_back("reason", reason);
  d.filters.push_back(std::move(fr));
  d.policy_version = policy_.version;
  d.policy_hash = policy_.sha256;
  d.notes.emplace_back("refused.by", edge);
  d.notes.emplace_back("refused.check", check);
  d.notes.emplace_back("refused", reason);
  if (condition) d.error_condition = std::string(xmpp::to_string(*condition));
  else d.notes.emplace_back("reply", "none or unknown: the edge named no valid condition");
  d.original = std::string(bytes);
  ++counters_.edge_refusals;
  audit::Record r;
  r.body = std::move(d);
  archive_.append(std::move(r), [](audit::AppendResult) {});
}

void FilterProcess::on_frame(bool from_low, ipc::Frame&& f) {
  using ipc::FrameKind;
  if (f.header.kind == FrameKind::Ping) {
    ipc::Frame pong;
    pong.header.kind = FrameKind::Pong;
    pong.header.seq = f.header.seq;
    send_control_to(from_low, pong);
    return;
  }
  if (f.header.kind == FrameKind::Ack) {
    on_far_ack(from_low, f);
    return;
  }
  if (f.header.kind == FrameKind::Event) {
    on_event(from_low, f);
    return;
  }
  if (f.header.kind == FrameKind::Refusal) {
    on_refusal(from_low, f);
    return;
  }
  if (f.header.kind != FrameKind::Stanza) return;

  auto s = std::make_shared<InFlight>();
  s->from_low = from_low;
  s->header = f.header;
  s->original = std::move(f.body);
  s->policy = policy_;
  ++pending_;

  // The edge enforced its side's limits on the wire; its serialization may
  // declare a namespace per attribute (RFC 6120 restricted XML, one element
  // per frame), so only the frame's size bounds what is parsed here, as at the
  // far edge (EdgeServer::on_filter_frame).
  xmpp::ParserLimits limits;
  limits.max_stanza_bytes = max_stanza_bytes_ > s->original.size() ? max_stanza_bytes_ : s->original.size() + 1;
  limits.max_depth = 256;
  limits.max_attributes = 1024;
  std::string perr;
  s->stanza = xmpp::parse_element(s->original, limits, &perr);
  if (!s->stanza) {
    s->refused = "unparseable body: " + perr;
    s->refused_check = "body";
  } else {
    // What the edge claims is checked before any policy sees the stanza.
    FrameCheck fc = check_frame(boundary_, from_low, s->header, *s->stanza);
    s->sender_verified = fc.sender_verified;
    if (fc.refusal) {
      s->refused = std::move(fc.refusal->reason);
      s->refused_check = std::move(fc.refusal->check);
    } else if (awaiting_.count({from_low, s->header.seq}) != 0) {
      // Edges number frames once; a reused seq would let the far edge's word
      // about the first stanza settle this one.
      s->refused = "frame seq " + std::to_string(s->header.seq) + " reused while its stanza awaits its outcome";
      s->refused_check = "seq";
    }
  }
  if (!s->refused.empty()) {
    ++counters_.refused_frames;
    s->release = false;
    s->error = {StanzaErrorCondition::InternalServerError, StanzaErrorType::Cancel, "refused by the boundary", {}, {}};
    commit(s);
    return;
  }

  policy::StanzaContext ctx;
  ctx.direction = s->header.direction;
  ctx.peer_domain = s->header.peer_domain;
  ctx.auth = s->header.auth;
  ctx.peer_tls = (s->header.flags & ipc::kFlagTls) != 0;
  ctx.cert_identity = s->header.cert_identity;
  ctx.seq = s->header.seq;
  ctx.wire_bytes = s->original.size();

  const policy::Pipeline& pipeline = from_low ? low_to_high_ : high_to_low_;
  s->decision = pipeline.run(*s->stanza, ctx);
  if (!s->decision.release) {
    s->release = false;
    s->error = s->decision.final_verdict.error
                   ? *s->decision.final_verdict.error
                   : xmpp::StanzaError{StanzaErrorCondition::PolicyViolation, StanzaErrorType::Cancel,
                                       "blocked by policy", {}, {}};
    commit(s);
    return;
  }
  // No text chosen beyond the boundary crosses inside an error (error_text.h);
  // frame_check has made sure the <error/> reads.
  if (s->stanza->attr_or("type") == "error") {
    if (auto err = xmpp::read_stanza_error(*s->stanza)) {
      const std::string removed =
          remove_error_text(*s->stanza, *err, s->header.auth == ipc::AuthMethod::Internal);
      s->error_text_removed = true;
      ++counters_.error_texts_removed;
      if (!removed.empty()) {
        LogLine(log_, LogLevel::Info) << "seq=" << s->header.seq << ": error text not carried across: '"
                                      << removed.substr(0, 512) << "'";
      }
    }
  }
  // Lossless until transformed: the exact bytes received, unless a named
  // transformation changed the stanza. The guards see exactly what would cross.
  if (s->decision.transformations.empty() && !s->error_text_removed) {
    s->released_bytes = s->original;
  } else {
    s->released_bytes = s->stanza->serialize();
    s->modified = s->released_bytes != s->original;
  }
  policy::GuardChain& chain = from_low ? guards_low_to_high_ : guards_high_to_low_;
  auto alive = alive_;
  chain.check(s->released_bytes, ctx, [this, alive, s](bool pass, std::vector<policy::GuardResult> results) {
    if (!*alive) return;
    s->guards = std::move(results);
    s->release = pass;
    if (!pass) {
      ++counters_.guard_blocks;
      // The reason goes to the audit record, not to the sender.
      s->error = {StanzaErrorCondition::PolicyViolation, StanzaErrorType::Cancel, "blocked by the boundary guard", {}, {}};
    }
    commit(s);
  });
}

void FilterProcess::commit(const std::shared_ptr<InFlight>& s) {
  audit::DecisionRecord d;
  d.direction = audit_direction(s->header.direction);
  d.peer = peer_info(s->header);
  d.frame_seq = s->header.seq;
  d.stream_id = s->header.stream_id;
  if (s->stanza) {
    d.from = s->stanza->attr_or("from");
    d.to = s->stanza->attr_or("to");
    d.stanza_kind = s->stanza->name();
    d.stanza_type = s->stanza->attr_or("type");
    d.stanza_id = s->stanza->attr_or("id");
  }
  bool shadow_reject = false;
  for (const auto& t : s->decision.trail) {
    audit::FilterResult fr;
    fr.filter = t.filter;
    fr.type = t.type;
    fr.verdict = std::string(policy::to_string(t.verdict.kind));
    fr.rule_id = t.verdict.rule_id;
    fr.shadow = t.shadow;
    fr.transformation = t.verdict.transformation;
    fr.notes = t.verdict.notes;
    if (t.shadow && t.verdict.kind == policy::VerdictKind::Reject) shadow_reject = true;
    for (const auto& [k, v] : t.verdict.notes) {
      if (k == "label.original" && d.label_original.empty()) d.label_original = v;
      if (k == "label.effective" && d.label_effective.empty()) d.label_effective = v;
      if (k == "label.mapped" && d.label_mapped.empty()) d.label_mapped = v;
    }
    d.filters.push_back(std::move(fr));
  }
  for (const auto& g : s->guards) d.guards.push_back({g.guard, g.pass, g.reason});
  d.policy_version = s->policy.version;
  d.policy_hash = s->policy.sha256;
  if (!s->refused.empty()) {
    d.notes.emplace_back("refused.rule", kFrameConsistencyRule);
    d.notes.emplace_back("refused.check", s->refused_check);
    d.notes.emplace_back("refused", s->refused);
  }
  // The record takes the received bytes: nothing needs them after this point
  // (what is released is released_bytes), so no per-stanza copy.
  d.original = std::move(s->original);
  if (s->release) {
    const bool modified = s->modified;
    if (s->error_text_removed && modified) d.notes.emplace_back("transformation", kErrorTextTransformation);
    d.outcome = shadow_reject ? audit::Outcome::Shadow : modified ? audit::Outcome::Modified : audit::Outcome::Released;
    if (shadow_reject) d.notes.emplace_back("shadow.enforced", modified ? "modified" : "released");
    if (modified) d.released = s->released_bytes;
    // A far edge that is down cannot take the stanza: decide that now, so the
    // record says what really happens.
    if (!channel_up(!s->from_low)) {
      s->release = false;
      s->error = {StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait,
                  "far side of the boundary unavailable", {}, {}};
      d.outcome = audit::Outcome::Rejected;
      d.released.reset();
      d.notes.emplace_back("far-edge", "unavailable");
    }
  } else {
    d.outcome = audit::Outcome::Rejected;
  }
  if (!s->release) {
    if (!s->refused.empty() && !s->sender_verified) d.notes.emplace_back("reply", "none: sender not verified");
    else d.error_condition = std::string(xmpp::to_string(s->error.condition));
  }
  audit::Record r;
  r.body = std::move(d);
  auto alive = alive_;
  archive_.append(std::move(r), [this, alive, s](audit::AppendResult res) {
    if (!*alive) return;
    act(s, res);
  });
}

void FilterProcess::act(const std::shared_ptr<InFlight>& s, const audit::AppendResult& r) {
  --pending_;
  std::string outcome;
  if (!r.ok) {
    // Audit before release: no durable record, no release. The sender may retry.
    ++counters_.audit_failures;
    if (s->release) {
      s->release = false;
      s->error = {StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait,
                  "boundary audit unavailable", {}, {}};
    }
    LogLine(log_, LogLevel::Error) << "audit record for seq=" << s->header.seq << " not durable (" << r.error
                                   << "): not released";
  }
  if (s->release) {
    ipc::Frame out;
    out.header = s->header;   // direction, peer, auth travel with the stanza
    out.body = std::move(s->released_bytes);
    if (send_to(!s->from_low, out)) {
      ++counters_.released;
      outcome = "released";
      // The sender's Ack waits for the far edge to confirm it took the stanza.
      await_far(s);
      auto& far = s->from_low ? high_ : low_;
      auto& near = s->from_low ? low_ : high_;
      if (far && far->congested() && near) {
        ++counters_.near_pauses;
        near->set_reading(false);
      }
    } else {
      // The far edge vanished between the record and now: the record says
      // released, this line and the error say it did not cross.
      ++counters_.rejected;
      outcome = "NOT released: far edge went away after the record";
      // The decision record says released: the archive must say it did not cross.
      audit::ConnectionEvent ev;
      ev.kind = "undelivered";
      ev.side = s->from_low ? "high" : "low";
      ev.peer = peer_info(s->header);
      ev.text = "undelivered: frame seq=" + std::to_string(s->header.seq) + " " + s->stanza->name() + " id=" +
                s->stanza->attr_or("id") + " was recorded as released, but the channel to edge(" + ev.side +
                ") did not take it (closed or full); its sender was told remote-server-timeout";
      audit::Record rec;
      rec.body = std::move(ev);
      archive_.append(std::move(rec), [](audit::AppendResult) {});
      send_error(s->from_low, *s->stanza, {StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait,
                                           "far side of the boundary unavailable", {}, {}});
    }
  } else {
    ++counters_.rejected;
    outcome = s->refused.empty() ? "rejected" : "refused (" + s->refused + ")";
    if (!s->refused.empty() && !s->sender_verified) outcome += "; not answered: sender not verified";
    // A refused frame is answered only where the reply can be addressed
    // safely (frame_check.h); otherwise the record and the log are all.
    if (s->stanza && (s->refused.empty() || s->sender_verified)) send_error(s->from_low, *s->stanza, s->error);
  }
  if (outcome != "released") send_ack(s->from_low, s->header.seq);
  log_decision(*s, outcome, r.ok ? std::to_string(r.seq) : std::string("none"));
}

void FilterProcess::log_decision(const InFlight& s, const std::string& outcome, const std::string& audit_seq) {
  // Released: debug only (the archive is the record, log_summary() counts
  // them); refusals stay at warning.
  const bool released = s.release;
  if (!log_.enabled(released ? LogLevel::Debug : LogLevel::Warning)) return;
  std::ostringstream trail;
  for (const auto& t : s.decision.trail) {
    trail << ' ' << t.filter << '=' << policy::to_string(t.verdict.kind);
    if (!t.verdict.rule_id.empty()) trail << '(' << t.verdict.rule_id << ')';
    if (t.shadow) trail << "[shadow]";
  }
  for (const auto& g : s.guards) trail << " guard:" << g.guard << '=' << (g.pass ? "pass" : "block");
  const std::string rule = !s.refused.empty() ? std::string(kFrameConsistencyRule) + "(" + s.refused_check + ")"
                           : !s.decision.final_verdict.rule_id.empty() ? s.decision.final_verdict.rule_id
                                                                        : "-";
  LogLine(log_, released ? LogLevel::Debug : LogLevel::Warning)
      << "decision seq=" << s.header.seq << ' ' << ipc::to_string(s.header.direction) << " peer=" << s.header.peer_domain
      << " auth=" << ipc::to_string(s.header.auth) << ' ' << (s.stanza ? s.stanza->name() : std::string("?"))
      << " from=" << (s.stanza ? s.stanza->attr_or("from") : "") << " to=" << (s.stanza ? s.stanza->attr_or("to") : "")
      << " id=" << (s.stanza ? s.stanza->attr_or("id") : "") << ": " << outcome << " by " << rule
      << " policy=" << s.policy.short_id() << " audit=" << audit_seq << "; trail:" << trail.str();
}

}  // namespace portcullis::filterproc
