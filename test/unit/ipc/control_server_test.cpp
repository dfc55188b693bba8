// The control socket (guard/supervisor/control_server.h): one line in, one
// JSON text out; its file's mode; who asked; the hostile client cases.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "guard/ipc/unique_fd.h"
#include "guard/supervisor/control_server.h"
#include "test/unit/ipc/loop_wait.h"

using namespace portcullis::supervisor;
using portcullis::ipc::UniqueFd;
using portcullis::ipc::testing::run_until;
using portcullis::net::Duration;
using portcullis::net::EventLoop;
using portcullis::net::SteadyClock;

namespace {

struct Dir {
  std::string path;
  Dir() {
    char tmpl[] = "/tmp/portcullis-ctl-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~Dir() { std::filesystem::remove_all(path); }
};

UniqueFd connect_to(const std::string& path) {
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  return s;
}

// Reads what the server sends until it closes (or the loop gives up).
std::string read_all(EventLoop& loop, int fd, bool& closed) {
  std::string got;
  closed = false;
  run_until(loop, [&] {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        got.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) closed = true;
      break;
    }
    return closed;
  }, std::chrono::seconds(8));
  return got;
}

}  // namespace

TEST_CASE("the control socket answers one line with one text, names who asked, and closes", "[control]") {
  Dir d;
  SteadyClock clock;
  EventLoop loop(clock);
  std::vector<std::string> commands;
  ControlPeer seen;
  ControlServer::Options o;
  o.path = d.path + "/run/control";   // its directory is made
  ControlServer server(loop, o, [&](std::string_view cmd, const ControlPeer& who, ControlServer::Respond respond,
                                  ControlServer::Gone) {
    commands.emplace_back(cmd);
    seen = who;
    respond("{\"ok\":true}");
  }, {});
  struct stat st {};
  REQUIRE(::lstat(o.path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0777) == 0660);

  SECTION("a request") {
    UniqueFd c = connect_to(o.path);
    REQUIRE(c);
    REQUIRE(::send(c.get(), "status\r\n", 8, 0) == 8);
    bool closed = false;
    CHECK(read_all(loop, c.get(), closed) == "{\"ok\":true}\n");
    CHECK(closed);
    REQUIRE(commands == std::vector<std::string>{"status"});
    CHECK(seen.uid == ::getuid());
    CHECK(seen.pid == ::getpid());
    CHECK(seen.describe() == "uid=" + std::to_string(::getuid()) + " pid=" + std::to_string(::getpid()));
  }
  SECTION("a request in pieces, and nothing after the first line is taken") {
    UniqueFd c = connect_to(o.path);
    REQUIRE(c);
    REQUIRE(::send(c.get(), "rel", 3, 0) == 3);
    run_until(loop, [&] { return false; }, std::chrono::milliseconds(100));
    REQUIRE(::send(c.get(), "oad\nstatus\n", 11, 0) == 11);
    bool closed = false;
    read_all(loop, c.get(), closed);
    CHECK(commands == std::vector<std::string>{"reload"});
  }
  SECTION("a line over the limit is refused without reaching the handler") {
    UniqueFd c = connect_to(o.path);
    REQUIRE(c);
    const std::string line(ControlServer::kMaxLine + 10, 'a');
    REQUIRE(::send(c.get(), line.data(), line.size(), 0) == static_cast<ssize_t>(line.size()));
    bool closed = false;
    const std::string got = read_all(loop, c.get(), closed);
    CHECK(got.find("longer than") != std::string::npos);
    CHECK(closed);
    CHECK(commands.empty());
  }
  SECTION("a client that says nothing is closed after the timeout") {
    // (Options::timeout is 5 s by default; this waits for it.)
    UniqueFd c = connect_to(o.path);
    REQUIRE(c);
    bool closed = false;
    read_all(loop, c.get(), closed);
    CHECK(closed);
    CHECK(commands.empty());
  }
  SECTION("clients over the limit are told busy; the others are served") {
    std::vector<UniqueFd> idle;
    for (std::size_t i = 0; i < o.max_clients; ++i) {
      idle.push_back(connect_to(o.path));
      REQUIRE(idle.back());
    }
    run_until(loop, [&] { return false; }, std::chrono::milliseconds(200));
    UniqueFd extra = connect_to(o.path);
    REQUIRE(extra);
    bool closed = false;
    CHECK(read_all(loop, extra.get(), closed).find("busy") != std::string::npos);
    REQUIRE(::send(idle[0].get(), "status\n", 7, 0) == 7);
    CHECK(read_all(loop, idle[0].get(), closed) == "{\"ok\":true}\n");
  }
}

TEST_CASE("the control socket replaces a stale socket file but not a live one or another file", "[control]") {
  Dir d;
  SteadyClock clock;
  EventLoop loop(clock);
  ControlServer::Options o;
  o.path = d.path + "/control";
  auto handler = [](std::string_view, const ControlPeer&, ControlServer::Respond r, ControlServer::Gone) { r("{}"); };
  {
    // A socket file whose listener is gone (a crashed run).
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, o.path.data(), o.path.size());
    REQUIRE(::bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  }
  auto first = std::make_unique<ControlServer>(loop, o, handler, nullptr);
  try {
    ControlServer second(loop, o, handler, nullptr);
    FAIL("a second server took a live socket");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("another process is listening") != std::string::npos);
  }
  first.reset();
  CHECK_FALSE(std::filesystem::exists(o.path));   // removed when the server goes
  std::ofstream(o.path) << "not a socket";
  try {
    ControlServer third(loop, o, handler, nullptr);
    FAIL("a regular file was replaced");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("not a socket") != std::string::npos);
  }
}

TEST_CASE("the control socket refuses a directory another user could swap names in", "[control]") {
  Dir d;
  SteadyClock clock;
  EventLoop loop(clock);
  auto handler = [](std::string_view, const ControlPeer&, ControlServer::Respond r, ControlServer::Gone) { r("{}"); };
  auto refused = [&](const std::string& path, const std::string& why) {
    ControlServer::Options o;
    o.path = path;
    try {
      ControlServer s(loop, o, handler, nullptr);
      FAIL("the control socket was created at " << path);
    } catch (const std::runtime_error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(why) != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(path));
  };
  // Group- or world-writable (a shared /tmp-like directory).
  const std::string shared = d.path + "/shared";
  REQUIRE(::mkdir(shared.c_str(), 0700) == 0);
  REQUIRE(::chmod(shared.c_str(), 01777) == 0);
  refused(shared + "/control", "is writable by others (mode 1777)");
  REQUIRE(::chmod(shared.c_str(), 0770) == 0);
  refused(shared + "/control", "is writable by others (mode 0770)");
  // A symlink where the directory should be: the socket would land elsewhere.
  const std::string real = d.path + "/real";
  REQUIRE(::mkdir(real.c_str(), 0700) == 0);
  REQUIRE(::symlink(real.c_str(), (d.path + "/link").c_str()) == 0);
  refused(d.path + "/link/control", "cannot open its directory");
  CHECK_FALSE(std::filesystem::exists(real + "/control"));
  // A symlink at the socket's own name is not a socket, and is left alone.
  REQUIRE(::symlink("/etc/passwd", (real + "/control").c_str()) == 0);
  {
    ControlServer::Options o;
    o.path = real + "/control";
    CHECK_THROWS_WITH(ControlServer(loop, o, handler, nullptr), Catch::Contains("exists and is not a socket"));
  }
  struct stat st{};
  REQUIRE(::lstat((real + "/control").c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  if (::geteuid() == 0) {
    // A directory of another user (root creating its socket in a user's directory).
    const std::string theirs = d.path + "/theirs";
    REQUIRE(::mkdir(theirs.c_str(), 0755) == 0);
    REQUIRE(::chown(theirs.c_str(), 65534, 65534) == 0);
    refused(theirs + "/control", "belongs to uid 65534");
  }
}

TEST_CASE("a socket file whose listener is too busy to accept is live, not stale", "[control]") {
  Dir d;
  SteadyClock clock;
  EventLoop loop(clock);
  ControlServer::Options o;
  o.path = d.path + "/control";
  // A listener with a full backlog: connect fails with EAGAIN, which must not
  // count as "nobody listens".
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, o.path.data(), o.path.size());
  REQUIRE(::bind(s.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(s.get(), 0) == 0);
  std::vector<UniqueFd> fill;
  for (int i = 0; i < 8; ++i) {
    UniqueFd c(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0));
    if (::connect(c.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) break;
    fill.push_back(std::move(c));
  }
  auto handler = [](std::string_view, const ControlPeer&, ControlServer::Respond r, ControlServer::Gone) { r("{}"); };
  try {
    ControlServer server(loop, o, handler, nullptr);
    FAIL("a busy live socket was replaced");
  } catch (const std::runtime_error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("cannot tell whether another process listens") != std::string::npos);
  }
  struct stat st{};
  CHECK(::lstat(o.path.c_str(), &st) == 0);
}
