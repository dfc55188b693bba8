// Xerces-C++ SAX2 parse with schema validation against a local XSD only
// (grammar preloaded and cached, no schema hints, no DTD, no entity
// resolution), building a small positioned element tree. Shared by the
// appliance config and the policy file loaders.
#include "guard/config/xml_tree.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

#include <xercesc/framework/LocalFileInputSource.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
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

namespace portcullis::config {

namespace {

namespace fs = std::filesystem;
namespace xc = xercesc;

std::string utf8(const XMLCh* s) {
  if (s == nullptr) return {};
  xc::TranscodeToStr t(s, "UTF-8");
  return std::string(reinterpret_cast<const char*>(t.str()), t.length());
}

std::string utf8(const XMLCh* s, XMLSize_t length) {
  if (s == nullptr || length == 0) return {};
  xc::TranscodeToStr t(s, length, "UTF-8");
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

  void record(int l, int c, std::string m) {
    if (set) return;
    set = true;
    line = l;
    column = c;
    message = std::move(m);
  }
};

// Thrown from the handlers to stop Xerces at the first problem; the details are
// in FirstError. A Xerces exception type, so Xerces unwinds through it cleanly.
xc::SAXException stop_parse() { return xc::SAXException("portcullis: stop"); }

// The only resolver: while the grammar loads, a schema may include or import
// sibling files of its own directory by plain file name; everything else (any
// external entity, DTD, URL, path, and anything at all while the document is
// parsed) is refused.
class LocalSchemaResolver : public xc::XMLEntityResolver {
 public:
  LocalSchemaResolver(FirstError& err, const xc::Locator* const& loc, std::string schema_dir)
      : err_(err), loc_(loc), schema_dir_(std::move(schema_dir)) {}

  void allow_schema_includes(bool allow) { allow_includes_ = allow; }

  xc::InputSource* resolveEntity(xc::XMLResourceIdentifier* id) override {
    using RI = xc::XMLResourceIdentifier;
    const std::string system_id = utf8(id->getSystemId());
    const auto type = id->getResourceIdentifierType();
    if (allow_includes_ && (type == RI::SchemaInclude || type == RI::SchemaImport ||
                            type == RI::SchemaRedefine)) {
      const bool plain_name = !system_id.empty() &&
                              system_id.find_first_of("/\\:") == std::string::npos &&
                              system_id != "." && system_id != "..";
      const std::string path = (fs::path(schema_dir_) / system_id).string();
      struct stat st {};
      if (plain_name && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        // Xerces adopts the returned source (its API has no other way).
        return new xc::LocalFileInputSource(XStr(path).get());
      }
      err_.record(0, 0, "expected a schema file in " + schema_dir_ + ", got a reference to '" +
                            system_id + "'");
      throw stop_parse();
    }
    err_.record(loc_ ? static_cast<int>(loc_->getLineNumber()) : 0,
                loc_ ? static_cast<int>(loc_->getColumnNumber()) : 0,
                "external resources are not allowed, got a reference to '" + system_id + "'");
    throw stop_parse();
  }

 private:
  FirstError& err_;
  const xc::Locator* const& loc_;
  std::string schema_dir_;
  bool allow_includes_ = false;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

class TreeBuilder : public xc::DefaultHandler {
 public:
  TreeBuilder(FirstError& err, const PositionMap& positions, const XmlLoad& load)
      : err_(err), positions_(positions), load_(load) {}

  const xc::Locator* const& locator_ref() const { return locator_; }
  std::optional<XmlNode>& root() { return root_; }

  void setDocumentLocator(const xc::Locator* const locator) override { locator_ = locator; }

  void startElement(const XMLCh* const uri, const XMLCh* const localname,
                    const XMLCh* const /*qname*/, const xc::Attributes& attrs) override {
    XmlNode n;
    n.name = utf8(localname);
    n.ns = utf8(uri);
    n.file = load_.file;
    auto [line, column] = positions_.tag_start(static_cast<int>(locator_->getLineNumber()),
                                               static_cast<int>(locator_->getColumnNumber()));
    n.line = line;
    n.column = column;
    for (XMLSize_t i = 0; i < attrs.getLength(); ++i) {
      // Only unprefixed attributes are settings; namespaced ones (xsi:...) are not.
      if (utf8(attrs.getURI(i)).empty()) {
        n.attrs.emplace_back(utf8(attrs.getLocalName(i)), utf8(attrs.getValue(i)));
      }
    }
    stack_.push_back(std::move(n));
  }

  void characters(const XMLCh* const chars, const XMLSize_t length) override {
    if (!stack_.empty()) stack_.back().text += utf8(chars, length);
  }

  void endElement(const XMLCh* const, const XMLCh* const, const XMLCh* const) override {
    XmlNode n = std::move(stack_.back());
    stack_.pop_back();
    n.text = trim(n.text);
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
    err_.record(line, column, "expected the <" + load_.root_name +
                                  "> element, got a DOCTYPE declaration (DTDs are not allowed)");
    throw stop_parse();
  }

  void warning(const xc::SAXParseException& e) override { fail(e); }
  void error(const xc::SAXParseException& e) override { fail(e); }
  void fatalError(const xc::SAXParseException& e) override { fail(e); }

 private:
  // Schema and well-formedness errors keep Xerces's own position: it points at
  // the offending character or the end of the offending start tag.
  [[noreturn]] void fail(const xc::SAXParseException& e) {
    const int line = static_cast<int>(e.getLineNumber());
    const int column = static_cast<int>(e.getColumnNumber());
    err_.record(line, column, positions_.with_tag_context(line, column, utf8(e.getMessage())));
    throw stop_parse();
  }

  FirstError& err_;
  const PositionMap& positions_;
  const XmlLoad& load_;
  const xc::Locator* locator_ = nullptr;
  std::vector<XmlNode> stack_;
  std::optional<XmlNode> root_;
};

}  // namespace

std::string read_file_capped(const std::string& file, std::uintmax_t max_bytes,
                             const std::string& what) {
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  if (ec) throw ConfigError(file, 0, 0, "cannot read " + what + ": " + ec.message());
  if (size > max_bytes) {
    throw ConfigError(file, 0, 0, what + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file, 0, 0, "cannot open " + what);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

XmlNode load_validated_xml(const XmlLoad& load) {
  return parse_validated_xml(load, read_file_capped(load.file, load.max_bytes, load.what));
}

XmlNode parse_validated_xml(const XmlLoad& load, const std::string& text) {
  const std::string& file = load.file;
  std::optional<XercesSession> session;
  try {
    session.emplace();
  } catch (const xc::XMLException& e) {
    throw ConfigError(file, 0, 0, "cannot initialise Xerces-C++: " + utf8(e.getMessage()));
  }
  const std::string& schema_path = load.schema_file;
  if (::access(schema_path.c_str(), R_OK) != 0) {
    throw ConfigError(schema_path, 0, 0, "schema file is missing or unreadable");
  }

  FirstError err;
  PositionMap positions(text);
  TreeBuilder builder(err, positions, load);
  LocalSchemaResolver resolver(err, builder.locator_ref(),
                               fs::path(schema_path).parent_path().string());

  // The implementation class itself: only it takes an XMLEntityResolver, the
  // resolver that is told what kind of resource (schema include, entity) is asked for.
  auto reader = std::make_unique<xc::SAX2XMLReaderImpl>();
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
  reader->setXMLEntityResolver(&resolver);

  // The grammar comes from the schema's directory only; errors in the schema
  // itself are reported against the schema file.
  resolver.allow_schema_includes(true);
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
  resolver.allow_schema_includes(false);

  xc::MemBufInputSource input(reinterpret_cast<const XMLByte*>(text.data()), text.size(),
                              XStr(file).get());
  try {
    reader->parse(input);
  } catch (const xc::SAXException&) {
    // details are in err
  } catch (const xc::XMLException& e) {
    err.record(0, 0, utf8(e.getMessage()));
  }
  if (err.set) throw ConfigError(file, err.line, err.column, err.message);
  if (!builder.root()) {
    throw ConfigError(file, 1, 1, "expected the <" + load.root_name + "> element, got nothing");
  }
  // A schema may declare other global elements (a policy's filter elements
  // are); only the document element named by the caller is a document.
  const std::string& got = builder.root()->name;
  if (got != load.root_name && (load.other_root.empty() || got != load.other_root)) {
    builder.root()->fail("expected the <" + load.root_name + ">" +
                         (load.other_root.empty() ? std::string() : " or <" + load.other_root + ">") +
                         " element, got <" + got + ">");
  }
  return std::move(*builder.root());
}

}  // namespace portcullis::config
