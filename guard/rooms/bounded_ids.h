// What a room remembers by relay id (for the error replies that come back),
// bounded: the newest `cap` ids are kept, the oldest forgotten first. The first
// entry for an id stands; a repeat changes nothing.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <string>
#include <utility>

namespace portcullis::rooms {

template <typename V>
class BoundedIds {
 public:
  explicit BoundedIds(std::size_t cap) : cap_(cap) {}
  // False if `id` was already there.
  bool insert(const std::string& id, V v) {
    if (!map_.emplace(id, std::move(v)).second) return false;
    order_.push_back(id);
    if (order_.size() > cap_) {
      map_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }
  const V* find(const std::string& id) const {
    auto it = map_.find(id);
    return it == map_.end() ? nullptr : &it->second;
  }

 private:
  std::size_t cap_;
  std::map<std::string, V> map_;
  std::deque<std::string> order_;
};

}  // namespace portcullis::rooms
