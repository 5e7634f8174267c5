// The Raft benchmark's procedure, the same for etcd (the anchor) and Shoal's KV server: start a
// 3-member cluster on loopback, run the write load at each client count on the leader, then
// the failover trials (SIGKILL the leader by PID, time the next committed write on the
// survivors, restart the killed member with its data, wait until healthy).
//
// Thread-safety: RunSide blocks its caller; `cancel` may be set from a signal handler.
#ifndef SHOAL_BENCH_RAFT_RUNNER_H_
#define SHOAL_BENCH_RAFT_RUNNER_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/raft/cluster.h"
#include "bench/raft/load.h"
#include "bench/raft/stats.h"
#include "nlohmann/json.hpp"

namespace shoal::bench {

struct SideOptions {
  std::string name;  // "etcd 3.4.23", "shoal_kv"
  ServerKind kind = ServerKind::kEtcd;
  std::string binary;
  std::string work_dir;  // a directory on the disk being measured (not tmpfs)
  std::vector<int> clients = {1, 16, 256};
  int connections = 0;  // 0: the load generator's default
  absl::Duration warmup = absl::Seconds(2);
  absl::Duration duration = absl::Seconds(5);
  size_t value_size = 256;
  int64_t key_space = 100000;
  int failover_trials = 20;
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(const std::string&)> progress;  // one line at a time; may be empty
};

struct TierResult {
  LoadResult load;
  double server_cpu_cores = 0;   // CPU used by the three members / wall time of the tier
  double loadgen_cpu_cores = 0;  // CPU used by this process / wall time of the tier
};

struct FailoverResult {
  int trials = 0;
  int failed = 0;                 // no write committed within the probe's timeout
  std::vector<double> seconds;    // kill -> first committed write, per successful trial
  std::vector<double> restart_s;  // restart of the killed member -> cluster healthy
  std::vector<std::string> errors;
  Summary failover_s;
  Summary restart_healthy_s;
};

struct SideResult {
  std::string name;
  std::vector<TierResult> tiers;
  FailoverResult failover;
};

absl::StatusOr<SideResult> RunSide(const SideOptions& options);

// {"name", "clients": {"1": {...}, ...}, "failover": {...}}
nlohmann::ordered_json SideJson(const SideResult& side);

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_RAFT_RUNNER_H_
