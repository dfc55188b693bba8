// GuardChain: runs the guards of one direction in order, stopping at the first
// Block. Guards may complete inside check() or later, so the walk is a loop
// that only continues synchronously when the guard already answered; an async
// answer re-enters advance() from the event loop.
#include <exception>
#include <utility>

#include "policy/guard/guard.h"

namespace portcullis::policy {

struct GuardChain::Run {
  std::weak_ptr<GuardChain*> chain;
  std::string bytes;
  StanzaContext ctx;
  std::function<void(bool, std::vector<GuardResult>)> done;
  std::vector<GuardResult> results;
  std::size_t next = 0;
  bool finished = false;

  void finish(bool pass) {
    finished = true;
    // Move out first: `done` may destroy the chain and, with it, the last
    // reference to this run.
    auto d = std::move(done);
    auto r = std::move(results);
    if (d) d(pass, std::move(r));
  }
};

namespace {

// Per-guard call state: whether the guard's check() is still on the stack and
// whether it has answered.
struct Step {
  bool in_check = true;
  bool completed = false;
};

}  // namespace

GuardChain::~GuardChain() {
  // Expire the token before the guards go, so nothing reaches this chain again.
  self_.reset();
}

GuardChain::GuardChain(GuardChain&& other) noexcept
    : guards_(std::move(other.guards_)), self_(std::move(other.self_)) {
  *self_ = this;
  other.self_ = std::make_shared<GuardChain*>(&other);
}

GuardChain& GuardChain::operator=(GuardChain&& other) noexcept {
  if (this == &other) return *this;
  self_.reset();  // abandons this chain's own pending checks
  guards_ = std::move(other.guards_);
  self_ = std::move(other.self_);
  *self_ = this;
  other.self_ = std::make_shared<GuardChain*>(&other);
  return *this;
}

void GuardChain::check(std::string bytes, StanzaContext ctx,
                       std::function<void(bool pass, std::vector<GuardResult>)> done) {
  auto run = std::make_shared<Run>();
  run->chain = self_;
  run->bytes = std::move(bytes);
  run->ctx = std::move(ctx);
  run->done = std::move(done);
  run->results.reserve(guards_.size());
  advance(run);
}

void GuardChain::advance(const std::shared_ptr<Run>& run) {
  for (;;) {
    // Never hold the token across a call out: a callback may destroy the chain.
    GuardChain* chain = nullptr;
    if (auto self = run->chain.lock()) chain = *self;
    if (chain == nullptr || run->finished) return;
    if (run->next >= chain->guards_.size()) {
      run->finish(true);
      return;
    }
    Guard& guard = *chain->guards_[run->next++];
    const std::string name = guard.name();
    auto step = std::make_shared<Step>();
    auto on_done = [run, step, name](GuardResult r) {
      if (step->completed) return;  // a second answer is ignored
      step->completed = true;
      if (run->finished || run->chain.expired()) return;
      if (r.guard.empty()) r.guard = name;
      const bool pass = r.pass;
      run->results.push_back(std::move(r));
      if (!pass) {
        run->finish(false);
        return;
      }
      if (!step->in_check) advance(run);  // async answer: continue from here
    };
    // Guards must not throw; one that does has blocked (fail closed).
    try {
      guard.check(run->bytes, run->ctx, on_done);
    } catch (const std::exception& e) {
      on_done(GuardResult{false, name, std::string("guard threw: ") + e.what()});
    } catch (...) {
      on_done(GuardResult{false, name, "guard threw an unknown exception"});
    }
    step->in_check = false;
    if (!step->completed) return;  // the guard answers later
  }
}

}  // namespace portcullis::policy
