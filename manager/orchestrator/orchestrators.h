// Orchestrators: the seven leader-only orchestration loops of docs/orchestration.md, owned and
// started together — what the manager runs while it is the Raft leader:
//
//   ReplicatedOrchestrator  replicated services: slots 1..replicas        (replicated.h)
//   GlobalOrchestrator      global services: one task per eligible node   (global.h)
//   JobOrchestrator         replicated and global jobs                    (jobs.h)
//   RestartSupervisor       replacements for tasks that ended             (restart.h)
//   TaskReaper              deletes finished history, REMOVE tasks and removed services
//                                                                         (task_reaper.h)
//   Updater                 rolling updates and rollbacks of outdated tasks (update.h)
//   ConstraintEnforcer      moves replicated tasks off nodes that no longer satisfy their
//                           constraints or resources              (constraint_enforcer.h)
//
// Usage (manager): construct once with the store; Start() on gaining leadership, Stop() on losing
// it (and before the store goes away). Each loop rebuilds its state from the store on Start.
//
// Thread-safety: Start and Stop from any thread, not concurrently with each other.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_ORCHESTRATORS_H_
#define SHOAL_MANAGER_ORCHESTRATOR_ORCHESTRATORS_H_

#include "manager/orchestrator/common.h"
#include "manager/orchestrator/constraint_enforcer.h"
#include "manager/orchestrator/global.h"
#include "manager/orchestrator/jobs.h"
#include "manager/orchestrator/replicated.h"
#include "manager/orchestrator/restart.h"
#include "manager/orchestrator/task_reaper.h"
#include "manager/orchestrator/update.h"
#include "manager/store/memory_store.h"

namespace shoal::manager::orchestrator {

class Orchestrators {
 public:
  // `store` is not owned and must outlive this object.
  explicit Orchestrators(store::MemoryStore* store, OrchestratorOptions options = {})
      : replicated_(store, options),
        global_(store, options),
        jobs_(store, options),
        restarts_(store, options),
        reaper_(store, options),
        updater_(store, options),
        enforcer_(store, options) {}
  ~Orchestrators() { Stop(); }
  Orchestrators(const Orchestrators&) = delete;
  Orchestrators& operator=(const Orchestrators&) = delete;

  // Starts every loop (no-op for those running).
  void Start() {
    replicated_.Start();
    global_.Start();
    jobs_.Start();
    restarts_.Start();
    reaper_.Start();
    updater_.Start();
    enforcer_.Start();
  }
  // Stops every loop and joins their threads. Idempotent; prompt.
  void Stop() {
    replicated_.Stop();
    global_.Stop();
    jobs_.Stop();
    restarts_.Stop();
    reaper_.Stop();
    updater_.Stop();
    enforcer_.Stop();
  }

  ReplicatedOrchestrator& replicated() { return replicated_; }
  GlobalOrchestrator& global() { return global_; }
  JobOrchestrator& jobs() { return jobs_; }
  RestartSupervisor& restarts() { return restarts_; }
  TaskReaper& reaper() { return reaper_; }
  Updater& updater() { return updater_; }
  ConstraintEnforcer& constraint_enforcer() { return enforcer_; }

 private:
  ReplicatedOrchestrator replicated_;
  GlobalOrchestrator global_;
  JobOrchestrator jobs_;
  RestartSupervisor restarts_;
  TaskReaper reaper_;
  Updater updater_;
  ConstraintEnforcer enforcer_;
};

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_ORCHESTRATORS_H_
