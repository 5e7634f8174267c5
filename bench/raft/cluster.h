// A 3-member replicated KV cluster on 127.0.0.1 for the Raft benchmark: either etcd (the anchor)
// or Shoal's benchmark KV server, both speaking etcd's gRPC API. Members can be SIGKILLed and
// restarted one at a time (with their data) for the failover measurement.
//
// Every process is ended by its own PID (never by name): Stop() and the destructor send SIGTERM,
// then SIGKILL after a grace period. Data directories and logs live under the directory the
// caller passes in; the caller owns (and removes) it.
//
// Thread-safety: one thread drives a Cluster.
#ifndef SHOAL_BENCH_RAFT_CLUSTER_H_
#define SHOAL_BENCH_RAFT_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/raft/kv_client.h"
#include "bench/raft/process.h"

namespace shoal::bench {

enum class ServerKind { kEtcd, kShoalKv };

struct ClusterOptions {
  ServerKind kind = ServerKind::kEtcd;
  std::string binary;  // path of etcd or shoal_kv
  std::string dir;     // existing directory for data dirs and logs
  int members = 3;
  // etcd's own defaults, passed explicitly so the anchor's timing is visible in the command.
  int heartbeat_ms = 100;
  int election_ms = 1000;
};

// Where one member listens and keeps its data.
struct MemberLayout {
  int id = 0;  // 1-based, as in shoal_kv's --id and --peers
  int peer_port = 0;
  int client_port = 0;
  std::string data_dir;
  std::string log_path;
  std::string client_endpoint() const;  // "127.0.0.1:PORT"
};

// Picks ports and paths for `options.members` members.
absl::StatusOr<std::vector<MemberLayout>> PlanMembers(const ClusterOptions& options);

// The command line that starts (or restarts, with its data kept) member `index` (0-based).
std::vector<std::string> MemberCommand(const ClusterOptions& options,
                                       const std::vector<MemberLayout>& members, size_t index);

class Cluster {
 public:
  // Starts every member; does not wait for the cluster to form (see WaitHealthy).
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const ClusterOptions& options);
  ~Cluster();  // Stop()
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  size_t size() const { return members_.size(); }
  std::vector<std::string> ClientEndpoints() const;
  const MemberLayout& member(size_t index) const { return members_[index]; }
  pid_t pid(size_t index) const { return processes_[index].pid(); }
  bool running(size_t index) const { return processes_[index].running(); }

  // Waits until every running member answers Status, all agree on a leader and none lags
  // behind it by more than `max_lag` entries. Returns the running members' statuses.
  absl::StatusOr<std::vector<MemberStatus>> WaitHealthy(absl::Duration timeout,
                                                        uint64_t max_lag = 1000) const;

  // The member every member names as leader, by index; FAILED_PRECONDITION if they disagree.
  absl::StatusOr<size_t> Leader() const;

  // SIGKILLs member `index` by PID without waiting (see Reap).
  absl::Status Kill(size_t index);
  // Collects a killed member. REQUIRES: Kill(index) was called.
  absl::Status Reap(size_t index);
  // Starts member `index` again with its data. REQUIRES: it is not running.
  absl::Status Restart(size_t index);

  // CPU seconds used so far by the members running now.
  double CpuSeconds() const;

  // SIGTERM to every member, SIGKILL after `grace`; all reaped.
  void Stop(absl::Duration grace = absl::Seconds(5));

 private:
  Cluster(ClusterOptions options, std::vector<MemberLayout> members);
  absl::Status StartMember(size_t index);

  ClusterOptions options_;
  std::vector<MemberLayout> members_;
  std::vector<Process> processes_;
};

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_RAFT_CLUSTER_H_
