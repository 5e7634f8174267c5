// JobOrchestrator: runs replicated and global jobs (docs/orchestration.md). Leader-only loop;
// see reconcile_loop.h for its life.
//
// A job's tasks belong to an iteration (Task.job_iteration = Service.job_status.job_iteration
// when created; the Control API bumps it on create and on each update). Job tasks are created
// with desired COMPLETE: the agent runs them to their end. Tasks of an earlier iteration that are
// still live get desired SHUTDOWN.
//
// Replicated job (max_concurrent M, 0 = 1; total_completions N, 0 = M), over the current
// iteration's live tasks (desired <= COMPLETE), by slot 1..N:
//  * a slot is *done* once it has a COMPLETE task; *active* while not done and its task is
//    running or waiting to run, or finished in a way its restart policy restarts (the restart
//    supervisor replaces it in the same slot); a slot whose task failed and is not to be
//    restarted (condition NONE) is neither: it is spent, and the job ends short of N;
//    a slot that has used up restart.max_attempts stays active (the supervisor gave up; the job
//    does not make progress beyond its other slots);
//  * new tasks go to the lowest slots without a live task, while active < M and there are slots
//    left in 1..N. So the job runs N tasks to completion, at most M at a time;
//  * a task still running on a node that is gone, DRAINed or DOWN beyond the grace gets desired
//    SHUTDOWN and, in the same transaction, a replacement in its slot.
// Global job: one task per eligible node (exists, ACTIVE, not DOWN, placement constraints met)
// per iteration; a node that has (or had: COMPLETE) a live task of the iteration gets none; a
// node that joins later gets one. Tasks not COMPLETE on nodes that are lost, DRAINed or stop
// satisfying the constraints get desired SHUTDOWN (the node gets a new one if it is eligible
// again).
// A job pending deletion: its tasks that may still run get desired REMOVE (the reaper does the
// rest).
//
// Triggers: a change to a job service; a job task created, deleted, or whose desired state,
// node or status state changed (a completion frees a concurrency slot); any node change (global
// jobs are re-planned on every node change, replicated jobs with tasks on that node); a DOWN
// node's grace running out; resync.
//
// Thread-safety: as ReconcileLoop.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_JOBS_H_
#define SHOAL_MANAGER_ORCHESTRATOR_JOBS_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "manager/orchestrator/common.h"
#include "manager/orchestrator/reconcile_loop.h"
#include "manager/store/memory_store.h"

namespace shoal::manager::orchestrator {

class JobOrchestrator : public ReconcileLoop {
 public:
  // `store` is not owned and must outlive the orchestrator.
  explicit JobOrchestrator(store::MemoryStore* store, OrchestratorOptions options = {});
  ~JobOrchestrator() override;

  // Reconciles one job now, on this thread (nothing if the service is not a job).
  absl::Status Reconcile(const std::string& service_id);

 protected:
  void MarkAll(const store::ReadTx& tx) override;
  void Observe(const store::StoreEvent& event) override;
  absl::Status Process() override;
  absl::Time NextWakeup() override;

 private:
  struct Plan;
  absl::Status ReconcileAttempt(const std::string& service_id);
  void PlanReplicated(const store::ReadTx& tx, const api::Service& svc, Plan* plan);
  void PlanGlobal(const store::ReadTx& tx, const api::Service& svc, Plan* plan);

  NodeTracker nodes_;
  absl::flat_hash_set<std::string> dirty_services_;
  absl::flat_hash_set<std::string> dirty_nodes_;
  absl::flat_hash_set<std::string> bad_constraints_reported_;
};

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_JOBS_H_
