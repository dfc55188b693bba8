// What a user could do to a path, decided from the file system's mode bits as
// the kernel would for a process with that uid and primary gid and no
// supplementary groups (how the supervisor starts each child). Used by the
// separated-mode checks at load, which run as root and so cannot simply try.
// POSIX ACLs are not evaluated (the appliance's files carry none; a file that
// has one is reported, since its mode bits would not tell the whole story).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace portcullis::config {

enum Access : int { kRead = 4, kWrite = 2, kSearch = 1 };   // the rwx bits

// Empty when uid/gid may `want` (a mask of Access bits) the object at `path`
// (symlinks resolved), after searching every directory above it. Otherwise a
// short reason naming the component that refuses ("/etc/portcullis: no search
// permission"). A path that does not exist is a refusal ("does not exist").
std::optional<std::string> access_denied(const std::string& path, std::uint32_t uid, std::uint32_t gid, int want);

// For a directory that may not exist yet (the supervisor creates it, as root,
// with the user as owner): every existing directory on the path must allow
// search. Empty when they do.
std::optional<std::string> reach_denied(const std::string& path, std::uint32_t uid, std::uint32_t gid);

// Empty when uid/gid could not change what a process reading `path` gets:
// neither the file (its owner could chmod it, or it is writable) nor any
// directory above it (owned by the user, or writable and searchable so an
// entry could be renamed away and replaced; in a sticky directory only the
// user's own entries) nor a directory crossed on the way to a symbolic link's
// target, nor anything with a POSIX ACL. Otherwise a short reason naming the
// component. The StrictModes
// rule, per user: what a service user could rewrite, a compromised one would.
std::optional<std::string> tamper_possible(const std::string& path, std::uint32_t uid, std::uint32_t gid);

}  // namespace portcullis::config
