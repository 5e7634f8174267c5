#include "node/control_service.h"

#include "common/version.h"

namespace shoal::node {

grpc::Status ControlService::GetInfo(grpc::ServerContext*, const api::GetInfoRequest*,
                                     api::GetInfoResponse* response) {
  response->set_local_node_state(api::GetInfoResponse::INACTIVE);
  response->set_node_name(identity_.node_name);
  response->set_executor(identity_.executor);
  response->set_version(kVersion);
  response->set_state_dir(identity_.state_dir);
  return grpc::Status::OK;
}

}  // namespace shoal::node
