// ControlApi: the cluster-wide calls of the Control service (proto/control.proto) — the cluster
// object and its secrets (join tokens, unlock key), nodes, tasks, services, secrets and configs —
// run in-process on a manager.
//
// It is not a gRPC service: the node daemon's Control service (node/control_service.h) serves the
// CLI on the local unix socket and, on a manager, calls these methods directly (a worker answers
// them with FAILED_PRECONDITION itself). Each method has the shape
//   grpc::Status Name(const api::NameRequest& req, api::NameResponse* resp)
// so the daemon can return its result unchanged.
//
// Consistency (docs/cluster.md):
//   - every call first waits on RaftControl::ReadBarrier, so this manager's store holds every
//     write committed before the call: reads are linearizable on any manager, and the checks a
//     write makes see the latest state;
//   - writes go through MemoryStore::Update, which forwards the proposal to the Raft leader, so
//     any manager accepts them. Updates that carry a version (UpdateCluster, UpdateNode,
//     UpdateService) fail with ABORTED when the object changed since the caller read it: re-read
//     and retry.
//
// Secrets never leave: the cluster is always returned through RedactCluster (no CA key, no
// signing key, no unlock or network keys); the unlock key only as GetUnlockKey/RotateUnlockKey's
// printable key; secrets without their data; services and tasks without registry credentials
// (ContainerSpec.pull_options.registry_auth, which agents get through the dispatcher).
//
// Services (services.cc):
//   - Specs are validated by ValidateServiceSpec (spec_validation.h), then, in the write's
//     transaction, against the store: the name is free (ALREADY_EXISTS naming the holder), the
//     secrets, configs and networks referenced exist (NOT_FOUND) and are stored by ID (names
//     resolved, file targets defaulted as Docker's CLI does), no other live service publishes the
//     same port where either side uses the routing mesh (FAILED_PRECONDITION).
//   - spec_version is the store's version (Raft index) when the spec was written: a new value for
//     every spec change, restored with the spec on rollback. It is not the Meta.version of the
//     write itself, which is only known once the entry commits. Scaling changes it too, so
//     orchestrators decide whether a task is current from its TaskSpec, not from spec_version.
//   - UpdateService keeps the spec it replaces in previous_spec/previous_spec_version (and clears
//     update_status: a new update starts); an update that changes nothing writes nothing.
//     `rollback` swaps spec and previous_spec (with their versions) and sets update_status to
//     ROLLBACK_STARTED, which tells the updater to use rollback_config. Names and modes cannot
//     change. Jobs: job_status.job_iteration is 0 on create and bumped by every spec change.
//   - RemoveService only marks the service pending_delete: orchestrators shut its tasks down and
//     delete it, the allocator frees its ports. From then on it is gone for this API (Get,
//     Update, Remove: NOT_FOUND; List omits it), but its name stays taken until it is deleted.
//
// Secrets and configs (secrets.cc) are immutable: Create, Get, List, Remove. Remove is refused
// (FAILED_PRECONDITION, naming them) while live services refer to the object; internal secrets
// are neither listed nor removable.
//
// What is deliberately not here: the CA rotation itself (UpdateCluster only validates and stores
// ca_config.force_rotate / signing_ca_cert+key; the CA's leader loop acts on them) and carrying
// out promotions/demotions (UpdateNode only sets spec.desired_role after checking that a demotion
// is safe; manager/rolemanager does the rest).
//
// Thread-safety: the methods may be called concurrently from any threads (gRPC's handler pool);
// the object holds no mutable state of its own. The store and Raft control must outlive it.
#ifndef SHOAL_MANAGER_CONTROLAPI_CONTROL_API_H_
#define SHOAL_MANAGER_CONTROLAPI_CONTROL_API_H_

#include <string>

#include "absl/time/time.h"
#include "common/clock.h"
#include "grpcpp/support/status.h"
#include "manager/raft_control.h"
#include "manager/store/memory_store.h"
#include "proto/control.pb.h"

namespace shoal::manager {

struct ControlApiOptions {
  // For certificate checks and expiry times. nullptr = RealClock().
  Clock* clock = nullptr;
  // This manager's advertise host:port, returned with the join tokens for the `swarm join` line.
  std::string manager_addr;
  // How long a call waits for the read barrier (wall-clock). Writes are bounded by the store's
  // own proposal timeout.
  absl::Duration timeout = absl::Seconds(30);
};

class ControlApi {
 public:
  // Subsystem name of the unlock keys in Cluster.unlock_keys.
  static constexpr char kUnlockKeySubsystem[] = "manager:unlock";
  // A removed node's certificate is refused until its expiry; when the expiry cannot be read from
  // the stored certificate, for this long (the default node certificate validity).
  static constexpr absl::Duration kDefaultDenyPeriod = absl::Hours(24 * 90);

  ControlApi(store::MemoryStore* store, RaftControl* raft, ControlApiOptions options);
  ControlApi(const ControlApi&) = delete;
  ControlApi& operator=(const ControlApi&) = delete;

  // --- Cluster ----------------------------------------------------------------------------------
  grpc::Status GetCluster(const api::GetClusterRequest& req, api::GetClusterResponse* resp);
  // Validates the spec (cert expiry >= 1h, heartbeat >= 1s, task history >= -1, ...), keeps the
  // stored secrets the redacted request cannot carry, and turns autolock on (a new unlock key) or
  // off (unlock keys dropped).
  grpc::Status UpdateCluster(const api::UpdateClusterRequest& req,
                             api::UpdateClusterResponse* resp);
  grpc::Status GetJoinTokens(const api::GetJoinTokensRequest& req,
                             api::GetJoinTokensResponse* resp);
  // Replaces the requested role's token only; the other stays valid.
  grpc::Status RotateJoinToken(const api::RotateJoinTokenRequest& req,
                               api::RotateJoinTokenResponse* resp);
  // The newest unlock key, or "" when autolock is off.
  grpc::Status GetUnlockKey(const api::GetUnlockKeyRequest& req, api::GetUnlockKeyResponse* resp);
  // Adds a newer unlock key, keeping the previous one (valid until every manager re-wrapped its
  // keys). FAILED_PRECONDITION when autolock is off.
  grpc::Status RotateUnlockKey(const api::RotateUnlockKeyRequest& req,
                               api::RotateUnlockKeyResponse* resp);

  // --- Nodes ------------------------------------------------------------------------------------
  // Nodes come back with manager_status filled from Raft's membership (RaftControl::Members).
  grpc::Status GetNode(const api::GetNodeRequest& req, api::GetNodeResponse* resp);
  grpc::Status ListNodes(const api::ListNodesRequest& req, api::ListNodesResponse* resp);
  // Availability, labels and desired role. A demotion that would remove the last manager, or
  // leave the remaining managers without a reachable quorum, is refused (FAILED_PRECONDITION).
  grpc::Status UpdateNode(const api::UpdateNodeRequest& req, api::UpdateNodeResponse* resp);
  // Managers must be demoted first; nodes that are not DOWN need `force`. The node's certificate
  // is denied (Cluster.denied_certificates) in the same transaction that deletes the node.
  grpc::Status RemoveNode(const api::RemoveNodeRequest& req, api::RemoveNodeResponse* resp);

  // --- Tasks ------------------------------------------------------------------------------------
  grpc::Status GetTask(const api::GetTaskRequest& req, api::GetTaskResponse* resp);
  grpc::Status ListTasks(const api::ListTasksRequest& req, api::ListTasksResponse* resp);

  // --- Services (services.cc) -------------------------------------------------------------------
  grpc::Status CreateService(const api::CreateServiceRequest& req,
                             api::CreateServiceResponse* resp);
  // NOT_FOUND for a service pending deletion.
  grpc::Status GetService(const api::GetServiceRequest& req, api::GetServiceResponse* resp);
  // With req.version from the read (ABORTED when stale); req.spec's empty name keeps the name.
  grpc::Status UpdateService(const api::UpdateServiceRequest& req,
                             api::UpdateServiceResponse* resp);
  // Marks the service pending_delete.
  grpc::Status RemoveService(const api::RemoveServiceRequest& req,
                             api::RemoveServiceResponse* resp);
  // Services pending deletion are omitted. Name filters ignore case, as names do.
  grpc::Status ListServices(const api::ListServicesRequest& req, api::ListServicesResponse* resp);

  // --- Secrets and configs (secrets.cc) ---------------------------------------------------------
  // Responses never carry secret data.
  grpc::Status CreateSecret(const api::CreateSecretRequest& req, api::CreateSecretResponse* resp);
  grpc::Status GetSecret(const api::GetSecretRequest& req, api::GetSecretResponse* resp);
  grpc::Status ListSecrets(const api::ListSecretsRequest& req, api::ListSecretsResponse* resp);
  grpc::Status RemoveSecret(const api::RemoveSecretRequest& req, api::RemoveSecretResponse* resp);
  grpc::Status CreateConfig(const api::CreateConfigRequest& req, api::CreateConfigResponse* resp);
  grpc::Status GetConfig(const api::GetConfigRequest& req, api::GetConfigResponse* resp);
  grpc::Status ListConfigs(const api::ListConfigsRequest& req, api::ListConfigsResponse* resp);
  grpc::Status RemoveConfig(const api::RemoveConfigRequest& req, api::RemoveConfigResponse* resp);

 private:
  // Waits for the read barrier; UNAVAILABLE with advice when the swarm has no leader.
  grpc::Status Barrier();
  // Fills node->manager_status from Raft's membership (cleared when not a member).
  static void FillManagerStatus(const std::vector<ManagerMember>& members, api::Node* node);

  store::MemoryStore* const store_;
  RaftControl* const raft_;
  const ControlApiOptions options_;
  Clock* const clock_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_CONTROLAPI_CONTROL_API_H_
