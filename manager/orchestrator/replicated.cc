#include "manager/orchestrator/replicated.h"

#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "manager/cluster_object.h"
#include "spdlog/spdlog.h"

namespace shoal::manager::orchestrator {
namespace {

using Op = std::function<absl::Status(store::WriteTx&)>;

bool IsReplicated(const api::Service* s) {
  return s != nullptr && ModeOf(*s) == ServiceMode::kReplicated;
}

bool LiveForService(const api::Task& t) { return t.desired_state() <= api::TASK_STATE_RUNNING; }

}  // namespace

struct ReplicatedOrchestrator::Plan {
  std::vector<std::pair<std::string, uint64_t>> replace;  // task on a lost node, its slot
  std::vector<uint64_t> create;                           // slots to fill
  std::vector<std::string> remove;                        // tasks to be desired REMOVE
};

ReplicatedOrchestrator::ReplicatedOrchestrator(store::MemoryStore* store,
                                               OrchestratorOptions options)
    : ReconcileLoop(store, options, "replicated orchestrator",
                    {api::OBJECT_KIND_SERVICE, api::OBJECT_KIND_TASK, api::OBJECT_KIND_NODE}),
      nodes_(options.node_down_grace) {}

ReplicatedOrchestrator::~ReplicatedOrchestrator() { Stop(); }

void ReplicatedOrchestrator::MarkAll(const store::ReadTx& tx) {
  const absl::Time now = clock()->Now();
  for (const api::Node* n : tx.List<api::Node>()) nodes_.Observe(n->id(), n, now);
  for (const api::Service* s : tx.List<api::Service>()) {
    if (IsReplicated(s)) dirty_services_.insert(s->id());
  }
}

void ReplicatedOrchestrator::Observe(const store::StoreEvent& e) {
  switch (e.kind()) {
    case api::OBJECT_KIND_SERVICE:
      if (e.action != api::StoreAction::REMOVE && IsReplicated(&e.object->service())) {
        dirty_services_.insert(e.object->service().id());
      }
      break;
    case api::OBJECT_KIND_TASK: {
      const api::Task& t = e.object->task();
      if (e.action == api::StoreAction::UPDATE) {
        const api::Task& old = e.old_object->task();
        if (old.desired_state() == t.desired_state() && old.node_id() == t.node_id() &&
            old.slot() == t.slot()) {
          break;  // a status report: nothing the orchestrator decides on
        }
      }
      if (t.slot() > 0) dirty_services_.insert(t.service_id());
      break;
    }
    case api::OBJECT_KIND_NODE: {
      const api::Node& n = e.object->node();
      const bool removed = e.action == api::StoreAction::REMOVE;
      nodes_.Observe(n.id(), removed ? nullptr : &n, clock()->Now());
      if (e.action == api::StoreAction::UPDATE) {
        const api::Node& old = e.old_object->node();
        if (old.spec().availability() == n.spec().availability() &&
            old.status().state() == n.status().state()) {
          break;
        }
      }
      dirty_nodes_.insert(n.id());
      break;
    }
    default:
      break;
  }
}

absl::Time ReplicatedOrchestrator::NextWakeup() { return nodes_.NextExpiry(); }

absl::Status ReplicatedOrchestrator::Process() {
  for (std::string& id : nodes_.TakeExpired(clock()->Now())) dirty_nodes_.insert(std::move(id));
  if (!dirty_nodes_.empty()) {
    store_->View([&](const store::ReadTx& tx) {
      for (const std::string& node_id : dirty_nodes_) {
        for (const api::Task* t : tx.FindTasksByNode(node_id)) {
          if (t->slot() > 0 && LiveForService(*t)) dirty_services_.insert(t->service_id());
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
    absl::Status s = ReconcileLocked(id);
    if (s.ok()) {
      dirty_services_.erase(id);
    } else if (first.ok()) {
      first = absl::Status(s.code(), absl::StrCat("service ", id, ": ", s.message()));
    }
  }
  return first;
}

absl::Status ReplicatedOrchestrator::Reconcile(const std::string& service_id) {
  absl::MutexLock work(&work_mu_);
  return ReconcileLocked(service_id);
}

absl::Status ReplicatedOrchestrator::ReconcileLocked(const std::string& service_id) {
  return RetryAborted([&] { return ReconcileAttempt(service_id); });
}

void ReplicatedOrchestrator::PlanService(const store::ReadTx& tx, const api::Service& service,
                                         Plan* plan) {
  const absl::Time now = clock()->Now();
  if (service.pending_delete()) {
    plan->remove = TasksToRemove(tx, service.id());
    return;
  }
  const std::vector<const api::Task*> tasks = tx.FindTasksByService(service.id());

  struct Slot {
    std::vector<const api::Task*> live;
    const api::Task* placed = nullptr;  // the one live task, on a node that keeps it
    bool running = false;
    bool replaced = false;
  };
  absl::flat_hash_map<uint64_t, Slot> slots;
  absl::flat_hash_map<std::string, NodeVerdict> verdicts;
  for (const api::Task* t : tasks) {
    if (t->slot() == 0 || !LiveForService(*t)) continue;
    slots[t->slot()].live.push_back(t);
  }
  for (auto& [number, slot] : slots) {
    for (const api::Task* t : slot.live) {
      if (IsTerminal(*t) || t->node_id().empty()) continue;
      auto [it, added] = verdicts.try_emplace(t->node_id(), NodeVerdict::kUsable);
      if (added) {
        it->second = nodes_.Judge(t->node_id(), tx.Get<api::Node>(t->node_id()), now);
      }
      if (it->second == NodeVerdict::kUnusable) {
        plan->replace.emplace_back(t->id(), number);
        slot.replaced = true;
      }
    }
    if (slot.live.size() == 1 && !slot.replaced && !slot.live[0]->node_id().empty()) {
      slot.placed = slot.live[0];
      slot.running = slot.placed->status().state() == api::TASK_STATE_RUNNING;
    }
  }

  const uint64_t replicas = service.spec().replicated().replicas();
  const uint64_t runnable = slots.size();
  if (runnable < replicas) {
    uint64_t need = replicas - runnable;
    for (uint64_t s = 1; need > 0; ++s) {
      if (slots.contains(s)) continue;
      plan->create.push_back(s);
      --need;
    }
  } else if (runnable > replicas) {
    struct Candidate {
      uint64_t slot;
      const Slot* info;
      int copy = 0;  // this task is the copy-th of the service on its node
    };
    std::vector<Candidate> c;
    c.reserve(slots.size());
    for (const auto& [number, slot] : slots) c.push_back(Candidate{number, &slot});
    // Number the copies per node: running tasks first, then by slot.
    std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
      if (a.info->running != b.info->running) return a.info->running;
      return a.slot < b.slot;
    });
    absl::flat_hash_map<std::string, int> per_node;
    for (Candidate& x : c) {
      if (x.info->placed != nullptr) x.copy = ++per_node[x.info->placed->node_id()];
    }
    // Removal order: not on a node; highest copy number; not running; highest slot.
    std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
      const bool a_free = a.info->placed == nullptr, b_free = b.info->placed == nullptr;
      if (a_free != b_free) return a_free;
      if (a.copy != b.copy) return a.copy > b.copy;
      if (a.info->running != b.info->running) return !a.info->running;
      return a.slot > b.slot;
    });
    absl::flat_hash_map<uint64_t, bool> dropped;
    for (uint64_t i = 0; i < runnable - replicas; ++i) {
      dropped[c[i].slot] = true;
      for (const api::Task* t : c[i].info->live) plan->remove.push_back(t->id());
    }
    // A slot going away needs no replacement for its task on a lost node.
    plan->replace.erase(std::remove_if(plan->replace.begin(), plan->replace.end(),
                                       [&](const auto& r) { return dropped.contains(r.second); }),
                        plan->replace.end());
  }
  std::sort(plan->replace.begin(), plan->replace.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
}

absl::Status ReplicatedOrchestrator::ReconcileAttempt(const std::string& service_id) {
  Plan plan;
  std::string name;
  store_->View([&](const store::ReadTx& tx) {
    const api::Service* s = tx.Get<api::Service>(service_id);
    if (!IsReplicated(s)) return;
    name = s->spec().annotations().name();
    PlanService(tx, *s, &plan);
  });
  if (plan.replace.empty() && plan.create.empty() && plan.remove.empty()) {
    return absl::OkStatus();
  }

  Clock* const clk = clock();
  // Gets the service a new task is made from, as this transaction sees it: null if it is gone,
  // is being removed or is no longer replicated (then nothing is created).
  auto current = [&service_id](const store::ReadTx& tx) -> const api::Service* {
    const api::Service* s = tx.Get<api::Service>(service_id);
    return IsReplicated(s) && !s->pending_delete() ? s : nullptr;
  };
  std::vector<Op> ops;
  ops.reserve(plan.replace.size() + plan.create.size() + plan.remove.size());
  for (const auto& [task_id, slot] : plan.replace) {
    ops.push_back([&, task_id = task_id, slot = slot](store::WriteTx& tx) -> absl::Status {
      const api::Task* t = tx.Get<api::Task>(task_id);
      if (t == nullptr || !LiveForService(*t) || IsTerminal(*t)) return absl::OkStatus();
      const api::Service* s = current(tx);
      if (s == nullptr) return absl::OkStatus();
      api::Task old = *t;
      old.set_desired_state(api::TASK_STATE_SHUTDOWN);
      if (absl::Status st = tx.Update(std::move(old)); !st.ok()) return st;
      if (HasLiveTask(tx, service_id, slot, "")) return absl::OkStatus();
      return tx.Create(NewTask(*s, FindCluster(tx), slot, "", clk->Now()));
    });
  }
  for (uint64_t slot : plan.create) {
    ops.push_back([&, slot](store::WriteTx& tx) -> absl::Status {
      const api::Service* s = current(tx);
      if (s == nullptr || HasLiveTask(tx, service_id, slot, "")) return absl::OkStatus();
      return tx.Create(NewTask(*s, FindCluster(tx), slot, "", clk->Now()));
    });
  }
  for (const std::string& task_id : plan.remove) {
    ops.push_back([task_id](store::WriteTx& tx) {
      return RaiseDesiredState(tx, task_id, api::TASK_STATE_REMOVE);
    });
  }
  absl::Status s = RunBatch(store_, ops, stop_flag());
  if (s.ok()) {
    if (!plan.create.empty() || !plan.remove.empty() || !plan.replace.empty()) {
      spdlog::debug(
          "replicated orchestrator: service {} ({}): {} tasks created, {} removed, {} moved off "
          "lost nodes",
          name, service_id, plan.create.size(), plan.remove.size(), plan.replace.size());
    }
  }
  return s;
}

}  // namespace shoal::manager::orchestrator
