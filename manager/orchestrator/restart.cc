#include "manager/orchestrator/restart.h"

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "manager/cluster_object.h"
#include "scheduler/constraint.h"
#include "spdlog/spdlog.h"

namespace shoal::manager::orchestrator {
namespace {

using Op = std::function<absl::Status(store::WriteTx&)>;

bool IsGlobalMode(ServiceMode m) {
  return m == ServiceMode::kGlobal || m == ServiceMode::kGlobalJob;
}

bool IsCandidate(const api::Task& t) { return IsTerminal(t) && IsLive(t); }

std::string Describe(const api::Task& t) {
  return absl::StrCat(t.annotations().name().empty() ? t.id() : t.annotations().name(), " (",
                      api::TaskState_Name(t.status().state()), ")");
}

}  // namespace

RestartSupervisor::RestartSupervisor(store::MemoryStore* store, OrchestratorOptions options)
    : ReconcileLoop(store, options, "restart supervisor",
                    {api::OBJECT_KIND_TASK, api::OBJECT_KIND_NODE}),
      nodes_(options.node_down_grace) {}

RestartSupervisor::~RestartSupervisor() { Stop(); }

size_t RestartSupervisor::pending_delayed_starts() {
  absl::MutexLock work(&work_mu_);
  return timers_.size();
}

std::string RestartSupervisor::SlotKey(const api::Task& t) {
  if (t.slot() > 0) return absl::StrCat(t.service_id(), "/", t.slot());
  return absl::StrCat(t.service_id(), "@", t.node_id());
}

void RestartSupervisor::Consider(const api::Task& t) {
  if (IsCandidate(t) && !given_up_.contains(t.id())) candidates_.insert(t.id());
}

void RestartSupervisor::AddTimer(const api::Task& t) {
  if (t.desired_state() != api::TASK_STATE_READY || timed_.contains(t.id())) return;
  timers_.emplace(CreatedAt(t) + RestartPolicyOf(t).delay, t.id());
  timed_.insert(t.id());
}

void RestartSupervisor::MarkAll(const store::ReadTx& tx) {
  const absl::Time now = clock()->Now();
  for (const api::Node* n : tx.List<api::Node>()) nodes_.Observe(n->id(), n, now);
  for (api::TaskState desired :
       {api::TASK_STATE_READY, api::TASK_STATE_RUNNING, api::TASK_STATE_COMPLETE}) {
    for (const api::Task* t : tx.FindTasksByDesiredState(desired)) {
      Consider(*t);
      AddTimer(*t);
    }
  }
}

void RestartSupervisor::Observe(const store::StoreEvent& e) {
  if (e.kind() == api::OBJECT_KIND_NODE) {
    const api::Node& n = e.object->node();
    nodes_.Observe(n.id(), e.action == api::StoreAction::REMOVE ? nullptr : &n, clock()->Now());
    return;
  }
  if (e.kind() != api::OBJECT_KIND_TASK) return;
  const api::Task& t = e.object->task();
  if (e.action == api::StoreAction::REMOVE) {
    candidates_.erase(t.id());
    given_up_.erase(t.id());
    return;
  }
  if (!IsLive(t)) given_up_.erase(t.id());
  Consider(t);
  AddTimer(t);
}

absl::Time RestartSupervisor::NextWakeup() {
  absl::Time next = nodes_.NextExpiry();
  if (!timers_.empty()) next = std::min(next, timers_.begin()->first);
  return next;
}

absl::Status RestartSupervisor::Process() {
  const absl::Time now = clock()->Now();
  nodes_.TakeExpired(now);  // a DOWN node's grace ending may unblock a waiting global task
  absl::Status s = RetryAborted([&] { return RestartCandidates(now); });
  absl::Status t = RetryAborted([&] { return StartDue(now); });
  return s.ok() ? t : s;
}

uint64_t RestartSupervisor::RestartsInWindow(const store::ReadTx& tx, const api::Task& t,
                                             const RestartPolicy& policy) {
  const absl::Time ref =
      t.status().has_timestamp() ? FromProto(t.status().timestamp()) : clock()->Now();
  const absl::Time lower =
      policy.window > absl::ZeroDuration() ? ref - policy.window : absl::InfinitePast();
  const uint64_t version = t.spec_version().index();
  // The slot's tasks of this spec version (and job iteration), oldest first: all but the first
  // were restarts.
  std::vector<std::pair<absl::Time, std::string>> same;
  const std::vector<const api::Task*> slot_tasks =
      t.slot() > 0 ? tx.FindTasksBySlot(t.service_id(), t.slot())
                   : tx.FindTasksByServiceAndNode(t.service_id(), t.node_id());
  for (const api::Task* o : slot_tasks) {
    if (o->spec_version().index() != version) continue;
    if (IsJobTask(t) && o->job_iteration().index() != t.job_iteration().index()) continue;
    same.emplace_back(CreatedAt(*o), o->id());
  }
  std::sort(same.begin(), same.end());
  absl::flat_hash_set<std::string> counted;
  for (size_t i = 1; i < same.size(); ++i) {
    if (same[i].first > lower) counted.insert(same[i].second);
  }
  auto it = history_.find(SlotKey(t));
  if (it != history_.end() && it->second.spec_version == version) {
    for (const auto& [when, id] : it->second.restarts) {
      if (when > lower) counted.insert(id);
    }
  }
  return counted.size();
}

RestartSupervisor::Decision RestartSupervisor::Decide(const store::ReadTx& tx, const api::Task& t,
                                                      absl::Duration* delay) {
  if (!IsCandidate(t)) return Decision::kDrop;
  const api::Service* svc = tx.Get<api::Service>(t.service_id());
  if (svc == nullptr || svc->pending_delete()) return Decision::kDrop;
  const ServiceMode mode = ModeOf(*svc);
  if (mode == ServiceMode::kNone || IsJob(mode) != IsJobTask(t)) return Decision::kDrop;
  if (IsJob(mode) && t.job_iteration().index() != svc->job_status().job_iteration().index()) {
    return Decision::kDrop;  // an earlier run: the job orchestrator shuts it down
  }
  if (IsGlobalMode(mode) ? t.node_id().empty() : t.slot() == 0) return Decision::kDrop;
  if (!ConditionWantsRestart(t)) return Decision::kGiveUp;
  const RestartPolicy policy = RestartPolicyOf(t);
  if (policy.max_attempts > 0 && RestartsInWindow(tx, t, policy) >= policy.max_attempts) {
    return Decision::kGiveUp;
  }
  const api::Node* node = t.node_id().empty() ? nullptr : tx.Get<api::Node>(t.node_id());
  if (IsGlobalMode(mode)) {
    const NodeVerdict verdict = nodes_.Judge(t.node_id(), node, clock()->Now());
    absl::StatusOr<std::vector<scheduler::Constraint>> constraints =
        scheduler::ParseConstraints(svc->spec().task_template().placement().constraints());
    if (!constraints.ok()) return Decision::kWait;
    if (verdict == NodeVerdict::kUnusable || !scheduler::NodeMatches(*constraints, *node)) {
      return Decision::kDrop;  // the global orchestrator shuts it down
    }
    if (verdict == NodeVerdict::kKeep) return Decision::kWait;
  }
  *delay = policy.delay;
  if (node != nullptr && node->spec().availability() == api::NODE_AVAILABILITY_DRAIN) {
    *delay = absl::ZeroDuration();  // it is moving elsewhere anyway
  }
  return Decision::kRestart;
}

absl::Status RestartSupervisor::RestartCandidates(absl::Time now) {
  if (candidates_.empty()) return absl::OkStatus();
  std::vector<std::string> ids(candidates_.begin(), candidates_.end());
  std::sort(ids.begin(), ids.end());
  std::vector<Restart> restarts;
  store_->View([&](const store::ReadTx& tx) {
    for (const std::string& id : ids) {
      const api::Task* t = tx.Get<api::Task>(id);
      absl::Duration delay;
      const Decision d = t == nullptr ? Decision::kDrop : Decide(tx, *t, &delay);
      switch (d) {
        case Decision::kDrop:
          candidates_.erase(id);
          break;
        case Decision::kGiveUp:
          candidates_.erase(id);
          given_up_.insert(id);
          spdlog::info(
              "restart supervisor: task {} of service {} is not restarted (restart "
              "policy)",
              Describe(*t), t->service_id());
          break;
        case Decision::kWait:
          break;
        case Decision::kRestart:
          restarts.push_back(Restart{id, delay});
          break;
      }
    }
  });
  if (restarts.empty()) return absl::OkStatus();

  Clock* const clk = clock();
  struct Made {
    std::string key;
    uint64_t version;
    uint64_t max_attempts;
    std::string id;
    absl::Time due;
  };
  std::vector<Made> made(restarts.size());
  std::vector<Op> ops;
  ops.reserve(restarts.size());
  for (size_t i = 0; i < restarts.size(); ++i) {
    ops.push_back([&, i](store::WriteTx& tx) -> absl::Status {
      const Restart& r = restarts[i];
      const api::Task* t = tx.Get<api::Task>(r.task_id);
      if (t == nullptr || !IsCandidate(*t)) return absl::OkStatus();
      const api::Service* svc = tx.Get<api::Service>(t->service_id());
      if (svc == nullptr || svc->pending_delete()) return absl::OkStatus();
      api::Task old = *t;
      old.set_desired_state(api::TASK_STATE_SHUTDOWN);
      const absl::Time at = clk->Now();
      api::Task next =
          NewTask(*svc, FindCluster(tx), old.slot(), old.slot() > 0 ? "" : old.node_id(), at);
      if (IsJobTask(old)) *next.mutable_job_iteration() = old.job_iteration();
      if (r.delay > absl::ZeroDuration()) next.set_desired_state(api::TASK_STATE_READY);
      next.mutable_status()->set_message(absl::StrCat(
          "replaces task ", old.id(), " (", api::TaskState_Name(old.status().state()), ")"));
      made[i] = Made{SlotKey(old), next.spec_version().index(), RestartPolicyOf(old).max_attempts,
                     next.id(), at + r.delay};
      if (absl::Status s = tx.Update(std::move(old)); !s.ok()) return s;
      return tx.Create(std::move(next));
    });
  }
  absl::Status s = RunBatch(store_, ops, stop_flag());
  if (!s.ok()) return s;  // candidates stay; the next pass re-reads them
  for (size_t i = 0; i < restarts.size(); ++i) {
    candidates_.erase(restarts[i].task_id);
    const Made& m = made[i];
    if (m.id.empty()) continue;  // nothing to do after all
    if (m.max_attempts > 0) {
      History& h = history_[m.key];
      if (h.spec_version != m.version) h = History{m.version, {}};
      h.restarts.emplace_back(now, m.id);
      while (h.restarts.size() > m.max_attempts) h.restarts.pop_front();
    }
    if (m.due > now && !timed_.contains(m.id)) {
      timers_.emplace(m.due, m.id);
      timed_.insert(m.id);
    }
  }
  spdlog::debug("restart supervisor: {} tasks replaced", restarts.size());
  return absl::OkStatus();
}

absl::Status RestartSupervisor::StartDue(absl::Time now) {
  std::vector<std::string> due;
  while (!timers_.empty() && timers_.begin()->first <= now) {
    due.push_back(timers_.begin()->second);
    timed_.erase(timers_.begin()->second);
    timers_.erase(timers_.begin());
  }
  if (due.empty()) return absl::OkStatus();
  std::vector<Op> ops;
  ops.reserve(due.size());
  for (const std::string& id : due) {
    ops.push_back([id](store::WriteTx& tx) -> absl::Status {
      const api::Task* t = tx.Get<api::Task>(id);
      if (t == nullptr || t->desired_state() != api::TASK_STATE_READY) return absl::OkStatus();
      const api::Service* svc = tx.Get<api::Service>(t->service_id());
      if (svc == nullptr || svc->pending_delete()) return absl::OkStatus();
      // A stop-first update's replacement also waits in READY: the updater raises it once the
      // task it replaces has stopped. Leave it alone while that task is still running.
      const std::vector<const api::Task*> slot =
          t->slot() > 0 ? tx.FindTasksBySlot(t->service_id(), t->slot())
                        : tx.FindTasksByServiceAndNode(t->service_id(), t->node_id());
      for (const api::Task* other : slot) {
        if (other->id() != id && other->desired_state() == api::TASK_STATE_SHUTDOWN &&
            other->status().state() <= api::TASK_STATE_RUNNING) {
          return absl::OkStatus();
        }
      }
      return RaiseDesiredState(tx, id, RunDesiredState(IsJobTask(*t)));
    });
  }
  absl::Status s = RunBatch(store_, ops, stop_flag());
  if (!s.ok()) {
    for (const std::string& id : due) {
      if (timed_.insert(id).second) timers_.emplace(now, id);
    }
  }
  return s;
}

}  // namespace shoal::manager::orchestrator
