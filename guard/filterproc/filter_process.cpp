#include "guard/filterproc/filter_process.h"

#include <sstream>

#include "guard/xmpp/stream_parser.h"

namespace portcullis::filterproc {

using xmpp::StanzaErrorCondition;
using xmpp::StanzaErrorType;

FilterProcess::FilterProcess(net::EventLoop& loop, policy::Pipeline low_to_high, policy::Pipeline high_to_low,
                             std::size_t max_stanza_bytes, Logger& log)
    : loop_(loop), policy_owner_(), low_to_high_(std::move(low_to_high)), high_to_low_(std::move(high_to_low)),
      max_stanza_bytes_(max_stanza_bytes), log_(log) {}

FilterProcess::~FilterProcess() = default;

void FilterProcess::replace_pipelines(policy::Pipeline low_to_high, policy::Pipeline high_to_low,
                                      std::string policy_id, std::shared_ptr<const void> owner) {
  // Pipelines first, owner last: the old filters go before the tree they point into.
  low_to_high_ = std::move(low_to_high);
  high_to_low_ = std::move(high_to_low);
  policy_id_ = std::move(policy_id);
  policy_owner_ = std::move(owner);
}

void FilterProcess::attach_low(int fd) { attach(true, fd); }
void FilterProcess::attach_high(int fd) { attach(false, fd); }

void FilterProcess::attach(bool low, int fd) {
  auto ch = std::make_unique<ipc::FrameChannel>(loop_, fd);
  ipc::FrameChannel::Callbacks cb;
  cb.on_frame = [this, low](ipc::Frame&& f) { on_frame(low, std::move(f)); };
  cb.on_closed = [this, low](const std::string& reason) {
    LogLine(log_, LogLevel::Warning) << "channel to edge(" << (low ? "low" : "high") << ") closed: " << reason;
    // Destroy later: we are inside the channel's callback.
    loop_.post([this, low] {
      auto& slot = low ? low_ : high_;
      if (slot && !slot->is_open()) slot.reset();
    });
  };
  ch->set_callbacks(std::move(cb));
  ch->start();
  (low ? low_ : high_) = std::move(ch);
  LogLine(log_, LogLevel::Info) << "channel to edge(" << (low ? "low" : "high") << ") attached";
}

bool FilterProcess::send_to(bool low, const ipc::Frame& f) {
  auto& ch = low ? low_ : high_;
  return ch && ch->is_open() && ch->send(f);
}

void FilterProcess::send_error(bool to_low, const xmpp::Element& stanza, const xmpp::StanzaError& err) {
  if (!xmpp::may_bounce(stanza)) return;
  ipc::Frame e;
  e.header.kind = ipc::FrameKind::Stanza;
  e.header.direction = ipc::Direction::Local;
  e.header.auth = ipc::AuthMethod::Internal;
  e.header.seq = out_seq_++;
  e.body = xmpp::make_error_reply(stanza, err).serialize();
  if (send_to(to_low, e)) ++counters_.errors_sent;
}

void FilterProcess::on_frame(bool from_low, ipc::Frame&& f) {
  using ipc::FrameKind;
  if (f.header.kind == FrameKind::Ping) {
    ipc::Frame pong;
    pong.header.kind = FrameKind::Pong;
    pong.header.seq = f.header.seq;
    send_to(from_low, pong);
    return;
  }
  if (f.header.kind != FrameKind::Stanza) return;

  ipc::Frame ack;
  ack.header.kind = FrameKind::Ack;
  ack.header.seq = f.header.seq;
  const char* side = from_low ? "low" : "high";
  const ipc::Direction expected = from_low ? ipc::Direction::LowToHigh : ipc::Direction::HighToLow;

  xmpp::ParserLimits limits;
  limits.max_stanza_bytes = max_stanza_bytes_ > f.body.size() ? max_stanza_bytes_ : f.body.size() + 1;
  std::string perr;
  auto stanza = xmpp::parse_element(f.body, limits, &perr);
  if (f.header.direction != expected || f.header.auth == ipc::AuthMethod::None || !stanza) {
    ++counters_.refused_frames;
    LogLine(log_, LogLevel::Error) << "refused frame seq=" << f.header.seq << " from edge(" << side << "): "
                                   << (!stanza ? "unparseable body: " + perr
                                               : f.header.direction != expected ? "wrong direction" : "unauthenticated");
    if (stanza) send_error(from_low, *stanza, {StanzaErrorCondition::InternalServerError, StanzaErrorType::Cancel,
                                               "refused by the boundary", {}, {}});
    send_to(from_low, ack);
    return;
  }

  policy::StanzaContext ctx;
  ctx.direction = f.header.direction;
  ctx.peer_domain = f.header.peer_domain;
  ctx.auth = f.header.auth;
  ctx.peer_tls = (f.header.flags & ipc::kFlagTls) != 0;
  ctx.cert_identity = f.header.cert_identity;
  ctx.seq = f.header.seq;
  ctx.wire_bytes = f.body.size();

  const policy::Pipeline& pipeline = from_low ? low_to_high_ : high_to_low_;
  policy::Decision d = pipeline.run(*stanza, ctx);

  bool released = false;
  std::string outcome;
  if (d.release) {
    ipc::Frame out;
    out.header = f.header;   // direction, peer, auth travel with the stanza
    // Lossless until transformed: the exact bytes received, unless a named
    // transformation changed the stanza.
    out.body = d.transformations.empty() ? std::move(f.body) : stanza->serialize();
    if (send_to(!from_low, out)) {
      released = true;
      ++counters_.released;
      outcome = "released";
    } else {
      ++counters_.rejected;
      outcome = "rejected (far edge unavailable)";
      send_error(from_low, *stanza, {StanzaErrorCondition::RemoteServerTimeout, StanzaErrorType::Wait,
                                     "far side of the boundary unavailable", {}, {}});
    }
  } else {
    ++counters_.rejected;
    outcome = "rejected";
    xmpp::StanzaError err = d.final_verdict.error ? *d.final_verdict.error
                                                  : xmpp::StanzaError{StanzaErrorCondition::PolicyViolation,
                                                                      StanzaErrorType::Cancel, "blocked by policy", {}, {}};
    send_error(from_low, *stanza, err);
  }
  send_to(from_low, ack);

  if (log_.enabled(LogLevel::Info)) {
    std::ostringstream trail;
    for (const auto& t : d.trail) {
      trail << ' ' << t.filter << '=' << policy::to_string(t.verdict.kind);
      if (!t.verdict.rule_id.empty()) trail << '(' << t.verdict.rule_id << ')';
      if (t.shadow) trail << "[shadow]";
    }
    LogLine(log_, released ? LogLevel::Info : LogLevel::Warning)
        << "decision seq=" << f.header.seq << ' ' << ipc::to_string(f.header.direction) << " peer=" << f.header.peer_domain
        << " auth=" << ipc::to_string(f.header.auth) << ' ' << stanza->name() << " from=" << stanza->attr_or("from")
        << " to=" << stanza->attr_or("to") << " id=" << stanza->attr_or("id") << ": " << outcome
        << " by " << (d.final_verdict.rule_id.empty() ? "-" : d.final_verdict.rule_id) << " policy=" << policy_id_
        << "; trail:" << trail.str();
  }
}

}  // namespace portcullis::filterproc
