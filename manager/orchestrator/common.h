// Pieces every orchestrator loop shares (docs/orchestration.md): options, the service modes, the
// task-state predicates the loops agree on, how a new task is made, restart policies with their
// defaults, and how long a DOWN node is given before its tasks are moved (NodeTracker).
//
// Vocabulary used across the folder:
//   live task      desired_state <= RUNNING (services) or <= COMPLETE (jobs): one the managers
//                  still want; a slot or node "has" a task while it has a live one. A task
//                  created by the restart supervisor waits with desired READY (live) until its
//                  restart delay has passed.
//   terminal task  status.state > RUNNING: COMPLETE, SHUTDOWN, FAILED, REJECTED, ORPHANED.
//   finished task  terminal, or never assigned to a node (status < ASSIGNED): nothing runs it.
//
// Thread-safety: free functions are pure; a NodeTracker has one owner (its loop).
#ifndef SHOAL_MANAGER_ORCHESTRATOR_COMMON_H_
#define SHOAL_MANAGER_ORCHESTRATOR_COMMON_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "manager/store/memory_store.h"
#include "manager/store/read_tx.h"
#include "manager/store/write_tx.h"
#include "proto/objects.pb.h"

namespace shoal::manager::orchestrator {

struct OrchestratorOptions {
  // Stamps new tasks and drives the timers (restart delays, node grace). nullptr = RealClock().
  // With another clock (a test's ManualClock) a running loop also looks at it every few tens of
  // milliseconds of real time, so an Advance() is noticed.
  Clock* clock = nullptr;
  // Period of the full pass that catches anything a missed event would leave behind.
  absl::Duration resync = absl::Seconds(5);
  // How long a node must have been DOWN (as seen by this loop: a new leader starts counting when
  // it starts) before its tasks are treated as lost: replicated tasks replaced elsewhere, global
  // tasks shut down. Zero, Swarm's behaviour: the dispatcher already waits 3 heartbeat periods
  // before it declares a node DOWN.
  absl::Duration node_down_grace = absl::ZeroDuration();
  // After a failed write (other than ABORTED, which is retried at once from a fresh read), the
  // pass is tried again this much later.
  absl::Duration retry = absl::Seconds(1);
  // Events a loop's watcher may fall behind before the store closes it (the loop then starts over
  // from a fresh read). Its own writes come back through it: 100,000 tasks created at once are
  // 100,000 events.
  size_t watch_queue_limit = 1 << 21;
};

enum class ServiceMode { kNone, kReplicated, kGlobal, kReplicatedJob, kGlobalJob };
ServiceMode ModeOf(const api::Service& service);
inline bool IsJob(ServiceMode m) {
  return m == ServiceMode::kReplicatedJob || m == ServiceMode::kGlobalJob;
}

inline bool IsTerminal(api::TaskState s) { return s > api::TASK_STATE_RUNNING; }
inline bool IsTerminal(const api::Task& t) { return IsTerminal(t.status().state()); }
inline bool IsFinished(const api::Task& t) {
  return IsTerminal(t) || t.status().state() < api::TASK_STATE_ASSIGNED;
}
// A job task carries its iteration (Task.job_iteration is set, possibly to index 0).
inline bool IsJobTask(const api::Task& t) { return t.has_job_iteration(); }
// The desired state of a task that is to run: COMPLETE for jobs, RUNNING otherwise.
inline api::TaskState RunDesiredState(bool job) {
  return job ? api::TASK_STATE_COMPLETE : api::TASK_STATE_RUNNING;
}
// desired_state <= RUNNING (or <= COMPLETE for a job task).
inline bool IsLive(const api::Task& t) {
  return t.desired_state() <= RunDesiredState(IsJobTask(t));
}

// Time conversions.
absl::Time FromProto(const google::protobuf::Timestamp& ts);
absl::Duration FromProto(const google::protobuf::Duration& d);
void ToProto(absl::Time t, google::protobuf::Timestamp* out);
// The task's creation time (Meta.created_at, set by the store), else its status timestamp.
absl::Time CreatedAt(const api::Task& t);

// "<service name>.<slot or node ID>.<task ID>".
std::string TaskName(const api::Service& service, uint64_t slot, absl::string_view node_id,
                     absl::string_view task_id);

// A new task of `service` for `slot` (replicated modes) or `node_id` (global modes, slot 0):
// fresh ID, the service's task template and spec_version, status NEW at `now` (PENDING when the
// service needs no allocation: NeedsAllocation in manager/allocator/allocator.h), desired RUNNING
// (COMPLETE for jobs, with the service's current job_iteration), log driver from the template or
// else the cluster's default (`cluster` may be null).
api::Task NewTask(const api::Service& service, const api::Cluster* cluster, uint64_t slot,
                  const std::string& node_id, absl::Time now);

// The restart policy of a task, with the defaults filled in (ANY, 5 s, unlimited, no window).
struct RestartPolicy {
  api::RestartPolicy::Condition condition = api::RestartPolicy::ANY;
  absl::Duration delay = absl::Seconds(5);
  uint64_t max_attempts = 0;                     // 0 = unlimited
  absl::Duration window = absl::ZeroDuration();  // 0 = since the spec version started
};
inline constexpr absl::Duration kDefaultRestartDelay = absl::Seconds(5);
RestartPolicy RestartPolicyOf(const api::Task& task);
// Whether the restart condition asks for a replacement of `task`, which ended in its current
// (terminal) state. Jobs: a COMPLETE task is done, and ANY means ON_FAILURE.
bool ConditionWantsRestart(const api::Task& task);

// What the orchestrators make of a node.
enum class NodeVerdict {
  kUsable,    // exists, ACTIVE, not DOWN: keeps its tasks and may get new ones
  kKeep,      // PAUSE, or DOWN for less than the grace: keeps its tasks, gets no new ones
  kUnusable,  // gone, DRAIN, or DOWN for the grace or longer: its tasks go
};

// Remembers since when each node has been seen DOWN, for the grace period.
class NodeTracker {
 public:
  explicit NodeTracker(absl::Duration grace) : grace_(grace) {}

  // Records a node's current state (from a view or an event); `node` null = removed.
  void Observe(absl::string_view node_id, const api::Node* node, absl::Time now);
  // The verdict on `node` (null = gone) at `now`; records a DOWN node not seen before.
  NodeVerdict Judge(absl::string_view node_id, const api::Node* node, absl::Time now);
  // When the next node's grace ends (InfiniteFuture if none is pending).
  absl::Time NextExpiry() const;
  // Nodes whose grace ended by `now` since the last call, to look at again.
  std::vector<std::string> TakeExpired(absl::Time now);
  void Clear() { down_.clear(); }

 private:
  struct Down {
    absl::Time since;
    bool expired_reported = false;
  };
  const absl::Duration grace_;
  absl::flat_hash_map<std::string, Down> down_;
};

// Writes shared by the loops, for use inside a transaction or Batch callback. Each re-reads the
// task and does nothing (OK) when it is gone or already past the state asked for.
//
// Raises the task's desired state to `desired` if it is lower (desired states only move forward:
// READY -> RUNNING/COMPLETE -> SHUTDOWN -> REMOVE).
absl::Status RaiseDesiredState(store::WriteTx& tx, absl::string_view task_id,
                               api::TaskState desired);
// Whether the slot (replicated: slot > 0) or node (global: slot 0) has a live task.
bool HasLiveTask(const store::ReadTx& tx, absl::string_view service_id, uint64_t slot,
                 absl::string_view node_id);

// A service pending deletion: its tasks that may still run somewhere (assigned, not finished)
// and are not yet desired REMOVE. Finished tasks need no REMOVE: the task reaper deletes them.
std::vector<std::string> TasksToRemove(const store::ReadTx& tx, absl::string_view service_id);

// Runs `ops` as one MemoryStore::Batch, one callback each, in order; stops at the first error
// (returned) or when `stop` becomes true (CANCELLED).
absl::Status RunBatch(store::MemoryStore* store,
                      const std::vector<std::function<absl::Status(store::WriteTx&)>>& ops,
                      const std::atomic<bool>* stop = nullptr);

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_COMMON_H_
