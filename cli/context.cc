#include "cli/context.h"

#include <chrono>

#include "cli/client.h"

namespace shoal::cli {

std::string Context::host() const { return ResolveHost(host_flag_); }

api::Control::Stub& Context::control() {
  if (control_ == nullptr) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(host());
    if (!channel.ok()) throw CommandError{std::string(channel.status().message())};
    control_ = api::Control::NewStub(*channel);
  }
  return *control_;
}

void Context::Check(const grpc::Status& status) const {
  if (!status.ok()) throw CommandError{DescribeRpcError(status, host())};
}

std::unique_ptr<grpc::ClientContext> CallContext() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return ctx;
}

}  // namespace shoal::cli
