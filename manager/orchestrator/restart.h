// RestartSupervisor: replaces tasks that ended while the managers still wanted them
// (docs/orchestration.md). Leader-only loop; see reconcile_loop.h for its life.
//
// A candidate is a task whose status is terminal (COMPLETE, FAILED, SHUTDOWN the managers did not
// ask for, REJECTED, ORPHANED) while its desired state is still RUNNING (COMPLETE for a job task
// of the job's current iteration), of a service that exists and is not pending deletion. For it,
// the task's restart policy (its spec.restart_policy; unset = ANY, 5 s, unlimited) decides:
//  * condition NONE; ON_FAILURE and the task COMPLETEd; or a job task that COMPLETEd (a job's
//    completion is final, and for jobs ANY means ON_FAILURE): no restart. The task is left as it
//    is — still desired RUNNING, so its slot (or node) stays taken and the orchestrators do not
//    fill it: the service shows the finished task, as Docker's does.
//  * max_attempts > 0 and that many restarts of the slot already happened within `window`
//    before the task ended (window 0: since the service's current spec version): no restart
//    (logged once). Restarts are counted from the slot's tasks in the store (every task of the
//    current spec version after the first) and from those this supervisor created, which it
//    remembers (the reaper may have deleted them from the history). A new leader counts afresh
//    from what the store still holds.
//  * otherwise, in one transaction: the old task gets desired SHUTDOWN (it becomes history), and
//    a replacement is created (NewTask from the service's current spec) in the same slot
//    (replicated) or for the same node (global, only if the node is still usable and satisfies
//    the constraints: otherwise the global orchestrator shuts the task down instead; a PAUSEd or
//    briefly DOWN node keeps the candidate waiting), in the same job iteration for jobs. With a
//    delay (policy delay, 5 s by default; none when the old task's node is DRAINed) the
//    replacement is created with desired READY — it is scheduled and prepared but not started,
//    and it keeps the slot taken — and a timer raises it to RUNNING (COMPLETE for jobs) when the
//    delay has passed. After a failover the timers are rebuilt from the store: due at the
//    replacement's creation time plus its delay.
//
// Thread-safety: as ReconcileLoop.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_RESTART_H_
#define SHOAL_MANAGER_ORCHESTRATOR_RESTART_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "manager/orchestrator/common.h"
#include "manager/orchestrator/reconcile_loop.h"
#include "manager/store/memory_store.h"

namespace shoal::manager::orchestrator {

class RestartSupervisor : public ReconcileLoop {
 public:
  // `store` is not owned and must outlive the supervisor.
  explicit RestartSupervisor(store::MemoryStore* store, OrchestratorOptions options = {});
  ~RestartSupervisor() override;

  // Replacements waiting for their delay (for tests and metrics).
  size_t pending_delayed_starts();

 protected:
  void MarkAll(const store::ReadTx& tx) override;
  void Observe(const store::StoreEvent& event) override;
  absl::Status Process() override;
  absl::Time NextWakeup() override;

 private:
  // What happens to a candidate.
  enum class Decision { kRestart, kGiveUp, kWait, kDrop };
  struct Restart {
    std::string task_id;
    absl::Duration delay;
  };
  // Restarts of one slot (or node, for global services) this supervisor made: when, which task.
  struct History {
    uint64_t spec_version = 0;
    std::deque<std::pair<absl::Time, std::string>> restarts;
  };

  void Consider(const api::Task& t);
  void AddTimer(const api::Task& t);
  Decision Decide(const store::ReadTx& tx, const api::Task& t, absl::Duration* delay);
  uint64_t RestartsInWindow(const store::ReadTx& tx, const api::Task& t,
                            const RestartPolicy& policy);
  absl::Status RestartCandidates(absl::Time now);
  absl::Status StartDue(absl::Time now);
  static std::string SlotKey(const api::Task& t);

  NodeTracker nodes_;
  absl::flat_hash_set<std::string> candidates_;
  absl::flat_hash_set<std::string> given_up_;
  std::multimap<absl::Time, std::string> timers_;  // due -> replacement task ID
  absl::flat_hash_set<std::string> timed_;         // task IDs in timers_
  absl::flat_hash_map<std::string, History> history_;
};

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_RESTART_H_
