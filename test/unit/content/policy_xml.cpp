#include "policy_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <stdexcept>

#include "guard/xmpp/stream_parser.h"
#include "policy/content/register.h"

namespace portcullis::test {

namespace {

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

policy::PolicyNode convert(const xmlNode* n, const std::string& file) {
  policy::PolicyNode out;
  out.name = reinterpret_cast<const char*>(n->name);
  if (n->ns && n->ns->href) out.ns = reinterpret_cast<const char*>(n->ns->href);
  out.file = file;
  out.line = static_cast<int>(xmlGetLineNo(n));
  out.column = 1;
  for (const xmlAttr* a = n->properties; a; a = a->next) {
    if (a->ns) continue;
    xmlChar* v = xmlNodeListGetString(n->doc, a->children, 1);
    out.attrs.emplace_back(reinterpret_cast<const char*>(a->name),
                           v ? reinterpret_cast<const char*>(v) : "");
    xmlFree(v);
  }
  std::string text;
  for (const xmlNode* c = n->children; c; c = c->next) {
    if (c->type == XML_ELEMENT_NODE) out.children.push_back(convert(c, file));
    else if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
      text += reinterpret_cast<const char*>(c->content);
  }
  out.text = trim(text);
  return out;
}

policy::PolicyNode from_doc(xmlDoc* raw, const std::string& file) {
  std::unique_ptr<xmlDoc, DocFree> doc(raw);
  if (!doc) throw std::runtime_error("policy snippet is not well-formed");
  return convert(xmlDocGetRootElement(doc.get()), file);
}

}  // namespace

policy::PolicyNode policy_node(std::string_view xml, const std::string& file) {
  return from_doc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), file.c_str(), nullptr,
                                XML_PARSE_NONET | XML_PARSE_NOBLANKS),
                  file);
}

policy::PolicyNode policy_file_node(const std::string& path) {
  return from_doc(xmlReadFile(path.c_str(), nullptr, XML_PARSE_NONET | XML_PARSE_NOBLANKS), path);
}

policy::FilterSpec spec_for(const policy::PolicyNode& node) {
  policy::FilterSpec spec;
  spec.type = node.name;
  spec.name = node.attr_or("name", node.name);
  spec.shadow = node.attr_or("shadow", "false") == "true";
  spec.node = &node;
  spec.file = node.file;
  spec.line = node.line;
  spec.column = node.column;
  return spec;
}

policy::FilterRegistry content_registry() {
  policy::FilterRegistry r;
  policy::content::register_content_filters(r);
  return r;
}

std::shared_ptr<const policy::Filter> build_filter(const policy::PolicyNode& node) {
  return content_registry().build(spec_for(node));
}

xmpp::Element stanza(std::string_view xml) {
  std::string error;
  auto e = xmpp::parse_element(xml, {}, &error);
  if (!e) throw std::runtime_error("test stanza does not parse: " + error);
  return std::move(*e);
}

std::string note(const policy::Verdict& v, std::string_view key) {
  for (const auto& [k, val] : v.notes)
    if (k == key) return val;
  return {};
}

std::size_t note_count(const policy::Verdict& v, std::string_view key) {
  std::size_t n = 0;
  for (const auto& [k, val] : v.notes) n += k == key ? 1 : 0;
  return n;
}

}  // namespace portcullis::test
