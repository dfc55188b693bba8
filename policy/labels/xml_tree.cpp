// XML file -> PolicyNode tree with positions (see xml_tree.h).
#include "policy/labels/xml_tree.h"

#include <libxml/xmlreader.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <system_error>
#include <vector>

namespace portcullis::policy::labels {

namespace {

struct ReaderFree {
  void operator()(xmlTextReaderPtr r) const { xmlFreeTextReader(r); }
};

// First structured error libxml2 reports, with its position.
struct FirstError {
  bool set = false;
  int line = 0, column = 0;
  std::string message;
};

void on_error(void* arg, const xmlError* error) {
  auto* first = static_cast<FirstError*>(arg);
  if (first->set || error == nullptr) return;
  first->set = true;
  first->line = error->line;
  first->column = error->int2;
  first->message = error->message ? error->message : "XML error";
  while (!first->message.empty() && (first->message.back() == '\n' || first->message.back() == ' '))
    first->message.pop_back();
}

std::string str(const xmlChar* s) { return s ? reinterpret_cast<const char*>(s) : std::string(); }

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Start-tag positions. The reader's own parser position runs ahead of the
// node it returns (it parses in chunks), so the line comes from the node and
// the column from finding the start tag on that line in the file text.
class TagLocator {
 public:
  explicit TagLocator(std::string text) : text_(std::move(text)) {
    starts_.push_back(0);
    for (std::size_t i = 0; i < text_.size(); ++i)
      if (text_[i] == '\n') starts_.push_back(i + 1);
  }
  // Column (1-based) of "<qname" on `line`, after the previous tag found on it.
  int column(int line, const std::string& qname) {
    if (line < 1 || static_cast<std::size_t>(line) > starts_.size()) return 1;
    const std::size_t begin = starts_[static_cast<std::size_t>(line) - 1];
    const std::size_t end = static_cast<std::size_t>(line) < starts_.size() ? starts_[static_cast<std::size_t>(line)] : text_.size();
    std::size_t from = line == last_line_ ? last_pos_ : begin;
    const std::string needle = "<" + qname;
    while (true) {
      const std::size_t at = text_.find(needle, from);
      if (at == std::string::npos || at >= end) return 1;
      const std::size_t after = at + needle.size();
      const char c = after < text_.size() ? text_[after] : '>';
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/' || c == '>') {
        last_line_ = line;
        last_pos_ = after;
        return static_cast<int>(at - begin) + 1;
      }
      from = after;
    }
  }
  // Line and column of the first occurrence of `s` in the file.
  std::pair<int, int> find(const std::string& s) const {
    const std::size_t at = text_.find(s);
    if (at == std::string::npos) return {1, 1};
    std::size_t line = 0;
    while (line + 1 < starts_.size() && starts_[line + 1] <= at) ++line;
    return {static_cast<int>(line) + 1, static_cast<int>(at - starts_[line]) + 1};
  }

 private:
  std::string text_;
  std::vector<std::size_t> starts_;
  int last_line_ = 0;
  std::size_t last_pos_ = 0;
};

}  // namespace

PolicyNode read_xml_tree(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw config::ConfigError(path, 0, 0, "cannot read the file: " + ec.message());
  if (size > kMaxXmlFileBytes) throw config::ConfigError(path, 0, 0, "file too large");

  std::ifstream in(path, std::ios::binary);
  TagLocator locator{std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())};

  // XML_PARSE_NONET: never fetch anything; no NOENT/DTDLOAD: entities stay
  // references, which we refuse below.
  std::unique_ptr<xmlTextReader, ReaderFree> reader(
      xmlReaderForFile(path.c_str(), nullptr, XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_BIG_LINES));
  if (!reader) throw config::ConfigError(path, 0, 0, "cannot open the file");
  FirstError first;
  xmlTextReaderSetStructuredErrorHandler(
      reader.get(), [](void* arg, xmlErrorPtr e) { on_error(arg, e); }, &first);

  std::vector<PolicyNode*> stack;
  PolicyNode root;
  bool have_root = false;
  auto where = [&]() {
    return std::make_pair(xmlTextReaderGetParserLineNumber(reader.get()),
                          xmlTextReaderGetParserColumnNumber(reader.get()));
  };
  auto fail_here = [&](const std::string& msg) {
    const auto [l, c] = where();
    throw config::ConfigError(path, l, c, msg);
  };

  int r;
  while ((r = xmlTextReaderRead(reader.get())) == 1) {
    const int type = xmlTextReaderNodeType(reader.get());
    switch (type) {
      case XML_READER_TYPE_ELEMENT: {
        if (static_cast<int>(stack.size()) >= kMaxXmlDepth) fail_here("document nested too deeply");
        PolicyNode node;
        node.name = str(xmlTextReaderConstLocalName(reader.get()));
        node.ns = str(xmlTextReaderConstNamespaceUri(reader.get()));
        node.file = path;
        const xmlNodePtr current = xmlTextReaderCurrentNode(reader.get());
        node.line = current ? static_cast<int>(xmlGetLineNo(current)) : where().first;
        node.column = locator.column(node.line, str(xmlTextReaderConstName(reader.get())));
        while (xmlTextReaderMoveToNextAttribute(reader.get()) == 1) {
          if (xmlTextReaderIsNamespaceDecl(reader.get())) continue;
          if (xmlTextReaderConstPrefix(reader.get()) != nullptr) continue;   // prefixed: not ours
          node.attrs.emplace_back(str(xmlTextReaderConstLocalName(reader.get())),
                                  str(xmlTextReaderConstValue(reader.get())));
        }
        xmlTextReaderMoveToElement(reader.get());
        const bool empty = xmlTextReaderIsEmptyElement(reader.get());
        PolicyNode* placed;
        if (stack.empty()) {
          if (have_root) fail_here("more than one root element");
          root = std::move(node);
          have_root = true;
          placed = &root;
        } else {
          stack.back()->children.push_back(std::move(node));
          placed = &stack.back()->children.back();
        }
        if (!empty) stack.push_back(placed);
        break;
      }
      case XML_READER_TYPE_END_ELEMENT:
        if (!stack.empty()) {
          stack.back()->text = trim(stack.back()->text);
          stack.pop_back();
        }
        break;
      case XML_READER_TYPE_TEXT:
      case XML_READER_TYPE_CDATA:
        if (!stack.empty()) stack.back()->text += str(xmlTextReaderConstValue(reader.get()));
        break;
      case XML_READER_TYPE_DOCUMENT_TYPE:
        {
          const auto [l, c] = locator.find("<!DOCTYPE");
          throw config::ConfigError(path, l, c, "a document type declaration is not allowed");
        }
        break;
      case XML_READER_TYPE_ENTITY_REFERENCE:
      case XML_READER_TYPE_ENTITY:
        fail_here("entity references are not allowed");
        break;
      default:
        break;   // comments, whitespace, processing instructions: no meaning here
    }
  }
  if (r < 0 || first.set) {
    if (first.set) throw config::ConfigError(path, first.line, first.column, first.message);
    fail_here("XML parse error");
  }
  if (!have_root) throw config::ConfigError(path, 1, 1, "no root element");
  return root;
}

}  // namespace portcullis::policy::labels
