// SchedulingLoop: the leader-only loop that moves tasks from PENDING to ASSIGNED
// (docs/orchestration.md), around the pure placement library in scheduler/.
//
// It keeps a scheduler::NodeSet in step with the store — every node, and on each node the tasks
// that hold its resources (node_id set, state ASSIGNED to RUNNING) — by watching nodes and tasks.
// PENDING tasks meant to run (desired RUNNING, or COMPLETE for jobs) are collected and handed to
// scheduler::Schedule in batches: changes are gathered for options.batch_window after the first
// one that brings work, then one pass places everything collected. A pass:
//  * reads the collected tasks in one consistent view and calls Schedule (tasks of one service
//    and spec version are placed together: spread, balance, constraints, resources, host ports,
//    max replicas — see scheduler/scheduler.h);
//  * writes every decision in one MemoryStore::Batch (one callback per task, re-checked against
//    the store as it is by then): an assigned task gets node_id, assigned_generic_resources and
//    state ASSIGNED ("scheduler assigned task to node"); a task no node accepts stays PENDING
//    with the scheduler's explanation, "no suitable node (…)", as status.message and status.err
//    (err is what `service ps` shows in its ERROR column) — written only when it changes;
//  * takes back, from the NodeSet, any placement whose write did not commit; those tasks are
//    tried again.
// Tasks that fitted nowhere are tried again when the cluster changes in a way that may make room:
// a node is added or updated (joins, becomes READY, ACTIVE, gets labels or resources), or a task
// leaves a node or stops counting there (it finished, was removed, or is being shut down). A task
// that names its node already (global services) is only checked against that node.
//
// Costs are linear in the tasks a pass handles (plus the scheduler's own cost, about one pass
// over the nodes per group of identical tasks): 100,000 tasks cost 100,000 reads, one Schedule
// call and 100,000 writes in entries of the store's batch size.
//
// Leader-only: the manager Start()s it on becoming the Raft leader and Stop()s it on losing
// leadership. Start rebuilds everything from the store (ViewAndWatch), so a new leader resumes
// where the old one stopped; a watch that falls behind or is cut by a snapshot restore starts
// over the same way. Every options.resync_interval a pass also re-reads the store for PENDING
// tasks a missed change would leave behind, and retries those that fitted nowhere.
//
// Thread-safety: Start, Stop and ReconcileOnce may be called from any thread; passes (the loop's
// and ReconcileOnce's) are serialised. The store must outlive the loop.
#ifndef SHOAL_MANAGER_SCHEDULING_SCHEDULING_LOOP_H_
#define SHOAL_MANAGER_SCHEDULING_SCHEDULING_LOOP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/loop/batching_loop.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {

// Clock (which also stamps task statuses), batch window, resync interval, watch queue limit.
using SchedulingOptions = BatchingLoopOptions;

// The status message of a task the scheduler assigned.
inline constexpr char kAssignedMessage[] = "scheduler assigned task to node";

// Figures of the last pass, for tests, logs and metrics.
struct SchedulingPassStats {
  size_t tasks = 0;                  // PENDING tasks handed to the scheduler
  size_t assigned = 0;               // assignments written
  size_t unplaced = 0;               // tasks that fitted nowhere
  size_t notes = 0;                  // "no suitable node" messages written (changed ones only)
  size_t failed = 0;                 // decisions whose write did not commit (tried again later)
  absl::Duration read_and_schedule;  // the view, with the Schedule call
  absl::Duration write;              // the store batch
};

class SchedulingLoop : public BatchingLoop {
 public:
  // `store` is not owned and must outlive the loop.
  SchedulingLoop(store::MemoryStore* store, SchedulingOptions options = {});
  ~SchedulingLoop() override;  // Stop()s

  // Start, Stop, ReconcileOnce and passes() come from BatchingLoop. ReconcileOnce: one full
  // pass from a fresh read of the store — rebuilds the node set and schedules every PENDING
  // task; returns the store's error if writing decisions failed (the decisions that did not
  // commit are taken back).

  // The figures of the last pass that had tasks to place.
  SchedulingPassStats last_pass() const;

 private:
  struct State;

  // BatchingLoop. Pass's `resync`: first look for every PENDING task in the store, and retry
  // the unplaced ones whether or not the cluster changed.
  void Rebuild(const store::ReadTx& tx) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  void Observe(const store::StoreChange& change) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  absl::Status Pass(bool resync) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  bool HasWork() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);

  std::unique_ptr<State> state_ ABSL_GUARDED_BY(work_mu_);

  mutable absl::Mutex stats_mu_;
  SchedulingPassStats last_pass_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_SCHEDULING_SCHEDULING_LOOP_H_
