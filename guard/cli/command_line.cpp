#include "guard/cli/command_line.h"

#include <iostream>

#include "portcullis_version.h"

namespace portcullis::cli {

std::string version_line(std::string_view program) {
  return std::string(program) + " (Portcullis) " + PORTCULLIS_VERSION;
}

std::optional<int> answer_help_or_version(const std::vector<std::string>& args, std::string_view program,
                                          std::string_view help) {
  // --help wins over --version, whatever the order: "prog --version --help" helps.
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << help;
      if (!help.empty() && help.back() != '\n') std::cout << '\n';
      return kExitOk;
    }
  }
  for (const auto& a : args) {
    if (a == "--version") {
      std::cout << version_line(program) << '\n';
      return kExitOk;
    }
  }
  return std::nullopt;
}

int usage_error(std::string_view program, std::string_view why) {
  std::cerr << program << ": " << why << " (see " << program << " --help)\n";
  return kExitUsage;
}

}  // namespace portcullis::cli
