// SchemaGuard: the built-in XML guard. Validates the exact stanza bytes with
// Xerces-C++ against an XMPP application profile (an XSD outer bound, see
// schemas/xmpp/README.md) and blocks anything that does not conform.
//
// The profile and every schema it imports or includes are loaded once, at
// construction, from the profile's own directory; they go into a locked
// grammar pool. Nothing is ever resolved at check time: no DOCTYPE, no
// external entity, no xsi:schemaLocation, no network.
//
// Beyond the XSD, the guard enforces what a grammar cannot:
//   - the document element is {jabber:server}message, presence or iq;
//   - no DOCTYPE, comment or processing instruction;
//   - no xsi:* attribute (xsi:type, xsi:nil, schema location hints);
//   - every namespace declaration names a namespace of the profile.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/guard/guard.h"

namespace portcullis::policy {

class SchemaGuard final : public Guard {
 public:
  // Loads `profile_path` (e.g. schemas/xmpp/strict.xsd). Imports and includes
  // must name plain files in the same directory. Throws config::ConfigError
  // (with the schema file and position) if anything cannot be loaded.
  SchemaGuard(std::string name, const std::string& profile_path);
  ~SchemaGuard() override;
  SchemaGuard(const SchemaGuard&) = delete;
  SchemaGuard& operator=(const SchemaGuard&) = delete;

  // Synchronous: calls `done` before returning, with the result of validate().
  void check(const std::string& bytes, const StanzaContext& ctx,
             std::function<void(GuardResult)> done) override;
  const std::string& name() const override { return name_; }

  // Validates one serialized stanza. On Block, reason is
  // "<profile file>: LINE:COL: message" (Xerces's message, which may quote an
  // element name or a short value, cut to a bounded length; never the stanza).
  GuardResult validate(std::string_view bytes);

  // Target namespaces of the loaded profile (for tests and the docs).
  const std::vector<std::string>& namespaces() const;

 private:
  struct Impl;
  std::string name_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis::policy
