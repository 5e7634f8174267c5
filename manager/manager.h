// Manager: the manager role of a node — a Raft member holding the replicated store, and the
// services other nodes call on the manager port (docs/cluster.md has the picture).
//
// Start() brings the role up in one of four ways:
//   kInit             `swarm init`: a new one-member Raft group; writes the Cluster and this Node
//                     into the store once it leads.
//   kJoin             a manager joining (or a worker promoted): RaftMembership.Join on an existing
//                     manager gives it a Raft ID; it enters as a learner and is promoted by the
//                     leader once caught up.
//   kRestart          after a restart: its Raft ID and log are in <state-dir>/raft.
//   kForceNewCluster  `swarm init --force-new-cluster`: the restart of a lone survivor, whose log
//                     is rewritten so it alone is the group (raft::RaftNodeOptions).
//
// On disk, under <state-dir>/raft/: the DEK file (manager/encryption), member.pb (this manager's
// Raft ID and cluster) and log/ (raft::DurableLog, every record sealed with the DEK).
//
// Leadership: while this manager leads, it also runs the leader-only loops — node liveness
// (Dispatcher), promote/demote (RoleManager), root CA rotation, and the promotion of caught-up
// learners to voters.
//
// Thread-safety: every public method may be called from any thread. Stop() is idempotent.
#ifndef SHOAL_MANAGER_MANAGER_H_
#define SHOAL_MANAGER_MANAGER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "grpcpp/grpcpp.h"
#include "manager/encryption/data_key.h"
#include "manager/encryption/key_ring_encrypter.h"
#include "manager/raft_control.h"
#include "manager/store/memory_store.h"
#include "pki/certificate_store.h"
#include "pki/grpc_tls.h"
#include "proto/objects.pb.h"
#include "proto/raft_transport.pb.h"
#include "raft/node/raft_node.h"
#include "raft/storage/encrypter.h"
#include "raft/transport/deferred_handler.h"
#include "raft/transport/transport.h"
#include "raft/transport/transport_service.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace shoal::manager {

class ControlApi;
class Dispatcher;
class LogBroker;
class NodeCaService;
class ManagerCaService;
class RoleManager;
class CaRotationReconciler;
class Allocator;
namespace orchestrator {
class Orchestrators;
}  // namespace orchestrator
class SchedulingLoop;
class ManagerMetrics;
class Manager;

struct ManagerOptions {
  enum class Mode { kInit, kJoin, kRestart, kForceNewCluster };
  Mode mode = Mode::kRestart;

  std::string state_dir;
  std::string node_id;     // from this node's certificate
  std::string cluster_id;  // from this node's certificate
  pki::NodeCertificates certs;
  std::string listen_addr;     // host:port the manager port binds
  std::string advertise_addr;  // host:port other nodes reach it at
  std::string kek;             // the unlock key's bytes when autolocked, else empty

  // kJoin: managers to ask for membership (host:port), tried in order.
  std::vector<std::string> join_addrs;
  // kInit: the objects to create once this manager leads.
  api::Cluster initial_cluster;
  api::Node initial_node;

  Clock* clock = nullptr;                   // nullptr = RealClock()
  prometheus::Registry* metrics = nullptr;  // nullptr = no metrics
  // Called (from a manager thread; `self` is the manager) when the cluster's newest unlock key
  // differs from the one this manager's keys are wrapped with; the key is empty when autolock
  // was switched off. The node re-wraps both key files with the two-step protocol of
  // encryption::DekFile: self.StageKeys(k), re-wrap its own node key, self.CommitKeys(k) (or
  // self.AbortKeys() on failure). An error is retried a second later. Unset: the manager
  // re-wraps only its DEK file.
  std::function<absl::Status(Manager& self, const std::string& new_kek)> on_kek_change;
};

class Manager : public RaftControl {
 public:
  static absl::StatusOr<std::unique_ptr<Manager>> Start(ManagerOptions options);
  ~Manager() override;
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Stops serving, stops the leader loops and the Raft member. If this manager leads and others
  // remain, it first hands leadership over (bounded by `handover`).
  void Stop(absl::Duration handover = absl::Seconds(5));

  ControlApi& control() { return *control_; }
  store::MemoryStore& store() { return *store_; }
  raft::RaftNode::Info raft_info() const;
  // The port the manager server actually listens on (useful with port 0 in tests).
  int listen_port() const { return listen_port_; }
  const ManagerOptions& options() const { return options_; }

  // The DEK file's part of a KEK change (see ManagerOptions::on_kek_change).
  absl::Status StageKeys(const std::string& new_kek);
  absl::Status CommitKeys(const std::string& new_kek);
  void AbortKeys();

  // RaftControl.
  std::vector<ManagerMember> Members() const override;
  bool IsLeader() const override;
  uint64_t local_raft_id() const override { return raft_id_; }
  std::string local_node_id() const override { return options_.node_id; }
  absl::Status ReadBarrier(absl::Time deadline) override;
  absl::Status RemoveMember(uint64_t raft_id, absl::Time deadline) override;

  // An mTLS channel to another manager, checked against the name "swarm-manager".
  std::shared_ptr<grpc::Channel> DialManager(const std::string& addr) const;
  // Whether the store says `node_id` is a manager (its role, not its certificate's).
  bool IsManagerInStore(const std::string& node_id) const;
  // The leader's manager address, "" when no leader is known.
  std::string LeaderAddr() const;

 private:
  class Proposer;
  class TimedStateMachine;
  class TransportAuthService;
  class MembershipService;

  explicit Manager(ManagerOptions options);
  absl::Status Init();
  absl::Status LoadOrCreateKeys();
  absl::Status JoinRaft(std::vector<api::RaftMember>* members);
  absl::Status JoinRaftOnce(std::vector<api::RaftMember>* members);
  absl::Status StartServer();
  absl::Status CreateInitialObjects();
  void LeadershipLoop();
  void OnLeadershipChange(bool leading);
  void StartOrchestration();
  void StopOrchestration();
  void PromoteCaughtUpLearners(const raft::RaftNode::Info& info);
  void ProbeReachability();
  void WatchUnlockKey();
  absl::Status ChangeKeysOwnFilesOnly(const std::string& new_kek);
  // After a data key rotation (or a restart in the middle of one): re-seals the Raft log under
  // the current data key, drops the older ones, and rewrites the DEK file. No-op with one key.
  absl::Status FinishDataKeyRotation();
  encryption::KeyRingEncrypter* Ring() const;
  // RaftMembership.Leave on the leader.
  absl::Status LeaveThroughLeader(uint64_t raft_id, absl::Time deadline, const std::string& what);
  // On the leader: adds a manager's node to Raft as a learner (RaftMembership.Join).
  absl::Status AdmitMember(const std::string& node_id, const std::string& addr,
                           api::JoinResponse* response);

  ManagerOptions options_;
  Clock* const clock_;
  uint64_t raft_id_ = 0;
  bool joined_now_ = false;  // Init took a new Raft seat (kJoin)
  int listen_port_ = 0;

  std::unique_ptr<raft::Encrypter> encrypter_;  // an encryption::KeyRingEncrypter
  encryption::DataKey staged_key_;              // the data key of a KEK change in progress
  std::unique_ptr<raft::DeferredHandler> handler_;
  std::unique_ptr<raft::Transport> transport_;
  std::unique_ptr<raft::TransportService> transport_service_;
  std::unique_ptr<Proposer> proposer_;
  std::unique_ptr<store::MemoryStore> store_;
  std::unique_ptr<TimedStateMachine> state_machine_;
  std::unique_ptr<raft::RaftNode> raft_;
  // raft_ as other threads may read it: null until the member is running (the server, and so
  // the services calling RaftControl, start before it).
  std::atomic<raft::RaftNode*> raft_ptr_{nullptr};
  std::unique_ptr<ControlApi> control_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<LogBroker> log_broker_;
  std::unique_ptr<NodeCaService> node_ca_;
  std::unique_ptr<ManagerCaService> manager_ca_;
  std::unique_ptr<TransportAuthService> transport_auth_;
  std::unique_ptr<MembershipService> membership_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ManagerMetrics> metrics_;

  // Leader-only loops, run while leading.
  std::unique_ptr<RoleManager> role_manager_;
  std::unique_ptr<CaRotationReconciler> ca_rotation_;
  // Orchestration (docs/orchestration.md), leader only.
  std::unique_ptr<orchestrator::Orchestrators> orchestrators_;
  std::unique_ptr<Allocator> allocator_;
  std::unique_ptr<SchedulingLoop> scheduling_;

  std::thread leadership_thread_;
  std::thread unlock_key_thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<uint64_t, bool> reachable_ ABSL_GUARDED_BY(mu_);
  std::string kek_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_MANAGER_H_
