// The closed-loop write load and the failover probe, over etcd's gRPC KV API.
//
// RunLoad keeps `clients` unary KV.Put calls outstanding against one endpoint (asynchronous gRPC:
// one CompletionQueue per thread, each completion immediately issues the slot's next Put), with
// keys taken round-robin from a fixed key space and a fixed value. It reports writes/s and the
// latency of every Put that completed inside the measured window.
//
// TimeUntilWriteCommits measures how long after an event (typically: the leader was SIGKILLed)
// a Put first commits on any of the given endpoints. Attempts are staggered (a new one to every
// endpoint each `attempt_interval`, each with a short deadline), so a write that becomes possible
// is noticed within about one interval, whatever the server does with requests it cannot serve.
//
// Every loop here is bounded in time and count. Thread-safety: each call is self-contained;
// calls may run concurrently with each other.
#ifndef SHOAL_BENCH_RAFT_LOAD_H_
#define SHOAL_BENCH_RAFT_LOAD_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/raft/stats.h"

namespace shoal::bench {

struct LoadOptions {
  std::string endpoint;  // where every Put goes (the leader, for a fair comparison)
  int clients = 1;       // Puts kept outstanding
  int connections = 0;   // TCP connections the clients share round-robin; 0: min(clients, 16)
  int threads = 2;       // each with its own CompletionQueue
  absl::Duration warmup = absl::Seconds(1);
  // Exactly one of these bounds the measured part: a duration, or a number of Puts.
  absl::Duration duration = absl::Seconds(5);
  int64_t total = 0;  // when > 0, measure this many Puts instead of a duration
  size_t value_size = 256;
  int64_t key_space = 100000;
  std::string key_prefix = "bench/";
  absl::Duration request_timeout = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(5);
  // When set and true, the load ends early (the caller was asked to stop).
  const std::atomic<bool>* cancel = nullptr;
};

struct LoadResult {
  int clients = 0;
  int connections = 0;
  double seconds = 0;  // length of the measured window
  int64_t writes = 0;  // Puts that succeeded inside the window
  int64_t errors = 0;  // Puts that failed inside the window
  std::string first_error;
  double writes_per_s = 0;
  Summary latency_ms;  // of the successful Puts inside the window
};

// Runs the load. Fails only when it cannot run at all (bad options, or no connection to the
// endpoint within connect_timeout); failed Puts are counted in
// the result (after a failure a slot waits 10 ms before its next Put, so a down server is not
// hammered).
absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options);

struct ProbeOptions {
  std::vector<std::string> endpoints;  // e.g. the surviving members
  absl::Duration attempt_deadline = absl::Milliseconds(100);
  absl::Duration attempt_interval = absl::Milliseconds(20);
  absl::Duration timeout = absl::Seconds(10);
  std::string key = "bench/failover";
  size_t value_size = 256;
};

struct ProbeResult {
  absl::Duration elapsed;  // from just after `start` returned to the first successful Put
  std::string endpoint;    // which endpoint committed it
  int attempts = 0;        // Puts sent, over all endpoints
};

// Connects to every endpoint, then runs `start` (may be empty), then sends staggered Puts until
// one succeeds. DEADLINE_EXCEEDED if none did within `timeout`; `start`'s error is returned as is.
absl::StatusOr<ProbeResult> TimeUntilWriteCommits(const ProbeOptions& options,
                                                  const std::function<absl::Status()>& start);

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_RAFT_LOAD_H_
