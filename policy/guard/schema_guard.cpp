// SchemaGuard: Xerces-C++ SAX2 validation against a preloaded, locked grammar
// pool. The reader is built once and reused for every stanza; the handlers stop
// the parse at the first problem by throwing a Xerces SAXException (Xerces
// unwinds cleanly through its own exception type) and record what stopped it.
#include "policy/guard/schema_guard.h"

#include <xercesc/framework/LocalFileInputSource.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/framework/XMLGrammarPoolImpl.hpp>
#include <xercesc/sax/Locator.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/sax2/Attributes.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>
#include <xercesc/parsers/SAX2XMLReaderImpl.hpp>
#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/TransService.hpp>
#include <xercesc/util/XMLEntityResolver.hpp>
#include <xercesc/util/XMLException.hpp>
#include <xercesc/util/XMLResourceIdentifier.hpp>
#include <xercesc/util/XMLUni.hpp>
#include <xercesc/validators/common/Grammar.hpp>

#include <filesystem>
#include <set>
#include <string_view>
#include <unistd.h>

#include "guard/config/config.h"

namespace portcullis::policy {

namespace {

namespace xc = xercesc;
namespace fs = std::filesystem;

using XString = std::basic_string<XMLCh>;

constexpr std::size_t kMaxReasonMessage = 240;

std::string utf8(const XMLCh* s) {
  if (s == nullptr) return {};
  xc::TranscodeToStr t(s, "UTF-8");
  return std::string(reinterpret_cast<const char*>(t.str()), t.length());
}

XString xstr(std::string_view s) {
  xc::TranscodeFromStr t(reinterpret_cast<const XMLByte*>(s.data()), s.size(), "UTF-8");
  return XString(t.str(), t.length());
}

// Xerces's Initialize/Terminate are reference counted; one per guard lets
// guards and the config loader coexist in a process.
struct XercesSession {
  XercesSession() { xc::XMLPlatformUtils::Initialize(); }
  ~XercesSession() { xc::XMLPlatformUtils::Terminate(); }
  XercesSession(const XercesSession&) = delete;
  XercesSession& operator=(const XercesSession&) = delete;
};

struct FirstError {
  bool set = false;
  int line = 0, column = 0;
  std::string message;
  std::string system_id;  // the file a schema load error is in

  void record(int l, int c, std::string m, std::string sys = {}) {
    if (set) return;
    set = true;
    line = l;
    column = c;
    message = std::move(m);
    system_id = std::move(sys);
  }
};

xc::SAXException stop_parse() { return xc::SAXException("portcullis: stop"); }

// Only while loading the profile: imports and includes resolve to plain file
// names in the profile's directory. At check time every resolution is refused.
class LocalOnlyResolver final : public xc::XMLEntityResolver {
 public:
  LocalOnlyResolver(std::string dir, FirstError& err) : dir_(std::move(dir)), err_(err) {}
  void set_loading(bool loading) { loading_ = loading; }

  xc::InputSource* resolveEntity(xc::XMLResourceIdentifier* id) override {
    using RI = xc::XMLResourceIdentifier;
    const auto type = id->getResourceIdentifierType();
    const std::string location = utf8(id->getSchemaLocation() != nullptr && *id->getSchemaLocation() != 0
                                           ? id->getSchemaLocation()
                                           : id->getSystemId());
    if (!loading_) {
      err_.record(0, 0, "external resources are not allowed, got a reference to '" +
                            location.substr(0, 80) + "'");
      throw stop_parse();
    }
    const bool schema = type == RI::SchemaGrammar || type == RI::SchemaImport ||
                        type == RI::SchemaInclude;
    if (!schema || !plain_file_name(location)) {
      err_.record(0, 0, "only schemas in the profile's own directory may be imported, got '" +
                            location + "'");
      throw stop_parse();
    }
    const std::string path = (fs::path(dir_) / location).string();
    if (::access(path.c_str(), R_OK) != 0) {
      err_.record(0, 0, "imported schema '" + location + "' is missing or unreadable");
      throw stop_parse();
    }
    // Xerces takes ownership of the returned input source.
    return std::make_unique<xc::LocalFileInputSource>(xstr(path).c_str()).release();
  }

 private:
  static bool plain_file_name(const std::string& s) {
    if (s.empty() || s[0] == '.') return false;
    for (char c : s) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_';
      if (!ok) return false;
    }
    return true;
  }

  std::string dir_;
  FirstError& err_;
  bool loading_ = true;
};

// XMLCh is char16_t in Xerces-C++ 3.2, so these compare without transcoding.
using XView = std::basic_string_view<XMLCh>;
constexpr XView kNsServer = u"jabber:server";
constexpr XView kNsXsi = u"http://www.w3.org/2001/XMLSchema-instance";
constexpr XView kNsXmlns = u"http://www.w3.org/2000/xmlns/";

class StanzaHandler final : public xc::DefaultHandler {
 public:
  explicit StanzaHandler(FirstError& err) : err_(err) {}

  void allow_namespaces(std::set<XString> ns) { allowed_ = std::move(ns); }
  void reset_stanza() {
    err_ = FirstError{};
    depth_ = 0;
  }

  void setDocumentLocator(const xc::Locator* const locator) override { locator_ = locator; }

  void startElement(const XMLCh* const uri, const XMLCh* const localname,
                    const XMLCh* const /*qname*/, const xc::Attributes& attrs) override {
    ++depth_;
    if (depth_ == 1) {
      const XView name(localname != nullptr ? localname : u"");
      const bool stanza = uri != nullptr && kNsServer == XView(uri) &&
                          (name == u"message" || name == u"presence" || name == u"iq");
      if (!stanza) {
        fail("the document element must be a jabber:server message, presence or iq, got '" +
             utf8(localname).substr(0, 64) + "'");
      }
    }
    for (XMLSize_t i = 0; i < attrs.getLength(); ++i) {
      const XMLCh* a_uri = attrs.getURI(i);
      if (a_uri == nullptr) continue;
      if (kNsXsi == XView(a_uri)) fail("xsi attributes are not allowed ('" + utf8(attrs.getQName(i)) + "')");
      // With namespace-prefixes on, declarations arrive as attributes: a
      // declaration of a namespace outside the profile is a covert payload.
      if (kNsXmlns == XView(a_uri) && allowed_.count(XString(attrs.getValue(i))) == 0) {
        fail("namespace declaration '" + utf8(attrs.getQName(i)).substr(0, 64) +
             "' names a namespace outside the profile");
      }
    }
  }
  void endElement(const XMLCh* const, const XMLCh* const, const XMLCh* const) override { --depth_; }

  void processingInstruction(const XMLCh* const, const XMLCh* const) override {
    fail("processing instructions are not allowed");
  }
  void comment(const XMLCh* const, const XMLSize_t) override { fail("comments are not allowed"); }
  void startDTD(const XMLCh* const, const XMLCh* const, const XMLCh* const) override {
    fail("DOCTYPE declarations are not allowed");
  }

  void warning(const xc::SAXParseException& e) override { fail(e); }
  void error(const xc::SAXParseException& e) override { fail(e); }
  void fatalError(const xc::SAXParseException& e) override { fail(e); }

 private:
  [[noreturn]] void fail(std::string message) {
    const int line = locator_ ? static_cast<int>(locator_->getLineNumber()) : 0;
    const int column = locator_ ? static_cast<int>(locator_->getColumnNumber()) : 0;
    err_.record(line, column, std::move(message));
    throw stop_parse();
  }
  [[noreturn]] void fail(const xc::SAXParseException& e) {
    err_.record(static_cast<int>(e.getLineNumber()), static_cast<int>(e.getColumnNumber()),
                utf8(e.getMessage()), utf8(e.getSystemId()));
    throw stop_parse();
  }

  FirstError& err_;
  const xc::Locator* locator_ = nullptr;
  int depth_ = 0;
  std::set<XString> allowed_;
};

}  // namespace

struct SchemaGuard::Impl {
  XercesSession session;  // first: initialised first, terminated last
  std::string profile_file;
  FirstError err;
  std::unique_ptr<xc::XMLGrammarPool> pool;
  std::unique_ptr<LocalOnlyResolver> resolver;
  std::unique_ptr<StanzaHandler> handler;
  std::unique_ptr<xc::SAX2XMLReaderImpl> reader;  // last: destroyed before what it points to
  std::vector<std::string> namespaces;
};

SchemaGuard::SchemaGuard(std::string name, const std::string& profile_path) : name_(std::move(name)) {
  try {
    impl_ = std::make_unique<Impl>();
  } catch (const xc::XMLException& e) {
    throw config::ConfigError(profile_path, 0, 0, "cannot initialise Xerces-C++: " + utf8(e.getMessage()));
  }
  Impl& m = *impl_;
  if (::access(profile_path.c_str(), R_OK) != 0) {
    throw config::ConfigError(profile_path, 0, 0, "application profile is missing or unreadable");
  }
  const fs::path path = fs::absolute(profile_path);
  m.profile_file = path.filename().string();

  m.pool = std::make_unique<xc::XMLGrammarPoolImpl>(xc::XMLPlatformUtils::fgMemoryManager);
  m.resolver = std::make_unique<LocalOnlyResolver>(path.parent_path().string(), m.err);
  m.handler = std::make_unique<StanzaHandler>(m.err);
  // The concrete reader: only it takes an XMLEntityResolver (which sees import
  // and include locations, not just system ids).
  m.reader = std::make_unique<xc::SAX2XMLReaderImpl>(xc::XMLPlatformUtils::fgMemoryManager, m.pool.get());
  xc::SAX2XMLReaderImpl& r = *m.reader;
  r.setFeature(xc::XMLUni::fgSAX2CoreNameSpaces, true);
  r.setFeature(xc::XMLUni::fgSAX2CoreNameSpacePrefixes, true);
  r.setFeature(xc::XMLUni::fgSAX2CoreValidation, true);
  r.setFeature(xc::XMLUni::fgXercesDynamic, false);
  r.setFeature(xc::XMLUni::fgXercesSchema, true);
  r.setFeature(xc::XMLUni::fgXercesSchemaFullChecking, true);
  r.setFeature(xc::XMLUni::fgXercesValidationErrorAsFatal, true);
  r.setFeature(xc::XMLUni::fgXercesHandleMultipleImports, true);
  r.setFeature(xc::XMLUni::fgXercesUseCachedGrammarInParse, true);
  r.setFeature(xc::XMLUni::fgXercesCacheGrammarFromParse, false);
  // Never load a schema a stanza names, never an external DTD or entity.
  r.setFeature(xc::XMLUni::fgXercesLoadSchema, false);
  r.setFeature(xc::XMLUni::fgXercesLoadExternalDTD, false);
  r.setFeature(xc::XMLUni::fgXercesSkipDTDValidation, true);
  r.setFeature(xc::XMLUni::fgXercesDisableDefaultEntityResolution, true);
  r.setContentHandler(m.handler.get());
  r.setErrorHandler(m.handler.get());
  r.setLexicalHandler(m.handler.get());
  r.setXMLEntityResolver(m.resolver.get());

  try {
    xc::LocalFileInputSource xsd(xstr(path.string()).c_str());
    if (r.loadGrammar(xsd, xc::Grammar::SchemaGrammarType, true) == nullptr && !m.err.set) {
      m.err.record(0, 0, "cannot load schema");
    }
  } catch (const xc::SAXException&) {
    // details are in m.err
  } catch (const xc::XMLException& e) {
    m.err.record(static_cast<int>(e.getSrcLine()), 0, "cannot load schema: " + utf8(e.getMessage()));
  }
  if (m.err.set) {
    std::string file = m.err.system_id.empty() ? profile_path : m.err.system_id;
    if (file.rfind("file://", 0) == 0) file = file.substr(7);
    throw config::ConfigError(file, m.err.line, m.err.column,
                              "invalid application profile: " + m.err.message);
  }
  m.resolver->set_loading(false);

  std::set<XString> allowed;
  auto grammars = m.pool->getGrammarEnumerator();
  while (grammars.hasMoreElements()) {
    const XMLCh* ns = grammars.nextElement().getTargetNamespace();
    if (ns == nullptr || *ns == 0) continue;
    allowed.insert(XString(ns));
    m.namespaces.push_back(utf8(ns));
  }
  if (allowed.count(XString(kNsServer)) == 0) {
    throw config::ConfigError(profile_path, 0, 0,
                              "application profile must have the target namespace jabber:server");
  }
  m.handler->allow_namespaces(std::move(allowed));
  m.pool->lockPool();  // from here on the grammars are read-only
}

SchemaGuard::~SchemaGuard() = default;

const std::vector<std::string>& SchemaGuard::namespaces() const { return impl_->namespaces; }

GuardResult SchemaGuard::validate(std::string_view bytes) {
  Impl& m = *impl_;
  GuardResult result;
  result.guard = name_;
  m.handler->reset_stanza();
  try {
    xc::MemBufInputSource input(reinterpret_cast<const XMLByte*>(bytes.data()), bytes.size(), "stanza");
    input.setEncoding(xc::XMLUni::fgUTF8EncodingString);
    m.reader->parse(input);
  } catch (const xc::SAXException&) {
    // details are in m.err
  } catch (const xc::XMLException& e) {
    m.err.record(static_cast<int>(e.getSrcLine()), 0, utf8(e.getMessage()));
  } catch (const std::exception& e) {
    m.err.record(0, 0, std::string("validator failed: ") + e.what());
  } catch (...) {
    m.err.record(0, 0, "validator failed");
  }
  if (!m.err.set) {
    result.pass = true;
    return result;
  }
  std::string message = m.err.message;
  if (message.size() > kMaxReasonMessage) message = message.substr(0, kMaxReasonMessage) + "...";
  result.reason = m.profile_file + ": " + std::to_string(m.err.line) + ":" +
                  std::to_string(m.err.column) + ": " + message;
  return result;
}

void SchemaGuard::check(const std::string& bytes, const StanzaContext& /*ctx*/,
                        std::function<void(GuardResult)> done) {
  done(validate(bytes));
}

}  // namespace portcullis::policy
