// portcullis-example-guard: a small external guard speaking the PCG1 pipe
// protocol (docs/guard-protocol.md). It is deliberately self-contained (no
// Portcullis libraries) so it shows everything a third-party guard needs.
//
// Policy: blocks a stanza whose <body> text contains one of the --block-word
// words (ASCII case-insensitive), or whose size exceeds --max-bytes; passes
// everything else. It always echoes the stanza unchanged.
//
// Test modes (for Portcullis's own tests of fail-closed behaviour):
//   --crash-after N   answer N requests, then abort() on the next one
//   --hang            read requests, never answer
//   --garbage         answer with bytes that are not a PCG1 answer
//   --mutate          echo the stanza with one byte changed
//   --exit-after N    answer N requests, then exit(0) cleanly on the next one
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "portcullis_version.h"

namespace {

struct Options {
  std::vector<std::string> block_words;
  std::size_t max_bytes = 0;  // 0: no limit
  long crash_after = -1;
  long exit_after = -1;
  bool hang = false;
  bool garbage = false;
  bool mutate = false;
};

constexpr std::uint32_t kMaxHeader = 64 * 1024;
constexpr std::uint32_t kMaxBody = 16 * 1024 * 1024;

bool read_exact(std::string& out, std::size_t n) {
  out.resize(n);
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(0, out.data() + got, n - got);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      return false;  // EOF or error: Portcullis went away
    }
  }
  return true;
}

bool write_all(const std::string& data) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t w = ::write(1, data.data() + done, data.size() - done);
    if (w > 0) {
      done += static_cast<std::size_t>(w);
    } else if (w < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

std::uint32_t get_u32(const std::string& s) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(s[0])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[3]));
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The text of the first <body> element (a crude scan, enough for an example:
// the stanza has already passed Portcullis's own parser).
std::string body_text(const std::string& stanza) {
  std::size_t at = 0;
  while ((at = stanza.find("<body", at)) != std::string::npos) {
    const char next = at + 5 < stanza.size() ? stanza[at + 5] : '\0';
    if (next == '>' || next == ' ' || next == '\t' || next == '\n' || next == '/') break;
    at += 5;
  }
  if (at == std::string::npos) return {};
  const std::size_t open_end = stanza.find('>', at);
  if (open_end == std::string::npos || stanza[open_end - 1] == '/') return {};
  const std::size_t close = stanza.find("</body>", open_end);
  if (close == std::string::npos) return {};
  return stanza.substr(open_end + 1, close - open_end - 1);
}

std::string answer(bool pass, const std::string& reason, const std::string& body) {
  std::string out = "PCG1";
  out.push_back(pass ? '\0' : '\1');
  put_u32(out, static_cast<std::uint32_t>(reason.size()));
  out += reason;
  put_u32(out, static_cast<std::uint32_t>(body.size()));
  out += body;
  return out;
}

constexpr const char* kProgram = "portcullis-example-guard";

constexpr const char* kHelp =
    "usage: portcullis-example-guard [--block-word WORD]... [--max-bytes N]\n"
    "       portcullis-example-guard --help | --version\n"
    "An external guard for Portcullis's guard stage: reads PCG1 requests on stdin,\n"
    "answers on stdout (docs/guard-protocol.md). Blocks a stanza whose <body> contains\n"
    "a WORD (ASCII case-insensitive) or that is larger than N bytes; passes the rest.\n"
    "Test modes: --crash-after N, --exit-after N, --hang, --garbage, --mutate\n"
    "exit status: 0 Portcullis closed the pipe, 2 bad command line, 3 a request broke\n"
    "the protocol\n";

// Exit status as every Portcullis program (docs/command-line.md). This program
// links no Portcullis library, so it spells them out.
constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitProtocol = 3;

int usage_error(const std::string& why) {
  std::fprintf(stderr, "%s: %s (see %s --help)\n", kProgram, why.c_str(), kProgram);
  return kExitUsage;
}

// A whole decimal number, or nothing: "12x", "-1" and "" are refused.
bool parse_count(const char* text, unsigned long& out) {
  if (*text < '0' || *text > '9') return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtoul(text, &end, 10);
  return errno == 0 && *end == '\0';
}

// Returns -1 to go on and serve requests, or the exit status to leave with.
int parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      return kExitOk;
    }
    if (a == "--version") {
      std::printf("%s (Portcullis) %s\n", kProgram, PORTCULLIS_VERSION);
      return kExitOk;
    }
  }
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool counted = a == "--max-bytes" || a == "--crash-after" || a == "--exit-after";
    if (a == "--hang") {
      o.hang = true;
    } else if (a == "--garbage") {
      o.garbage = true;
    } else if (a == "--mutate") {
      o.mutate = true;
    } else if (a == "--block-word" || counted) {
      if (i + 1 >= argc) return usage_error(a + " needs a value");
      const char* v = argv[++i];
      unsigned long n = 0;
      if (counted && !parse_count(v, n)) return usage_error(a + " needs a whole number, got '" + v + "'");
      if (a == "--block-word") o.block_words.push_back(lower(v));
      else if (a == "--max-bytes") o.max_bytes = n;
      else if (a == "--crash-after") o.crash_after = static_cast<long>(n);
      else o.exit_after = static_cast<long>(n);
    } else {
      return usage_error("unknown argument '" + a + "'");
    }
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const int done = parse_args(argc, argv, opt); done >= 0) return done;

  long answered = 0;
  for (;;) {
    // Request: "PCG1" | u32 header_len | header | u32 body_len | body
    std::string magic, len, header, body;
    if (!read_exact(magic, 4)) return kExitOk;
    if (magic != "PCG1") {
      std::fprintf(stderr, "%s: bad request magic\n", kProgram);
      return kExitProtocol;
    }
    if (!read_exact(len, 4)) return kExitOk;
    const std::uint32_t header_len = get_u32(len);
    if (header_len > kMaxHeader || !read_exact(header, header_len)) return kExitProtocol;
    if (!read_exact(len, 4)) return kExitOk;
    const std::uint32_t body_len = get_u32(len);
    if (body_len > kMaxBody || !read_exact(body, body_len)) return kExitProtocol;

    if (opt.crash_after >= 0 && answered >= opt.crash_after) std::abort();
    if (opt.exit_after >= 0 && answered >= opt.exit_after) return kExitOk;
    if (opt.hang) {
      for (;;) ::pause();
    }
    if (opt.garbage) {
      if (!write_all("HTTP/1.0 200 OK\r\n\r\nnot a guard answer\n")) return kExitOk;
      ++answered;
      continue;
    }

    bool pass = true;
    std::string reason;
    if (opt.max_bytes != 0 && body.size() > opt.max_bytes) {
      pass = false;
      reason = "stanza exceeds " + std::to_string(opt.max_bytes) + " bytes";
    } else if (!opt.block_words.empty()) {
      const std::string text = lower(body_text(body));
      for (const auto& w : opt.block_words) {
        if (!w.empty() && text.find(w) != std::string::npos) {
          pass = false;
          reason = "body contains a blocked word";
          break;
        }
      }
    }
    std::string echo = body;
    if (opt.mutate && !echo.empty()) echo[echo.size() / 2] ^= 0x20;
    if (!write_all(answer(pass, reason, echo))) return kExitOk;
    ++answered;
  }
}
