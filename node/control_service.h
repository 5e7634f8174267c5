// ControlService: the gRPC Control API as served on a node's local unix socket — the operator's
// path into the node (the socket's file mode is the access control, as with Docker's).
//
// Local-daemon calls (GetInfo, InitSwarm, JoinSwarm, LeaveSwarm, UnlockSwarm) go to the node's
// SwarmNode. Cluster calls go, in-process, to the manager role's ControlApi (docs/cluster.md:
// writes reach the Raft leader through the store's proposals, reads are linearizable); on a node
// that is not an active manager they fail with FAILED_PRECONDITION saying why. Calls whose
// capability has not landed yet (networks) answer UNIMPLEMENTED and never pretend to succeed.
//
// Thread-safety: gRPC calls the handlers from its own threads; SwarmNode and ControlApi are
// thread-safe.
#ifndef SHOAL_NODE_CONTROL_SERVICE_H_
#define SHOAL_NODE_CONTROL_SERVICE_H_

#include <string>

#include "node/swarm_node.h"
#include "proto/control.grpc.pb.h"

namespace shoal::node {

// What a node knows about itself before it joins a swarm.
struct NodeIdentity {
  std::string node_name;
  std::string executor;
  std::string state_dir;
};

class ControlService final : public api::Control::Service {
 public:
  ControlService(NodeIdentity identity, SwarmNode* swarm)
      : identity_(std::move(identity)), swarm_(swarm) {}

  grpc::Status GetInfo(grpc::ServerContext*, const api::GetInfoRequest*,
                       api::GetInfoResponse* response) override;
  grpc::Status InitSwarm(grpc::ServerContext*, const api::InitSwarmRequest* request,
                         api::InitSwarmResponse* response) override;
  grpc::Status JoinSwarm(grpc::ServerContext*, const api::JoinSwarmRequest* request,
                         api::JoinSwarmResponse* response) override;
  grpc::Status LeaveSwarm(grpc::ServerContext*, const api::LeaveSwarmRequest* request,
                          api::LeaveSwarmResponse* response) override;
  grpc::Status UnlockSwarm(grpc::ServerContext*, const api::UnlockSwarmRequest* request,
                           api::UnlockSwarmResponse* response) override;

  grpc::Status GetCluster(grpc::ServerContext*, const api::GetClusterRequest* request,
                          api::GetClusterResponse* response) override;
  grpc::Status UpdateCluster(grpc::ServerContext*, const api::UpdateClusterRequest* request,
                             api::UpdateClusterResponse* response) override;
  grpc::Status GetJoinTokens(grpc::ServerContext*, const api::GetJoinTokensRequest* request,
                             api::GetJoinTokensResponse* response) override;
  grpc::Status RotateJoinToken(grpc::ServerContext*, const api::RotateJoinTokenRequest* request,
                               api::RotateJoinTokenResponse* response) override;
  grpc::Status GetUnlockKey(grpc::ServerContext*, const api::GetUnlockKeyRequest* request,
                            api::GetUnlockKeyResponse* response) override;
  grpc::Status RotateUnlockKey(grpc::ServerContext*, const api::RotateUnlockKeyRequest* request,
                               api::RotateUnlockKeyResponse* response) override;
  grpc::Status GetNode(grpc::ServerContext*, const api::GetNodeRequest* request,
                       api::GetNodeResponse* response) override;
  grpc::Status ListNodes(grpc::ServerContext*, const api::ListNodesRequest* request,
                         api::ListNodesResponse* response) override;
  grpc::Status UpdateNode(grpc::ServerContext*, const api::UpdateNodeRequest* request,
                          api::UpdateNodeResponse* response) override;
  grpc::Status RemoveNode(grpc::ServerContext*, const api::RemoveNodeRequest* request,
                          api::RemoveNodeResponse* response) override;
  grpc::Status GetTask(grpc::ServerContext*, const api::GetTaskRequest* request,
                       api::GetTaskResponse* response) override;
  grpc::Status ListTasks(grpc::ServerContext*, const api::ListTasksRequest* request,
                         api::ListTasksResponse* response) override;
  grpc::Status CreateService(grpc::ServerContext*, const api::CreateServiceRequest* request,
                             api::CreateServiceResponse* response) override;
  grpc::Status GetService(grpc::ServerContext*, const api::GetServiceRequest* request,
                          api::GetServiceResponse* response) override;
  grpc::Status UpdateService(grpc::ServerContext*, const api::UpdateServiceRequest* request,
                             api::UpdateServiceResponse* response) override;
  grpc::Status RemoveService(grpc::ServerContext*, const api::RemoveServiceRequest* request,
                             api::RemoveServiceResponse* response) override;
  grpc::Status ListServices(grpc::ServerContext*, const api::ListServicesRequest* request,
                            api::ListServicesResponse* response) override;
  grpc::Status CreateSecret(grpc::ServerContext*, const api::CreateSecretRequest* request,
                            api::CreateSecretResponse* response) override;
  grpc::Status GetSecret(grpc::ServerContext*, const api::GetSecretRequest* request,
                         api::GetSecretResponse* response) override;
  grpc::Status ListSecrets(grpc::ServerContext*, const api::ListSecretsRequest* request,
                           api::ListSecretsResponse* response) override;
  grpc::Status RemoveSecret(grpc::ServerContext*, const api::RemoveSecretRequest* request,
                            api::RemoveSecretResponse* response) override;
  grpc::Status CreateConfig(grpc::ServerContext*, const api::CreateConfigRequest* request,
                            api::CreateConfigResponse* response) override;
  grpc::Status GetConfig(grpc::ServerContext*, const api::GetConfigRequest* request,
                         api::GetConfigResponse* response) override;
  grpc::Status ListConfigs(grpc::ServerContext*, const api::ListConfigsRequest* request,
                           api::ListConfigsResponse* response) override;
  grpc::Status RemoveConfig(grpc::ServerContext*, const api::RemoveConfigRequest* request,
                            api::RemoveConfigResponse* response) override;

 private:
  const NodeIdentity identity_;
  SwarmNode* const swarm_;
};

}  // namespace shoal::node

#endif  // SHOAL_NODE_CONTROL_SERVICE_H_
