#include "node/control_service.h"

#include "common/version.h"
#include "manager/controlapi/control_api.h"
#include "pki/grpc_tls.h"

namespace shoal::node {
namespace {

// Runs a cluster call on this node's manager role, or explains why there is none.
template <class Req, class Resp>
grpc::Status OnManager(SwarmNode* swarm, const Req& req, Resp* resp,
                       grpc::Status (manager::ControlApi::*fn)(const Req&, Resp*)) {
  absl::StatusOr<std::shared_ptr<manager::Manager>> m = swarm->ManagerForControl();
  if (!m.ok()) return pki::ToGrpcStatus(m.status());
  return ((*m)->control().*fn)(req, resp);
}

}  // namespace

grpc::Status ControlService::GetInfo(grpc::ServerContext*, const api::GetInfoRequest*,
                                     api::GetInfoResponse* response) {
  grpc::Status s = swarm_->GetInfo(response);
  response->set_node_name(identity_.node_name);
  response->set_executor(identity_.executor);
  response->set_version(kVersion);
  response->set_state_dir(identity_.state_dir);
  return s;
}

grpc::Status ControlService::InitSwarm(grpc::ServerContext*, const api::InitSwarmRequest* request,
                                       api::InitSwarmResponse* response) {
  return swarm_->Init(*request, response);
}

grpc::Status ControlService::JoinSwarm(grpc::ServerContext*, const api::JoinSwarmRequest* request,
                                       api::JoinSwarmResponse* response) {
  return swarm_->Join(*request, response);
}

grpc::Status ControlService::LeaveSwarm(grpc::ServerContext*, const api::LeaveSwarmRequest* request,
                                        api::LeaveSwarmResponse*) {
  return swarm_->Leave(*request);
}

grpc::Status ControlService::UnlockSwarm(grpc::ServerContext*,
                                         const api::UnlockSwarmRequest* request,
                                         api::UnlockSwarmResponse*) {
  return swarm_->Unlock(*request);
}

grpc::Status ControlService::GetCluster(grpc::ServerContext*, const api::GetClusterRequest* req,
                                        api::GetClusterResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::GetCluster);
}
grpc::Status ControlService::UpdateCluster(grpc::ServerContext*,
                                           const api::UpdateClusterRequest* req,
                                           api::UpdateClusterResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::UpdateCluster);
}
grpc::Status ControlService::GetJoinTokens(grpc::ServerContext*,
                                           const api::GetJoinTokensRequest* req,
                                           api::GetJoinTokensResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::GetJoinTokens);
}
grpc::Status ControlService::RotateJoinToken(grpc::ServerContext*,
                                             const api::RotateJoinTokenRequest* req,
                                             api::RotateJoinTokenResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::RotateJoinToken);
}
grpc::Status ControlService::GetUnlockKey(grpc::ServerContext*, const api::GetUnlockKeyRequest* req,
                                          api::GetUnlockKeyResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::GetUnlockKey);
}
grpc::Status ControlService::RotateUnlockKey(grpc::ServerContext*,
                                             const api::RotateUnlockKeyRequest* req,
                                             api::RotateUnlockKeyResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::RotateUnlockKey);
}
grpc::Status ControlService::GetNode(grpc::ServerContext*, const api::GetNodeRequest* req,
                                     api::GetNodeResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::GetNode);
}
grpc::Status ControlService::ListNodes(grpc::ServerContext*, const api::ListNodesRequest* req,
                                       api::ListNodesResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::ListNodes);
}
grpc::Status ControlService::UpdateNode(grpc::ServerContext*, const api::UpdateNodeRequest* req,
                                        api::UpdateNodeResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::UpdateNode);
}
grpc::Status ControlService::RemoveNode(grpc::ServerContext*, const api::RemoveNodeRequest* req,
                                        api::RemoveNodeResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::RemoveNode);
}
grpc::Status ControlService::GetTask(grpc::ServerContext*, const api::GetTaskRequest* req,
                                     api::GetTaskResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::GetTask);
}
grpc::Status ControlService::ListTasks(grpc::ServerContext*, const api::ListTasksRequest* req,
                                       api::ListTasksResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::ListTasks);
}
grpc::Status ControlService::CreateService(grpc::ServerContext*,
                                           const api::CreateServiceRequest* req,
                                           api::CreateServiceResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::CreateService);
}
grpc::Status ControlService::GetService(grpc::ServerContext*, const api::GetServiceRequest* req,
                                        api::GetServiceResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::GetService);
}
grpc::Status ControlService::UpdateService(grpc::ServerContext*,
                                           const api::UpdateServiceRequest* req,
                                           api::UpdateServiceResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::UpdateService);
}
grpc::Status ControlService::RemoveService(grpc::ServerContext*,
                                           const api::RemoveServiceRequest* req,
                                           api::RemoveServiceResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::RemoveService);
}
grpc::Status ControlService::ListServices(grpc::ServerContext*, const api::ListServicesRequest* req,
                                          api::ListServicesResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::ListServices);
}
grpc::Status ControlService::CreateSecret(grpc::ServerContext*, const api::CreateSecretRequest* req,
                                          api::CreateSecretResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::CreateSecret);
}
grpc::Status ControlService::GetSecret(grpc::ServerContext*, const api::GetSecretRequest* req,
                                       api::GetSecretResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::GetSecret);
}
grpc::Status ControlService::ListSecrets(grpc::ServerContext*, const api::ListSecretsRequest* req,
                                         api::ListSecretsResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::ListSecrets);
}
grpc::Status ControlService::RemoveSecret(grpc::ServerContext*, const api::RemoveSecretRequest* req,
                                          api::RemoveSecretResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::RemoveSecret);
}
grpc::Status ControlService::CreateConfig(grpc::ServerContext*, const api::CreateConfigRequest* req,
                                          api::CreateConfigResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::CreateConfig);
}
grpc::Status ControlService::GetConfig(grpc::ServerContext*, const api::GetConfigRequest* req,
                                       api::GetConfigResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::GetConfig);
}
grpc::Status ControlService::ListConfigs(grpc::ServerContext*, const api::ListConfigsRequest* req,
                                         api::ListConfigsResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::ListConfigs);
}
grpc::Status ControlService::RemoveConfig(grpc::ServerContext*, const api::RemoveConfigRequest* req,
                                          api::RemoveConfigResponse* resp) {
  return OnManager(swarm_, *req, resp, &manager::ControlApi::RemoveConfig);
}

}  // namespace shoal::node
