// TestCluster: several RaftNodes in one process, each with a real gRPC transport on loopback
// and a durable log in a temporary directory, driving a small key-value state machine. For the
// node driver's tests; whole-process tests use the shoal_kv server instead.
#ifndef SHOAL_RAFT_NODE_TEST_CLUSTER_H_
#define SHOAL_RAFT_NODE_TEST_CLUSTER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "raft/node/raft_node.h"
#include "raft/transport/deferred_handler.h"
#include "raft/transport/transport.h"
#include "raft/transport/transport_service.h"

namespace shoal::raft::testing {

// "key=value" puts; results are the previous value. Thread-safe reads.
class KvStateMachine : public StateMachine {
 public:
  std::string Apply(uint64_t index, const std::string& data) override;
  std::string Snapshot() override;
  // Copies the map now; serialises it later (waiting while snapshots are held).
  std::function<std::string()> CaptureSnapshot() override;
  absl::Status Restore(const std::string& data) override;

  // While held, captured snapshots wait to be serialised: a slow snapshot, to show that the node
  // goes on meanwhile. Release before stopping the node (Stop waits for the snapshot).
  void HoldSnapshots(bool hold);
  // Snapshots captured so far, and those now waiting on the hold.
  int captures() const;
  int waiting() const;

  std::optional<std::string> Get(const std::string& key) const;
  size_t size() const;
  uint64_t applies() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> data_ ABSL_GUARDED_BY(mu_);
  uint64_t applies_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  int captures_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

struct Member {
  uint64_t id = 0;
  std::string dir;
  std::string addr;
  int port = 0;
  DeferredHandler handler;  // the server exists before the node
  std::unique_ptr<TransportService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<KvStateMachine> kv;
  std::unique_ptr<RaftNode> node;
  bool running() const { return node != nullptr; }
};

class TestCluster {
 public:
  // `base` tweaks every member's options (tick interval, snapshot interval, ...).
  explicit TestCluster(RaftNodeOptions base = {});
  ~TestCluster();

  // Creates members 1..n as founders and starts them.
  void Bootstrap(int n);
  // Adds a new, empty member (not yet in the group) and starts it; returns its id.
  uint64_t AddEmptyMember();
  void StopMember(uint64_t id);     // a clean stop (process exit)
  void RestartMember(uint64_t id);  // from its directory, on its old port
  // RestartMember that reports a failure to start instead of aborting.
  absl::Status TryRestartMember(uint64_t id);
  // Member `id`'s own Encrypter (not owned), instead of the base options' one, from its next
  // start on. Call before Bootstrap() for founders (they are 1..n).
  void SetEncrypter(uint64_t id, Encrypter* encrypter) { encrypters_[id] = encrypter; }
  // Restarts a stopped member alone with RaftNodeOptions::force_new_cluster.
  void RestartMemberAsNewCluster(uint64_t id);

  Member& member(uint64_t id) { return *members_.at(id); }
  RaftNode& node(uint64_t id) { return *members_.at(id)->node; }
  api::RaftMember Identity(uint64_t id) const;
  std::vector<uint64_t> ids() const;

  // Waits until all running members agree on one leader; returns it (0 at the deadline).
  uint64_t WaitForLeader(absl::Duration timeout = absl::Seconds(10));
  // Waits until every running member applied at least `index`.
  bool WaitForApplied(uint64_t index, absl::Duration timeout = absl::Seconds(10));
  // One line per member: id, state, term, leader, commit, applied, snapshot (for failures).
  std::string Describe() const;
  // Proposes "key=value" through the leader, retrying on UNAVAILABLE/ABORTED until `timeout`.
  absl::Status Put(const std::string& key, const std::string& value,
                   absl::Duration timeout = absl::Seconds(10));

 private:
  void StartMember(Member& m, bool force_new_cluster = false);
  absl::Status TryStartMember(Member& m, bool force_new_cluster);

  RaftNodeOptions base_;
  std::string root_;
  std::map<uint64_t, std::unique_ptr<Member>> members_;
  std::vector<api::RaftMember> founders_;
  std::map<uint64_t, Encrypter*> encrypters_;
  uint64_t next_id_ = 1;
};

}  // namespace shoal::raft::testing

#endif  // SHOAL_RAFT_NODE_TEST_CLUSTER_H_
