// portcullis-policy: check and trial a security policy file without a running guard.
//
//   portcullis-policy check FILE [--schema-dir DIR]
//       Schema and meaning. Prints "FILE: OK (version V, sha256 H, low->high: N
//       filters, high->low: M filters)" and exits 0, or prints the error with its
//       file:line:column and exits 1.
//   portcullis-policy explain FILE STANZA.xml --direction low-to-high|high-to-low
//       [--peer DOMAIN] [--auth sasl-external|dialback] [--tls yes|no] [--schema-dir DIR]
//       Runs the stanza through that direction's pipeline (policy/policy_explain.h)
//       and prints every filter's verdict, the outcome and the released stanza.
//       Exits 0 when released, 3 when rejected, 1 on a policy or stanza error.
//   portcullis-policy --help | --version
//   Bad usage: one line on stderr, exit 2 (guard/cli/command_line.h).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "guard/cli/command_line.h"
#include "guard/xmpp/jid.h"
#include "policy/policy_explain.h"
#include "policy/policy_file.h"
#include "portcullis_paths.h"

namespace {

using namespace portcullis;

constexpr const char* kProgram = "portcullis-policy";

constexpr const char* kHelp =
    "usage: portcullis-policy check FILE [--schema-dir DIR]\n"
    "       portcullis-policy explain FILE STANZA.xml --direction low-to-high|high-to-low\n"
    "                         [--peer DOMAIN] [--auth sasl-external|dialback] [--tls yes|no]\n"
    "                         [--schema-dir DIR]\n"
    "       portcullis-policy --help | --version\n"
    "Checks a security policy file offline, or runs one stanza through one direction's\n"
    "pipeline and prints every filter's verdict, the outcome and the stanza as released.\n"
    "  --schema-dir DIR   where the XSDs are (default " PORTCULLIS_SCHEMA_DIR ")\n"
    "exit status: 0 valid policy / stanza released, 1 invalid policy or stanza file,\n"
    "2 bad command line, 3 stanza rejected (explain)\n";

int usage(const std::string& why) { return cli::usage_error(kProgram, why); }

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;
};

// Splits "--name value" options from positional arguments; only `allowed`
// option names are accepted.
std::optional<Args> parse(const std::vector<std::string>& argv, const std::vector<std::string>& allowed,
                          std::string& error) {
  Args a;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    bool known = false;
    for (const auto& n : allowed) known = known || n == s;
    if (!known) {
      error = "unknown option '" + s + "'";
      return std::nullopt;
    }
    if (i + 1 >= argv.size()) {
      error = s + " needs a value";
      return std::nullopt;
    }
    if (!a.options.emplace(s, argv[++i]).second) {
      error = s + " given twice";
      return std::nullopt;
    }
  }
  return a;
}

std::string option(const Args& a, const std::string& name, std::string fallback) {
  auto it = a.options.find(name);
  return it == a.options.end() ? std::move(fallback) : it->second;
}

int check(const std::vector<std::string>& argv) {
  std::string error;
  auto args = parse(argv, {"--schema-dir"}, error);
  if (!args) return usage(error);
  if (args->positional.size() != 1) return usage("check needs exactly one FILE");
  const std::string& file = args->positional[0];
  try {
    const policy::LoadedPolicy p =
        policy::load_policy(file, option(*args, "--schema-dir", PORTCULLIS_SCHEMA_DIR),
                            policy::builtin_filters());
    std::cout << file << ": OK (version " << p.version << ", sha256 " << p.sha256
              << ", low->high: " << p.pipelines.low_to_high.size()
              << " filters, high->low: " << p.pipelines.high_to_low.size() << " filters)\n";
    return cli::kExitOk;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return cli::kExitFailed;
  }
}

int explain(const std::vector<std::string>& argv) {
  std::string error;
  auto args = parse(argv, {"--schema-dir", "--direction", "--peer", "--auth", "--tls"}, error);
  if (!args) return usage(error);
  if (args->positional.size() != 2) return usage("explain needs FILE and STANZA.xml");

  policy::StanzaContext ctx;
  const std::string direction = option(*args, "--direction", "");
  if (direction == "low-to-high") ctx.direction = ipc::Direction::LowToHigh;
  else if (direction == "high-to-low") ctx.direction = ipc::Direction::HighToLow;
  else if (direction.empty()) return usage("explain needs --direction low-to-high|high-to-low");
  else return usage("--direction must be low-to-high or high-to-low, got '" + direction + "'");
  const std::string auth = option(*args, "--auth", "sasl-external");
  if (auth == "sasl-external") ctx.auth = ipc::AuthMethod::SaslExternal;
  else if (auth == "dialback") ctx.auth = ipc::AuthMethod::Dialback;
  else return usage("--auth must be sasl-external or dialback, got '" + auth + "'");
  const std::string tls = option(*args, "--tls", "yes");
  if (tls == "yes") ctx.peer_tls = true;
  else if (tls == "no") ctx.peer_tls = false;
  else return usage("--tls must be yes or no, got '" + tls + "'");

  const std::string& file = args->positional[0];
  const std::string& stanza_file = args->positional[1];
  policy::LoadedPolicy p;
  try {
    p = policy::load_policy(file, option(*args, "--schema-dir", PORTCULLIS_SCHEMA_DIR),
                            policy::builtin_filters());
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return cli::kExitFailed;
  }
  std::ifstream in(stanza_file, std::ios::binary);
  if (!in) {
    std::cerr << stanza_file << ": cannot open the stanza file\n";
    return cli::kExitFailed;
  }
  std::ostringstream text;
  text << in.rdbuf();
  xmpp::Element stanza;
  try {
    stanza = policy::parse_stanza_text(text.str());
  } catch (const std::exception& e) {
    std::cerr << stanza_file << ": " << e.what() << "\n";
    return cli::kExitFailed;
  }
  // Without --peer, the stanza comes from its sender's server.
  ctx.peer_domain = option(*args, "--peer", "");
  if (ctx.peer_domain.empty()) {
    if (auto from = xmpp::parse_jid(stanza.attr_or("from"))) ctx.peer_domain = from->domain;
  }
  ctx.wire_bytes = stanza.serialize().size();
  const policy::Decision d = policy::explain_stanza(p, stanza, ctx, std::cout);
  return d.release ? cli::kExitOk : cli::kExitNegative;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (auto done = cli::answer_help_or_version(args, kProgram, kHelp)) return *done;
  if (args.empty()) return usage("no command (check, explain)");
  const std::string command = args.front();
  args.erase(args.begin());
  if (command == "check") return check(args);
  if (command == "explain") return explain(args);
  return usage("unknown command '" + command + "' (check, explain)");
}
