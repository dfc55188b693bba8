#include "guard/config/access.h"

#include <sys/stat.h>
#include <sys/xattr.h>

#include <cerrno>
#include <filesystem>
#include <vector>

namespace portcullis::config {

namespace {

namespace fs = std::filesystem;

int bits_for(const struct stat& st, std::uint32_t uid, std::uint32_t gid) {
  if (st.st_uid == uid) return static_cast<int>((st.st_mode >> 6) & 7);
  if (st.st_gid == gid) return static_cast<int>((st.st_mode >> 3) & 7);
  return static_cast<int>(st.st_mode & 7);
}

bool has_acl(const std::string& p) {
  const ssize_t n = ::getxattr(p.c_str(), "system.posix_acl_access", nullptr, 0);
  return n > 0;
}

std::string want_text(int want) {
  std::string s;
  if (want & kRead) s += "read";
  if (want & kWrite) s += s.empty() ? "write" : "/write";
  if (want & kSearch) s += s.empty() ? "search" : "/search";
  return s;
}

// Walks `canonical` (absolute, no symlinks): search on every directory above
// the last component, `want` on the last.
std::optional<std::string> walk(const fs::path& canonical, std::uint32_t uid, std::uint32_t gid, int want) {
  fs::path at = canonical.root_path();
  const fs::path rel = canonical.relative_path();
  const std::vector<fs::path> parts(rel.begin(), rel.end());
  for (std::size_t i = 0; i <= parts.size(); ++i) {
    if (i > 0) at /= parts[i - 1];
    struct stat st {};
    if (::stat(at.c_str(), &st) != 0) return at.string() + ": does not exist";
    const bool last = i == parts.size();
    const int need = last ? want : kSearch;
    if (has_acl(at.string())) return at.string() + ": has a POSIX ACL (not evaluated; remove it)";
    if ((bits_for(st, uid, gid) & need) != need) return at.string() + ": no " + want_text(need) + " permission";
  }
  return std::nullopt;
}

// Resolves `path` one component at a time as the kernel would, so that every
// directory crossed is judged: those on the path as written, and those of each
// symbolic link's target (a link in a directory the user could write, or a
// target below one, is as good as the file to it).
std::optional<std::string> walk_tamper(const fs::path& path, std::uint32_t uid, std::uint32_t gid, int links = 0) {
  fs::path at = path.root_path();
  const fs::path rel = path.relative_path();
  const std::vector<fs::path> parts(rel.begin(), rel.end());
  for (std::size_t i = 0;; ++i) {
    struct stat st {};
    if (::lstat(at.c_str(), &st) != 0) return at.string() + ": does not exist";
    if (S_ISLNK(st.st_mode)) {
      if (++links > 40) return at.string() + ": too many symbolic links";
      std::error_code ec;
      fs::path target = fs::read_symlink(at, ec);
      if (ec) return at.string() + ": unreadable symbolic link";
      if (target.is_relative()) target = at.parent_path() / target;
      for (std::size_t j = i; j < parts.size(); ++j) target /= parts[j];
      return walk_tamper(target.lexically_normal(), uid, gid, links);
    }
    if (has_acl(at.string())) return at.string() + ": has a POSIX ACL (not evaluated; remove it)";
    if (st.st_uid == uid) return at.string() + ": owned by that user";
    const int bits = bits_for(st, uid, gid);
    if (i == parts.size()) {
      if (bits & kWrite) return at.string() + ": writable by that user";
      return std::nullopt;
    }
    if ((bits & (kWrite | kSearch)) == (kWrite | kSearch)) {
      if (!(st.st_mode & S_ISVTX)) {
        return at.string() + ": writable by that user (it could replace " + parts[i].string() + ")";
      }
      // Sticky: only the user's own entries can be renamed or removed.
      struct stat entry {};
      const fs::path next = at / parts[i];
      if (::lstat(next.c_str(), &entry) == 0 && entry.st_uid == uid) {
        return next.string() + ": owned by that user, in a directory it can write";
      }
    }
    at /= parts[i];
  }
}

}  // namespace

std::optional<std::string> tamper_possible(const std::string& path, std::uint32_t uid, std::uint32_t gid) {
  if (uid == 0) return "root can change anything";
  return walk_tamper(fs::absolute(path), uid, gid);
}

std::optional<std::string> access_denied(const std::string& path, std::uint32_t uid, std::uint32_t gid, int want) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(path, ec);
  if (ec) return path + ": does not exist";
  return walk(canonical, uid, gid, want);
}

std::optional<std::string> reach_denied(const std::string& path, std::uint32_t uid, std::uint32_t gid) {
  fs::path p = fs::absolute(path).lexically_normal();
  std::error_code ec;
  while (!fs::exists(p, ec) && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
  const fs::path canonical = fs::canonical(p, ec);
  if (ec) return p.string() + ": does not exist";
  return walk(canonical, uid, gid, kSearch);
}

}  // namespace portcullis::config
