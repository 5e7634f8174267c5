// Updater: rolls the tasks of replicated and global services onto the service's current task
// template (SwarmKit's rolling update; docs/orchestration.md). Leader-only loop; see
// reconcile_loop.h for its life.
//
// A slot (replicated: slot number; global: node) is *outdated* when it has live tasks
// (desired <= RUNNING) and none of them has the service's current task_template (compared by
// content, so scaling — which changes spec_version — does not roll anything, and a changed
// TaskSpec.force_update does). The updater replaces outdated slots in batches of
// `parallelism` slots (0 = all at once), waiting `delay` after a batch has settled (every new
// task RUNNING or ended) before the next, with the service's update_config — or rollback_config
// while update_status is ROLLBACK_STARTED. Unset configs mean parallelism 1, no delay, PAUSE,
// monitor 5 s, ratio 0, STOP_FIRST.
//
//  * STOP_FIRST: in one transaction the old task gets desired SHUTDOWN and the new one is created
//    in the slot with desired READY (it keeps the slot taken, is scheduled and prepared); once
//    the old one has finished the new one is raised to RUNNING.
//  * START_FIRST: the new task is created desired RUNNING next to the old one; the old one gets
//    desired SHUTDOWN once a current task of the slot is RUNNING (so capacity never drops).
//
// Monitoring: every task this updater created is watched from when it is seen RUNNING for
// `monitor`; ending (FAILED, REJECTED, COMPLETE…) while still wanted, before RUNNING or within
// the window, is a failure. When failures / tasks updated so far > max_failure_ratio,
// failure_action applies: PAUSE (update_status PAUSED, or ROLLBACK_PAUSED during a rollback,
// with a message naming the task and its error), CONTINUE, or ROLLBACK (spec and previous_spec
// swapped with their versions, as controlapi's rollback; update_status ROLLBACK_STARTED; the
// tasks then roll back with rollback_config). ROLLBACK without a previous spec, or inside a
// rollback, pauses.
//
// update_status: UPDATING ("update in progress", started_at) when a rollout starts, COMPLETED
// ("update completed", completed_at) once no slot is outdated and every new task passed its
// monitor window; a rollback goes ROLLBACK_STARTED → ROLLBACK_COMPLETED ("rollback completed").
// A paused update (PAUSED, ROLLBACK_PAUSED) is left alone until the spec changes (controlapi
// clears update_status on every spec change, `--force` included).
//
// Failover: what the updater knows in memory (batch, monitored tasks, counts) starts afresh on
// Start; it resumes from the store (outdated slots, slots half-way through START_FIRST, STOP_FIRST
// replacements waiting for their predecessor) and may restart the current batch.
//
// The replicated and global orchestrators count a slot with any live task as filled, so the
// extra task of a START_FIRST slot and the READY task of a STOP_FIRST slot never make them act.
//
// Thread-safety: as ReconcileLoop.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_UPDATE_H_
#define SHOAL_MANAGER_ORCHESTRATOR_UPDATE_H_

#include <map>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "manager/orchestrator/common.h"
#include "manager/orchestrator/reconcile_loop.h"
#include "manager/store/memory_store.h"
#include "proto/objects.pb.h"

namespace shoal::manager::orchestrator {

// An UpdateConfig with the defaults filled in.
struct UpdatePolicy {
  uint64_t parallelism = 1;  // 0 = all at once
  absl::Duration delay = absl::ZeroDuration();
  api::UpdateConfig::FailureAction failure_action = api::UpdateConfig::PAUSE;
  absl::Duration monitor = absl::Seconds(5);
  double max_failure_ratio = 0;
  api::UpdateConfig::Order order = api::UpdateConfig::STOP_FIRST;
};
// update_config, or rollback_config when `rollback`, with defaults.
UpdatePolicy UpdatePolicyOf(const api::ServiceSpec& spec, bool rollback);

class Updater : public ReconcileLoop {
 public:
  // `store` is not owned and must outlive the updater.
  explicit Updater(store::MemoryStore* store, OrchestratorOptions options = {});
  ~Updater() override;

  // Services with an update in progress that this updater is driving (for tests and metrics).
  size_t active_updates();

 protected:
  void MarkAll(const store::ReadTx& tx) override;
  void Observe(const store::StoreEvent& event) override;
  absl::Status Process() override;
  absl::Time NextWakeup() override;

 private:
  using SlotKey = std::pair<uint64_t, std::string>;  // (slot, node ID for global services)
  struct Tracked {
    absl::Time running_since = absl::InfiniteFuture();
    bool done = false;
  };
  // One service's rollout towards one task template.
  struct Run {
    api::TaskSpec target;
    bool rollback = false;
    absl::flat_hash_map<std::string, Tracked> tasks;  // new tasks, by ID
    std::map<SlotKey, std::string> batch;             // slot -> its new task
    uint64_t updated = 0;
    uint64_t failures = 0;
    // Slots the run set out to update (outdated when it started): the failure ratio's
    // denominator, as in Docker — with parallelism 1, ratio 0.5 and 4 slots, the third failure
    // acts, not the first.
    uint64_t slots_to_update = 0;
    absl::Time next_batch_at = absl::InfinitePast();
    absl::Time wake = absl::InfiniteFuture();
  };

  absl::Status ProcessService(const std::string& service_id);

  absl::flat_hash_set<std::string> dirty_;
  absl::flat_hash_map<std::string, Run> runs_;
};

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_UPDATE_H_
