// ManagerMetrics: the manager's Prometheus metrics (served by the daemon's --metrics-addr).
//
//   shoal_raft_term, shoal_raft_commit_index, shoal_raft_applied_index   gauges
//   shoal_raft_is_leader (1 on the leader), shoal_raft_leader_changes_total (seen here)
//   shoal_raft_voters, shoal_raft_learners
//   shoal_store_proposals_total{result="ok"|"error"}, shoal_store_proposal_seconds (histogram)
//   shoal_store_apply_seconds (histogram of one entry's Apply)
//   shoal_store_objects{kind="node"|...}, shoal_nodes{state="ready"|"down"|...}
//
// Gauges are refreshed once a second by a thread of this object; counters and histograms are
// fed by the proposer and the state machine as they run. The families are removed from the
// registry when the object is destroyed (a node that leaves the swarm stops exporting them).
//
// Thread-safety: every method may be called from any thread.
#ifndef SHOAL_MANAGER_METRICS_H_
#define SHOAL_MANAGER_METRICS_H_

#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "manager/store/memory_store.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "raft/node/raft_node.h"

namespace shoal::manager {

class ManagerMetrics {
 public:
  using InfoFn = std::function<raft::RaftNode::Info()>;
  ManagerMetrics(prometheus::Registry* registry, const store::MemoryStore* store, InfoFn info);
  ~ManagerMetrics();
  ManagerMetrics(const ManagerMetrics&) = delete;
  ManagerMetrics& operator=(const ManagerMetrics&) = delete;

  void ObserveProposal(absl::Duration latency, bool ok);
  void ObserveApply(absl::Duration latency);

 private:
  void Refresh();
  void Loop();
  prometheus::Gauge& RaftGauge(const char* name, const char* help);

  prometheus::Registry* const registry_;
  const store::MemoryStore* const store_;
  const InfoFn info_;

  std::vector<prometheus::Family<prometheus::Gauge>*> raft_families_;
  prometheus::Gauge& term_;
  prometheus::Gauge& commit_;
  prometheus::Gauge& applied_;
  prometheus::Gauge& is_leader_;
  prometheus::Gauge& voters_;
  prometheus::Gauge& learners_;
  prometheus::Family<prometheus::Counter>& leader_changes_family_;
  prometheus::Counter& leader_changes_;
  prometheus::Family<prometheus::Counter>& proposals_family_;
  prometheus::Counter& proposals_ok_;
  prometheus::Counter& proposals_error_;
  prometheus::Family<prometheus::Histogram>& proposal_seconds_family_;
  prometheus::Histogram& proposal_seconds_;
  prometheus::Family<prometheus::Histogram>& apply_seconds_family_;
  prometheus::Histogram& apply_seconds_;
  prometheus::Family<prometheus::Gauge>& objects_family_;
  prometheus::Family<prometheus::Gauge>& nodes_family_;

  uint64_t last_leader_ = 0;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_METRICS_H_
