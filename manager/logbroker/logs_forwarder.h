// LogsForwarder: the Logs service as a node's local control socket serves it — `shoal service
// logs` talks to its own daemon, and this carries the stream to the leader's LogBroker over the
// manager's mutual-TLS channel (the leader may be this very manager).
//
// Each SubscribeLogs call asks `dial` for a channel to the current leader and relays the request
// and every message, unchanged, in both directions' flow control: gRPC's callback API on both
// sides, so a relayed stream holds no thread. The subscriber's cancel cancels the upstream call;
// the upstream status ends the subscriber's stream (UNAVAILABLE when the leader changed, which
// the CLI answers by resubscribing). `dial` failing (not a manager, no leader) ends the call with
// its status.
//
// Thread-safety: as any gRPC service.
#ifndef SHOAL_MANAGER_LOGBROKER_LOGS_FORWARDER_H_
#define SHOAL_MANAGER_LOGBROKER_LOGS_FORWARDER_H_

#include <functional>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "proto/logs.grpc.pb.h"

namespace shoal::manager {

class LogsForwarder final : public api::Logs::CallbackService {
 public:
  // A channel to the leader's manager port, or why there is none. Called once per subscription.
  using DialFn = std::function<absl::StatusOr<std::shared_ptr<grpc::Channel>>()>;

  explicit LogsForwarder(DialFn dial) : dial_(std::move(dial)) {}

  grpc::ServerWriteReactor<api::SubscribeLogsMessage>* SubscribeLogs(
      grpc::CallbackServerContext* context, const api::SubscribeLogsRequest* request) override;

 private:
  const DialFn dial_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_LOGBROKER_LOGS_FORWARDER_H_
