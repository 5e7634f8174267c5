#include "raft/sim/linearizability.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shoal::raft::sim {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
constexpr int kAbsent = 0;  // Interned value id meaning "key absent".

// One operation of a single key's sub-history, with values interned to small integers so that
// the model state is an int and cache keys are cheap to hash.
struct KeyOp {
  KvOpKind kind = KvOpKind::kGet;
  int value = kAbsent;     // kPut / kCas new value.
  int expected = kAbsent;  // kCas.
  int read = kAbsent;      // kGet result.
  bool cas_succeeded = false;
  bool pending = false;  // Never returned: result unknown.
  int64_t call = 0;
  int64_t ret = kNever;
  size_t history_index = 0;
};

// The sequential specification of one key. Returns whether `op` may run in `state` with the
// result it reported, and sets the state afterwards.
bool Step(const KeyOp& op, int state, int* next) {
  switch (op.kind) {
    case KvOpKind::kPut:
      *next = op.value;
      return true;
    case KvOpKind::kGet:
      *next = state;
      return op.pending || op.read == state;
    case KvOpKind::kCas:
      if (op.pending) {
        *next = state == op.expected ? op.value : state;
        return true;
      }
      if (op.cas_succeeded) {
        *next = op.value;
        return state == op.expected;
      }
      *next = state;
      return state != op.expected;
  }
  return false;
}

// Call and return events in one doubly-linked list, ordered by time. Linearizing an operation
// lifts both its events out of the list; backtracking puts them back, in LIFO order, which is
// what makes the O(1) relinking correct.
struct Event {
  bool is_call = false;
  int op = 0;
  Event* match = nullptr;  // call <-> return
  Event* prev = nullptr;
  Event* next = nullptr;
};

void Lift(Event* call) {
  call->prev->next = call->next;
  if (call->next != nullptr) call->next->prev = call->prev;
  Event* ret = call->match;
  ret->prev->next = ret->next;
  if (ret->next != nullptr) ret->next->prev = ret->prev;
}

void Unlift(Event* call) {
  Event* ret = call->match;
  ret->prev->next = ret;
  if (ret->next != nullptr) ret->next->prev = ret;
  call->prev->next = call;
  if (call->next != nullptr) call->next->prev = call;
}

struct CacheEntry {
  std::vector<uint64_t> linearized;
  int state;
  bool operator==(const CacheEntry& o) const {
    return state == o.state && linearized == o.linearized;
  }
  template <typename H>
  friend H AbslHashValue(H h, const CacheEntry& e) {
    return H::combine(std::move(h), e.linearized, e.state);
  }
};

enum class KeyVerdict { kOk, kViolation, kBudget };

struct KeyOutcome {
  KeyVerdict verdict = KeyVerdict::kOk;
  uint64_t steps = 0;
  std::vector<int> longest_prefix;  // Ops of the deepest partial linearization found.
};

KeyOutcome CheckKey(const std::vector<KeyOp>& ops, uint64_t max_steps) {
  KeyOutcome out;
  const int n = static_cast<int>(ops.size());
  int remaining_completed = 0;
  for (const KeyOp& op : ops) remaining_completed += op.pending ? 0 : 1;
  if (remaining_completed == 0) return out;

  // events[2i] is op i's call, events[2i+1] its return; events[2n] is the list head.
  std::vector<Event> events(2 * n + 1);
  std::vector<Event*> order;
  order.reserve(2 * n);
  for (int i = 0; i < n; ++i) {
    Event* call = &events[2 * i];
    Event* ret = &events[2 * i + 1];
    call->is_call = true;
    call->op = ret->op = i;
    call->match = ret;
    ret->match = call;
    order.push_back(call);
    order.push_back(ret);
  }
  auto time_of = [&](const Event* e) { return e->is_call ? ops[e->op].call : ops[e->op].ret; };
  // By time; at equal times calls first (closed intervals), then by op for determinism.
  std::sort(order.begin(), order.end(), [&](const Event* a, const Event* b) {
    const int64_t ta = time_of(a), tb = time_of(b);
    if (ta != tb) return ta < tb;
    if (a->is_call != b->is_call) return a->is_call;
    return a->op < b->op;
  });
  Event* head = &events[2 * n];
  Event* prev = head;
  for (Event* e : order) {
    prev->next = e;
    e->prev = prev;
    prev = e;
  }

  std::vector<uint64_t> linearized((n + 63) / 64, 0);
  absl::flat_hash_set<CacheEntry> cache;
  struct Frame {
    Event* call;
    int state_before;
  };
  std::vector<Frame> stack;
  int state = kAbsent;
  Event* entry = head->next;
  while (remaining_completed > 0) {
    if (++out.steps > max_steps) {
      out.verdict = KeyVerdict::kBudget;
      return out;
    }
    // Pending returns sit at +infinity, after every completed return; once all completed ops are
    // linearized the loop has ended, so `entry` is never null or a pending return here.
    if (entry->is_call) {
      const KeyOp& op = ops[entry->op];
      int next_state;
      if (Step(op, state, &next_state)) {
        std::vector<uint64_t> bits = linearized;
        bits[entry->op / 64] |= uint64_t{1} << (entry->op % 64);
        if (cache.insert(CacheEntry{std::move(bits), next_state}).second) {
          stack.push_back({entry, state});
          state = next_state;
          linearized[entry->op / 64] |= uint64_t{1} << (entry->op % 64);
          if (!op.pending) --remaining_completed;
          Lift(entry);
          if (stack.size() > out.longest_prefix.size()) {
            out.longest_prefix.clear();
            for (const Frame& f : stack) out.longest_prefix.push_back(f.call->op);
          }
          entry = head->next;
          continue;
        }
      }
      entry = entry->next;
    } else {
      // A return whose call is still in the list: that op had to take effect by now, and no
      // choice so far allows it. Undo the most recent choice and try the next candidate.
      if (stack.empty()) {
        out.verdict = KeyVerdict::kViolation;
        return out;
      }
      const Frame top = stack.back();
      stack.pop_back();
      state = top.state_before;
      linearized[top.call->op / 64] &= ~(uint64_t{1} << (top.call->op % 64));
      if (!ops[top.call->op].pending) ++remaining_completed;
      Unlift(top.call);
      entry = top.call->next;
    }
  }
  return out;
}

std::string FormatValue(const std::optional<std::string>& v) {
  return v.has_value() ? absl::StrCat("\"", *v, "\"") : "<absent>";
}

std::string FormatTime(std::optional<int64_t> t) {
  return t.has_value() ? absl::StrCat(*t) : "never";
}

}  // namespace

KvOperation MakePut(uint64_t client, std::string key, std::string value, int64_t call,
                    std::optional<int64_t> ret) {
  KvOperation op;
  op.client = client;
  op.kind = KvOpKind::kPut;
  op.key = std::move(key);
  op.value = std::move(value);
  op.call_time = call;
  op.return_time = ret;
  return op;
}

KvOperation MakeGet(uint64_t client, std::string key, std::optional<std::string> read, int64_t call,
                    std::optional<int64_t> ret) {
  KvOperation op;
  op.client = client;
  op.kind = KvOpKind::kGet;
  op.key = std::move(key);
  op.read = std::move(read);
  op.call_time = call;
  op.return_time = ret;
  return op;
}

KvOperation MakeCas(uint64_t client, std::string key, std::optional<std::string> expected,
                    std::string value, bool succeeded, int64_t call, std::optional<int64_t> ret) {
  KvOperation op;
  op.client = client;
  op.kind = KvOpKind::kCas;
  op.key = std::move(key);
  op.expected = std::move(expected);
  op.value = std::move(value);
  op.cas_succeeded = succeeded;
  op.call_time = call;
  op.return_time = ret;
  return op;
}

std::string FormatOperation(const KvOperation& op) {
  const bool done = op.return_time.has_value();
  std::string body;
  switch (op.kind) {
    case KvOpKind::kPut:
      body = absl::StrCat("Put(", op.key, ", \"", op.value, "\")");
      break;
    case KvOpKind::kGet:
      body = absl::StrCat("Get(", op.key, ")", done ? " -> " + FormatValue(op.read) : "");
      break;
    case KvOpKind::kCas:
      body = absl::StrCat("Cas(", op.key, ", ", FormatValue(op.expected), " => \"", op.value, "\")",
                          done ? (op.cas_succeeded ? " -> ok" : " -> failed") : "");
      break;
  }
  return absl::StrCat("client ", op.client, " [", op.call_time, ", ", FormatTime(op.return_time),
                      "] ", body);
}

LinearizabilityResult CheckKvLinearizability(const std::vector<KvOperation>& history,
                                             const LinearizabilityOptions& options) {
  // P-compositionality: check each key's sub-history on its own. std::map keeps the order of
  // keys (and hence the reported key) deterministic.
  std::map<std::string, std::vector<size_t>> by_key;
  for (size_t i = 0; i < history.size(); ++i) {
    const KvOperation& op = history[i];
    // A Get that never returned has no observable result and no effect.
    if (op.kind == KvOpKind::kGet && !op.return_time.has_value()) continue;
    by_key[op.key].push_back(i);
  }

  LinearizabilityResult result;
  for (const auto& [key, indexes] : by_key) {
    std::map<std::string, int> interned;
    auto intern = [&](const std::optional<std::string>& v) {
      if (!v.has_value()) return kAbsent;
      auto [it, inserted] = interned.emplace(*v, static_cast<int>(interned.size()) + 1);
      return it->second;
    };
    std::vector<KeyOp> ops;
    ops.reserve(indexes.size());
    for (size_t i : indexes) {
      const KvOperation& h = history[i];
      KeyOp op;
      op.kind = h.kind;
      op.history_index = i;
      op.call = h.call_time;
      op.pending = !h.return_time.has_value();
      op.ret = op.pending ? kNever : *h.return_time;
      if (h.kind != KvOpKind::kGet) op.value = intern(h.value);
      if (h.kind == KvOpKind::kCas) op.expected = intern(h.expected);
      if (h.kind == KvOpKind::kGet) op.read = intern(h.read);
      op.cas_succeeded = h.cas_succeeded;
      ops.push_back(op);
    }
    // Fast path: leave out timed-out writes whose value nobody ever observed. They may always
    // be taken not to have happened, so a linearization without them is one of the whole
    // history; and they are what makes the search explode (each can be placed or not, in any
    // order). Only if that fails — rarely, e.g. a failed CAS that needs such a write to explain
    // its failure — is the whole sub-history searched.
    std::vector<bool> observed(interned.size() + 1, false);
    for (const KeyOp& op : ops) {
      if (op.pending) continue;
      if (op.kind == KvOpKind::kGet) observed[op.read] = true;
      if (op.kind == KvOpKind::kCas) observed[op.expected] = true;
    }
    std::vector<KeyOp> reduced;
    for (const KeyOp& op : ops) {
      if (op.pending && op.kind != KvOpKind::kGet && !observed[op.value]) continue;
      reduced.push_back(op);
    }
    // And when nothing could need them, the fast verdict is final either way: in any
    // linearization, no Get falls between such a write and the next write (it would have to
    // read the unobserved value), so leaving the write out only matters to a CAS that failed, or
    // a timed-out CAS that must not apply, because the state differed from its expectation.
    bool cas_may_need_them = false;
    for (const KeyOp& op : ops) {
      if (op.kind == KvOpKind::kCas && (op.pending || !op.cas_succeeded)) cas_may_need_them = true;
    }
    KeyOutcome outcome;
    bool decided = false;
    if (reduced.size() < ops.size()) {
      outcome = CheckKey(reduced, options.max_steps_per_key);
      result.steps += outcome.steps;
      decided = outcome.verdict == KeyVerdict::kOk ||
                (outcome.verdict == KeyVerdict::kViolation && !cas_may_need_them);
      if (decided) {
        // Report against the reduced list.
        ops = std::move(reduced);
      }
    }
    if (!decided) {
      outcome = CheckKey(ops, options.max_steps_per_key);
      result.steps += outcome.steps;
    }
    if (outcome.verdict == KeyVerdict::kOk) continue;

    result.verdict = outcome.verdict == KeyVerdict::kViolation
                         ? LinearizabilityResult::Verdict::kNotLinearizable
                         : LinearizabilityResult::Verdict::kUnknown;
    result.key = key;
    std::string& ex = result.explanation;
    ex = absl::StrFormat("key %s: %s (%d operations, %d search steps)\n", key,
                         outcome.verdict == KeyVerdict::kViolation
                             ? "no linearization exists"
                             : "search budget exhausted, verdict unknown",
                         ops.size(), outcome.steps);
    ex += absl::StrFormat("longest linearizable prefix (%d of %d), in linearization order:\n",
                          outcome.longest_prefix.size(), ops.size());
    std::vector<bool> in_prefix(ops.size(), false);
    constexpr size_t kPrefixShown = 30;  // Its tail is where the search got stuck.
    const size_t skip = outcome.longest_prefix.size() > kPrefixShown
                            ? outcome.longest_prefix.size() - kPrefixShown
                            : 0;
    if (skip > 0) absl::StrAppendFormat(&ex, "  ... (%d earlier)\n", skip);
    for (size_t k = 0; k < outcome.longest_prefix.size(); ++k) {
      const int i = outcome.longest_prefix[k];
      in_prefix[i] = true;
      if (k >= skip) {
        absl::StrAppend(&ex, "  ", FormatOperation(history[ops[i].history_index]), "\n");
      }
    }
    ex += "not linearized:\n";
    constexpr size_t kMaxListed = 40;
    size_t listed = 0;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (in_prefix[i]) continue;
      if (++listed > kMaxListed) {
        ex += "  ...\n";
        break;
      }
      absl::StrAppend(&ex, "  ", FormatOperation(history[ops[i].history_index]), "\n");
    }
    return result;
  }
  return result;
}

}  // namespace shoal::raft::sim
