// Command-line manners shared by portcullisd and the tools (docs/command-line.md):
// one exit status scheme, --help and --version, and one-line usage errors.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::cli {

// Exit status of every Portcullis program.
inline constexpr int kExitOk = 0;      // done; the check passed
inline constexpr int kExitFailed = 1;  // the check or verification failed, or an input is invalid or unreadable
inline constexpr int kExitUsage = 2;   // the command line is wrong
// 3 is a program's own "answered, but no": portcullis-policy explain (rejected),
// portcullis-audit search/show/export (printed, but the archive does not verify),
// portcullis-example-guard (a request broke the protocol).
inline constexpr int kExitNegative = 3;

// "PROGRAM (Portcullis) VERSION", VERSION being the CMake project version.
std::string version_line(std::string_view program);

// Called first thing by main with the arguments after argv[0]. When any of them
// is --help (or -h) it prints `help` to stdout; when any is --version it prints
// version_line(program); and returns kExitOk. Otherwise returns nothing and the
// program parses its arguments as usual.
std::optional<int> answer_help_or_version(const std::vector<std::string>& args, std::string_view program,
                                          std::string_view help);

// Prints "PROGRAM: WHY (see PROGRAM --help)" as one line on stderr and returns
// kExitUsage, for `return usage_error(...)`.
int usage_error(std::string_view program, std::string_view why);

}  // namespace portcullis::cli
