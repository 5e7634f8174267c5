#include "manager/metrics.h"

#include <algorithm>
#include <array>

#include "proto/objects.pb.h"

namespace shoal::manager {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  return *buckets;
}

struct KindName {
  api::ObjectKind kind;
  const char* name;
};
constexpr std::array<KindName, 7> kKinds = {{{api::OBJECT_KIND_NODE, "node"},
                                             {api::OBJECT_KIND_SERVICE, "service"},
                                             {api::OBJECT_KIND_TASK, "task"},
                                             {api::OBJECT_KIND_NETWORK, "network"},
                                             {api::OBJECT_KIND_SECRET, "secret"},
                                             {api::OBJECT_KIND_CONFIG, "config"},
                                             {api::OBJECT_KIND_CLUSTER, "cluster"}}};

}  // namespace

ManagerMetrics::ManagerMetrics(prometheus::Registry* registry, const store::MemoryStore* store,
                               InfoFn info)
    : registry_(registry),
      store_(store),
      info_(std::move(info)),
      term_(RaftGauge("shoal_raft_term", "This manager's current Raft term")),
      commit_(RaftGauge("shoal_raft_commit_index", "Highest Raft log index known committed")),
      applied_(RaftGauge("shoal_raft_applied_index", "Highest Raft log index applied here")),
      is_leader_(RaftGauge("shoal_raft_is_leader", "1 while this manager is the Raft leader")),
      voters_(RaftGauge("shoal_raft_voters", "Voting members of the Raft group")),
      learners_(RaftGauge("shoal_raft_learners", "Learners (managers still catching up)")),
      leader_changes_family_(prometheus::BuildCounter()
                                 .Name("shoal_raft_leader_changes_total")
                                 .Help("Leader changes this manager has seen")
                                 .Register(*registry)),
      leader_changes_(leader_changes_family_.Add({})),
      proposals_family_(prometheus::BuildCounter()
                            .Name("shoal_store_proposals_total")
                            .Help("Store transactions proposed through Raft by this manager")
                            .Register(*registry)),
      proposals_ok_(proposals_family_.Add({{"result", "ok"}})),
      proposals_error_(proposals_family_.Add({{"result", "error"}})),
      proposal_seconds_family_(prometheus::BuildHistogram()
                                   .Name("shoal_store_proposal_seconds")
                                   .Help("Time from proposing a transaction to its application")
                                   .Register(*registry)),
      proposal_seconds_(proposal_seconds_family_.Add({}, LatencyBuckets())),
      apply_seconds_family_(prometheus::BuildHistogram()
                                .Name("shoal_store_apply_seconds")
                                .Help("Time to apply one committed Raft entry to the store")
                                .Register(*registry)),
      apply_seconds_(apply_seconds_family_.Add({}, LatencyBuckets())),
      objects_family_(prometheus::BuildGauge()
                          .Name("shoal_store_objects")
                          .Help("Objects in the replicated store, by kind")
                          .Register(*registry)),
      nodes_family_(prometheus::BuildGauge()
                        .Name("shoal_nodes")
                        .Help("Nodes of the swarm by status, as this manager's store says")
                        .Register(*registry)) {
  Refresh();
  thread_ = std::thread([this] { Loop(); });
}

ManagerMetrics::~ManagerMetrics() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  for (auto* f : raft_families_) registry_->Remove(*f);
  registry_->Remove(leader_changes_family_);
  registry_->Remove(proposals_family_);
  registry_->Remove(proposal_seconds_family_);
  registry_->Remove(apply_seconds_family_);
  registry_->Remove(objects_family_);
  registry_->Remove(nodes_family_);
}

prometheus::Gauge& ManagerMetrics::RaftGauge(const char* name, const char* help) {
  auto& family = prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  raft_families_.push_back(&family);
  return family.Add({});
}

void ManagerMetrics::ObserveProposal(absl::Duration latency, bool ok) {
  (ok ? proposals_ok_ : proposals_error_).Increment();
  proposal_seconds_.Observe(absl::ToDoubleSeconds(latency));
}

void ManagerMetrics::ObserveApply(absl::Duration latency) {
  apply_seconds_.Observe(absl::ToDoubleSeconds(latency));
}

void ManagerMetrics::Loop() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1))) {
    mu_.Unlock();
    Refresh();
    mu_.Lock();
  }
}

void ManagerMetrics::Refresh() {
  const raft::RaftNode::Info info = info_();
  term_.Set(static_cast<double>(info.term));
  commit_.Set(static_cast<double>(info.commit));
  applied_.Set(static_cast<double>(info.applied));
  is_leader_.Set(info.state == raft::StateType::kLeader ? 1 : 0);
  voters_.Set(info.conf_state.voters_size());
  learners_.Set(info.conf_state.learners_size());
  if (info.leader != 0 && info.leader != last_leader_) {
    if (last_leader_ != 0) leader_changes_.Increment();
    last_leader_ = info.leader;
  }
  const store::StoreCounts counts = store_->Counts();
  for (const KindName& k : kKinds) {
    objects_family_.Add({{"kind", k.name}}).Set(static_cast<double>(counts.of(k.kind)));
  }
  std::array<int, 4> by_state{};
  store_->View([&](const store::ReadTx& tx) {
    for (const api::Node* n : tx.List<api::Node>()) {
      const int s = static_cast<int>(n->status().state());
      if (s >= 0 && s < static_cast<int>(by_state.size())) ++by_state[s];
    }
  });
  static constexpr std::array<const char*, 4> kStateNames = {"unknown", "down", "ready",
                                                             "disconnected"};
  for (size_t i = 0; i < by_state.size(); ++i) {
    nodes_family_.Add({{"state", kStateNames[i]}}).Set(by_state[i]);
  }
}

}  // namespace shoal::manager
