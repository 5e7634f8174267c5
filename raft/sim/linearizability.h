// Linearizability checker for a key-value store's client history.
//
// The simulation records every client operation with the virtual time it was called and the time
// its reply arrived; this module decides whether some total order of those operations (a) respects
// real time — an operation that returned before another was called comes first — and (b) is a
// legal run of a sequential key-value map. That is linearizability (Herlihy & Wing), the property
// a Raft-replicated store promises its clients.
//
// Algorithm: Wing & Gong's backtracking search in the form Lowe and Porcupine made fast — walk a
// list of call/return events, linearize a call as soon as it is enabled ("just in time"), backtrack
// on reaching a return whose call is not yet linearized, and memoize every (set of linearized
// operations, model state) pair already explored so no configuration is searched twice. The
// history is first split by key: a map is linearizable iff each key's sub-history is
// (P-compositionality), and the per-key searches are small.
//
// Operations that never returned (the client gave up after a timeout) may or may not have taken
// effect. They are treated as returning at +infinity: the search may place them anywhere after
// their call, or leave them out entirely. A Get that never returned constrains nothing and is
// ignored.
//
// Time: any monotonic integer clock (the simulation uses virtual microseconds). Intervals are
// closed: an operation that returns at time t and one called at time t are concurrent, so the
// checker never rejects a history because two events happened to share a timestamp.
//
// Thread-safety: pure functions; safe to call from any thread.
#ifndef SHOAL_RAFT_SIM_LINEARIZABILITY_H_
#define SHOAL_RAFT_SIM_LINEARIZABILITY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shoal::raft::sim {

enum class KvOpKind { kPut, kGet, kCas };

struct KvOperation {
  uint64_t client = 0;  // For messages only.
  KvOpKind kind = KvOpKind::kGet;
  std::string key;
  std::string value;                    // kPut: the value written. kCas: the new value.
  std::optional<std::string> expected;  // kCas: the value required; nullopt = key must be absent.
  // Results; meaningful only when return_time is set.
  std::optional<std::string> read;  // kGet: the value seen; nullopt = key absent.
  bool cas_succeeded = false;       // kCas.
  int64_t call_time = 0;
  std::optional<int64_t> return_time;  // nullopt = never returned (timed out). >= call_time.
};

// Convenience constructors for tests and the simulation's clients.
KvOperation MakePut(uint64_t client, std::string key, std::string value, int64_t call,
                    std::optional<int64_t> ret);
KvOperation MakeGet(uint64_t client, std::string key, std::optional<std::string> read, int64_t call,
                    std::optional<int64_t> ret);
KvOperation MakeCas(uint64_t client, std::string key, std::optional<std::string> expected,
                    std::string value, bool succeeded, int64_t call, std::optional<int64_t> ret);

std::string FormatOperation(const KvOperation& op);

struct LinearizabilityOptions {
  // Bound on search steps per key; past it the verdict is kUnknown rather than running forever
  // on a pathological history. The simulation's histories need a tiny fraction of this.
  uint64_t max_steps_per_key = 50'000'000;
};

struct LinearizabilityResult {
  enum class Verdict { kLinearizable, kNotLinearizable, kUnknown };
  Verdict verdict = Verdict::kLinearizable;
  // For kNotLinearizable / kUnknown: the first offending key and a readable account of its
  // sub-history and the longest linearizable prefix the search found.
  std::string key;
  std::string explanation;
  uint64_t steps = 0;  // Search steps over all keys (a cost figure).

  bool ok() const { return verdict == Verdict::kLinearizable; }
};

LinearizabilityResult CheckKvLinearizability(const std::vector<KvOperation>& history,
                                             const LinearizabilityOptions& options = {});

}  // namespace shoal::raft::sim

#endif  // SHOAL_RAFT_SIM_LINEARIZABILITY_H_
