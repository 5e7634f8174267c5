// SwarmNode: one node's life in a swarm — what `swarm init`, `join`, `leave` and `unlock` do on
// this daemon, and how it comes back after a restart.
//
//   INACTIVE ──init──▶ ACTIVE (manager)        ACTIVE ──leave──▶ INACTIVE (state dir wiped)
//   INACTIVE ──join──▶ ACTIVE (worker|manager)
//   restart: certificates on disk → ACTIVE again by itself; a wrapped key (autolock) → LOCKED
//   LOCKED ──unlock(key)──▶ ACTIVE
//
// While ACTIVE every node runs an agent session with the managers (agent/session.h); a manager
// also runs manager::Manager. Role changes (promote/demote) arrive through the session: the node
// renews its certificate for the new role, then starts or stops its manager role.
//
// On disk (besides the certificates and the manager's raft/ directory) the node keeps
// <state-dir>/node-state.json: its listen and advertise addresses and the managers it last knew,
// so that it can reconnect after a restart.
//
// Thread-safety: every public method may be called from any thread; lifecycle operations (init,
// join, leave, unlock, role changes) run one at a time.
#ifndef SHOAL_NODE_SWARM_NODE_H_
#define SHOAL_NODE_SWARM_NODE_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "grpcpp/grpcpp.h"
#include "manager/manager.h"
#include "node/task_runtime.h"
#include "pki/certificate_store.h"
#include "pki/identity.h"
#include "proto/control.pb.h"
#include "proto/dispatcher.pb.h"

namespace prometheus {
class Summary;
class Registry;
}  // namespace prometheus

namespace shoal::agent {
class Session;
class Worker;
namespace logs {
class LogPublisher;
}  // namespace logs
}  // namespace shoal::agent

namespace shoal::node {

struct SwarmNodeOptions {
  std::string state_dir;
  std::string node_name;
  // The task runtime (task_runtime.h): "containerd" with the three settings below, or "sim".
  std::string executor;
  std::string containerd_address;
  std::string containerd_namespace;
  std::vector<std::string> insecure_registries;
  int shim_group_size = 1;
  // The shim's log driver binary (containerd); empty = DefaultLogDriver().
  std::string log_driver_path;
  Clock* clock = nullptr;
  prometheus::Registry* metrics = nullptr;
};

// What node-state.json holds.
struct NodeState {
  std::string listen_addr;
  std::string advertise_addr;
  std::vector<std::string> managers;  // host:port of the managers last known
};

class SwarmNode {
 public:
  // Opens the task runtime, then resumes the swarm membership recorded in the state dir, if any.
  // Fails only when the task runtime cannot be opened (containerd not reachable: the error names
  // the socket and the fix); a node that cannot resume (e.g. its managers are unreachable)
  // reports ERROR in GetInfo instead.
  static absl::StatusOr<std::unique_ptr<SwarmNode>> Open(SwarmNodeOptions options);
  ~SwarmNode();
  SwarmNode(const SwarmNode&) = delete;
  SwarmNode& operator=(const SwarmNode&) = delete;

  void Shutdown();

  grpc::Status GetInfo(api::GetInfoResponse* response);
  grpc::Status Init(const api::InitSwarmRequest& request, api::InitSwarmResponse* response);
  grpc::Status Join(const api::JoinSwarmRequest& request, api::JoinSwarmResponse* response);
  grpc::Status Leave(const api::LeaveSwarmRequest& request);
  grpc::Status Unlock(const api::UnlockSwarmRequest& request);

  // The manager role for a cluster operation, or the error to answer with (not a manager,
  // locked, not in a swarm). Holding the pointer keeps the manager alive for the call.
  absl::StatusOr<std::shared_ptr<manager::Manager>> ManagerForControl();

 private:
  enum class State { kInactive, kPending, kActive, kLocked, kError };

  explicit SwarmNode(SwarmNodeOptions options);
  void Resume();
  // Starts the roles for certificates on disk: the manager (if the certificate says so) and the
  // agent. `mode` applies to the manager.
  absl::Status StartRoles(const pki::NodeCertificates& certs, const std::string& kek,
                          manager::ManagerOptions::Mode mode,
                          const std::vector<std::string>& join_addrs,
                          const api::Cluster* initial_cluster, const api::Node* initial_node);
  absl::Status StartManager(const pki::NodeCertificates& certs, const std::string& kek,
                            manager::ManagerOptions::Mode mode,
                            const std::vector<std::string>& join_addrs,
                            const api::Cluster* initial_cluster, const api::Node* initial_node);
  void StartAgent();
  void StopRoles();
  absl::Status WipeSwarmState();
  absl::Status SaveNodeState();
  api::NodeDescription Describe() const;

  // Session callbacks and the background work they trigger (renewals, role changes).
  void OnSessionMessage(const api::SessionMessage& message);
  void BackgroundLoop();
  void MaybeRenew(const api::Node& node);
  // How a manager certificate on disk resumes its role: kRestart, or kJoin when it never
  // finished joining Raft.
  manager::ManagerOptions::Mode ResumeMode() const;
  // In ERROR (e.g. a role change that failed), tries to start the roles again.
  void RetryRolesAfterError();
  // The swarm's current unlock key (raw; empty when autolock is off), from a manager's CA.
  absl::StatusOr<std::string> FetchUnlockKey(const pki::NodeCertificates& certs,
                                             const std::vector<std::string>& managers);
  // Adopts the trust roots the managers announce (a root CA rotation's progress).
  void AdoptRoots(const std::string& roots);
  // After new TLS material: a manager restarts its role (its server and Raft transport hold
  // credentials), a worker reconnects its session.
  void ReloadCredentials();
  absl::Status OnKekChange(manager::Manager& manager, const std::string& new_kek);
  // Logs `status` and puts the node in ERROR (shown by `shoal info`).
  void Fail(const std::string& what, const absl::Status& status);

  const SwarmNodeOptions options_;
  Clock* const clock_;
  pki::CertificateStore cert_store_;
  // Runs this node's tasks (--executor); one per daemon, outliving every worker.
  std::unique_ptr<TaskRuntime> runtime_;
  // shoal_agent_task_start_seconds (assignment → RUNNING on this node); null without metrics.
  prometheus::Summary* task_start_seconds_ = nullptr;

  absl::Mutex op_mu_;  // one lifecycle operation at a time; taken before mu_
  // Serialises changes to the key files (CertificateStore is single-user); taken before mu_,
  // never held while roles stop.
  absl::Mutex key_mu_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kInactive;
  std::string error_ ABSL_GUARDED_BY(mu_);
  NodeState node_state_ ABSL_GUARDED_BY(mu_);
  pki::NodeCertificates certs_ ABSL_GUARDED_BY(mu_);
  pki::NodeIdentity identity_ ABSL_GUARDED_BY(mu_);
  std::string kek_ ABSL_GUARDED_BY(mu_);
  absl::Time renew_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<manager::Manager> manager_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<agent::Session> session_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<agent::Worker> worker_ ABSL_GUARDED_BY(mu_);
  // Serves the log broker's subscriptions from runtime_'s task logs over the session.
  std::unique_ptr<agent::logs::LogPublisher> log_publisher_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> session_managers_ ABSL_GUARDED_BY(mu_);
  std::optional<api::Node> pending_node_ ABSL_GUARDED_BY(mu_);    // newest, for the loop
  std::optional<std::string> pending_root_ ABSL_GUARDED_BY(mu_);  // trust roots to adopt
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::thread background_;
};

}  // namespace shoal::node

#endif  // SHOAL_NODE_SWARM_NODE_H_
