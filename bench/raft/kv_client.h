// Blocking helpers over etcd's gRPC API (etcdserverpb.Maintenance/Status, KV/Put), used by the
// load generator and the benchmark runner against etcd and Shoal's benchmark KV server alike.
//
// An endpoint is "HOST:PORT" (an "http://" prefix is accepted and dropped). Every call carries a
// deadline; nothing here retries without bound.
//
// Thread-safety: free functions; the channels they return may be shared between threads.
#ifndef SHOAL_BENCH_RAFT_KV_CLIENT_H_
#define SHOAL_BENCH_RAFT_KV_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"

namespace shoal::bench {

// "http://127.0.0.1:2379" -> "127.0.0.1:2379".
std::string GrpcTarget(const std::string& endpoint);

// A channel with its own TCP connection: gRPC would otherwise share one connection between
// channels to the same address, and N "clients" would be one socket.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& endpoint, int connection_id = 0);

// What one member says about itself (Maintenance.Status).
struct MemberStatus {
  std::string endpoint;
  absl::Status status;  // of the RPC; the fields below are meaningful only when ok()
  uint64_t member_id = 0;
  uint64_t leader = 0;  // 0: this member knows no leader
  uint64_t raft_index = 0;
  uint64_t raft_term = 0;
};

MemberStatus QueryStatus(const std::string& endpoint, absl::Duration timeout);

// Queries all endpoints (sequentially, each with `timeout`).
std::vector<MemberStatus> QueryStatuses(const std::vector<std::string>& endpoints,
                                        absl::Duration timeout);

// The index in `statuses` of the member every answering member names as leader, if the answering
// members agree on one and it answered too.
std::optional<size_t> AgreedLeader(const std::vector<MemberStatus>& statuses);

// True when every member answered, all name the same leader, that leader is one of them, and each
// member's raft index is within `max_lag` of the leader's.
bool AllHealthy(const std::vector<MemberStatus>& statuses, uint64_t max_lag);

// Polls until AllHealthy or the timeout; returns the last statuses or DEADLINE_EXCEEDED naming
// what was still wrong.
absl::StatusOr<std::vector<MemberStatus>> WaitHealthy(const std::vector<std::string>& endpoints,
                                                      absl::Duration timeout,
                                                      uint64_t max_lag = 1000);

// One Put of `value` under `key`, waiting at most `timeout`.
absl::Status PutOnce(const std::string& endpoint, const std::string& key, const std::string& value,
                     absl::Duration timeout);

// Converts a gRPC status to an absl::Status with the same code and message.
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_RAFT_KV_CLIENT_H_
