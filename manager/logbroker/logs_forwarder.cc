#include "manager/logbroker/logs_forwarder.h"

#include <utility>

#include "absl/synchronization/mutex.h"
#include "pki/grpc_tls.h"

namespace shoal::manager {
namespace {

// One relayed subscription: a server stream to the subscriber and a client stream to the
// leader, passing each message through one buffer (read upstream, then written downstream, then
// the next read). Deletes itself when both streams are done.
class Relay {
 public:
  Relay(grpc::CallbackServerContext* server_ctx, const api::SubscribeLogsRequest& request,
        const LogsForwarder::DialFn& dial)
      : server_(this), client_(this), request_(request) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = dial();
    if (!channel.ok()) {
      client_done_ = true;
      server_finishing_ = true;
      server_.Finish(pki::ToGrpcStatus(channel.status()));
      return;
    }
    stub_ = api::Logs::NewStub(*channel);
    // Propagates the subscriber's deadline and cancellation to the upstream call.
    client_ctx_ = grpc::ClientContext::FromCallbackServerContext(*server_ctx);
    stub_->async()->SubscribeLogs(client_ctx_.get(), &request_, &client_);
    client_.StartRead(&message_);
    client_.StartCall();
  }

  grpc::ServerWriteReactor<api::SubscribeLogsMessage>* server() { return &server_; }

 private:
  class Server final : public grpc::ServerWriteReactor<api::SubscribeLogsMessage> {
   public:
    explicit Server(Relay* relay) : relay_(relay) {}
    void OnWriteDone(bool ok) override { relay_->OnWriteDone(ok); }
    void OnCancel() override { relay_->Cancel(); }
    void OnDone() override { relay_->ServerDone(); }

   private:
    Relay* const relay_;
  };

  class Client final : public grpc::ClientReadReactor<api::SubscribeLogsMessage> {
   public:
    explicit Client(Relay* relay) : relay_(relay) {}
    void OnReadDone(bool ok) override { relay_->OnReadDone(ok); }
    void OnDone(const grpc::Status& status) override { relay_->ClientDone(status); }

   private:
    Relay* const relay_;
  };

  void OnReadDone(bool ok) {
    if (!ok) return;  // the upstream status follows in ClientDone
    {
      absl::MutexLock lock(&mu_);
      if (server_finishing_) return;
      writing_ = true;
    }
    server_.StartWrite(&message_);
  }

  void OnWriteDone(bool ok) {
    bool finish = false;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (client_done_ && !server_finishing_) {
        server_finishing_ = true;
        finish = true;
        status = upstream_status_;
      }
    }
    if (finish) {
      server_.Finish(status);
      return;
    }
    if (!ok) {
      Cancel();
      return;
    }
    client_.StartRead(&message_);
  }

  void Cancel() {
    {
      absl::MutexLock lock(&mu_);
      if (client_done_ || client_ctx_ == nullptr) return;
    }
    client_ctx_->TryCancel();
  }

  void ClientDone(const grpc::Status& status) {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      client_done_ = true;
      upstream_status_ = status;
      if (!writing_ && !server_finishing_) {
        server_finishing_ = true;
        finish = true;
      }
    }
    if (finish) server_.Finish(status);
    MaybeDelete();
  }

  void ServerDone() {
    // The subscriber is gone: make sure the upstream call ends too (before server_done_ lets
    // ClientDone delete the relay).
    Cancel();
    {
      absl::MutexLock lock(&mu_);
      server_done_ = true;
    }
    MaybeDelete();
  }

  void MaybeDelete() {
    bool done;
    {
      absl::MutexLock lock(&mu_);
      done = server_done_ && client_done_ && !deleting_;
      if (done) deleting_ = true;
    }
    if (done) delete this;
  }

  Server server_;
  Client client_;
  const api::SubscribeLogsRequest request_;
  std::unique_ptr<api::Logs::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> client_ctx_;
  api::SubscribeLogsMessage message_;

  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool client_done_ ABSL_GUARDED_BY(mu_) = false;
  bool server_done_ ABSL_GUARDED_BY(mu_) = false;
  bool server_finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool deleting_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status upstream_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<api::SubscribeLogsMessage>* LogsForwarder::SubscribeLogs(
    grpc::CallbackServerContext* context, const api::SubscribeLogsRequest* request) {
  return (new Relay(context, *request, dial_))->server();
}

}  // namespace shoal::manager
