// portcullisctl: the operator's view of a running appliance, through the
// supervisor's control socket (<control> in the config).
//
//   portcullisctl status [--json]   children, policy, audit, sides
//   portcullisctl peers [--json]    every S2S stream of both sides
//   portcullisctl rooms [--json]    the hosted rooms
//   portcullisctl reload            reload the policy; says what happened
//   portcullisctl metrics           the figures as OpenMetrics text
//   portcullisctl serve-metrics --listen ADDRESS:PORT
//   (each with [--socket PATH])
//       the same over HTTP (GET /metrics) for Prometheus, one status question per scrape
//
// Exit status (guard/cli/command_line.h): 0 done; 1 the socket cannot be reached
// or answered an error, or the reload failed; 2 bad command line; 3 status
// answered, but the appliance is degraded (a child down or silent, the audit
// archive unhealthy, an edge without its filter link).
#include <arpa/inet.h>
#include <getopt.h>

#include <charconv>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <signal.h>

#include "guard/cli/command_line.h"
#include "tools/ctl/ctl.h"

namespace {

using namespace portcullis;
namespace json = audit::json;

constexpr const char* kProgram = "portcullisctl";
constexpr const char* kDefaultSocket = "/run/portcullis/control";

constexpr const char* kHelp =
    "usage: portcullisctl status [--json] [--socket PATH]\n"
    "       portcullisctl peers [--json] [--socket PATH]\n"
    "       portcullisctl rooms [--json] [--socket PATH]\n"
    "       portcullisctl reload [--socket PATH]\n"
    "       portcullisctl metrics [--socket PATH]\n"
    "       portcullisctl serve-metrics --listen ADDRESS:PORT [--socket PATH]\n"
    "       portcullisctl --help | --version\n"
    "Shows a running Portcullis appliance through its control socket: each child's state\n"
    "and restarts, the policy in force, the audit archive, every S2S stream and room; reloads\n"
    "the policy; serves the figures as OpenMetrics for Prometheus.\n"
    "  --socket PATH   the control socket (default $PORTCULLIS_CONTROL, else /run/portcullis/control)\n"
    "  --json          the full answer as JSON (children's reports unpacked)\n"
    "  --listen A:P    serve-metrics: the HTTP address, e.g. 127.0.0.1:9464 or [::1]:9464\n"
    "exit status: 0 done, 1 cannot reach the appliance / it answered an error / reload failed,\n"
    "2 bad command line, 3 the appliance is degraded (status)\n";

int fail(const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", kProgram, why.c_str());
  return cli::kExitFailed;
}

class MetricsHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit MetricsHandler(std::string socket) : socket_(std::move(socket)) {}
  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
    const std::string uri = req.getURI();
    if (uri != "/metrics" && uri.rfind("/metrics?", 0) != 0) {
      resp.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_NOT_FOUND);
      resp.setContentType("text/plain; charset=utf-8");
      resp.send() << "portcullisctl serves /metrics only\n";
      return;
    }
    if (req.getMethod() != "GET" && req.getMethod() != "HEAD") {
      resp.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_METHOD_NOT_ALLOWED);
      resp.set("Allow", "GET, HEAD");
      resp.send();
      return;
    }
    std::string error;
    std::optional<json::Value> v = ctl::ask(socket_, "status", error, 5000);
    std::string body;
    if (v) {
      const json::Value st = ctl::unpack(*v);
      body = ctl::render_metrics(&st);
    } else {
      std::fprintf(stderr, "%s: scrape: %s\n", kProgram, error.c_str());
      body = ctl::render_metrics(nullptr);
    }
    resp.setContentType("application/openmetrics-text; version=1.0.0; charset=utf-8");
    resp.setContentLength(static_cast<std::streamsize>(body.size()));
    if (req.getMethod() == "HEAD") {
      resp.send();
      return;
    }
    resp.send() << body;
  }

 private:
  std::string socket_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(std::string socket) : socket_(std::move(socket)) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
    return new MetricsHandler(socket_);
  }

 private:
  std::string socket_;
};

int serve_metrics(const std::string& socket, const std::string& listen) {
  // A numeric address only: the appliance does no DNS, and a name would be looked up.
  const auto colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  in6_addr buf{};
  const bool numeric = ::inet_pton(AF_INET, host.c_str(), &buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), &buf) == 1;
  int port_number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (!numeric || ec != std::errc() || end != port.data() + port.size() || port_number < 1 || port_number > 65535) {
    return cli::usage_error(kProgram, "--listen: expected ADDRESS:PORT with a numeric address, got '" + listen + "'");
  }
  const Poco::Net::SocketAddress at(host, static_cast<Poco::UInt16>(port_number));
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);   // before the server's threads exist
  try {
    Poco::Net::ServerSocket sock(at);
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(4);
    params->setMaxQueued(16);
    params->setKeepAlive(false);
    params->setTimeout(Poco::Timespan(10, 0));
    Poco::Net::HTTPServer server(new Factory(socket), sock, params);
    server.start();
    std::fprintf(stderr, "%s: serving OpenMetrics at http://%s/metrics from %s\n", kProgram,
                 sock.address().toString().c_str(), socket.c_str());
    int sig = 0;
    sigwait(&set, &sig);
    server.stopAll(true);
  } catch (const std::exception& e) {
    return fail("cannot listen on " + listen + ": " + e.what());
  }
  return cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> all(argv + 1, argv + argc);
  if (auto done = cli::answer_help_or_version(all, kProgram, kHelp)) return *done;
  const char* env = std::getenv("PORTCULLIS_CONTROL");
  std::string socket = env && *env ? env : kDefaultSocket;
  std::string listen;
  bool as_json = false;
  static const option kOptions[] = {
      {"socket", required_argument, nullptr, 's'},
      {"json", no_argument, nullptr, 'j'},
      {"listen", required_argument, nullptr, 'l'},
      {nullptr, 0, nullptr, 0},
  };
  opterr = 0;
  // GNU getopt permutes: options may come before or after the command.
  for (;;) {
    const int c = getopt_long(argc, argv, "", kOptions, nullptr);
    if (c == -1) break;
    if (c == 's') socket = optarg;
    else if (c == 'j') as_json = true;
    else if (c == 'l') listen = optarg;
    else return cli::usage_error(kProgram, std::string("unknown or incomplete option '") + argv[optind - 1] + "'");
  }
  const std::vector<std::string> positional(argv + optind, argv + argc);
  if (positional.size() != 1) {
    return cli::usage_error(kProgram, positional.empty() ? "expected a command" : "expected one command, got " +
                                                                                     std::to_string(positional.size()));
  }
  const std::string& cmd = positional.front();
  const bool view = cmd == "status" || cmd == "peers" || cmd == "rooms";
  if (!view && cmd != "reload" && cmd != "metrics" && cmd != "serve-metrics") {
    return cli::usage_error(kProgram, "unknown command '" + cmd + "'");
  }
  if (as_json && !view) return cli::usage_error(kProgram, "--json goes with status, peers or rooms");
  if (!listen.empty() && cmd != "serve-metrics") return cli::usage_error(kProgram, "--listen goes with serve-metrics");
  if (cmd == "serve-metrics") {
    if (listen.empty()) return cli::usage_error(kProgram, "serve-metrics: expected --listen ADDRESS:PORT");
    return serve_metrics(socket, listen);
  }

  std::string error;
  std::optional<json::Value> reply = ctl::ask(socket, cmd == "reload" ? "reload" : "status", error);
  if (!reply) {
    if (cmd == "metrics") {   // a scrape that finds nobody still says so
      std::fputs(ctl::render_metrics(nullptr).c_str(), stdout);
    }
    return fail(error);
  }
  const json::Value st = ctl::unpack(*reply);
  if (cmd == "reload") {
    for (const json::Value& c : st["children"].as_array()) {
      if (!c["asked"].as_bool()) continue;
      if (!c["answered"].as_bool()) return fail(c["role"].as_string() + " did not answer the reload");
      if (c["report_error"].is_string()) {
        return fail(c["role"].as_string() + " gave an unreadable answer to the reload: " + c["report_error"].as_string());
      }
      const json::Value& r = c["report"];
      if (!r["ok"].as_bool()) {
        return fail("reload failed, " + c["role"].as_string() + " keeps policy " + r["kept_version"].as_string() +
                    ": " + r["error"].as_string());
      }
      if (r.has("version")) {
        std::printf("policy %s sha256 %s loaded (replacing %s); recorded in the audit archive\n",
                    r["version"].as_string().c_str(), r["sha256"].as_string().c_str(),
                    r["replaced_version"].as_string().c_str());
      } else {
        std::printf("%s: nothing to reload\n", c["role"].as_string().c_str());
      }
      return cli::kExitOk;
    }
    return fail("no child to reload is running");
  }
  if (cmd == "metrics") {
    std::fputs(ctl::render_metrics(&st).c_str(), stdout);
    return cli::kExitOk;
  }
  bool degraded = false;
  std::string text = ctl::render_status(st, degraded);
  if (cmd == "peers") text = ctl::render_peers(st);
  if (cmd == "rooms") text = ctl::render_rooms(st);
  if (as_json) text = json::dump(st) + "\n";
  std::fputs(text.c_str(), stdout);
  return cmd == "status" && degraded ? cli::kExitNegative : cli::kExitOk;
}
