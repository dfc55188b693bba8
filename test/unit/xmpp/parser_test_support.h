// Shared helpers for the guard/xmpp unit tests: a recording stream handler and
// corpus file access.
#pragma once

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "guard/xmpp/stream_parser.h"

namespace portcullis::xmpp::test {

// Records every callback in order.
struct Recorder : StreamHandler {
  std::vector<StreamHeader> opens;
  std::vector<Element> elements;
  std::vector<std::size_t> wire_sizes;
  int closes = 0;
  std::vector<std::pair<StreamErrorCondition, std::string>> errors;
  std::function<void(const Element&)> on_element_hook;   // e.g. to reset()

  void on_stream_open(const StreamHeader& h) override { opens.push_back(h); }
  void on_element(Element e, std::size_t wire_bytes) override {
    wire_sizes.push_back(wire_bytes);
    elements.push_back(std::move(e));
    if (on_element_hook) on_element_hook(elements.back());
  }
  void on_stream_close() override { ++closes; }
  void on_stream_error(StreamErrorCondition c, std::string text) override {
    errors.emplace_back(c, std::move(text));
  }
};

inline std::string corpus_file(const std::string& name) {
  const std::string path = std::string(PORTCULLIS_SOURCE_DIR) + "/test/corpus/xml/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing corpus file " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline const std::string kHeader =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='a.example' to='b.example' id='s1' version='1.0' xml:lang='en'>";

}  // namespace portcullis::xmpp::test
