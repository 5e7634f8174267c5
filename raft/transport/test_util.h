// Test helpers for the Raft transport: a Handler that records what it is told, a "member" that
// owns a Transport and a loopback gRPC server running TransportService, and addresses of peers
// that are down (closed port) or hung (accepts TCP, never speaks).
//
// Threading: RecordingHandler is thread-safe; Member and HungListener belong to the test thread.
#ifndef SHOAL_RAFT_TRANSPORT_TEST_UTIL_H_
#define SHOAL_RAFT_TRANSPORT_TEST_UTIL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "raft.pb.h"
#include "raft/transport/handler.h"
#include "raft/transport/transport.h"
#include "raft/transport/transport_service.h"

namespace shoal::raft::testing {

// Generous: these waits end as soon as their condition holds, the deadline only bounds a failure.
constexpr absl::Duration kWaitDeadline = absl::Seconds(30);

class RecordingHandler : public Handler {
 public:
  struct Record {
    std::vector<raftpb::Message> received;  // Empty when not keeping messages.
    uint64_t received_count = 0;
    uint64_t batch_calls = 0;  // ReceiveBatch calls (each also counted in received_count)
    std::vector<uint64_t> unreachable;
    std::vector<std::pair<uint64_t, bool>> snapshots;  // (peer, failed)
  };

  // keep_messages=false only counts, for benchmarks.
  explicit RecordingHandler(bool keep_messages = true) : keep_messages_(keep_messages) {}

  void Receive(raftpb::Message m) override;
  void ReceiveBatch(std::vector<raftpb::Message> msgs) override;
  void ReportUnreachable(uint64_t peer) override;
  void ReportSnapshot(uint64_t peer, bool failed) override;

  // Blocks until pred(record) holds or `timeout` passes; returns whether it holds.
  bool WaitUntil(const std::function<bool(const Record&)>& pred,
                 absl::Duration timeout = kWaitDeadline) const;
  // Runs f on the record under the lock and returns its result.
  template <typename F>
  auto With(F f) const {
    absl::MutexLock lock(&mu_);
    return f(record_);
  }

 private:
  const bool keep_messages_;
  mutable absl::Mutex mu_;
  Record record_ ABSL_GUARDED_BY(mu_);
};

// One Raft member: a Transport sending as `id`, and a server on 127.0.0.1 receiving for `id`.
class Member {
 public:
  // Fills options.local_id, and insecure credentials when none are set.
  explicit Member(uint64_t id, Transport::Options options = {}, bool keep_messages = true);
  ~Member();  // Stops the transport, then the server.

  // Tears the server down (cancelling its streams) / starts it again on the same port.
  void StopServer();
  void StartServer();

  uint64_t id() const { return id_; }
  std::string addr() const;
  Transport& transport() { return *transport_; }
  RecordingHandler& handler() { return handler_; }
  TransportService& service() { return *service_; }

 private:
  const uint64_t id_;
  RecordingHandler handler_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<TransportService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// An address on 127.0.0.1 where nothing listens (a port the kernel handed out, then closed).
std::string ClosedPortAddress();

// Listens on 127.0.0.1 but never accepts: TCP connects, gRPC never gets an answer.
class HungListener {
 public:
  HungListener();
  std::string addr() const { return addr_; }

 private:
  UniqueFd fd_;
  std::string addr_;
};

// An APP message from `from` to `to` carrying one entry of `payload_bytes` at `index`.
raftpb::Message App(uint64_t from, uint64_t to, uint64_t index, size_t payload_bytes = 16);

}  // namespace shoal::raft::testing

#endif  // SHOAL_RAFT_TRANSPORT_TEST_UTIL_H_
