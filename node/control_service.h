// ControlService: the gRPC Control API as served on a node's local unix socket.
//
// Today it answers the local-daemon operations that need no swarm (GetInfo); the swarm and
// cluster operations answer UNIMPLEMENTED until their capability lands, and never pretend to
// succeed. Thread-safety: gRPC calls the handlers from its own threads; the service only reads
// immutable NodeIdentity.
#ifndef SHOAL_NODE_CONTROL_SERVICE_H_
#define SHOAL_NODE_CONTROL_SERVICE_H_

#include <string>

#include "control.grpc.pb.h"

namespace shoal::node {

// What a node knows about itself before it joins a swarm.
struct NodeIdentity {
  std::string node_name;
  std::string executor;
  std::string state_dir;
};

class ControlService final : public api::Control::Service {
 public:
  explicit ControlService(NodeIdentity identity) : identity_(std::move(identity)) {}

  grpc::Status GetInfo(grpc::ServerContext* context, const api::GetInfoRequest* request,
                       api::GetInfoResponse* response) override;

 private:
  const NodeIdentity identity_;
};

}  // namespace shoal::node

#endif  // SHOAL_NODE_CONTROL_SERVICE_H_
