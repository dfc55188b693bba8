// The guard stage: after the policy pipeline has released a stanza (and before
// it is archived and released), independent XML guards check the exact bytes
// that would cross. A guard only passes or blocks; it never transforms. A guard
// that changes the stanza (an external guard echoing different bytes) has
// blocked it. Several guards are chained; all must pass.
//
// Guards may be asynchronous (an external guard program answers later), so the
// interface takes a completion callback. It is called exactly once, from the
// event loop (possibly before check() returns for synchronous guards).
// A guard that fails in any way (crash, timeout, garbled answer, internal
// error) must complete with Block: the stage fails closed.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "policy/filter.h"

namespace portcullis::policy {

struct GuardResult {
  bool pass = false;
  std::string guard;      // guard instance name, for the audit record
  std::string reason;     // why it blocked ("not valid against strict-low-to-high.xsd: line 1 col 40: ..."),
                          // or empty on pass; never stanza content beyond what validation reports
};

class Guard {
 public:
  virtual ~Guard() = default;
  // Checks `bytes` (the self-contained serialized stanza about to be released)
  // for `ctx.direction`. Calls `done` exactly once, either before check()
  // returns or later from the event loop; a guard destroyed first drops its
  // pending callbacks without calling them.
  virtual void check(const std::string& bytes, const StanzaContext& ctx,
                     std::function<void(GuardResult)> done) = 0;
  virtual const std::string& name() const = 0;
};

// Runs guards in order; stops at the first Block. `done` gets every result
// (the audit record lists each guard that ran).
//
// check() works whether each guard completes synchronously (inside its own
// check()) or later from the event loop. An empty chain passes at once with no
// results (the owner decides whether an empty guard stage is allowed). A guard
// that throws counts as a Block ("guard threw: ..."); a guard calling its
// callback twice is ignored the second time.
// Destroying the chain while a check is pending is safe: the pending checks are
// abandoned and their `done` is never called (nothing is released). A chain may
// be moved; pending checks follow it to its new address.
class GuardChain {
 public:
  GuardChain() = default;
  ~GuardChain();
  GuardChain(GuardChain&& other) noexcept;
  GuardChain& operator=(GuardChain&& other) noexcept;
  GuardChain(const GuardChain&) = delete;
  GuardChain& operator=(const GuardChain&) = delete;

  void add(std::unique_ptr<Guard> g) { guards_.push_back(std::move(g)); }
  bool empty() const { return guards_.empty(); }
  std::size_t size() const { return guards_.size(); }
  void check(std::string bytes, StanzaContext ctx, std::function<void(bool pass, std::vector<GuardResult>)> done);

 private:
  struct Run;
  static void advance(const std::shared_ptr<Run>& run);

  std::vector<std::unique_ptr<Guard>> guards_;
  // Liveness token: pending runs hold a weak_ptr and reach the chain through
  // it. Declared after guards_ so it dies first: a guard completing from its
  // destructor finds the chain already gone.
  std::shared_ptr<GuardChain*> self_ = std::make_shared<GuardChain*>(this);
};

}  // namespace portcullis::policy
