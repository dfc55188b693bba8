// Appliance config loader. Two passes over one in-memory copy of the file:
//  1. Xerces-C++ SAX2 parse with schema validation against the local XSD only
//     (grammar preloaded and cached, no schema hints, no DTD, no entity
//     resolution), building a small positioned element tree;
//  2. semantic checks on that tree, each error at the element it concerns.
// The first error of either pass stops the load with a ConfigError.
#include "guard/config/config.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/framework/LocalFileInputSource.hpp>
#include <xercesc/framework/XMLGrammarPool.hpp>
#include <xercesc/sax/EntityResolver.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/Locator.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/sax2/Attributes.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>
#include <xercesc/sax2/SAX2XMLReader.hpp>
#include <xercesc/sax2/XMLReaderFactory.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/TransService.hpp>
#include <xercesc/util/XMLException.hpp>
#include <xercesc/util/XMLUni.hpp>
#include <xercesc/validators/common/Grammar.hpp>

#include "guard/xmpp/jid.h"

namespace portcullis::config {

namespace {

namespace fs = std::filesystem;
namespace xc = xercesc;

constexpr std::string_view kSchemaFile = "portcullis-config.xsd";
constexpr std::uintmax_t kMaxConfigBytes = 4 * 1024 * 1024;
constexpr std::size_t kMinDialbackSecretBytes = 16;

std::string utf8(const XMLCh* s) {
  if (s == nullptr) return {};
  xc::TranscodeToStr t(s, "UTF-8");
  return std::string(reinterpret_cast<const char*>(t.str()), t.length());
}

// Owning XMLCh copy of a UTF-8 string.
class XStr {
 public:
  explicit XStr(std::string_view s)
      : t_(reinterpret_cast<const XMLByte*>(s.data()), s.size(), "UTF-8") {}
  const XMLCh* get() const { return t_.str(); }

 private:
  xc::TranscodeFromStr t_;
};

// Xerces is initialised per load; Initialize/Terminate are reference counted, so
// this coexists with other users of Xerces in the same process.
struct XercesSession {
  XercesSession() { xc::XMLPlatformUtils::Initialize(); }
  ~XercesSession() { xc::XMLPlatformUtils::Terminate(); }
  XercesSession(const XercesSession&) = delete;
  XercesSession& operator=(const XercesSession&) = delete;
};

// One element of the config file, with the position of its '<'.
struct Node {
  std::string name;                           // local name (namespace checked by the XSD)
  std::map<std::string, std::string> attrs;   // includes schema defaults
  int line = 0, column = 0;
  std::vector<Node> children;

  const std::string& at(const std::string& a) const {
    static const std::string empty;
    auto it = attrs.find(a);
    return it == attrs.end() ? empty : it->second;
  }
  bool has(const std::string& a) const { return attrs.count(a) != 0; }
};

// Maps a Xerces locator position (just after the '>' of a start tag) back to
// the '<' that opened the tag, so messages point at the element's start. The
// tag's attribute values cannot contain a raw '<', so the last '<' before the
// position is the tag's own. Columns count characters, as Xerces does.
class PositionMap {
 public:
  explicit PositionMap(const std::string& text) : text_(text) {
    line_starts_.push_back(0);
    for (std::size_t i = 0; i < text_.size(); ++i) {
      if (text_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::pair<int, int> tag_start(int line, int column) const {
    std::size_t off = offset(line, column);
    while (off > 0) {
      --off;
      if (text_[off] == '<') return position(off);
    }
    return {line, column};
  }

  // Xerces's schema messages do not say where they apply ("value 'x' not in
  // enumeration"). When the position ends a start tag, this names the element
  // and, if the message quotes a value found in that tag, the attribute:
  // "<peer> auth: value 'password' not in enumeration".
  std::string with_tag_context(int line, int column, const std::string& message) const {
    const std::size_t end = offset(line, column);
    const std::size_t lt = text_.rfind('<', end == 0 ? 0 : end - 1);
    if (lt == std::string::npos || lt + 1 >= text_.size()) return message;
    const char first = text_[lt + 1];
    if (first == '/' || first == '!' || first == '?') return message;
    const std::string tag = text_.substr(lt + 1, end - lt - 1);
    const std::size_t name_end = tag.find_first_of(" \t\r\n/>");
    std::string name = tag.substr(0, name_end);
    if (auto colon = name.find(':'); colon != std::string::npos) name = name.substr(colon + 1);
    if (name.empty()) return message;

    std::string context = "<" + name + ">";
    const std::size_t q1 = message.find('\'');
    const std::size_t q2 = q1 == std::string::npos ? q1 : message.find('\'', q1 + 1);
    if (q2 != std::string::npos && message.compare(0, 5, "value") == 0) {
      const std::string value = message.substr(q1 + 1, q2 - q1 - 1);
      for (char quote : {'"', '\''}) {
        const std::string needle = "=" + std::string(1, quote) + value + std::string(1, quote);
        std::size_t at = tag.find(needle);
        if (at == std::string::npos) continue;
        std::size_t attr_end = at;
        while (attr_end > 0 && (tag[attr_end - 1] == ' ' || tag[attr_end - 1] == '\t')) --attr_end;
        std::size_t attr_begin = tag.find_last_of(" \t\r\n", attr_end - 1);
        attr_begin = attr_begin == std::string::npos ? 0 : attr_begin + 1;
        context += " " + tag.substr(attr_begin, attr_end - attr_begin);
        break;
      }
    }
    return context + ": " + message;
  }

 private:
  static bool continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

  std::size_t offset(int line, int column) const {
    if (line < 1 || static_cast<std::size_t>(line) > line_starts_.size()) return text_.size();
    std::size_t off = line_starts_[static_cast<std::size_t>(line) - 1];
    for (int c = 1; c < column && off < text_.size() && text_[off] != '\n'; ++c) {
      ++off;
      while (off < text_.size() && continuation(text_[off])) ++off;
    }
    return off;
  }

  std::pair<int, int> position(std::size_t off) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), off);
    std::size_t line_index = static_cast<std::size_t>(it - line_starts_.begin()) - 1;
    int column = 1;
    for (std::size_t i = line_starts_[line_index]; i < off; ++i) {
      if (!continuation(text_[i])) ++column;
    }
    return {static_cast<int>(line_index) + 1, column};
  }

  const std::string& text_;
  std::vector<std::size_t> line_starts_;
};

struct FirstError {
  bool set = false;
  int line = 0, column = 0;
  std::string message;
};

// Thrown from the handlers to stop Xerces at the first problem; the details are
// in FirstError. A Xerces exception type, so Xerces unwinds through it cleanly.
xc::SAXException stop_parse() { return xc::SAXException("portcullis: stop"); }

// Refuses every external entity, DTD and schema: the only grammar is the one we
// preloaded from schema_dir.
class RefuseResolver : public xc::EntityResolver {
 public:
  explicit RefuseResolver(FirstError& err, const xc::Locator* const& loc) : err_(err), loc_(loc) {}
  xc::InputSource* resolveEntity(const XMLCh* /*public_id*/, const XMLCh* system_id) override {
    if (!err_.set) {
      err_.set = true;
      err_.line = loc_ ? static_cast<int>(loc_->getLineNumber()) : 0;
      err_.column = loc_ ? static_cast<int>(loc_->getColumnNumber()) : 0;
      err_.message = "external resources are not allowed, got a reference to '" +
                     utf8(system_id) + "'";
    }
    throw stop_parse();
  }

 private:
  FirstError& err_;
  const xc::Locator* const& loc_;
};

class TreeBuilder : public xc::DefaultHandler {
 public:
  TreeBuilder(FirstError& err, const PositionMap& positions) : err_(err), positions_(positions) {}

  const xc::Locator* const& locator_ref() const { return locator_; }
  std::optional<Node>& root() { return root_; }

  void setDocumentLocator(const xc::Locator* const locator) override { locator_ = locator; }

  void startElement(const XMLCh* const /*uri*/, const XMLCh* const localname,
                    const XMLCh* const /*qname*/, const xc::Attributes& attrs) override {
    Node n;
    n.name = utf8(localname);
    auto [line, column] = positions_.tag_start(static_cast<int>(locator_->getLineNumber()),
                                               static_cast<int>(locator_->getColumnNumber()));
    n.line = line;
    n.column = column;
    for (XMLSize_t i = 0; i < attrs.getLength(); ++i) {
      n.attrs.emplace(utf8(attrs.getLocalName(i)), utf8(attrs.getValue(i)));
    }
    stack_.push_back(std::move(n));
  }

  void endElement(const XMLCh* const, const XMLCh* const, const XMLCh* const) override {
    Node n = std::move(stack_.back());
    stack_.pop_back();
    if (stack_.empty()) {
      root_ = std::move(n);
    } else {
      stack_.back().children.push_back(std::move(n));
    }
  }

  // DOCTYPE is refused outright: no DTD, no internal subset, no entities.
  void startDTD(const XMLCh* const, const XMLCh* const, const XMLCh* const) override {
    auto [line, column] = positions_.tag_start(static_cast<int>(locator_->getLineNumber()),
                                               static_cast<int>(locator_->getColumnNumber()));
    record(line, column, "expected the <portcullis> element, got a DOCTYPE declaration "
                         "(DTDs are not allowed)");
    throw stop_parse();
  }

  void warning(const xc::SAXParseException& e) override { fail(e); }
  void error(const xc::SAXParseException& e) override { fail(e); }
  void fatalError(const xc::SAXParseException& e) override { fail(e); }

 private:
  void record(int line, int column, std::string message) {
    if (err_.set) return;
    err_.set = true;
    err_.line = line;
    err_.column = column;
    err_.message = std::move(message);
  }

  // Schema and well-formedness errors keep Xerces's own position: it points at
  // the offending character or the end of the offending start tag.
  [[noreturn]] void fail(const xc::SAXParseException& e) {
    const int line = static_cast<int>(e.getLineNumber());
    const int column = static_cast<int>(e.getColumnNumber());
    record(line, column, positions_.with_tag_context(line, column, utf8(e.getMessage())));
    throw stop_parse();
  }

  FirstError& err_;
  const PositionMap& positions_;
  const xc::Locator* locator_ = nullptr;
  std::vector<Node> stack_;
  std::optional<Node> root_;
};

std::string read_file_capped(const std::string& file) {
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  if (ec) throw ConfigError(file, 0, 0, "cannot read config file: " + ec.message());
  if (size > kMaxConfigBytes) {
    throw ConfigError(file, 0, 0, "config file is larger than " +
                                      std::to_string(kMaxConfigBytes) + " bytes");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file, 0, 0, "cannot open config file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Node parse_and_validate(const std::string& file, const std::string& text,
                        const std::string& schema_dir) {
  std::optional<XercesSession> session;
  try {
    session.emplace();
  } catch (const xc::XMLException& e) {
    throw ConfigError(file, 0, 0, "cannot initialise Xerces-C++: " + utf8(e.getMessage()));
  }
  const std::string schema_path = (fs::path(schema_dir) / kSchemaFile).string();
  if (::access(schema_path.c_str(), R_OK) != 0) {
    throw ConfigError(schema_path, 0, 0, "schema file is missing or unreadable");
  }

  FirstError err;
  PositionMap positions(text);
  TreeBuilder builder(err, positions);
  RefuseResolver resolver(err, builder.locator_ref());

  std::unique_ptr<xc::SAX2XMLReader> reader(xc::XMLReaderFactory::createXMLReader());
  reader->setFeature(xc::XMLUni::fgSAX2CoreNameSpaces, true);
  reader->setFeature(xc::XMLUni::fgSAX2CoreNameSpacePrefixes, false);
  reader->setFeature(xc::XMLUni::fgSAX2CoreValidation, true);
  reader->setFeature(xc::XMLUni::fgXercesDynamic, false);
  reader->setFeature(xc::XMLUni::fgXercesSchema, true);
  reader->setFeature(xc::XMLUni::fgXercesSchemaFullChecking, true);
  reader->setFeature(xc::XMLUni::fgXercesValidationErrorAsFatal, true);
  reader->setFeature(xc::XMLUni::fgXercesUseCachedGrammarInParse, true);
  // Never load a schema named by the document (xsi:schemaLocation hints).
  reader->setFeature(xc::XMLUni::fgXercesLoadSchema, false);
  reader->setFeature(xc::XMLUni::fgXercesLoadExternalDTD, false);
  reader->setFeature(xc::XMLUni::fgXercesSkipDTDValidation, true);
  reader->setFeature(xc::XMLUni::fgXercesDisableDefaultEntityResolution, true);
  reader->setContentHandler(&builder);
  reader->setErrorHandler(&builder);
  reader->setLexicalHandler(&builder);
  reader->setEntityResolver(&resolver);

  // The grammar comes from schema_dir only; errors in the schema itself are
  // reported against the schema file.
  try {
    xc::LocalFileInputSource xsd(XStr(schema_path).get());
    if (reader->loadGrammar(xsd, xc::Grammar::SchemaGrammarType, true) == nullptr) {
      throw ConfigError(schema_path, 0, 0, "cannot load schema");
    }
  } catch (const xc::SAXException&) {
    throw ConfigError(schema_path, err.line, err.column, "invalid schema: " + err.message);
  } catch (const xc::XMLException& e) {
    throw ConfigError(schema_path, static_cast<int>(e.getSrcLine()), 0,
                      "cannot load schema: " + utf8(e.getMessage()));
  }
  if (err.set) throw ConfigError(schema_path, err.line, err.column, "invalid schema: " + err.message);

  xc::MemBufInputSource input(reinterpret_cast<const XMLByte*>(text.data()), text.size(),
                              XStr(file).get());
  try {
    reader->parse(input);
  } catch (const xc::SAXException&) {
    // details are in err
  } catch (const xc::XMLException& e) {
    if (!err.set) {
      err.set = true;
      err.message = utf8(e.getMessage());
    }
  }
  if (err.set) throw ConfigError(file, err.line, err.column, err.message);
  if (!builder.root()) throw ConfigError(file, 1, 1, "expected the <portcullis> element, got nothing");
  return std::move(*builder.root());
}

// ----- semantic pass -----

class Checker {
 public:
  // Relative paths resolve against the config file's directory, made absolute
  // so that a later chdir of the daemon cannot change what they name.
  explicit Checker(const std::string& file)
      : file_(file), base_(fs::absolute(fs::path(file)).parent_path()) {}

  [[noreturn]] void fail(const Node& n, const std::string& message) const {
    throw ConfigError(file_, n.line, n.column, message);
  }

  std::string domain(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    auto d = xmpp::normalize_domain(v);
    if (!d) fail(n, "<" + n.name + "> " + attr + ": expected a domain name, got '" + v + "'");
    return *d;
  }

  std::string pattern(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    std::string_view rest = v;
    bool wildcard = rest.starts_with("*.");
    if (wildcard) rest.remove_prefix(2);
    auto d = xmpp::normalize_domain(rest);
    if (!d) {
      fail(n, "<" + n.name + "> " + attr +
                  ": expected a domain pattern ('example.org' or '*.example.org'), got '" + v + "'");
    }
    return wildcard ? "*." + *d : *d;
  }

  std::string ip(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    unsigned char buf[16];
    if (::inet_pton(AF_INET, v.c_str(), buf) != 1 && ::inet_pton(AF_INET6, v.c_str(), buf) != 1) {
      fail(n, "<" + n.name + "> " + attr +
                  ": expected a numeric IPv4 or IPv6 address (no DNS names), got '" + v + "'");
    }
    return v;
  }

  // The XSD has range-checked every number already; this only converts.
  template <typename T>
  T number(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    try {
      std::size_t used = 0;
      unsigned long long x = std::stoull(v, &used);
      if (used != v.size()) throw std::invalid_argument(v);
      return static_cast<T>(x);
    } catch (const std::exception&) {
      fail(n, "<" + n.name + "> " + attr + ": expected a number, got '" + v + "'");
    }
  }

  bool boolean(const Node& n, const std::string& attr) const {
    const std::string& v = n.at(attr);
    return v == "true" || v == "1";
  }

  // Resolves a path against the config file's directory and checks that it is
  // a readable regular file.
  std::string readable_file(const Node& n, const std::string& attr) const {
    fs::path p(n.at(attr));
    if (p.is_relative()) p = base_ / p;
    std::string s = p.lexically_normal().string();
    struct stat st {};
    if (::stat(s.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::access(s.c_str(), R_OK) != 0) {
      fail(n, "<" + n.name + "> " + attr + ": expected a readable file, got '" + s + "'");
    }
    return s;
  }

  std::string secret_file(const Node& n, const std::string& attr) const {
    std::string s = readable_file(n, attr);
    struct stat st {};
    ::stat(s.c_str(), &st);
    if ((st.st_mode & S_IROTH) != 0) {
      fail(n, "<" + n.name + "> " + attr + ": expected a file that is not world-readable, got '" +
                  s + "' with mode " + mode_string(st.st_mode));
    }
    std::ifstream in(s, std::ios::binary);
    std::string buf(kMinDialbackSecretBytes, '\0');
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (static_cast<std::size_t>(in.gcount()) < kMinDialbackSecretBytes) {
      fail(n, "<" + n.name + "> " + attr + ": expected a secret of at least " +
                  std::to_string(kMinDialbackSecretBytes) + " bytes, got " +
                  std::to_string(in.gcount()) + " bytes in '" + s + "'");
    }
    return s;
  }

 private:
  static std::string mode_string(mode_t m) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
    return buf;
  }

  const std::string& file_;
  fs::path base_;
};

Side build_side(const Checker& c, const Node& n) {
  Side s;
  s.name = n.at("name");
  bool needs_dialback = false;
  const Node* dialback_peer = nullptr;
  for (const Node& ch : n.children) {
    if (ch.name == "listen") {
      s.listen.push_back(Listen{c.ip(ch, "address"), c.number<int>(ch, "port")});
    } else if (ch.name == "fronts") {
      std::string d = c.domain(ch, "domain");
      if (std::find(s.fronts.begin(), s.fronts.end(), d) != s.fronts.end()) {
        c.fail(ch, "<fronts> domain: expected each fronted domain once, got '" + d + "' twice");
      }
      s.fronts.push_back(std::move(d));
    } else if (ch.name == "tls") {
      s.cert_file = c.readable_file(ch, "certificate");
      s.key_file = c.readable_file(ch, "key");
      s.ca_file = c.readable_file(ch, "ca");
    } else if (ch.name == "dialback") {
      s.dialback_secret_file = c.secret_file(ch, "secret-file");
    } else if (ch.name == "timeouts") {
      s.connect_timeout_ms = c.number<std::uint32_t>(ch, "connect-ms");
      s.negotiation_timeout_ms = c.number<std::uint32_t>(ch, "negotiation-ms");
      s.keepalive_interval_ms = c.number<std::uint32_t>(ch, "keepalive-ms");
      s.idle_timeout_ms = c.number<std::uint32_t>(ch, "idle-ms");
      s.queue_timeout_ms = c.number<std::uint32_t>(ch, "queue-ms");
      if (s.keepalive_interval_ms >= s.idle_timeout_ms) {
        c.fail(ch, "<timeouts>: expected keepalive-ms below idle-ms, got " +
                       std::to_string(s.keepalive_interval_ms) + " >= " +
                       std::to_string(s.idle_timeout_ms));
      }
    } else if (ch.name == "limits") {
      s.max_stanza_bytes = c.number<std::size_t>(ch, "max-stanza-bytes");
      s.max_depth = c.number<std::size_t>(ch, "max-depth");
      s.max_attributes = c.number<std::size_t>(ch, "max-attributes");
      s.max_queue = c.number<std::size_t>(ch, "max-queue");
    } else if (ch.name == "peer") {
      Peer p;
      p.domain_pattern = c.pattern(ch, "domain");
      p.host = c.ip(ch, "host");
      p.port = c.number<int>(ch, "port");
      const std::string& auth = ch.at("auth");
      p.auth = auth == "dialback" ? PeerAuth::Dialback
               : auth == "any"    ? PeerAuth::Any
                                  : PeerAuth::SaslExternal;
      const std::string& tls = ch.at("tls");
      p.tls = tls == "optional" ? PeerTls::Optional
              : tls == "forbidden" ? PeerTls::Forbidden
                                   : PeerTls::Required;
      if (p.tls != PeerTls::Required && !c.boolean(ch, "allow-plaintext")) {
        c.fail(ch, "<peer domain='" + p.domain_pattern + "'> tls: expected 'required', got '" + tls +
                       "' (plaintext needs allow-plaintext='true' on this peer)");
      }
      std::istringstream kinds(ch.at("kinds"));
      p.kinds = StanzaKinds{false, false, false};
      for (std::string k; kinds >> k;) {
        if (k == "message") p.kinds.message = true;
        if (k == "presence") p.kinds.presence = true;
        if (k == "iq") p.kinds.iq = true;
      }
      p.line = ch.line;
      p.column = ch.column;
      if (p.auth != PeerAuth::SaslExternal && dialback_peer == nullptr) {
        needs_dialback = true;
        dialback_peer = &ch;
      }
      s.peers.push_back(std::move(p));
    }
  }
  if (needs_dialback && s.dialback_secret_file.empty()) {
    c.fail(*dialback_peer, "<peer> auth: expected 'sasl-external', got '" + dialback_peer->at("auth") +
                               "' but side '" + s.name +
                               "' has no <dialback secret-file=.../> element");
  }
  return s;
}

DirectionPolicy build_direction(const Checker& c, const Node& n, std::set<std::string>& rule_ids) {
  DirectionPolicy d;
  d.max_stanza_bytes = c.number<std::size_t>(n, "max-stanza-bytes");
  for (const Node& ch : n.children) {
    if (ch.name != "allow") continue;
    DomainPairRule r;
    r.id = ch.at("id");
    if (!rule_ids.insert(r.id).second) {
      c.fail(ch, "<allow> id: expected a rule id unique in this file, got '" + r.id +
                     "' a second time");
    }
    r.from_pattern = c.pattern(ch, "from");
    r.to_pattern = c.pattern(ch, "to");
    d.allow.push_back(std::move(r));
  }
  return d;
}

// Each fronted domain must be deliverable by the other side's peering table,
// and must not route back into its own side (that would be a loop).
void check_fronts(const Checker& c, const Side& side, const Node& side_node, const Side& other) {
  for (const Node& ch : side_node.children) {
    if (ch.name != "fronts") continue;
    std::string d = c.domain(ch, "domain");
    for (const Peer& p : side.peers) {
      if (xmpp::domain_matches(p.domain_pattern, d)) {
        c.fail(ch, "<fronts domain='" + d + "'>: expected a domain of the other side, got one "
                   "that side '" + side.name + "' routes to its own <peer domain='" +
                       p.domain_pattern + "'> (line " + std::to_string(p.line) + ")");
      }
    }
    bool routable = std::any_of(other.peers.begin(), other.peers.end(), [&](const Peer& p) {
      return xmpp::domain_matches(p.domain_pattern, d);
    });
    if (!routable) {
      c.fail(ch, "<fronts domain='" + d + "'>: expected a <peer> on side '" + other.name +
                     "' whose domain matches '" + d + "', got none (traffic to it could never be "
                     "delivered)");
    }
  }
}

Config build_config(const std::string& file, const Node& root) {
  Checker c(file);
  Config cfg;
  cfg.file = file;
  const Node* low = nullptr;
  const Node* high = nullptr;
  const Node* filter = nullptr;
  for (const Node& ch : root.children) {
    if (ch.name == "logging") {
      cfg.log_target = ch.at("target");
      cfg.log_level = ch.at("level");
    } else if (ch.name == "supervision") {
      cfg.supervision.restart_backoff_ms = c.number<std::uint32_t>(ch, "restart-backoff-ms");
      cfg.supervision.restart_backoff_max_ms = c.number<std::uint32_t>(ch, "restart-backoff-max-ms");
      if (cfg.supervision.restart_backoff_max_ms < cfg.supervision.restart_backoff_ms) {
        c.fail(ch, "<supervision>: expected restart-backoff-max-ms >= restart-backoff-ms, got " +
                       std::to_string(cfg.supervision.restart_backoff_max_ms) + " < " +
                       std::to_string(cfg.supervision.restart_backoff_ms));
      }
    } else if (ch.name == "side") {
      const Node*& slot = ch.at("name") == "low" ? low : high;
      if (slot != nullptr) {
        c.fail(ch, "<side> name: expected one side 'low' and one side 'high', got a second side '" +
                       ch.at("name") + "' (first at line " + std::to_string(slot->line) + ")");
      }
      slot = &ch;
    } else if (ch.name == "filter") {
      filter = &ch;
    }
  }
  if (low == nullptr || high == nullptr || filter == nullptr) {
    c.fail(root, "<portcullis>: expected sides 'low' and 'high' and a <filter>");  // XSD prevents
  }
  cfg.low = build_side(c, *low);
  cfg.high = build_side(c, *high);
  check_fronts(c, cfg.low, *low, cfg.high);
  check_fronts(c, cfg.high, *high, cfg.low);

  // Two edges cannot bind the same socket; better said here than at startup.
  std::map<std::pair<std::string, std::string>, int> listening;   // (address, port) -> line
  for (const Node* side_node : {low, high}) {
    for (const Node& ch : side_node->children) {
      if (ch.name != "listen") continue;
      auto [it, fresh] = listening.emplace(std::pair{ch.at("address"), ch.at("port")}, ch.line);
      if (!fresh) {
        c.fail(ch, "<listen>: expected each address and port once, got " + ch.at("address") +
                       " port " + ch.at("port") + " again (first at line " +
                       std::to_string(it->second) + ")");
      }
    }
  }

  std::set<std::string> rule_ids;
  const Node* l2h = nullptr;
  const Node* h2l = nullptr;
  for (const Node& ch : filter->children) {
    if (ch.name != "direction") continue;
    const std::string& from = ch.at("from");
    const std::string& to = ch.at("to");
    if (from == to) {
      c.fail(ch, "<direction>: expected from and to to name different sides, got '" + from +
                     "' -> '" + to + "'");
    }
    const Node*& slot = from == "low" ? l2h : h2l;
    if (slot != nullptr) {
      c.fail(ch, "<direction>: expected each direction once, got '" + from + "' -> '" + to +
                     "' a second time (first at line " + std::to_string(slot->line) + ")");
    }
    slot = &ch;
    (from == "low" ? cfg.low_to_high : cfg.high_to_low) = build_direction(c, ch, rule_ids);
  }
  if (l2h == nullptr || h2l == nullptr) {
    c.fail(*filter, "<filter>: expected directions low->high and high->low");  // XSD + above prevent
  }
  return cfg;
}

}  // namespace

ConfigError::ConfigError(const std::string& file, int line, int column, const std::string& message)
    : std::runtime_error(file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                         message),
      file_(file),
      line_(line),
      column_(column),
      message_(message) {}

Config load_config(const std::string& file, const std::string& schema_dir) {
  const std::string text = read_file_capped(file);
  Node root = parse_and_validate(file, text, schema_dir);
  return build_config(file, root);
}

}  // namespace portcullis::config
