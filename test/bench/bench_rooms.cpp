// bench_rooms: what the hosted FMUC rooms (guard/rooms) cost in memory and in
// backfill, measured in one run against baselines measured the same way.
//
//   1. heap per remote occupant: a room takes in R occupants through FMUC
//      presences from its twin (glibc mallinfo2 before/after), vs the same
//      room's heap per LOCAL occupant (the baseline: a plain MUC occupant);
//   2. heap per room: S rooms in one service, vs an empty service;
//   3. backfill: two federated rooms, the link lost, M messages said on one
//      half, the link back: time from the rejoin to the last backfilled message
//      reflected on the other half, vs the time to say the same M messages live
//      (the baseline), and that each arrived exactly once.
//
// usage: bench_rooms [--occupants R] [--rooms S] [--messages M]
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "guard/rooms/room_service.h"
#include "guard/xmpp/stream_parser.h"

using namespace portcullis;
using Clock = std::chrono::steady_clock;

namespace {

std::size_t heap() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks;
}

xmpp::Element parse(const std::string& s) {
  std::string err;
  auto e = xmpp::parse_element(s, {}, &err);
  if (!e) {
    std::fprintf(stderr, "bench_rooms: cannot parse %s: %s\n", s.c_str(), err.c_str());
    std::exit(1);
  }
  return *e;
}

config::RoomServiceSpec spec(const std::string& domain, const std::string& twin, bool upstream, std::size_t history) {
  config::RoomServiceSpec s;
  s.domain = domain;
  s.ping_interval_ms = 15000;
  s.retry_ms = 1000;
  config::RoomSpec r;
  r.name = "ops";
  r.history = history;
  if (upstream) r.federate_with = "ops@" + twin;
  else r.accept_from = {"ops@" + twin};
  s.rooms = {r};
  return s;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::size_t occupants = 5000, room_count = 1000, messages = 1000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::size_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--occupants") occupants = v;
    else if (a == "--rooms") room_count = v;
    else if (a == "--messages") messages = v;
    else {
      std::fprintf(stderr, "bench_rooms: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  const std::string key = "bench-key-0123456789abcdef";
  std::int64_t now = 1'700'000'000'000;

  // 1. heap per occupant: remote (FMUC presence from the twin) vs local.
  {
    rooms::RoomService high(spec("rooms.high.test", "rooms.low.test", false, 50), key);
    rooms::Outputs out;
    // The twin joins first (one FMUC join), then R occupants arrive through it.
    high.on_federated(parse("<presence xmlns='jabber:server' from='ops@rooms.low.test/first' to='ops@rooms.high.test/first'>"
                            "<fmuc xmlns='http://isode.com/protocol/fmuc' from='first@anon.test/1'/>"
                            "<x xmlns='http://jabber.org/protocol/muc'/><x xmlns='http://jabber.org/protocol/muc#user'>"
                            "<item affiliation='none' role='participant'/></x></presence>"),
                      now, out);
    out.clear();
    const std::size_t h0 = heap();
    for (std::size_t i = 0; i < occupants; ++i) {
      const std::string n = "user" + std::to_string(i);
      high.on_federated(parse("<presence xmlns='jabber:server' from='ops@rooms.low.test/" + n + "' to='ops@rooms.high.test'>"
                              "<fmuc xmlns='http://isode.com/protocol/fmuc' from='" + n +
                              "0123456789abcdef0123@anon.boundary.test/abcdef012345'/>"
                              "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x>"
                              "</presence>"),
                        now, out);
      out.clear();
    }
    const std::size_t remote = (heap() - h0) / occupants;
    rooms::RoomService local(spec("rooms.l2.test", "rooms.x.test", false, 50), key);
    const std::size_t h1 = heap();
    for (std::size_t i = 0; i < occupants; ++i) {
      const std::string n = "user" + std::to_string(i);
      local.on_local(parse("<presence xmlns='jabber:server' from='" + n + "@a.test/laptop' to='ops@rooms.l2.test/" + n +
                           "'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"),
                     now, out);
      out.clear();   // (a local join answers with the whole roster: not kept)
    }
    const std::size_t loc = (heap() - h1) / occupants;
    std::printf("memory per remote occupant: %zu bytes (%zu occupants; goal <= 2048), per local occupant %zu bytes, "
                "ratio remote/local %.2f\n",
                remote, occupants, loc, loc ? static_cast<double>(remote) / static_cast<double>(loc) : 0.0);
  }

  // 2. heap per room.
  {
    const std::size_t h0 = heap();
    config::RoomServiceSpec s;
    s.domain = "rooms.many.test";
    for (std::size_t i = 0; i < room_count; ++i) {
      config::RoomSpec r;
      r.name = "room" + std::to_string(i);
      r.subject = "subject of room " + std::to_string(i);
      r.history = 50;
      s.rooms.push_back(r);
    }
    const std::size_t h_spec = heap();
    {
      rooms::RoomService svc(s, key);
      const std::size_t per_room = (heap() - h_spec) / room_count;
      std::printf("memory per room (empty, history 50): %zu bytes (%zu rooms; the config's own spec: %zu bytes per room)\n",
                  per_room, room_count, (h_spec - h0) / room_count);
    }
  }

  // 3. backfill after an outage vs the same messages live.
  {
    rooms::RoomService low(spec("rooms.low.test", "rooms.high.test", true, messages + 10), key);
    rooms::RoomService high(spec("rooms.high.test", "rooms.low.test", false, messages + 10), key);
    std::map<std::string, int> got;   // body -> times reflected to bob
    bool up = true;
    auto pump = [&](rooms::Outputs out, bool from_low) {
      while (!out.empty()) {
        rooms::Outputs next;
        for (auto& o : out) {
          if (!o.to_peer) {
            if (o.stanza.attr_or("to") == "bob@b.test/r" && o.stanza.name() == "message") {
              if (const xmpp::Element* b = o.stanza.find_child("body")) ++got[b->text()];
            }
            continue;
          }
          if (up) (from_low ? high : low).on_federated(o.stanza, now, next);
        }
        out = std::move(next);
        from_low = !from_low;
      }
    };
    rooms::Outputs out;
    high.on_local(parse("<presence xmlns='jabber:server' from='bob@b.test/r' to='ops@rooms.high.test/bob'>"
                        "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"),
                  now, out);
    pump(std::move(out), false);
    out = {};
    low.on_local(parse("<presence xmlns='jabber:server' from='alice@a.test/r' to='ops@rooms.low.test/alice'>"
                       "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"),
                 now, out);
    pump(std::move(out), true);
    auto say = [&](const std::string& body) {
      rooms::Outputs o;
      low.on_local(parse("<message xmlns='jabber:server' from='alice@a.test/r' to='ops@rooms.low.test' type='groupchat'>"
                         "<body>" + body + "</body></message>"),
                   ++now, o);
      pump(std::move(o), true);
    };
    const auto t_live0 = Clock::now();
    for (std::size_t i = 0; i < messages; ++i) say("live " + std::to_string(i));
    const double live_ms = ms(Clock::now() - t_live0);
    // The outage.
    up = false;
    out = {};
    low.links_lost([](const std::string&) { return true; }, "bench", now, out);
    high.links_lost([](const std::string&) { return true; }, "bench", now, out);
    pump(std::move(out), true);
    for (std::size_t i = 0; i < messages; ++i) say("outage " + std::to_string(i));
    up = true;
    now += 10000;
    const auto t0 = Clock::now();
    out = {};
    low.tick(now, out);   // the rejoin and, once the answer is in, the backfill
    pump(std::move(out), true);
    const double backfill_ms = ms(Clock::now() - t0);
    std::size_t once = 0, twice = 0;
    for (std::size_t i = 0; i < messages; ++i) {
      const int n = got["outage " + std::to_string(i)];
      if (n == 1) ++once;
      if (n > 1) ++twice;
    }
    std::printf("backfill of %zu messages said during an outage: %.1f ms from the rejoin to the last one reflected "
                "(%zu delivered once, %zu more than once); the same messages live: %.1f ms; ratio backfill/live %.2f\n",
                messages, backfill_ms, once, twice, live_ms, live_ms > 0 ? backfill_ms / live_ms : 0.0);
    if (once != messages || twice != 0) return 1;
  }
  return 0;
}
