// portcullis-audit: the accreditor's view of the audit archive.
//
//   portcullis-audit keygen --secret FILE --public FILE
//   portcullis-audit verify DIR --pubkey KEY [--pubkey KEY...] [--expect-seq N] [--quiet]
//   portcullis-audit search DIR [--pubkey KEY...] [query options]
//   portcullis-audit show DIR SEQ [--pubkey KEY...]
//   portcullis-audit export DIR --format json|csv [--pubkey KEY...] [query options]
//   portcullis-audit report DIR --html FILE [--pubkey KEY...] [query options]
//   portcullis-audit --help | --version
//
// Exit status (guard/cli/command_line.h): 0 success; 1 verification found a
// fault or an unauthenticated end (verify, report) or an input cannot be read;
// 2 bad command line (one line on stderr); 3 search/show/export printed what
// was asked from an archive that does not verify (and said so on stderr).
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "guard/audit/keys.h"
#include "guard/cli/command_line.h"
#include "guard/audit/reader.h"
#include "guard/audit/verify.h"
#include "tools/audit/query.h"

namespace portcullis::audit::tool {

int run_report(const std::string& dir, const std::string& html_file, const std::vector<std::string>& pubkeys,
               const Query& q);

namespace {

constexpr const char* kUsage =
    "usage: portcullis-audit keygen --secret FILE --public FILE\n"
    "       portcullis-audit verify DIR --pubkey KEY [--pubkey KEY...] [--expect-seq N] [--quiet]\n"
    "       portcullis-audit search DIR [--pubkey KEY...] [--from TIME] [--to TIME] [--jid JID]\n"
    "                               [--domain D] [--direction low-to-high|high-to-low]\n"
    "                               [--verdict released|rejected|modified|shadow] [--rule ID]\n"
    "                               [--label TEXT] [--type decision|connection|admin|checkpoint]\n"
    "       portcullis-audit show DIR SEQ [--pubkey KEY...]\n"
    "       portcullis-audit export DIR --format json|csv [--pubkey KEY...] [query options as for search]\n"
    "       portcullis-audit report DIR --html FILE [--pubkey KEY...] [query options]\n"
    "       portcullis-audit --help | --version\n"
    "TIME: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS]Z or @UNIXSECONDS (UTC)\n"
    "--expect-seq N: the archive must reach seq N (e.g. the last seq of the syslog summary)\n"
    "search, show and export verify the archive first (with --pubkey KEY: its signatures too)\n"
    "exit status: 0 ok, 1 the archive does not verify (verify, report) or an input cannot\n"
    "be read, 2 bad command line, 3 search/show/export printed records of an archive that\n"
    "does not verify\n";

constexpr const char* kProgram = "portcullis-audit";

std::vector<std::string> load_keys(const std::vector<std::string>& files) {
  std::vector<std::string> keys;
  for (const auto& f : files) {
    try {
      keys.push_back(load_public_key(f));
    } catch (const std::exception& e) {
      throw InputError{e.what()};
    }
  }
  return keys;
}

void read_or_throw(const std::string& dir, const std::function<bool(const StoredRecord&, const RecordLocation&)>& fn) {
  std::string err;
  if (!read_archive(dir, fn, [](const std::string& p) { std::cerr << "warning: " << p << "\n"; }, &err))
    throw InputError{err};
}

// A record number (seq) on the command line: decimal digits only.
std::uint64_t parse_seq(const std::string& what, const std::string& text) {
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoull(text) == 0)
    throw UsageError{what + " must be a record number (1 or more), got \"" + text + "\""};
  return std::stoull(text);
}

// search, show and export verify the archive before they read it. What they
// were asked for is printed even from an archive that does not verify (the
// accreditor may need to see it), but with one warning line on stderr after it
// and exit 3, so neither a reader nor a script takes it for authenticated.
class ArchiveTrust {
 public:
  ArchiveTrust(const std::string& dir, const std::vector<std::string>& keyfiles) : dir_(dir) {
    VerifyOptions o;
    o.public_keys = load_keys(keyfiles);
    const VerifyReport r = verify_archive(dir, o);
    if (r.faults.size() == 1 && r.faults[0].kind == FaultKind::Unreadable && r.segments == 0)
      throw InputError{r.faults[0].file + ": " + r.faults[0].message};
    verified_ = r.verified();
    summary_ = r.summary_line();
  }

  // Called last: the exit status, after the warning when there is one.
  int finish() const {
    if (verified_) return cli::kExitOk;
    std::cerr << kProgram << ": WARNING: archive " << dir_ << " does not verify, the output above is not "
              << "authenticated (" << summary_ << ")\n";
    return cli::kExitNegative;
  }

 private:
  std::string dir_;
  bool verified_ = false;
  std::string summary_;
};

int cmd_keygen(const std::vector<std::string>& a) {
  std::string secret, pub;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if ((a[i] == "--secret" || a[i] == "--public") && i + 1 < a.size()) {
      std::string& target = a[i] == "--secret" ? secret : pub;
      target = a[++i];
    }
    else throw UsageError{"keygen: unexpected argument \"" + a[i] + "\""};
  }
  if (secret.empty() || pub.empty()) throw UsageError{"keygen: --secret FILE and --public FILE are required"};
  try {
    generate_key_pair(secret, pub);
  } catch (const std::exception& e) {
    throw InputError{e.what()};
  }
  std::cout << "created " << secret << " (mode 0600) and " << pub << ", key id " << key_id(load_public_key(pub)) << "\n";
  return 0;
}

int cmd_verify(const std::vector<std::string>& a) {
  std::string dir;
  std::vector<std::string> keyfiles;
  std::uint64_t expect_seq = 0;
  bool quiet = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--pubkey" && i + 1 < a.size()) keyfiles.push_back(a[++i]);
    else if (a[i] == "--expect-seq" && i + 1 < a.size()) expect_seq = parse_seq("verify: --expect-seq", a[++i]);
    else if (a[i] == "--quiet") quiet = true;
    else if (dir.empty() && a[i].rfind("--", 0) != 0) dir = a[i];
    else throw UsageError{"verify: unexpected argument \"" + a[i] + "\""};
  }
  if (dir.empty()) throw UsageError{"verify: DIR is required"};
  if (keyfiles.empty()) throw UsageError{"verify: --pubkey KEY is required (the archive's public key file)"};
  VerifyOptions o;
  o.public_keys = load_keys(keyfiles);
  o.expect_seq = expect_seq;
  if (!quiet)
    o.progress = [](const VerifyProgress& p) {
      std::cerr << "verify: " << p.records << " records, segment " << p.segments_done + 1 << "/" << p.segments_total
                << " (" << p.current_file << ")\n";
    };
  const VerifyReport r = verify_archive(dir, o);
  if (r.faults.size() == 1 && r.faults[0].kind == FaultKind::Unreadable && r.segments == 0)
    throw InputError{r.faults[0].file + ": " + r.faults[0].message};
  constexpr std::size_t kMaxListed = 50;
  for (std::size_t i = 0; i < r.faults.size() && i < kMaxListed; ++i) std::cout << r.faults[i].describe() << "\n";
  if (r.faults.size() > kMaxListed) std::cout << "... " << r.faults.size() - kMaxListed << " more faults\n";
  for (const auto& n : r.notes) std::cout << "note: " << n << "\n";
  std::cout << r.summary_line() << "\n";
  return r.verified() ? cli::kExitOk : cli::kExitFailed;
}

std::string pretty_xml(const std::string& bytes) {
  // No network, no entity expansion, no DTD loading: the stanza is hostile input.
  xmlDocPtr doc = xmlReadMemory(bytes.data(), static_cast<int>(bytes.size()), nullptr, "UTF-8",
                                XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!doc) return bytes + "\n(not well-formed on its own; shown raw)";
  xmlBufferPtr buf = xmlBufferCreate();
  xmlNodeDump(buf, doc, xmlDocGetRootElement(doc), 0, 1);
  std::string out(reinterpret_cast<const char*>(xmlBufferContent(buf)), static_cast<std::size_t>(xmlBufferLength(buf)));
  xmlBufferFree(buf);
  xmlFreeDoc(doc);
  return out;
}

int cmd_show(const std::vector<std::string>& a) {
  std::vector<std::string> pos, keyfiles;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--pubkey" && i + 1 < a.size()) keyfiles.push_back(a[++i]);
    else if (a[i].rfind("--", 0) != 0) pos.push_back(a[i]);
    else throw UsageError{"show: unexpected argument \"" + a[i] + "\""};
  }
  if (pos.size() != 2) throw UsageError{"show: expected DIR SEQ"};
  const std::uint64_t want = parse_seq("show: SEQ", pos[1]);
  const ArchiveTrust trust(pos[0], keyfiles);
  bool found = false;
  read_or_throw(pos[0], [&](const StoredRecord& r, const RecordLocation& loc) {
    if (r.seq != want) return true;
    found = true;
    std::cout << "seq:       " << r.seq << "\n"
              << "time:      " << format_time_us(r.time_us) << "\n"
              << "type:      " << to_string(r.type) << "\n"
              << "location:  " << loc.segment->name << " offset " << loc.offset << " (" << loc.length << " bytes)\n";
    if (const auto* d = std::get_if<DecisionRecord>(&r.body)) {
      std::cout << "outcome:   " << to_string(d->outcome) << "\n"
                << "direction: " << to_string(d->direction) << "\n"
                << "peer:      " << d->peer.domain << " auth=" << d->peer.auth << " tls=" << (d->peer.tls ? "yes" : "no")
                << (d->peer.cert_identity.empty() ? "" : " cert=" + d->peer.cert_identity)
                << (d->peer.tls_params.empty() ? "" : " (" + d->peer.tls_params + ")") << "\n"
                << "stanza:    " << d->stanza_kind << " type=" << d->stanza_type << " id=" << d->stanza_id << "\n"
                << "from:      " << d->from << "\n"
                << "to:        " << d->to << "\n"
                << "labels:    original=\"" << d->label_original << "\" effective=\"" << d->label_effective
                << "\" mapped=\"" << d->label_mapped << "\"\n"
                << "policy:    version=" << d->policy_version << " hash=" << d->policy_hash << "\n";
      if (!d->error_condition.empty()) std::cout << "error:     " << d->error_condition << "\n";
      std::cout << "filters:\n";
      for (std::size_t i = 0; i < d->filters.size(); ++i) {
        const auto& f = d->filters[i];
        std::cout << "  " << i + 1 << ". " << f.filter << " (" << f.type << "): " << f.verdict
                  << (f.rule_id.empty() ? "" : " rule=" + f.rule_id) << (f.shadow ? " [shadow]" : "")
                  << (f.transformation.empty() ? "" : " transformation=" + f.transformation) << "\n";
        for (const auto& [k, v] : f.notes) std::cout << "       " << k << " = " << v << "\n";
      }
      std::cout << "guards:\n";
      for (const auto& g : d->guards)
        std::cout << "  " << g.name << ": " << (g.pass ? "pass" : "BLOCK") << (g.reason.empty() ? "" : " (" + g.reason + ")")
                  << "\n";
      for (const auto& [k, v] : d->notes) std::cout << "note:      " << k << " = " << v << "\n";
      std::cout << "original sha256: " << d->original_sha256 << " (" << d->original.size() << " bytes)\n";
      if (!d->released_sha256.empty())
        std::cout << "released sha256: " << d->released_sha256 << (d->released ? "" : " (same bytes as original)") << "\n";
      std::cout << "--- original stanza ---\n" << pretty_xml(d->original) << "\n";
      if (d->released) std::cout << "--- released stanza ---\n" << pretty_xml(*d->released) << "\n";
    } else {
      std::cout << "record:    " << r.meta_json << "\n";
    }
    return false;
  });
  if (!found) throw InputError{"show: no record with seq " + pos[1] + " in " + pos[0]};
  return trust.finish();
}

int cmd_search(const std::vector<std::string>& a) {
  if (a.empty() || a[0].rfind("--", 0) == 0) throw UsageError{"search: DIR is required"};
  Query q;
  std::vector<std::string> keyfiles;
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--pubkey" && i + 1 < a.size()) keyfiles.push_back(a[++i]);
    else if (!parse_query_option(a, i, q)) throw UsageError{"search: unexpected argument \"" + a[i] + "\""};
  }
  const ArchiveTrust trust(a[0], keyfiles);
  std::uint64_t n = 0;
  read_or_throw(a[0], [&](const StoredRecord& r, const RecordLocation&) {
    if (q.matches(r)) {
      std::cout << one_line(r) << "\n";
      n++;
    }
    return true;
  });
  std::cerr << n << " matching record(s)\n";
  return trust.finish();
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

int cmd_export(const std::vector<std::string>& a) {
  if (a.empty() || a[0].rfind("--", 0) == 0) throw UsageError{"export: DIR is required"};
  Query q;
  std::string format;
  std::vector<std::string> keyfiles;
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--format" && i + 1 < a.size()) format = a[++i];
    else if (a[i] == "--pubkey" && i + 1 < a.size()) keyfiles.push_back(a[++i]);
    else if (!parse_query_option(a, i, q)) throw UsageError{"export: unexpected argument \"" + a[i] + "\""};
  }
  if (format != "json" && format != "csv") throw UsageError{"export: --format json|csv is required"};
  const ArchiveTrust trust(a[0], keyfiles);
  if (format == "csv")
    std::cout << "seq,time,type,outcome,direction,peer,auth,tls,from,to,stanza_kind,stanza_type,stanza_id,rules,"
                 "label_original,label_effective,label_mapped,error,policy_version,original_sha256,released_sha256,event,text\n";
  read_or_throw(a[0], [&](const StoredRecord& r, const RecordLocation& loc) {
    if (!q.matches(r)) return true;
    if (format == "json") {
      // JSON Lines: one object per record.
      json::Object o;
      o["seq"] = r.seq;
      o["time"] = format_time_us(r.time_us);
      o["time_us"] = r.time_us;
      o["type"] = to_string(r.type);
      o["segment_file"] = loc.segment->name;
      o["offset"] = loc.offset;
      auto meta = json::parse(r.meta_json);
      o["record"] = meta ? *meta : json::Value();
      if (const auto* d = std::get_if<DecisionRecord>(&r.body)) {
        o["original"] = d->original;
        if (d->released) o["released"] = *d->released;
      }
      std::cout << json::dump(o) << "\n";
      return true;
    }
    std::vector<std::string> f(23);
    f[0] = std::to_string(r.seq);
    f[1] = format_time_us(r.time_us);
    f[2] = to_string(r.type);
    if (const auto* d = std::get_if<DecisionRecord>(&r.body)) {
      std::string rules;
      for (const auto& x : deciding_rules(*d)) rules += (rules.empty() ? "" : " ") + x;
      f[3] = to_string(d->outcome);
      f[4] = to_string(d->direction);
      f[5] = d->peer.domain;
      f[6] = d->peer.auth;
      f[7] = d->peer.tls ? "yes" : "no";
      f[8] = d->from;
      f[9] = d->to;
      f[10] = d->stanza_kind;
      f[11] = d->stanza_type;
      f[12] = d->stanza_id;
      f[13] = rules;
      f[14] = d->label_original;
      f[15] = d->label_effective;
      f[16] = d->label_mapped;
      f[17] = d->error_condition;
      f[18] = d->policy_version;
      f[19] = d->original_sha256;
      f[20] = d->released_sha256;
    } else if (const auto* c = std::get_if<ConnectionEvent>(&r.body)) {
      f[5] = c->peer.domain;
      f[6] = c->peer.auth;
      f[7] = c->peer.tls ? "yes" : "no";
      f[21] = c->kind;
      f[22] = c->text;
    } else if (const auto* ad = std::get_if<AdminEvent>(&r.body)) {
      f[21] = ad->kind;
      f[22] = ad->text;
    } else {
      f[21] = "checkpoint";
    }
    for (std::size_t i = 0; i < f.size(); ++i) std::cout << (i ? "," : "") << csv_field(f[i]);
    std::cout << "\n";
    return true;
  });
  return trust.finish();
}

int cmd_report(const std::vector<std::string>& a) {
  if (a.empty()) throw UsageError{"report: DIR is required"};
  Query q;
  std::string html;
  std::vector<std::string> keyfiles;
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--html" && i + 1 < a.size()) html = a[++i];
    else if (a[i] == "--pubkey" && i + 1 < a.size()) keyfiles.push_back(a[++i]);
    else if (!parse_query_option(a, i, q)) throw UsageError{"report: unexpected argument \"" + a[i] + "\""};
  }
  if (html.empty()) throw UsageError{"report: --html FILE is required"};
  for (const auto& k : keyfiles) load_keys({k});
  return run_report(a[0], html, keyfiles, q);
}

}  // namespace
}  // namespace portcullis::audit::tool

int main(int argc, char** argv) {
  using namespace portcullis::audit::tool;
  namespace cli = portcullis::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (auto done = cli::answer_help_or_version(args, kProgram, kUsage)) return *done;
  if (args.empty()) return cli::usage_error(kProgram, "no command (keygen, verify, search, show, export, report)");
  const std::string cmd = args[0];
  args.erase(args.begin());
  try {
    if (cmd == "keygen") return cmd_keygen(args);
    if (cmd == "verify") return cmd_verify(args);
    if (cmd == "search") return cmd_search(args);
    if (cmd == "show") return cmd_show(args);
    if (cmd == "export") return cmd_export(args);
    if (cmd == "report") return cmd_report(args);
    throw UsageError{"unknown command \"" + cmd + "\" (keygen, verify, search, show, export, report)"};
  } catch (const UsageError& e) {
    return cli::usage_error(kProgram, e.message);
  } catch (const InputError& e) {
    std::cerr << kProgram << ": " << e.message << "\n";
    return cli::kExitFailed;
  } catch (const std::exception& e) {
    std::cerr << kProgram << ": " << e.what() << "\n";
    return cli::kExitFailed;
  }
}
