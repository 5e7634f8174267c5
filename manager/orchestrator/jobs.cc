#include "manager/orchestrator/jobs.h"

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "manager/cluster_object.h"
#include "scheduler/constraint.h"
#include "spdlog/spdlog.h"

namespace shoal::manager::orchestrator {
namespace {

using Op = std::function<absl::Status(store::WriteTx&)>;

bool IsJobService(const api::Service* s) { return s != nullptr && IsJob(ModeOf(*s)); }

uint64_t IterationOf(const api::Service& s) { return s.job_status().job_iteration().index(); }

// A live task (desired <= COMPLETE) of iteration `iteration`.
bool LiveInIteration(const api::Task& t, uint64_t iteration) {
  return IsJobTask(t) && t.job_iteration().index() == iteration &&
         t.desired_state() <= api::TASK_STATE_COMPLETE;
}

bool HasLiveInIteration(const store::ReadTx& tx, const std::string& service_id, uint64_t slot,
                        const std::string& node_id, uint64_t iteration) {
  const std::vector<const api::Task*> tasks =
      slot > 0 ? tx.FindTasksBySlot(service_id, slot)
               : tx.FindTasksByServiceAndNode(service_id, node_id);
  for (const api::Task* t : tasks) {
    if (LiveInIteration(*t, iteration)) return true;
  }
  return false;
}

}  // namespace

struct JobOrchestrator::Plan {
  uint64_t iteration = 0;
  ServiceMode mode = ServiceMode::kNone;
  std::vector<std::string> shutdown;                      // task IDs
  std::vector<std::string> remove;                        // task IDs (pending deletion)
  std::vector<std::pair<std::string, uint64_t>> replace;  // task on a lost node, its slot
  std::vector<uint64_t> create_slots;                     // replicated jobs
  std::vector<std::string> create_nodes;                  // global jobs
  bool empty() const {
    return shutdown.empty() && remove.empty() && replace.empty() && create_slots.empty() &&
           create_nodes.empty();
  }
};

JobOrchestrator::JobOrchestrator(store::MemoryStore* store, OrchestratorOptions options)
    : ReconcileLoop(store, options, "job orchestrator",
                    {api::OBJECT_KIND_SERVICE, api::OBJECT_KIND_TASK, api::OBJECT_KIND_NODE}),
      nodes_(options.node_down_grace) {}

JobOrchestrator::~JobOrchestrator() { Stop(); }

void JobOrchestrator::MarkAll(const store::ReadTx& tx) {
  const absl::Time now = clock()->Now();
  for (const api::Node* n : tx.List<api::Node>()) nodes_.Observe(n->id(), n, now);
  for (const api::Service* s : tx.List<api::Service>()) {
    if (IsJobService(s)) dirty_services_.insert(s->id());
  }
}

void JobOrchestrator::Observe(const store::StoreEvent& e) {
  switch (e.kind()) {
    case api::OBJECT_KIND_SERVICE:
      if (e.action != api::StoreAction::REMOVE && IsJobService(&e.object->service())) {
        dirty_services_.insert(e.object->service().id());
      }
      break;
    case api::OBJECT_KIND_TASK: {
      const api::Task& t = e.object->task();
      if (!IsJobTask(t)) break;
      if (e.action == api::StoreAction::UPDATE) {
        const api::Task& old = e.old_object->task();
        if (old.desired_state() == t.desired_state() && old.node_id() == t.node_id() &&
            old.status().state() == t.status().state()) {
          break;
        }
      }
      dirty_services_.insert(t.service_id());
      break;
    }
    case api::OBJECT_KIND_NODE: {
      const api::Node& n = e.object->node();
      nodes_.Observe(n.id(), e.action == api::StoreAction::REMOVE ? nullptr : &n, clock()->Now());
      dirty_nodes_.insert(n.id());
      break;
    }
    default:
      break;
  }
}

absl::Time JobOrchestrator::NextWakeup() { return nodes_.NextExpiry(); }

absl::Status JobOrchestrator::Process() {
  for (std::string& id : nodes_.TakeExpired(clock()->Now())) dirty_nodes_.insert(std::move(id));
  if (!dirty_nodes_.empty()) {
    store_->View([&](const store::ReadTx& tx) {
      for (const api::Service* s : tx.List<api::Service>()) {
        if (s != nullptr && ModeOf(*s) == ServiceMode::kGlobalJob) dirty_services_.insert(s->id());
      }
      for (const std::string& node_id : dirty_nodes_) {
        for (const api::Task* t : tx.FindTasksByNode(node_id)) {
          if (IsJobTask(*t) && IsLive(*t)) dirty_services_.insert(t->service_id());
        }
      }
    });
    dirty_nodes_.clear();
  }
  std::vector<std::string> ids(dirty_services_.begin(), dirty_services_.end());
  std::sort(ids.begin(), ids.end());
  absl::Status first;
  for (const std::string& id : ids) {
    if (StopRequested()) return absl::CancelledError("the orchestrator is stopping");
    absl::Status s = RetryAborted([&] { return ReconcileAttempt(id); });
    if (s.ok()) {
      dirty_services_.erase(id);
    } else if (first.ok()) {
      first = absl::Status(s.code(), absl::StrCat("job ", id, ": ", s.message()));
    }
  }
  return first;
}

absl::Status JobOrchestrator::Reconcile(const std::string& service_id) {
  absl::MutexLock work(&work_mu_);
  return RetryAborted([&] { return ReconcileAttempt(service_id); });
}

void JobOrchestrator::PlanReplicated(const store::ReadTx& tx, const api::Service& svc, Plan* plan) {
  const absl::Time now = clock()->Now();
  const uint64_t iteration = plan->iteration;
  const api::ReplicatedJob& job = svc.spec().replicated_job();
  const uint64_t max_concurrent = job.max_concurrent() > 0 ? job.max_concurrent() : 1;
  const uint64_t total = job.total_completions() > 0 ? job.total_completions() : max_concurrent;

  struct Slot {
    bool done = false;
    bool active = false;
  };
  absl::flat_hash_map<uint64_t, Slot> slots;
  absl::flat_hash_map<std::string, NodeVerdict> verdicts;
  for (const api::Task* t : tx.FindTasksByService(svc.id())) {
    if (!IsLive(*t)) continue;
    if (!IsJobTask(*t) || t->job_iteration().index() != iteration) {
      plan->shutdown.push_back(t->id());  // an earlier iteration's
      continue;
    }
    if (t->slot() == 0) continue;
    Slot& slot = slots[t->slot()];
    if (t->status().state() == api::TASK_STATE_COMPLETE) {
      slot.done = true;
      continue;
    }
    if (!IsTerminal(*t)) {
      slot.active = true;
      if (!t->node_id().empty()) {
        auto [it, added] = verdicts.try_emplace(t->node_id(), NodeVerdict::kUsable);
        if (added) it->second = nodes_.Judge(t->node_id(), tx.Get<api::Node>(t->node_id()), now);
        if (it->second == NodeVerdict::kUnusable) plan->replace.emplace_back(t->id(), t->slot());
      }
    } else if (ConditionWantsRestart(*t)) {
      slot.active = true;  // the restart supervisor replaces it
    }
  }
  uint64_t active = 0;
  for (const auto& [number, slot] : slots) {
    if (slot.active && !slot.done) ++active;
  }
  const uint64_t taken = slots.size();
  uint64_t want = std::min(max_concurrent > active ? max_concurrent - active : 0,
                           total > taken ? total - taken : 0);
  for (uint64_t s = 1; want > 0 && s <= total; ++s) {
    if (slots.contains(s)) continue;
    plan->create_slots.push_back(s);
    --want;
  }
}

void JobOrchestrator::PlanGlobal(const store::ReadTx& tx, const api::Service& svc, Plan* plan) {
  const absl::Time now = clock()->Now();
  const uint64_t iteration = plan->iteration;
  absl::StatusOr<std::vector<scheduler::Constraint>> constraints =
      scheduler::ParseConstraints(svc.spec().task_template().placement().constraints());
  if (!constraints.ok()) {
    if (bad_constraints_reported_.insert(svc.id()).second) {
      spdlog::warn("job orchestrator: global job {} ({}) left alone: {}; fix its constraints",
                   svc.spec().annotations().name(), svc.id(),
                   std::string(constraints.status().message()));
    }
    return;
  }
  bad_constraints_reported_.erase(svc.id());

  absl::flat_hash_map<std::string, std::vector<const api::Task*>> by_node;
  for (const api::Task* t : tx.FindTasksByService(svc.id())) {
    if (!IsLive(*t)) continue;
    if (!IsJobTask(*t) || t->job_iteration().index() != iteration) {
      plan->shutdown.push_back(t->id());
      continue;
    }
    if (t->slot() == 0 && !t->node_id().empty()) by_node[t->node_id()].push_back(t);
  }
  auto decide = [&](const std::string& node_id, const api::Node* node,
                    const std::vector<const api::Task*>* live) {
    const NodeVerdict verdict = nodes_.Judge(node_id, node, now);
    const bool fits = node != nullptr && scheduler::NodeMatches(*constraints, *node);
    if (verdict == NodeVerdict::kUnusable || !fits) {
      if (live == nullptr) return;
      for (const api::Task* t : *live) {
        if (t->status().state() != api::TASK_STATE_COMPLETE) plan->shutdown.push_back(t->id());
      }
    } else if (verdict == NodeVerdict::kUsable && (live == nullptr || live->empty())) {
      plan->create_nodes.push_back(node_id);
    }
  };
  for (const api::Node* n : tx.List<api::Node>()) {
    auto it = by_node.find(n->id());
    decide(n->id(), n, it == by_node.end() ? nullptr : &it->second);
    if (it != by_node.end()) by_node.erase(it);
  }
  for (const auto& [node_id, live] : by_node) decide(node_id, nullptr, &live);  // nodes gone
}

absl::Status JobOrchestrator::ReconcileAttempt(const std::string& service_id) {
  Plan plan;
  store_->View([&](const store::ReadTx& tx) {
    const api::Service* svc = tx.Get<api::Service>(service_id);
    if (!IsJobService(svc)) return;
    if (svc->pending_delete()) {
      plan.remove = TasksToRemove(tx, service_id);
      return;
    }
    plan.mode = ModeOf(*svc);
    plan.iteration = IterationOf(*svc);
    if (plan.mode == ServiceMode::kReplicatedJob) {
      PlanReplicated(tx, *svc, &plan);
    } else {
      PlanGlobal(tx, *svc, &plan);
    }
  });
  if (plan.empty()) return absl::OkStatus();

  Clock* const clk = clock();
  const uint64_t iteration = plan.iteration;
  const ServiceMode mode = plan.mode;
  // The job a new task is made from, as this transaction sees it: null if it is gone, is being
  // removed, or moved on to another iteration (then nothing is created).
  auto current = [&service_id, iteration, mode](const store::ReadTx& tx) -> const api::Service* {
    const api::Service* s = tx.Get<api::Service>(service_id);
    if (s == nullptr || s->pending_delete() || ModeOf(*s) != mode || IterationOf(*s) != iteration) {
      return nullptr;
    }
    return s;
  };
  std::vector<Op> ops;
  for (const std::string& task_id : plan.shutdown) {
    ops.push_back([task_id](store::WriteTx& tx) {
      return RaiseDesiredState(tx, task_id, api::TASK_STATE_SHUTDOWN);
    });
  }
  for (const std::string& task_id : plan.remove) {
    ops.push_back([task_id](store::WriteTx& tx) {
      return RaiseDesiredState(tx, task_id, api::TASK_STATE_REMOVE);
    });
  }
  for (const auto& [task_id, slot] : plan.replace) {
    ops.push_back([&, task_id = task_id, slot = slot](store::WriteTx& tx) -> absl::Status {
      const api::Task* t = tx.Get<api::Task>(task_id);
      if (t == nullptr || !IsLive(*t) || IsTerminal(*t)) return absl::OkStatus();
      const api::Service* s = current(tx);
      if (s == nullptr) return absl::OkStatus();
      if (absl::Status st = RaiseDesiredState(tx, task_id, api::TASK_STATE_SHUTDOWN); !st.ok()) {
        return st;
      }
      if (HasLiveInIteration(tx, service_id, slot, "", iteration)) return absl::OkStatus();
      return tx.Create(NewTask(*s, FindCluster(tx), slot, "", clk->Now()));
    });
  }
  for (uint64_t slot : plan.create_slots) {
    ops.push_back([&, slot](store::WriteTx& tx) -> absl::Status {
      const api::Service* s = current(tx);
      if (s == nullptr || HasLiveInIteration(tx, service_id, slot, "", iteration)) {
        return absl::OkStatus();
      }
      return tx.Create(NewTask(*s, FindCluster(tx), slot, "", clk->Now()));
    });
  }
  for (const std::string& node_id : plan.create_nodes) {
    ops.push_back([&, node_id](store::WriteTx& tx) -> absl::Status {
      const api::Service* s = current(tx);
      if (s == nullptr || HasLiveInIteration(tx, service_id, 0, node_id, iteration)) {
        return absl::OkStatus();
      }
      return tx.Create(NewTask(*s, FindCluster(tx), 0, node_id, clk->Now()));
    });
  }
  return RunBatch(store_, ops, stop_flag());
}

}  // namespace shoal::manager::orchestrator
