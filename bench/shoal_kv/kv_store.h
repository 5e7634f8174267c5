// KvStore: the state machine of shoal_kv — etcd-shaped keys and values (create/mod revision,
// version) where a revision is the Raft index of the write.
//
// Threading: Apply/Snapshot/Restore come from the Raft loop thread; Get may be called from any
// thread (a mutex guards the map).
#ifndef SHOAL_BENCH_SHOAL_KV_KV_STORE_H_
#define SHOAL_BENCH_SHOAL_KV_KV_STORE_H_

#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"
#include "raft/node/raft_node.h"

namespace shoal::kv {

class KvStore : public raft::StateMachine {
 public:
  // `data` is a serialized etcdserverpb::PutRequest. Returns the serialized previous
  // mvccpb::KeyValue (empty if the key was new).
  std::string Apply(uint64_t index, const std::string& data) override;
  std::string Snapshot() override;
  absl::Status Restore(const std::string& data) override;

  std::optional<mvccpb::KeyValue> Get(const std::string& key) const;
  // The revision of the last applied write (0 if none).
  int64_t revision() const;
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, mvccpb::KeyValue> kvs_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::kv

#endif  // SHOAL_BENCH_SHOAL_KV_KV_STORE_H_
