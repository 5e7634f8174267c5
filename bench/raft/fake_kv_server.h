// An in-process stand-in for one member of an etcd-API cluster, for testing the load generator
// and probe without etcd: KV.Put records the key and answers (or fails, as scripted), and
// Maintenance.Status reports the member and leader IDs it was given.
//
// Thread-safety: the server's handlers run on gRPC threads; every accessor may be called from
// any thread.
#ifndef SHOAL_BENCH_RAFT_FAKE_KV_SERVER_H_
#define SHOAL_BENCH_RAFT_FAKE_KV_SERVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "grpcpp/server.h"

namespace shoal::bench::testing {

class FakeKvServer {
 public:
  // Listens on 127.0.0.1 (a kernel-chosen port).
  FakeKvServer(uint64_t member_id, uint64_t leader_id);
  ~FakeKvServer();

  std::string endpoint() const { return endpoint_; }

  // The next `n` Puts fail with UNAVAILABLE ("no leader"); later ones succeed.
  void FailNextPuts(int64_t n);
  void SetRaftIndex(uint64_t index);

  int64_t puts_ok() const;
  int64_t puts_failed() const;
  std::map<std::string, int64_t> keys() const;  // key -> times written
  size_t last_value_size() const;

 private:
  class Service;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string endpoint_;
};

}  // namespace shoal::bench::testing

#endif  // SHOAL_BENCH_RAFT_FAKE_KV_SERVER_H_
