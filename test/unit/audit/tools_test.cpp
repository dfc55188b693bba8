// portcullis-audit, the built binary, on a generated archive: exit codes,
// output lines, the HTML report.
#include <sys/wait.h>

#include <cstdio>
#include <algorithm>
#include <fstream>
#include <sstream>

#include "guard/audit/keys.h"
#include "test/unit/audit/audit_test_support.h"

using namespace audit_test;

namespace {

struct Run {
  int status = -1;
  std::string out;
  std::string err;
  std::vector<std::string> lines() const {
    std::vector<std::string> v;
    std::istringstream is(out);
    for (std::string l; std::getline(is, l);) v.push_back(l);
    return v;
  }
};

Run run_tool(const std::string& root, const std::string& args) {
  const std::string errfile = root + "/stderr.txt";
  const std::string cmd = std::string(PORTCULLIS_BINARY_DIR) + "/tools/audit/portcullis-audit " + args + " 2>" + errfile;
  Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = slurp(errfile);
  return r;
}

// 40 decisions (10 rejected, 10 modified, 4 shadow), one connection event, one policy load.
void populate(Harness& h) {
  AuditArchive a(h.loop, h.cfg, h.log);
  std::vector<Record> recs;
  for (int i = 0; i < 40; ++i) recs.push_back(decision(i));
  recs.push_back(connection_event("auth-failure"));
  recs.push_back(admin_event("policy-load", "policy v7 loaded"));
  for (const auto& r : h.append_all(a, std::move(recs))) REQUIRE(r.ok);
}

// A populated, closed archive, its directory and the --pubkey arguments that verify it.
struct PopulatedArchive {
  Harness h;
  std::string dir = h.cfg.dir;
  std::string key = " --pubkey " + h.cfg.public_key_file;
  PopulatedArchive() { populate(h); }
};

int count_outcome(Outcome o) {
  int n = 0;
  for (int i = 0; i < 40; ++i) n += std::get<DecisionRecord>(decision(i).body).outcome == o;
  return n;
}

}  // namespace

TEST_CASE("tool: keygen and verify", "[audit][tool]") {
  Harness h;
  const auto kg = run_tool(h.root, "keygen --secret " + h.root + "/k2.key --public " + h.root + "/k2.pub");
  CHECK(kg.status == 0);
  CHECK(kg.out.find("created") == 0);
  CHECK(run_tool(h.root, "keygen --secret " + h.root + "/k2.key --public " + h.root + "/k3.pub").status == 1);

  populate(h);
  const auto v = run_tool(h.root, "verify " + h.cfg.dir + " --pubkey " + h.cfg.public_key_file);
  CHECK(v.status == 0);
  REQUIRE_FALSE(v.lines().empty());
  CHECK(v.lines().back().rfind("OK: ", 0) == 0);
  CHECK(v.lines().back().find("in 1 segments") != std::string::npos);
  CHECK(v.err.find("verify: ") != std::string::npos);   // progress on stderr

  // Wrong key: the signatures fail, exit 1.
  const auto wrong = run_tool(h.root, "verify " + h.cfg.dir + " --pubkey " + h.root + "/k2.pub");
  CHECK(wrong.status == 1);
  CHECK(wrong.out.find("UNKNOWN-KEY") != std::string::npos);

  // A flipped byte: exit 1, the FAULT line names the file.
  auto segs = list_segments(h.cfg.dir);
  std::string d = slurp(segs[0].path);
  const auto fr = frames_of(d);
  d[fr[5].offset + kFrameHeaderBytes + 3] ^= 1;
  spit(segs[0].path, d);
  const auto t = run_tool(h.root, "verify " + h.cfg.dir + " --pubkey " + h.cfg.public_key_file + " --quiet");
  CHECK(t.status == 1);
  CHECK(t.lines().back().rfind("FAULT: HASH-MISMATCH " + segs[0].name + " offset " + std::to_string(fr[5].offset), 0) == 0);

  // Bad usage: exit 2 and one readable line.
  const std::vector<std::string> usage = {"verify", "verify " + h.cfg.dir, "frobnicate",
                                         "search " + h.cfg.dir + " --verdict maybe",
                                         "search " + h.cfg.dir + " --from yesterday", "show " + h.cfg.dir + " abc",
                                         "export " + h.cfg.dir + " --format xml"};
  // An input that cannot be read: exit 1 and one readable line.
  const std::vector<std::string> unreadable = {"verify /nonexistent --pubkey " + h.cfg.public_key_file,
                                              "verify " + h.cfg.dir + " --pubkey " + h.cfg.dir, "search /nonexistent"};
  for (const auto& [cases, status] : {std::pair{&usage, 2}, std::pair{&unreadable, 1}}) {
    for (const std::string& bad : *cases) {
      INFO(bad);
      const auto r = run_tool(h.root, bad);
      CHECK(r.status == status);
      CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
      CHECK(r.err.rfind("portcullis-audit: ", 0) == 0);
    }
  }
}

TEST_CASE_METHOD(PopulatedArchive, "tool: search, show and export", "[audit][tool]") {
  const auto all = run_tool(h.root, "search " + dir + key + " --type decision");
  CHECK(all.status == 0);
  CHECK(all.lines().size() == 40);

  const auto rej = run_tool(h.root, "search " + dir + " --verdict rejected");
  CHECK(rej.lines().size() == static_cast<std::size_t>(count_outcome(Outcome::Rejected)));
  for (const auto& l : rej.lines()) CHECK(l.find(" decision rejected ") != std::string::npos);

  CHECK(run_tool(h.root, "search " + dir + " --direction high-to-low").lines().size() == 20);
  CHECK(run_tool(h.root, "search " + dir + " --jid carol@high.example").lines().size() == 20);
  CHECK(run_tool(h.root, "search " + dir + " --jid carol@high.example/desk").lines().size() == 20);
  CHECK(run_tool(h.root, "search " + dir + " --jid carol@high.example/other").lines().empty());
  CHECK(run_tool(h.root, "search " + dir + " --label SECRET --type decision").lines().size() == 14);   // i % 3 == 0
  CHECK(run_tool(h.root, "search " + dir + " --rule rule-2").lines().size() == 13);
  // --domain also finds the connection event from that peer.
  const auto evil = run_tool(h.root, "search " + dir + " --domain evil.example");
  REQUIRE(evil.lines().size() == 1);
  CHECK(evil.lines()[0].find("connection auth-failure peer=evil.example") != std::string::npos);
  CHECK(run_tool(h.root, "search " + dir + " --from 2000-01-01 --to 2000-01-02").lines().empty());
  CHECK(run_tool(h.root, "search " + dir + " --from 2000-01-01T00:00Z --type decision").lines().size() == 40);

  // show: the record with its stanza pretty-printed.
  const auto first = rej.lines()[0];
  const std::string seq = first.substr(0, first.find(' '));
  const auto sh = run_tool(h.root, "show " + dir + " " + seq + key);
  CHECK(sh.status == 0);
  CHECK(sh.out.find("outcome:   rejected") != std::string::npos);
  CHECK(sh.out.find("error:     not-authorized") != std::string::npos);
  CHECK(sh.out.find("2. labels (label-access): reject rule=rule-1") != std::string::npos);
  CHECK(sh.out.find("--- original stanza ---\n<message") != std::string::npos);
  CHECK(sh.out.find("\n  <body>hello 1</body>\n</message>") != std::string::npos);   // indented
  CHECK(run_tool(h.root, "show " + dir + " 999999").status == 1);

  // export csv: header + one line per record; json: one object per line.
  const auto csv = run_tool(h.root, "export " + dir + " --format csv --type decision" + key);
  CHECK(csv.status == 0);
  REQUIRE(csv.lines().size() == 41);
  CHECK(csv.lines()[0].rfind("seq,time,type,outcome,direction,peer", 0) == 0);
  const auto js = run_tool(h.root, "export " + dir + " --format json --verdict modified" + key);
  CHECK(js.status == 0);
  REQUIRE(js.lines().size() == static_cast<std::size_t>(count_outcome(Outcome::Modified)));
  for (const auto& l : js.lines()) {
    auto v = json::parse(l);
    REQUIRE(v);
    CHECK((*v)["record"]["outcome"].as_string() == "modified");
    CHECK((*v)["released"].as_string().find("mapped") != std::string::npos);
    CHECK((*v)["original"].as_string().rfind("<message", 0) == 0);
  }
}

namespace {

// The last line of stderr, which is where a reading command puts its warning.
std::string last_err_line(const Run& r) {
  std::string e = r.err;
  while (!e.empty() && e.back() == '\n') e.pop_back();
  return e.substr(e.rfind('\n') == std::string::npos ? 0 : e.rfind('\n') + 1);
}

// search, show and export on `dir`: each prints what was asked, then (exit 3) one
// warning line naming the verifier's verdict `why`; or exit 0 and no warning.
void check_reading_commands(Harness& h, const std::string& dir, const std::string& args, bool verifies,
                            const std::string& why) {
  const std::string warning = "portcullis-audit: WARNING: archive " + dir + " does not verify";
  const auto search = run_tool(h.root, "search " + dir + " --type decision" + args);
  const auto show = run_tool(h.root, "show " + dir + " 5" + args);
  const auto exported = run_tool(h.root, "export " + dir + " --format json --type decision" + args);
  for (const Run* r : {&search, &show, &exported}) {
    INFO(r->err);
    CHECK_FALSE(r->out.empty());
    if (verifies) {
      CHECK(r->status == 0);
      CHECK(r->err.find("WARNING") == std::string::npos);
    } else {
      CHECK(r->status == 3);
      CHECK(r->err.find("WARNING") == r->err.rfind("WARNING"));   // one warning line, the last one
      CHECK(last_err_line(*r).rfind(warning, 0) == 0);
      CHECK(last_err_line(*r).find(why) != std::string::npos);
    }
  }
}

}  // namespace

TEST_CASE_METHOD(PopulatedArchive,
                 "tool: an archive cut at a record boundary does not verify; --expect-seq finds a cut at a checkpoint",
                 "[audit][tool]") {  const auto whole = run_tool(h.root, "verify " + dir + key + " --quiet");
  REQUIRE(whole.status == 0);
  check_reading_commands(h, dir, key, true, "");
  // Without a key nothing is authenticated: the readers say so.
  check_reading_commands(h, dir, "", false, "UNVERIFIED: checkpoint signatures not checked (no public key)");
  const std::string last_seq = std::to_string(h.verify().last_seq);
  CHECK(run_tool(h.root, "verify " + dir + key + " --quiet --expect-seq " + last_seq).status == 0);

  const auto segs = list_segments(dir);
  REQUIRE(segs.size() == 1);
  const std::string d = slurp(segs[0].path);
  const auto fr = frames_of(d);
  REQUIRE(fr.size() > 30);
  REQUIRE(fr.back().type == RecordType::Checkpoint);
  REQUIRE(fr[fr.size() - 2].type != RecordType::Checkpoint);

  // Cut before the closing stop record and its checkpoint: every record left is intact, yet unverified.
  spit(segs[0].path, d.substr(0, fr[fr.size() - 2].offset));
  const auto cut = run_tool(h.root, "verify " + dir + key + " --quiet");
  CHECK(cut.status == 1);
  REQUIRE_FALSE(cut.lines().empty());
  CHECK(cut.lines().back().rfind("UNVERIFIED: ", 0) == 0);
  CHECK(cut.lines().back().find("no closing record ends the archive") != std::string::npos);
  check_reading_commands(h, dir, key, false, "UNVERIFIED: ");

  // Cut just after a checkpoint in the middle: it verifies, but not against the expected seq.
  std::size_t cp = fr.size() / 2;
  while (fr[cp].type != RecordType::Checkpoint) ++cp;
  spit(segs[0].path, d.substr(0, fr[cp].offset + fr[cp].length));
  CHECK(run_tool(h.root, "verify " + dir + key + " --quiet").status == 0);
  const auto expected = run_tool(h.root, "verify " + dir + key + " --quiet --expect-seq " + last_seq);
  CHECK(expected.status == 1);
  REQUIRE_FALSE(expected.lines().empty());
  CHECK(expected.lines().back().rfind("FAULT: MISSING-END " + segs[0].name, 0) == 0);
  CHECK(expected.lines().back().find("seqs " + std::to_string(fr[cp].seq + 1) + ".." + last_seq + " missing") !=
        std::string::npos);
  for (const char* bad : {"abc", "0", "-1", "99999999999999999999"}) {
    INFO(bad);
    CHECK(run_tool(h.root, "verify " + dir + key + " --expect-seq " + std::string(bad)).status == 2);
  }
}

TEST_CASE("tool: the reading commands warn about a tampered archive", "[audit][tool]") {
  Harness h;
  populate(h);
  const auto segs = list_segments(h.cfg.dir);
  std::string d = slurp(segs[0].path);
  const auto fr = frames_of(d);
  d[fr[20].offset + kFrameHeaderBytes + 3] ^= 1;
  spit(segs[0].path, d);
  check_reading_commands(h, h.cfg.dir, " --pubkey " + h.cfg.public_key_file, false,
                         "FAULT: HASH-MISMATCH " + segs[0].name + " offset " + std::to_string(fr[20].offset));
}

TEST_CASE("tool: the HTML report is self-contained with counts and verification status", "[audit][tool]") {
  Harness h;
  populate(h);
  const std::string html = h.root + "/report.html";
  const auto r = run_tool(h.root, "report " + h.cfg.dir + " --html " + html + " --pubkey " + h.cfg.public_key_file);
  CHECK(r.status == 0);
  const std::string page = slurp(html);
  CHECK(page.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(page.find("<svg") != std::string::npos);
  CHECK(page.find("<script") == std::string::npos);
  CHECK(page.find("src=\"http") == std::string::npos);
  CHECK(page.find("href=\"http") == std::string::npos);
  CHECK(page.find("class=\"status ok\" id=\"verification\">OK: ") != std::string::npos);
  CHECK(page.find("<tr><th>decisions</th><td class=\"num\">40</td></tr>") != std::string::npos);
  CHECK(page.find("<tr><td>rejected</td><td class=\"num\">" + std::to_string(count_outcome(Outcome::Rejected)) + "</td></tr>") !=
        std::string::npos);
  CHECK(page.find("<tr><td>high-to-low</td><td class=\"num\">20</td></tr>") != std::string::npos);
  CHECK(page.find("<tr><td>SECRET</td><td class=\"num\">14</td></tr>") != std::string::npos);
  CHECK(page.find("<tr><td>rule-2</td><td class=\"num\">13</td></tr>") != std::string::npos);
  CHECK(page.find("policy-load: policy v7 loaded") != std::string::npos);

  // Without a key the page says so; with a tampered archive it shows the fault and exits 1.
  const auto nokey = run_tool(h.root, "report " + h.cfg.dir + " --html " + html);
  CHECK(nokey.status == 0);
  CHECK(slurp(html).find("NOT VERIFIED") != std::string::npos);
  auto segs = list_segments(h.cfg.dir);
  std::string d = slurp(segs[0].path);
  d[frames_of(d)[3].offset + kFrameHeaderBytes + 3] ^= 1;
  spit(segs[0].path, d);
  const auto bad = run_tool(h.root, "report " + h.cfg.dir + " --html " + html + " --pubkey " + h.cfg.public_key_file);
  CHECK(bad.status == 1);
  CHECK(slurp(html).find("class=\"status fault\" id=\"verification\">FAULT: HASH-MISMATCH") != std::string::npos);
}

namespace {

// The section of `page` from the element with this id to the end of its table.
std::string table_of(const std::string& page, const std::string& id) {
  const std::size_t at = page.find("id=\"" + id + "\"");
  if (at == std::string::npos) return {};
  return page.substr(at, page.find("</table>", at) - at);
}

std::size_t rows_of(const std::string& table) {
  std::size_t n = 0;
  for (std::size_t at = table.find("<tr"); at != std::string::npos; at = table.find("<tr", at + 1)) ++n;
  return n ? n - 1 : 0;   // less the header row
}

// The 40 decisions of populate(), with a rule under trial on the shadow ones,
// then a reload to policy 8 and 5 more decisions under it; a peer that fails
// to authenticate twice and one that succeeds.
void populate_for_report(Harness& h) {
  AuditArchive a(h.loop, h.cfg, h.log);
  std::vector<Record> recs;
  for (int i = 0; i < 40; ++i) {
    Record r = decision(i);
    auto& d = std::get<DecisionRecord>(r.body);
    if (d.outcome == Outcome::Shadow) d.filters.push_back(FilterResult{"trial", "keyword", "reject", "trial-1", true, "", {}});
    recs.push_back(std::move(r));
  }
  recs.push_back(connection_event("auth-failure"));
  recs.push_back(connection_event("auth-failure"));
  Record ok = connection_event("auth-success");
  std::get<ConnectionEvent>(ok.body).peer.domain = "low.example";
  recs.push_back(std::move(ok));
  AdminEvent reload;
  reload.kind = "policy-reload";
  reload.text = "policy reloaded by portcullisctl";
  reload.fields = {{"version", "8"}, {"sha256", "def456"}, {"requested", "control socket uid=0"}};
  recs.push_back(Record{0, std::move(reload)});
  for (int i = 0; i < 5; ++i) {
    Record r = decision(4 * i);   // released, low to high
    std::get<DecisionRecord>(r.body).policy_version = "8";
    std::get<DecisionRecord>(r.body).policy_hash = "def456";
    recs.push_back(std::move(r));
  }
  for (const auto& r : h.append_all(a, std::move(recs))) REQUIRE(r.ok);
}

}  // namespace

TEST_CASE("tool: the report has the per-peer, per-sender, refusal, policy, shadow and key tables",
          "[audit][tool]") {
  Harness h;
  populate_for_report(h);
  const std::string html = h.root + "/report.html";
  const auto r = run_tool(h.root, "report " + h.cfg.dir + " --html " + html + " --pubkey " + h.cfg.public_key_file);
  REQUIRE(r.status == 0);
  const std::string page = slurp(html);
  CHECK(page.find("id=\"trust\"") == std::string::npos);   // everything verified: nothing marked
  CHECK(page.find("unverified)") == std::string::npos);

  // Peers: what each sent and how its authentication went.
  const std::string peers = table_of(page, "peers");
  CHECK(peers.find("<tr><td>low.example</td><td>low</td><td class=\"num\">25</td><td class=\"num\">15</td>"
                   "<td class=\"num\">0</td><td class=\"num\">10</td><td class=\"num\">0</td><td class=\"num\">1</td>"
                   "<td class=\"num\">0</td>") != std::string::npos);
  CHECK(peers.find("<tr><td>high.example</td><td>high</td><td class=\"num\">20</td><td class=\"num\">8</td>"
                   "<td class=\"num\">8</td><td class=\"num\">0</td><td class=\"num\">4</td>") != std::string::npos);
  const std::string fails = table_of(page, "authfail");
  CHECK(rows_of(fails) == 1);
  CHECK(fails.find("<tr><td>evil.example</td><td>low</td><td class=\"num\">2</td>") != std::string::npos);

  // Senders, by bare JID.
  const std::string senders = table_of(page, "senders");
  CHECK(senders.find("<tr><td>alice@low.example</td><td class=\"num\">25</td><td class=\"num\">25</td>"
                     "<td class=\"num\">0</td></tr>") != std::string::npos);
  CHECK(senders.find("<tr><td>carol@high.example</td><td class=\"num\">20</td><td class=\"num\">12</td>"
                     "<td class=\"num\">8</td></tr>") != std::string::npos);

  // Refusals: one row per rejected decision, with the record numbers search gives.
  const std::string refusals = table_of(page, "refusals");
  const auto rej = run_tool(h.root, "search " + h.cfg.dir + " --verdict rejected");
  REQUIRE(rej.lines().size() == static_cast<std::size_t>(count_outcome(Outcome::Rejected)));
  CHECK(rows_of(refusals) == rej.lines().size());
  for (const auto& l : rej.lines()) {
    INFO(l);
    CHECK(refusals.find("<tr><td class=\"num\">" + l.substr(0, l.find(' ')) + "</td>") != std::string::npos);
  }
  CHECK(refusals.find("<td>carol@high.example/desk</td><td>alice@low.example</td><td>message/chat</td><td>labels (label-access) rule rule-1</td>"
                      "<td>not-authorized</td>") != std::string::npos);

  // The policy in force over time: 7 (no load record here), then 8 from its reload.
  const std::string policies = table_of(page, "policies");
  CHECK(rows_of(policies) == 2);
  const std::size_t v7 = policies.find("<td>7</td><td><code>abc123</code></td><td>(no load record in this selection)</td>");
  const std::size_t v8 = policies.find("<td>8</td><td><code>def456</code></td>");
  CHECK(v7 != std::string::npos);
  REQUIRE(v8 != std::string::npos);
  CHECK(v7 < v8);
  CHECK(policies.find("reload control socket uid=0", v8) != std::string::npos);
  CHECK(policies.find("<td class=\"num\">40</td>") != std::string::npos);
  CHECK(policies.find("<td class=\"num\">5</td>", v8) != std::string::npos);

  // Shadow-rule hits: the rule under trial, on the 4 shadow decisions.
  const std::string shadow = table_of(page, "shadow");
  CHECK(shadow.find("<tr><td>trial-1</td><td>trial</td><td class=\"num\">4</td><td class=\"num\">0</td>") !=
        std::string::npos);

  // The signing key, by id, recognised as the one given.
  const std::string keys = table_of(page, "keys");
  const std::string id = key_id(load_public_key(h.cfg.public_key_file));
  CHECK(keys.find("<tr><td><code>" + id + "</code></td>") != std::string::npos);
  CHECK(keys.find("<td>yes</td>") != std::string::npos);
  CHECK(keys.find("<strong>no</strong>") == std::string::npos);
}

TEST_CASE("tool: a report of an archive that does not verify marks every figure it cannot vouch for",
          "[audit][tool]") {
  Harness h;
  populate_for_report(h);
  const std::string html = h.root + "/report.html";
  auto segs = list_segments(h.cfg.dir);
  std::string d = slurp(segs[0].path);
  const auto fr = frames_of(d);
  REQUIRE(fr.size() > 30);
  d[fr[30].offset + kFrameHeaderBytes + 3] ^= 1;   // a record in the middle altered
  spit(segs[0].path, d);
  const auto r = run_tool(h.root, "report " + h.cfg.dir + " --html " + html + " --pubkey " + h.cfg.public_key_file);
  CHECK(r.status == 1);
  const std::string page = slurp(html);
  CHECK(page.find("class=\"status fault\" id=\"verification\">FAULT: HASH-MISMATCH") != std::string::npos);
  // The banner says how many records the figures may not rest on, and from where.
  const std::size_t banner = page.find("<p class=\"trust\" id=\"trust\">");
  REQUIRE(banner != std::string::npos);
  CHECK(page.find("come after seq ", banner) != std::string::npos);
  // The peers' figures count every readable record, with the unverified part shown.
  const std::string peers = table_of(page, "peers");
  INFO(peers);
  // (the altered record itself cannot be read, so one decision is missing)
  CHECK(peers.find("<tr><td>low.example</td><td>low</td><td class=\"num untrusted\">24 <span class=\"untr\">(11 "
                   "unverified)</span>") != std::string::npos);
  // The charts draw the unverified records as their own grey series, not as released.
  CHECK(page.find("<title>(not verified): ") != std::string::npos);
  // Refusals after the fault are marked row by row.
  CHECK(table_of(page, "refusals").find("<tr class=\"untrusted\">") != std::string::npos);

  // Without a key nothing is vouched for: every figure is marked.
  const auto nokey = run_tool(h.root, "report " + h.cfg.dir + " --html " + html);
  CHECK(nokey.status == 0);
  const std::string p2 = slurp(html);
  CHECK(p2.find("(all of them) are not verified: no public key was given") != std::string::npos);
  CHECK(p2.find("<title>released: ") == std::string::npos);
}

TEST_CASE("tool: a record forged with its own hash recomputed is not counted as trusted", "[audit][tool]") {
  Harness h;
  populate_for_report(h);
  auto segs = list_segments(h.cfg.dir);
  std::string d = slurp(segs[0].path);
  auto fr = frames_of(d);
  // Decision m15 (high side, released) becomes m99 with its hash recomputed:
  // its own hash checks out, only the next record no longer links to it.
  std::size_t k = 0;
  for (std::size_t i = 0; i < fr.size(); ++i)
    if (d.find("\"id\":\"m15\"", fr[i].offset) < fr[i].offset + fr[i].length) k = i;
  REQUIRE(k > 0);
  const std::size_t pos = d.find("\"id\":\"m15\"", fr[k].offset);
  d.replace(pos, 10, "\"id\":\"m99\"");
  fr = frames_of(d);
  const auto& g = fr[k];
  d.replace(g.offset + kFrameHeaderBytes + g.payload.size() + kHashBytes, kHashBytes, chain_hash(g.prev_hash, g.hashed));
  spit(segs[0].path, d);
  const std::string html = h.root + "/report.html";
  const auto r = run_tool(h.root, "report " + h.cfg.dir + " --html " + html + " --pubkey " + h.cfg.public_key_file);
  CHECK(r.status == 1);
  const std::string page = slurp(html);
  INFO(page.substr(page.find("id=\"verification\""), 600));
  CHECK(page.find("FAULT: CHAIN-BREAK") != std::string::npos);
  CHECK(page.find("HASH-MISMATCH") == std::string::npos);
  // The forged record's seq is past the trusted end the banner gives.
  const std::size_t at = page.find("come after seq ");
  REQUIRE(at != std::string::npos);
  const std::uint64_t through = std::stoull(page.substr(at + 15));
  CHECK(through < fr[k].seq);
}
