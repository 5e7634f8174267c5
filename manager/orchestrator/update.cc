#include "manager/orchestrator/update.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "manager/cluster_object.h"
#include "spdlog/spdlog.h"

namespace shoal::manager::orchestrator {
namespace {

using Op = std::function<absl::Status(store::WriteTx&)>;
using google::protobuf::util::MessageDifferencer;

bool Updatable(const api::Service* s) {
  if (s == nullptr || s->pending_delete()) return false;
  const ServiceMode m = ModeOf(*s);
  return m == ServiceMode::kReplicated || m == ServiceMode::kGlobal;
}

bool LiveForService(const api::Task& t) { return t.desired_state() <= api::TASK_STATE_RUNNING; }

std::string Describe(const api::Task& t) {
  std::string name = t.annotations().name().empty() ? t.id() : t.annotations().name();
  std::string why = t.status().err().empty() ? t.status().message() : t.status().err();
  std::string out = absl::StrCat("task ", name, " (", api::TaskState_Name(t.status().state()));
  if (!why.empty()) absl::StrAppend(&out, ": ", why);
  absl::StrAppend(&out, ")");
  return out;
}

// Writes update_status of `service_id` if its task template still is `target` (a newer spec
// means a newer rollout, which owns the status).
Op StatusOp(const std::string& service_id, const api::TaskSpec& target,
            std::function<void(api::UpdateStatus*)> change) {
  return [service_id, target, change = std::move(change)](store::WriteTx& tx) -> absl::Status {
    const api::Service* s = tx.Get<api::Service>(service_id);
    if (!Updatable(s) || !MessageDifferencer::Equals(s->spec().task_template(), target)) {
      return absl::OkStatus();
    }
    api::Service copy = *s;
    change(copy.mutable_update_status());
    return tx.Update(std::move(copy));
  };
}

}  // namespace

UpdatePolicy UpdatePolicyOf(const api::ServiceSpec& spec, bool rollback) {
  UpdatePolicy p;
  const bool has = rollback ? spec.has_rollback_config() : spec.has_update_config();
  if (!has) return p;
  const api::UpdateConfig& c = rollback ? spec.rollback_config() : spec.update_config();
  p.parallelism = c.parallelism();
  p.delay = c.has_delay() ? FromProto(c.delay()) : absl::ZeroDuration();
  p.failure_action = c.failure_action();
  if (c.has_monitor()) p.monitor = FromProto(c.monitor());
  p.max_failure_ratio = c.max_failure_ratio();
  p.order = c.order();
  return p;
}

Updater::Updater(store::MemoryStore* store, OrchestratorOptions options)
    : ReconcileLoop(store, options, "updater", {api::OBJECT_KIND_SERVICE, api::OBJECT_KIND_TASK}) {}

Updater::~Updater() { Stop(); }

size_t Updater::active_updates() {
  absl::MutexLock work(&work_mu_);
  return runs_.size();
}

void Updater::MarkAll(const store::ReadTx& tx) {
  for (const api::Service* s : tx.List<api::Service>()) {
    if (Updatable(s)) dirty_.insert(s->id());
  }
}

void Updater::Observe(const store::StoreEvent& e) {
  switch (e.kind()) {
    case api::OBJECT_KIND_SERVICE:
      dirty_.insert(e.object->service().id());
      break;
    case api::OBJECT_KIND_TASK:
      if (!IsJobTask(e.object->task())) dirty_.insert(e.object->task().service_id());
      break;
    default:
      break;
  }
}

absl::Time Updater::NextWakeup() {
  absl::Time t = absl::InfiniteFuture();
  for (const auto& [id, run] : runs_) t = std::min(t, run.wake);
  return t;
}

absl::Status Updater::Process() {
  const absl::Time now = clock()->Now();
  for (const auto& [id, run] : runs_) {
    if (run.wake <= now) dirty_.insert(id);
  }
  std::vector<std::string> ids(dirty_.begin(), dirty_.end());
  std::sort(ids.begin(), ids.end());
  absl::Status first;
  for (const std::string& id : ids) {
    if (StopRequested()) return absl::CancelledError("the updater is stopping");
    absl::Status s = RetryAborted([&] { return ProcessService(id); });
    if (s.ok()) {
      dirty_.erase(id);
    } else if (first.ok()) {
      first = absl::Status(s.code(), absl::StrCat("service ", id, ": ", s.message()));
    }
  }
  return first;
}

absl::Status Updater::ProcessService(const std::string& service_id) {
  api::Service service;
  std::vector<api::Task> tasks;
  bool found = false;
  const bool has_run = runs_.contains(service_id);
  bool idle = false;  // no update under way and every live task has the current spec
  // Nodes that are down or gone: their tasks will never report that they stopped.
  absl::flat_hash_set<std::string> lost_nodes;
  store_->View([&](const store::ReadTx& tx) {
    const api::Service* s = tx.Get<api::Service>(service_id);
    if (!Updatable(s)) return;
    found = true;
    const std::vector<const api::Task*> of_service = tx.FindTasksByService(service_id);
    const api::UpdateStatus::State st = s->update_status().state();
    if (!has_run && st != api::UpdateStatus::UPDATING &&
        st != api::UpdateStatus::ROLLBACK_STARTED) {
      // The common case (tasks of a service that is not being updated changed): a look at the
      // spec versions, without copying the tasks. A version names one spec (a rollback restores
      // the older spec with its older version).
      idle = std::all_of(of_service.begin(), of_service.end(), [s](const api::Task* t) {
        return IsJobTask(*t) || !LiveForService(*t) ||
               t->spec_version().index() == s->spec_version().index();
      });
      if (idle) return;
    }
    service = *s;
    for (const api::Task* t : of_service) {
      if (IsJobTask(*t)) continue;
      tasks.push_back(*t);
      if (!t->node_id().empty() && !IsFinished(*t) && !lost_nodes.contains(t->node_id())) {
        const api::Node* n = tx.Get<api::Node>(t->node_id());
        if (n == nullptr || n->status().state() == api::NodeStatus::DOWN) {
          lost_nodes.insert(t->node_id());
        }
      }
    }
  });
  if (idle) return absl::OkStatus();
  if (!found) {
    runs_.erase(service_id);
    return absl::OkStatus();
  }
  const api::UpdateStatus::State state = service.update_status().state();
  if (state == api::UpdateStatus::PAUSED || state == api::UpdateStatus::ROLLBACK_PAUSED) {
    runs_.erase(service_id);  // stays paused until the spec changes (which clears the status)
    return absl::OkStatus();
  }
  const bool rollback = state == api::UpdateStatus::ROLLBACK_STARTED ||
                        state == api::UpdateStatus::ROLLBACK_COMPLETED;
  const api::TaskSpec& target = service.spec().task_template();
  const UpdatePolicy policy = UpdatePolicyOf(service.spec(), rollback);
  const absl::Time now = clock()->Now();
  const std::string& name = service.spec().annotations().name();

  // Group the tasks by slot.
  struct SlotInfo {
    std::vector<const api::Task*> current;   // live, current spec
    std::vector<const api::Task*> outdated;  // live, older spec
    bool stopping = false;       // a task of the slot is desired shut down but not finished yet
    bool replaced = false;       // a task of the slot with an older spec is desired shut down
    bool current_ended = false;  // a task of the slot with the current spec is no longer live
  };
  std::map<SlotKey, SlotInfo> slots;
  absl::flat_hash_map<std::string, const api::Task*> by_id;
  for (const api::Task& t : tasks) {
    by_id[t.id()] = &t;
    SlotInfo& slot = slots[SlotKey(t.slot(), t.slot() > 0 ? "" : t.node_id())];
    if (LiveForService(t)) {
      (MessageDifferencer::Equals(t.spec(), target) ? slot.current : slot.outdated).push_back(&t);
    } else {
      // A task on a lost node is as good as stopped (its node cannot run it any more, and the
      // old task's slot would otherwise never let its replacement start).
      if (!IsFinished(t) && !lost_nodes.contains(t.node_id())) slot.stopping = true;
      if (!MessageDifferencer::Equals(t.spec(), target)) {
        slot.replaced = true;
      } else {
        slot.current_ended = true;
      }
    }
  }

  auto it = runs_.find(service_id);
  if (it != runs_.end() &&
      (it->second.rollback != rollback || !MessageDifferencer::Equals(it->second.target, target))) {
    runs_.erase(it);
    it = runs_.end();
  }
  bool pending = false;  // some slot is outdated or half-way
  for (const auto& [key, slot] : slots) {
    if (!slot.outdated.empty()) pending = true;
  }
  if (it == runs_.end()) {
    const bool in_progress =
        state == api::UpdateStatus::UPDATING || state == api::UpdateStatus::ROLLBACK_STARTED;
    if (!pending && !in_progress) return absl::OkStatus();  // nothing to do
    Run run;
    run.target = target;
    run.rollback = rollback;
    for (const auto& [key, slot] : slots) {
      if (!slot.outdated.empty() || slot.replaced) ++run.slots_to_update;
    }
    it = runs_.emplace(service_id, std::move(run)).first;
  }
  Run& run = it->second;
  run.wake = absl::InfiniteFuture();

  // Adopt STOP_FIRST replacements made before a failover (into the current batch): a current
  // READY task in a slot whose older-spec task was shut down. (A READY task the restart
  // supervisor made waits out a restart delay; it replaces a task of the same spec, so a slot
  // where a current-spec task already ended is not adopted: that slot was updated before.)
  if (state == api::UpdateStatus::UPDATING || state == api::UpdateStatus::ROLLBACK_STARTED) {
    for (const auto& [key, slot] : slots) {
      if (!slot.replaced || !slot.outdated.empty() || slot.current_ended) continue;
      for (const api::Task* t : slot.current) {
        if (t->desired_state() != api::TASK_STATE_READY || run.tasks.contains(t->id())) continue;
        run.tasks.try_emplace(t->id());
        run.batch.try_emplace(key, t->id());
        ++run.updated;
      }
    }
  }

  // Monitor the new tasks.
  const api::Task* failed = nullptr;
  for (auto& [id, tr] : run.tasks) {
    if (tr.done) continue;
    auto t = by_id.find(id);
    if (t == by_id.end()) {
      tr.done = true;
      continue;
    }
    const api::Task& task = *t->second;
    if (IsTerminal(task)) {
      tr.done = true;
      // A failure even when the restart supervisor already shut the task down and replaced it
      // (the updater reads snapshots and may see only that later state); other ends count only
      // while the task was still wanted (e.g. an exit 0 of a service task).
      const api::TaskState ended = task.status().state();
      if (ended == api::TASK_STATE_FAILED || ended == api::TASK_STATE_REJECTED ||
          LiveForService(task)) {
        ++run.failures;
        if (failed == nullptr) failed = &task;
      }
      continue;
    }
    if (task.status().state() == api::TASK_STATE_RUNNING) {
      if (tr.running_since == absl::InfiniteFuture()) tr.running_since = now;
      if (now >= tr.running_since + policy.monitor) {
        tr.done = true;
        continue;
      }
      run.wake = std::min(run.wake, tr.running_since + policy.monitor);
    }
  }

  // Failure action.
  const uint64_t denominator = std::max(run.slots_to_update, run.updated);
  if (failed != nullptr && denominator > 0 &&
      static_cast<double>(run.failures) / static_cast<double>(denominator) >
          policy.max_failure_ratio &&
      policy.failure_action != api::UpdateConfig::CONTINUE) {
    const std::string what = Describe(*failed);
    const bool can_roll_back = policy.failure_action == api::UpdateConfig::ROLLBACK && !rollback &&
                               service.has_previous_spec();
    Op op;
    if (can_roll_back) {
      op = [service_id, target, what, now](store::WriteTx& tx) -> absl::Status {
        const api::Service* s = tx.Get<api::Service>(service_id);
        if (!Updatable(s) || !MessageDifferencer::Equals(s->spec().task_template(), target) ||
            !s->has_previous_spec()) {
          return absl::OkStatus();
        }
        api::Service u = *s;
        *u.mutable_spec() = s->previous_spec();
        *u.mutable_spec_version() = s->previous_spec_version();
        *u.mutable_previous_spec() = s->spec();
        *u.mutable_previous_spec_version() = s->spec_version();
        api::UpdateStatus* us = u.mutable_update_status();
        us->Clear();
        us->set_state(api::UpdateStatus::ROLLBACK_STARTED);
        ToProto(now, us->mutable_started_at());
        us->set_message(
            absl::StrCat("update rolled back due to failure or early termination of ", what));
        return tx.Update(std::move(u));
      };
    } else {
      std::string message = absl::StrCat(rollback ? "rollback" : "update",
                                         " paused due to failure or early termination of ", what);
      if (policy.failure_action == api::UpdateConfig::ROLLBACK) {
        absl::StrAppend(&message, rollback ? " (no rollback of a rollback)"
                                           : " (no previous spec to roll back to)");
      }
      op = StatusOp(service_id, target, [rollback, message](api::UpdateStatus* us) {
        us->set_state(rollback ? api::UpdateStatus::ROLLBACK_PAUSED : api::UpdateStatus::PAUSED);
        us->set_message(message);
        us->clear_completed_at();
      });
    }
    absl::Status s = RunBatch(store_, {op}, stop_flag());
    if (!s.ok()) return s;
    spdlog::warn("updater: service {} ({}): {} {} after {} of {} updated tasks failed ({})", name,
                 service_id, rollback ? "rollback" : "update",
                 can_roll_back ? "rolled back" : "paused", run.failures, run.updated, what);
    runs_.erase(service_id);
    if (can_roll_back) dirty_.insert(service_id);
    return absl::OkStatus();
  }

  std::vector<Op> ops;
  // Slots half-way: START_FIRST old tasks go once a current task runs; STOP_FIRST replacements
  // start once the old task has finished.
  bool halfway = false;
  for (const auto& [key, slot] : slots) {
    if (slot.current.empty()) continue;
    const bool running = std::any_of(
        slot.current.begin(), slot.current.end(),
        [](const api::Task* t) { return t->status().state() == api::TASK_STATE_RUNNING; });
    if (!slot.outdated.empty()) {
      halfway = true;
      if (!running) continue;
      for (const api::Task* t : slot.outdated) {
        ops.push_back([id = t->id()](store::WriteTx& tx) {
          return RaiseDesiredState(tx, id, api::TASK_STATE_SHUTDOWN);
        });
      }
      continue;
    }
    for (const api::Task* t : slot.current) {
      if (t->desired_state() != api::TASK_STATE_READY || !run.tasks.contains(t->id())) continue;
      halfway = true;
      if (slot.stopping) continue;
      ops.push_back([id = t->id()](store::WriteTx& tx) {
        return RaiseDesiredState(tx, id, api::TASK_STATE_RUNNING);
      });
    }
  }

  // The current batch settles when each of its slots' new task runs (old ones gone) or ended.
  if (!run.batch.empty()) {
    bool settled = true;
    for (const auto& [key, task_id] : run.batch) {
      auto t = by_id.find(task_id);
      if (t == by_id.end() || IsTerminal(*t->second) || !LiveForService(*t->second)) continue;
      const auto slot = slots.find(key);
      if (t->second->status().state() != api::TASK_STATE_RUNNING ||
          (slot != slots.end() && !slot->second.outdated.empty())) {
        settled = false;
        break;
      }
    }
    if (settled) {
      run.batch.clear();
      run.next_batch_at = now + policy.delay;
    }
  }

  // The next batch.
  std::vector<SlotKey> outdated;
  for (const auto& [key, slot] : slots) {
    if (!slot.outdated.empty() && slot.current.empty()) outdated.push_back(key);
  }
  std::vector<std::pair<SlotKey, std::shared_ptr<std::string>>> created;
  if (run.batch.empty() && !outdated.empty()) {
    if (now < run.next_batch_at) {
      run.wake = std::min(run.wake, run.next_batch_at);
    } else {
      const size_t n = policy.parallelism == 0
                           ? outdated.size()
                           : std::min<size_t>(outdated.size(), policy.parallelism);
      Clock* const clk = clock();
      const bool stop_first = policy.order == api::UpdateConfig::STOP_FIRST;
      for (size_t i = 0; i < n; ++i) {
        const SlotKey key = outdated[i];
        std::vector<std::string> old;
        for (const api::Task* t : slots[key].outdated) old.push_back(t->id());
        auto id = std::make_shared<std::string>();
        created.emplace_back(key, id);
        ops.push_back([=](store::WriteTx& tx) -> absl::Status {
          const api::Service* s = tx.Get<api::Service>(service_id);
          if (!Updatable(s) || !MessageDifferencer::Equals(s->spec().task_template(), target)) {
            return absl::OkStatus();
          }
          bool any_live = false;
          for (const std::string& o : old) {
            const api::Task* t = tx.Get<api::Task>(o);
            if (t == nullptr || !LiveForService(*t)) continue;
            any_live = true;
            if (stop_first) {
              if (absl::Status st = RaiseDesiredState(tx, o, api::TASK_STATE_SHUTDOWN); !st.ok()) {
                return st;
              }
            }
          }
          if (!any_live) return absl::OkStatus();  // the slot went (scaled down) meanwhile
          api::Task task = NewTask(*s, FindCluster(tx), key.first, key.second, clk->Now());
          if (stop_first) task.set_desired_state(api::TASK_STATE_READY);
          *id = task.id();
          return tx.Create(std::move(task));
        });
      }
    }
  }

  // update_status.
  const bool done = !pending && !halfway && run.batch.empty() && created.empty() &&
                    std::all_of(run.tasks.begin(), run.tasks.end(),
                                [](const auto& kv) { return kv.second.done; });
  if (done) {
    if (state == api::UpdateStatus::UPDATING || state == api::UpdateStatus::ROLLBACK_STARTED) {
      ops.push_back(StatusOp(service_id, target, [rollback, now](api::UpdateStatus* us) {
        us->set_state(rollback ? api::UpdateStatus::ROLLBACK_COMPLETED
                               : api::UpdateStatus::COMPLETED);
        us->set_message(rollback ? "rollback completed" : "update completed");
        ToProto(now, us->mutable_completed_at());
      }));
    }
  } else if (state !=
             (rollback ? api::UpdateStatus::ROLLBACK_STARTED : api::UpdateStatus::UPDATING)) {
    ops.push_back(StatusOp(service_id, target, [rollback, now](api::UpdateStatus* us) {
      us->Clear();
      us->set_state(rollback ? api::UpdateStatus::ROLLBACK_STARTED : api::UpdateStatus::UPDATING);
      us->set_message(rollback ? "rollback in progress" : "update in progress");
      ToProto(now, us->mutable_started_at());
    }));
  }

  absl::Status s = ops.empty() ? absl::OkStatus() : RunBatch(store_, ops, stop_flag());
  for (const auto& [key, id] : created) {
    if (id->empty()) continue;
    run.batch[key] = *id;
    run.tasks.try_emplace(*id);
    ++run.updated;
  }
  if (!s.ok()) return s;
  if (!created.empty()) {
    spdlog::info("updater: service {} ({}): {} {} task(s) replaced", name, service_id,
                 rollback ? "rollback:" : "update:", created.size());
  }
  if (done) runs_.erase(service_id);
  return absl::OkStatus();
}

}  // namespace shoal::manager::orchestrator
