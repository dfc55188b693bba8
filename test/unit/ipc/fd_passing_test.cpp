#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "guard/ipc/fd_passing.h"

using namespace portcullis::ipc;

namespace {

struct Pipe {
  UniqueFd r, w;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    r.reset(fds[0]);
    w.reset(fds[1]);
  }
};

ino_t inode_of(int fd) {
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("an fd and its tag cross a control socket", "[ipc][fdpass]") {
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  Pipe p;
  REQUIRE(send_fd(sup.get(), p.w.get(), "filter").status == FdPassStatus::Ok);
  FdReceiveResult r = receive_fd(child.get());
  REQUIRE(r.status == FdPassStatus::Ok);
  CHECK(r.tag == "filter");
  REQUIRE(r.fd.valid());
  CHECK(r.fd.get() != p.w.get());
  CHECK(inode_of(r.fd.get()) == inode_of(p.w.get()));
  CHECK((::fcntl(r.fd.get(), F_GETFD) & FD_CLOEXEC) != 0);
  // It is the same pipe: bytes written through the received fd come out of p.r.
  REQUIRE(::write(r.fd.get(), "x", 1) == 1);
  char c = 0;
  REQUIRE(::read(p.r.get(), &c, 1) == 1);
  CHECK(c == 'x');
}

TEST_CASE("messages stay separate and in order", "[ipc][fdpass]") {
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  Pipe a, b;
  REQUIRE(send_fd(sup.get(), a.w.get(), "edge:low").status == FdPassStatus::Ok);
  REQUIRE(send_fd(sup.get(), b.w.get(), "edge:high").status == FdPassStatus::Ok);
  FdReceiveResult r1 = receive_fd(child.get());
  FdReceiveResult r2 = receive_fd(child.get());
  REQUIRE(r1.status == FdPassStatus::Ok);
  REQUIRE(r2.status == FdPassStatus::Ok);
  CHECK(r1.tag == "edge:low");
  CHECK(r2.tag == "edge:high");
  CHECK(inode_of(r1.fd.get()) == inode_of(a.w.get()));
  CHECK(inode_of(r2.fd.get()) == inode_of(b.w.get()));
}

TEST_CASE("receive on an empty non-blocking socket would block", "[ipc][fdpass]") {
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  FdReceiveResult r = receive_fd(child.get());
  CHECK(r.status == FdPassStatus::WouldBlock);
  CHECK_FALSE(r.fd.valid());
}

TEST_CASE("EOF and a closed peer are reported as closed", "[ipc][fdpass]") {
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  Pipe p;
  sup.reset();
  CHECK(receive_fd(child.get()).status == FdPassStatus::Closed);
  const FdSendResult s = send_fd(child.get(), p.w.get(), "filter");  // no SIGPIPE
  CHECK(s.status == FdPassStatus::Closed);
  CHECK_FALSE(s.error.empty());
}

TEST_CASE("send fills up and then would block", "[ipc][fdpass]") {
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  Pipe p;
  FdPassStatus last = FdPassStatus::Ok;
  int sent = 0;
  for (int i = 0; i < 100000 && last == FdPassStatus::Ok; ++i) {
    last = send_fd(sup.get(), p.w.get(), "filter").status;
    if (last == FdPassStatus::Ok) ++sent;
  }
  CHECK(last == FdPassStatus::WouldBlock);
  CHECK(sent > 0);
}

TEST_CASE("bad tags are refused by the sender", "[ipc][fdpass]") {
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  Pipe p;
  CHECK(send_fd(sup.get(), p.w.get(), "").status == FdPassStatus::Error);
  CHECK(send_fd(sup.get(), p.w.get(), std::string(kMaxFdTag + 1, 't')).status ==
        FdPassStatus::Error);
  CHECK(send_fd(sup.get(), -1, "filter").status == FdPassStatus::Error);
  CHECK(receive_fd(child.get()).status == FdPassStatus::WouldBlock);
}

TEST_CASE("hostile control messages are invalid and leak no fds", "[ipc][fdpass]") {
  UniqueFd sup, child;
  REQUIRE(make_control_pair(sup, child));
  Pipe p;

  SECTION("a message without an fd is a request, not an fd") {
    REQUIRE(::send(sup.get(), "status 7", 8, 0) == 8);
    FdReceiveResult r = receive_fd(child.get());
    CHECK(r.status == FdPassStatus::Message);
    CHECK(r.tag == "status 7");
    CHECK_FALSE(r.fd.valid());
  }
  SECTION("a tag that is too long") {
    const std::string tag(kMaxFdTag + 10, 't');
    REQUIRE(::send(sup.get(), tag.data(), tag.size(), 0) == static_cast<ssize_t>(tag.size()));
    FdReceiveResult r = receive_fd(child.get());
    CHECK(r.status == FdPassStatus::Invalid);
    CHECK(r.error.find("too long") != std::string::npos);
  }
  SECTION("two fds in one message") {
    int fds[2] = {p.r.get(), p.w.get()};
    char tag[] = "filter";
    iovec iov{tag, 6};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    std::memcpy(CMSG_DATA(c), fds, sizeof fds);
    REQUIRE(::sendmsg(sup.get(), &msg, 0) == 6);
    // Only our own two pipe ends are open before; the received copies must be closed.
    const int probe_before = ::dup(0);
    ::close(probe_before);
    FdReceiveResult r = receive_fd(child.get());
    CHECK(r.status == FdPassStatus::Invalid);
    CHECK(r.error.find("2 fds") != std::string::npos);
    const int probe_after = ::dup(0);
    ::close(probe_after);
    CHECK(probe_after == probe_before);  // the lowest free fd is the same: nothing leaked
  }
  // The channel remains usable after a bad message.
  REQUIRE(send_fd(sup.get(), p.w.get(), "filter").status == FdPassStatus::Ok);
  CHECK(receive_fd(child.get()).status == FdPassStatus::Ok);
}
