// ConstraintEnforcer: moves replicated tasks off a node that no longer satisfies their placement
// constraints or no longer has the resources they reserve (SwarmKit's constraint enforcer;
// docs/orchestration.md). Leader-only loop; see reconcile_loop.h for its life.
//
// For each node looked at (see Triggers), if it exists and is ACTIVE (a DRAINed node's tasks
// are the orchestrators' to move; a PAUSEd node keeps its tasks, as in Swarm), over its
// *occupying* tasks — live (desired <= RUNNING, <= COMPLETE for jobs) and assigned but not
// finished (status ASSIGNED..RUNNING):
//  * Constraints. A task of a replicated service or replicated job whose own placement
//    constraints (Task.spec, a copy of the template it was created from; scheduler/constraint.h)
//    do not hold on the node gets desired SHUTDOWN, with status.message
//    "task no longer satisfies placement constraints (node.labels.zone==a)" naming the failing
//    expressions. The task's own constraints, not the service's current ones: a change of the
//    service's constraints is a change of its task template, which the updater rolls out
//    (parallelism, delay, failure action, rollback); enforcing it here would stop every task at
//    once behind the updater's back. A task whose constraints do not parse is left alone (logged
//    once per service; the Control API refuses such specs).
//  * Resources. When the node reports its resources (description.resources set with something in
//    it: a node that has not reported yet is not emptied), the tasks are fitted into them in
//    order, with the scheduler's own accounting (scheduler::NodeInfo, ResourceFilter): first the
//    tasks the enforcer never moves (global services and jobs, tasks of other services), then
//    the replicated ones — running before not yet running, then the smallest reservation first
//    (dominant share of the node's CPU or memory), then the oldest, then by ID. A task that does
//    not fit in what is left, or that holds a named generic unit the node no longer offers, gets
//    desired SHUTDOWN with "task no longer fits the node's resources (insufficient memory)".
//    So the largest reservations go first (fewest tasks displaced, as SwarmKit meant to), and
//    a task that went would not fit either beside those that stayed: the scheduler does not put
//    its replacement back.
//  * Global services and global jobs are never touched: the global and job orchestrators already
//    shut down their tasks on nodes that stop satisfying the constraints and create one where
//    they do, so the enforcer would only fight them. Their tasks still count for resources.
//
// Desired SHUTDOWN, not SwarmKit's status REJECTED: status belongs to the agent (a manager
// writing REJECTED for a container that still runs misreports it, and the agent's later
// SHUTDOWN report is then dropped as going backwards), and REJECTED hands the task to the
// restart supervisor, so its restart policy would apply (condition NONE: the slot would stay
// empty; the restart delay). Here, as for a DRAINed node, it is the node that changed, not the
// task that failed: the slot is refilled at once, whatever the policy, by the replicated
// orchestrator (a slot without a live task is filled) or the job orchestrator (replicated jobs:
// a slot without a live task of the iteration is free again); the scheduler places the new task
// on a node that fits. The task's status.state is untouched; its status.message carries the
// reason until the agent reports the SHUTDOWN (each shutdown is also logged at info level).
//
// Each task's change is one callback of a MemoryStore::Batch that re-reads it and the node and
// does nothing if the plan went stale (task finished, moved, no longer live; node gone, not
// ACTIVE, satisfying the constraints again, or its resources changed).
//
// Triggers: a node created, or updated in anything a constraint or a reservation can look at
// (spec: labels and availability; role; description: hostname, platform, resources, engine
// labels; status.addr) — not in its READY/DOWN state alone; and the periodic resync, which looks
// at every node: it catches a task the scheduler placed from a snapshot taken just before its
// node changed, and on Start (a new leader) it finds what the previous leader left.
//
// Thread-safety: as ReconcileLoop.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_CONSTRAINT_ENFORCER_H_
#define SHOAL_MANAGER_ORCHESTRATOR_CONSTRAINT_ENFORCER_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "manager/orchestrator/common.h"
#include "manager/orchestrator/reconcile_loop.h"
#include "manager/store/memory_store.h"

namespace shoal::manager::orchestrator {

class ConstraintEnforcer : public ReconcileLoop {
 public:
  // `store` is not owned and must outlive the enforcer.
  explicit ConstraintEnforcer(store::MemoryStore* store, OrchestratorOptions options = {});
  ~ConstraintEnforcer() override;

  // Checks one node now, on this thread (nothing if it is gone or not ACTIVE).
  absl::Status Enforce(const std::string& node_id);

  // Tasks this enforcer has set to desired SHUTDOWN since it was constructed (tests, metrics).
  uint64_t tasks_shut_down() const { return shut_down_.load(); }

 protected:
  void MarkAll(const store::ReadTx& tx) override;
  void Observe(const store::StoreEvent& event) override;
  absl::Status Process() override;

 private:
  struct Eviction;
  absl::Status EnforceAttempt(const std::string& node_id);

  absl::flat_hash_set<std::string> dirty_nodes_;
  absl::flat_hash_set<std::string> bad_constraints_reported_;  // service IDs
  std::atomic<uint64_t> shut_down_{0};
};

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_CONSTRAINT_ENFORCER_H_
