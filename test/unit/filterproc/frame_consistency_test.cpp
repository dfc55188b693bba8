// The filter checks what the edge claims (guard/filterproc/frame_check.h):
// every refusal is recorded with rule frame-consistency and its check, logged,
// never released, and answered only where the sender is verified. And error
// stanzas cross with no text chosen beyond the boundary (error_text.h).
#include <string_view>

#include "guard/filterproc/error_text.h"
#include "guard/rooms/irc_note.h"
#include "test/unit/filterproc/filter_fixture.h"

using namespace portcullis;
using namespace filterproc_test;

namespace {

std::string note(const audit::DecisionRecord& d, std::string_view key) {
  for (const auto& [k, v] : d.notes)
    if (k == key) return v;
  return {};
}

bool logged(const Fixture& fx, std::string_view what) {
  for (const auto& l : fx.lines)
    if (l.find(what) != std::string::npos) return true;
  return false;
}

// Sends `f` on edge(low)'s channel (or edge(high)'s), waits for the Ack, and
// checks what every refusal shares: nothing reached the other edge, one
// refused frame, one rejected decision record with the rule, the check and the
// exact bytes, and a log line naming the rule. Returns the record.
audit::DecisionRecord expect_refused(Fixture& fx, const ipc::Frame& f, const std::string& check, bool on_low = true) {
  Edge& origin = on_low ? fx.low : fx.high;
  Edge& far = on_low ? fx.high : fx.low;
  REQUIRE(origin.channel->send(f));
  fx.pump_until([&] { return has_ack(origin, f.header.seq); });
  fx.settle();
  CHECK(first_stanza(far) == nullptr);
  CHECK(fx.filter->counters().refused_frames == 1);
  CHECK(fx.filter->counters().released == 0);
  const auto ds = decisions(fx.audit_dir.cfg.dir);
  REQUIRE(ds.size() == 1);
  const auto& d = ds[0];
  CHECK(d.outcome == audit::Outcome::Rejected);
  CHECK(note(d, "refused.rule") == "frame-consistency");
  CHECK(note(d, "refused.check") == check);
  CHECK_FALSE(note(d, "refused").empty());
  CHECK(d.original == f.body);
  CHECK(d.filters.empty());   // no policy filter saw it
  CHECK(logged(fx, "by frame-consistency(" + check + ")"));
  return d;
}

// The refusal was not answered: the sender could not be verified, so a reply
// could go to whoever the stanza names. The record says so.
void expect_no_reply(const Fixture& fx, const audit::DecisionRecord& d, bool on_low = true) {
  CHECK(first_stanza(on_low ? fx.low : fx.high) == nullptr);
  CHECK(note(d, "reply") == "none: sender not verified");
  CHECK(d.error_condition.empty());
}

// The refusal was answered to the verified sender with fixed text.
void expect_reply(const Fixture& fx, const audit::DecisionRecord& d, const std::string& to, bool on_low = true) {
  const ipc::Frame* r = first_stanza(on_low ? fx.low : fx.high);
  REQUIRE(r != nullptr);
  CHECK(r->header.direction == ipc::Direction::Local);
  CHECK(error_condition(*r) == "internal-server-error");
  auto reply = xmpp::parse_element(r->body);
  REQUIRE(reply);
  CHECK(reply->attr_or("to") == to);
  const auto* text = reply->find_child("error")->find_child("text");
  REQUIRE(text != nullptr);
  CHECK(text->text() == "refused by the boundary");
  CHECK(d.error_condition == "internal-server-error");
  CHECK(note(d, "reply").empty());
}

std::string chat(const std::string& from, const std::string& to) {
  return "<message xmlns='jabber:server' from='" + from + "' to='" + to +
         "' type='chat' id='c1'><body>words</body></message>";
}

}  // namespace

TEST_CASE("a stanza whose from domain differs from its frame's peer is refused and audited", "[filterproc][frame]") {
  Fixture fx;
  // d.test is a genuine low-side peer, but this frame's stream authenticated a.test.
  const auto d = expect_refused(fx, Fixture::stanza_frame(chat("mallory@d.test/r", "bob@b.test")), "from-domain");
  CHECK(note(d, "refused").find("'d.test' is not the frame's peer domain 'a.test'") != std::string::npos);
  CHECK(d.from == "mallory@d.test/r");
  CHECK(d.peer.domain == "a.test");
  expect_no_reply(fx, d);
}

TEST_CASE("a stanza without a from is refused", "[filterproc][frame]") {
  Fixture fx;
  const std::string body = "<message xmlns='jabber:server' to='bob@b.test' type='chat' id='c1'><body>x</body></message>";
  const auto d = expect_refused(fx, Fixture::stanza_frame(body), "from");
  CHECK(note(d, "refused") == "no 'from'");
  expect_no_reply(fx, d);
}

TEST_CASE("a stanza with a malformed from is refused", "[filterproc][frame]") {
  Fixture fx;
  const auto d = expect_refused(fx, Fixture::stanza_frame(chat("alice@@a.test", "bob@b.test")), "from");
  CHECK(note(d, "refused").find("malformed 'from'") != std::string::npos);
  expect_no_reply(fx, d);
}

TEST_CASE("a frame whose direction is not its channel's is refused, and its verified sender answered",
          "[filterproc][frame]") {
  Fixture fx;
  const auto d = expect_refused(fx, Fixture::stanza_frame(kChat, ipc::Direction::HighToLow), "direction");
  CHECK(note(d, "refused").find("edge(low)'s channel claims direction high-to-low") != std::string::npos);
  expect_reply(fx, d, "alice@a.test/r");
}

TEST_CASE("a peer domain the origin side's peering table does not list is refused", "[filterproc][frame]") {
  Fixture fx;
  const auto d = expect_refused(
      fx, Fixture::stanza_frame(chat("zed@z.test/r", "bob@b.test"), ipc::Direction::LowToHigh, 7, "z.test"),
      "peer-domain");
  CHECK(note(d, "refused") == "peer domain 'z.test' is not in side low's peering table");
  expect_no_reply(fx, d);
}

TEST_CASE("edge(low) cannot claim a domain it fronts for the high side as its peer", "[filterproc][frame]") {
  Fixture fx;
  const auto d = expect_refused(
      fx, Fixture::stanza_frame(chat("bob@b.test/r", "carol@c.test"), ipc::Direction::LowToHigh, 7, "b.test"),
      "fronted-domain");
  CHECK(note(d, "refused") == "peer domain 'b.test' is a domain side low fronts for side high");
  expect_no_reply(fx, d);
}

TEST_CASE("edge(low) cannot claim a domain of the high side's peering table as its peer", "[filterproc][frame]") {
  Fixture fx;
  const auto d = expect_refused(
      fx, Fixture::stanza_frame(chat("x@secret.hi.test", "bob@b.test"), ipc::Direction::LowToHigh, 7, "secret.hi.test"),
      "far-side-domain");
  CHECK(note(d, "refused") == "peer domain 'secret.hi.test' is in side high's peering table");
  expect_no_reply(fx, d);
}

TEST_CASE("edge(high) cannot claim a low-side domain as its peer", "[filterproc][frame]") {
  Fixture fx;
  const auto d = expect_refused(
      fx, Fixture::stanza_frame(chat("alice@a.test/r", "bob@b.test"), ipc::Direction::HighToLow, 7, "a.test"),
      "fronted-domain", /*on_low=*/false);
  expect_no_reply(fx, d, /*on_low=*/false);
}

TEST_CASE("a to that the origin side does not front is refused", "[filterproc][frame]") {
  Fixture fx;
  SECTION("a domain of neither side") {
    const auto d = expect_refused(fx, Fixture::stanza_frame(chat("alice@a.test/r", "eve@e.test")), "to");
    CHECK(note(d, "refused") == "'to' domain 'e.test' is not fronted on side low");
    expect_no_reply(fx, d);
  }
  SECTION("a domain of the origin side itself") {
    const auto d = expect_refused(fx, Fixture::stanza_frame(chat("alice@a.test/r", "dave@d.test")), "to");
    expect_no_reply(fx, d);
  }
  SECTION("no to") {
    const auto d = expect_refused(
        fx, Fixture::stanza_frame("<message xmlns='jabber:server' from='alice@a.test/r' type='chat'><body>x</body></message>"),
        "to");
    CHECK(note(d, "refused") == "no 'to'");
    expect_no_reply(fx, d);
  }
}

TEST_CASE("authentication claims the peering row cannot have granted are refused", "[filterproc][frame]") {
  Fixture fx;
  SECTION("auth internal on a stanza that is not an error") {
    auto f = Fixture::stanza_frame(kChat);
    f.header.auth = ipc::AuthMethod::Internal;
    const auto d = expect_refused(fx, f, "auth");
    CHECK(note(d, "refused") == "auth internal on a stanza that is not an error reply");
    expect_reply(fx, d, "alice@a.test/r");
  }
  SECTION("dialback for a peer whose row requires SASL EXTERNAL") {
    auto f = Fixture::stanza_frame(chat("dave@d.test/r", "bob@b.test"), ipc::Direction::LowToHigh, 7, "d.test");
    f.header.auth = ipc::AuthMethod::Dialback;
    const auto d = expect_refused(fx, f, "auth");
    CHECK(note(d, "refused").find("requires SASL EXTERNAL") != std::string::npos);
    expect_reply(fx, d, "dave@d.test/r");
  }
  SECTION("a plaintext stream for a row that requires TLS") {
    auto f = Fixture::stanza_frame(kChat);
    f.header.flags = 0;
    const auto d = expect_refused(fx, f, "tls");
    expect_reply(fx, d, "alice@a.test/r");
  }
}

TEST_CASE("a stanza kind the peer's row does not permit is refused", "[filterproc][frame]") {
  Fixture fx;
  const std::string body = "<iq xmlns='jabber:server' from='kim@k.test/r' to='b.test' type='get' id='q1'>"
                           "<ping xmlns='urn:xmpp:ping'/></iq>";
  const auto d = expect_refused(fx, Fixture::stanza_frame(body, ipc::Direction::LowToHigh, 7, "k.test"), "kind");
  expect_reply(fx, d, "kim@k.test/r");
}

TEST_CASE("an error stanza without a defined condition is refused and not answered", "[filterproc][frame]") {
  Fixture fx;
  std::string err;
  SECTION("unknown condition") {
    err = "<error type='cancel'><covert-channel xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
  }
  SECTION("two conditions") {
    err = "<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
          "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
  }
  SECTION("unknown type") {
    err = "<error type='whatever'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
  }
  SECTION("no error element") { err = "<body>x</body>"; }
  const std::string body =
      "<message xmlns='jabber:server' from='alice@a.test/r' to='bob@b.test' type='error' id='e1'>" + err + "</message>";
  const auto d = expect_refused(fx, Fixture::stanza_frame(body), "error-element");
  CHECK(first_stanza(fx.low) == nullptr);   // errors are never answered
}

TEST_CASE("peer domain and from domain compare case-insensitively, as the edge normalises them",
          "[filterproc][frame]") {
  Fixture fx;
  const std::string body =
      "<message xmlns='jabber:server' from='alice@A.Test/r' to='bob@B.TEST' type='chat' id='m1'><body>hi</body></message>";
  REQUIRE(fx.low.channel->send(Fixture::stanza_frame(body, ipc::Direction::LowToHigh, 7, "A.TEST")));
  fx.pump_until([&] { return first_stanza(fx.high) && has_ack(fx.low, 7); });
  CHECK(first_stanza(fx.high)->body == body);
  CHECK(fx.filter->counters().refused_frames == 0);
}

TEST_CASE("a filter with no boundary refuses every frame", "[filterproc][frame]") {
  Fixture fx;
  fx.filter = std::make_unique<filterproc::FilterProcess>(fx.loop, *fx.archive, 65536, fx.log, filterproc::Boundary{});
  fx.connect(true);
  fx.connect(false);
  const auto d = expect_refused(fx, Fixture::stanza_frame(kChat), "peer-domain");
  expect_no_reply(fx, d);
}

namespace {

// A guard that passes and keeps what it was shown.
class RecordingGuard : public policy::Guard {
 public:
  explicit RecordingGuard(std::vector<std::string>& seen) : seen_(seen) {}
  void check(const std::string& bytes, const policy::StanzaContext&, std::function<void(policy::GuardResult)> done) override {
    seen_.push_back(bytes);
    done({true, name_, ""});
  }
  const std::string& name() const override { return name_; }

 private:
  std::vector<std::string>& seen_;
  std::string name_ = "recorder";
};

const char* kStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";

const xmpp::Element* defined_condition(const xmpp::Element& error) {
  for (const auto* c : error.child_elements())
    if (c->ns() == kStanzas && c->name() != "text") return c;
  return nullptr;
}

}  // namespace

TEST_CASE("a far edge's bounce crosses with the appliance's text only; the original stays in the record and the log",
          "[filterproc][errortext]") {
  Fixture fx;
  std::vector<std::string> guard_saw;
  policy::GuardChain down;
  down.add(std::make_unique<RecordingGuard>(guard_saw));
  fx.filter->set_guards(policy::GuardChain{}, std::move(down));
  // What edge(high) makes when the far server killed the link with a stream
  // error (before this change, its text went into the bounce), and what a
  // compromised edge(high) could add.
  const std::string body =
      "<message xmlns='jabber:server' from='bob@b.test' to='alice@a.test/r' type='error' id='m1'>"
      "<body>smuggled</body>"
      "<error type='wait' by='covert.b.test'>"
      "<remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
      "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>"
      "Server-to-server connection failed: stream error from peer: FAR-SECRET</text>"
      "<FAR-SECRET-APP xmlns='urn:example:covert'/></error></message>";
  auto f = Fixture::stanza_frame(body, ipc::Direction::HighToLow, 11, "b.test");
  f.header.auth = ipc::AuthMethod::Internal;
  f.header.flags = 0;
  REQUIRE(fx.high.channel->send(f));
  fx.pump_until([&] { return first_stanza(fx.low) && has_ack(fx.high, 11); });

  const ipc::Frame* out = first_stanza(fx.low);
  CHECK(out->header.direction == ipc::Direction::HighToLow);
  CHECK(out->body.find("SECRET") == std::string::npos);
  CHECK(out->body.find("smuggled") == std::string::npos);
  CHECK(out->body.find("covert") == std::string::npos);
  auto reply = xmpp::parse_element(out->body);
  REQUIRE(reply);
  CHECK(reply->attr_or("from") == "bob@b.test");
  CHECK(reply->attr_or("to") == "alice@a.test/r");
  CHECK(reply->attr_or("id") == "m1");
  CHECK(reply->attr_or("type") == "error");
  CHECK(reply->child_elements().size() == 1);
  const auto* error = reply->find_child("error");
  REQUIRE(error != nullptr);
  CHECK(error->attr_or("type") == "wait");
  CHECK(error->attr("by") == nullptr);
  REQUIRE(error->child_elements().size() == 2);
  CHECK(defined_condition(*error)->name() == "remote-server-timeout");
  REQUIRE(error->find_child("text") != nullptr);
  CHECK(error->find_child("text")->text() == filterproc::kBounceText);
  // The guard checked what crossed, not what arrived.
  REQUIRE(guard_saw.size() == 1);
  CHECK(guard_saw[0] == out->body);

  const auto ds = decisions(fx.audit_dir.cfg.dir);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].outcome == audit::Outcome::Modified);
  CHECK(ds[0].original == body);
  REQUIRE(ds[0].released.has_value());
  CHECK(*ds[0].released == out->body);
  CHECK(note(ds[0], "transformation") == "error-text-removed");
  CHECK(logged(fx, "error text not carried across: 'Server-to-server connection failed: stream error from peer: FAR-SECRET'"));
  CHECK(fx.filter->counters().error_texts_removed == 1);
}

TEST_CASE("an error from a far peer that the policy releases crosses with its type and condition only",
          "[filterproc][errortext]") {
  Fixture fx;
  const std::string body =
      "<message xmlns='jabber:server' from='bob@b.test/r' to='alice@a.test/r' type='error' id='m2'>"
      "<body>hello</body>"
      "<error type='cancel' by='bob@b.test'>"
      "<gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>xmpp:covert-uri@b.test</gone>"
      "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>free text from the far side</text>"
      "<app-detail xmlns='urn:example:app'>more</app-detail></error></message>";
  REQUIRE(fx.high.channel->send(Fixture::stanza_frame(body, ipc::Direction::HighToLow, 12, "b.test")));
  fx.pump_until([&] { return first_stanza(fx.low) && has_ack(fx.high, 12); });
  const ipc::Frame* out = first_stanza(fx.low);
  CHECK(out->body.find("covert") == std::string::npos);
  CHECK(out->body.find("free text") == std::string::npos);
  CHECK(out->body.find("app-detail") == std::string::npos);
  auto reply = xmpp::parse_element(out->body);
  REQUIRE(reply);
  // The rest of the stanza is the policy's business, and the policy released it.
  REQUIRE(reply->find_child("body") != nullptr);
  CHECK(reply->find_child("body")->text() == "hello");
  const auto* error = reply->find_child("error");
  REQUIRE(error != nullptr);
  CHECK(error->attr_or("type") == "cancel");
  CHECK(error->attr("by") == nullptr);
  REQUIRE(error->child_elements().size() == 1);
  CHECK(defined_condition(*error)->name() == "gone");
  CHECK(defined_condition(*error)->children().empty());
  const auto ds = decisions(fx.audit_dir.cfg.dir);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].outcome == audit::Outcome::Modified);
  CHECK(ds[0].original == body);
  CHECK(logged(fx, "error text not carried across: 'free text from the far side'"));
}

TEST_CASE("an IRC link's note crosses inside an error, rebuilt from its closed words; one out of them does not",
          "[filterproc][errortext]") {
  Fixture fx;
  auto send = [&](const std::string& note, std::uint64_t seq) {
    const std::string body =
        "<message xmlns='jabber:server' from='bob@b.test/r' to='alice@a.test/r' type='error' id='m" +
        std::to_string(seq) + "'><error type='continue' by='ops@irc.b.test'>"
        "<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>free text</text>" + note + "</error></message>";
    REQUIRE(fx.high.channel->send(Fixture::stanza_frame(body, ipc::Direction::HighToLow, seq, "b.test")));
    fx.pump_until([&] { return has_ack(fx.high, seq); });
  };
  send("<irc xmlns='urn:portcullis:rooms:irc:1' lines='8' reason='line-cap'/>", 21);
  const ipc::Frame* out = first_stanza(fx.low);
  REQUIRE(out != nullptr);
  CHECK(out->body.find("free text") == std::string::npos);
  CHECK(out->body.find("ops@irc") == std::string::npos);   // 'by' is free text: it stays
  auto reply = xmpp::parse_element(out->body);
  REQUIRE(reply);
  auto note = portcullis::rooms::read_irc_note(*reply);
  REQUIRE(note);
  CHECK(note->reason == portcullis::rooms::IrcNoteReason::LineCap);
  CHECK(note->lines == 8);
  fx.low.received.clear();
  send("<irc xmlns='urn:portcullis:rooms:irc:1' reason='line-cap' lines='8'>covert</irc>", 22);
  out = first_stanza(fx.low);
  REQUIRE(out != nullptr);   // the error crosses, without the note
  CHECK(out->body.find("covert") == std::string::npos);
  CHECK(out->body.find("urn:portcullis:rooms:irc:1") == std::string::npos);
}
