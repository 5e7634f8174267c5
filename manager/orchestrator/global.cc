#include "manager/orchestrator/global.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "manager/cluster_object.h"
#include "scheduler/constraint.h"
#include "spdlog/spdlog.h"

namespace shoal::manager::orchestrator {
namespace {

using Op = std::function<absl::Status(store::WriteTx&)>;

bool IsGlobal(const api::Service* s) { return s != nullptr && ModeOf(*s) == ServiceMode::kGlobal; }

bool LiveForService(const api::Task& t) { return t.desired_state() <= api::TASK_STATE_RUNNING; }

}  // namespace

struct GlobalOrchestrator::Plan {
  std::vector<std::string> create;    // node IDs
  std::vector<std::string> shutdown;  // task IDs
  std::vector<std::string> remove;    // task IDs (service pending deletion)
};

GlobalOrchestrator::GlobalOrchestrator(store::MemoryStore* store, OrchestratorOptions options)
    : ReconcileLoop(store, options, "global orchestrator",
                    {api::OBJECT_KIND_SERVICE, api::OBJECT_KIND_TASK, api::OBJECT_KIND_NODE}),
      nodes_(options.node_down_grace) {}

GlobalOrchestrator::~GlobalOrchestrator() { Stop(); }

void GlobalOrchestrator::MarkAll(const store::ReadTx& tx) {
  const absl::Time now = clock()->Now();
  for (const api::Node* n : tx.List<api::Node>()) nodes_.Observe(n->id(), n, now);
  for (const api::Service* s : tx.List<api::Service>()) {
    if (IsGlobal(s)) dirty_services_.insert(s->id());
  }
}

void GlobalOrchestrator::Observe(const store::StoreEvent& e) {
  switch (e.kind()) {
    case api::OBJECT_KIND_SERVICE:
      if (e.action != api::StoreAction::REMOVE && IsGlobal(&e.object->service())) {
        dirty_services_.insert(e.object->service().id());
      }
      break;
    case api::OBJECT_KIND_TASK: {
      const api::Task& t = e.object->task();
      if (t.slot() != 0 || IsJobTask(t)) break;
      if (e.action == api::StoreAction::UPDATE) {
        const api::Task& old = e.old_object->task();
        if (old.desired_state() == t.desired_state() && old.node_id() == t.node_id()) break;
      }
      // Cheap enough: one service's pass reads its tasks and the nodes once.
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

absl::Time GlobalOrchestrator::NextWakeup() { return nodes_.NextExpiry(); }

absl::Status GlobalOrchestrator::Process() {
  for (std::string& id : nodes_.TakeExpired(clock()->Now())) dirty_nodes_.insert(std::move(id));
  absl::Status first;
  auto note = [&first](const std::string& id, const absl::Status& s) {
    if (!s.ok() && first.ok()) {
      first = absl::Status(s.code(), absl::StrCat("service ", id, ": ", s.message()));
    }
  };
  std::vector<std::string> services(dirty_services_.begin(), dirty_services_.end());
  std::sort(services.begin(), services.end());
  for (const std::string& id : services) {
    if (StopRequested()) return absl::CancelledError("the orchestrator is stopping");
    absl::Status s = RetryAborted([&] { return ReconcileAttempt(id, {}); });
    if (s.ok()) dirty_services_.erase(id);
    note(id, s);
  }
  if (!dirty_nodes_.empty()) {
    std::vector<std::string> node_ids(dirty_nodes_.begin(), dirty_nodes_.end());
    std::sort(node_ids.begin(), node_ids.end());
    std::vector<std::string> global;
    store_->View([&](const store::ReadTx& tx) {
      for (const api::Service* s : tx.List<api::Service>()) {
        if (IsGlobal(s) && !dirty_services_.contains(s->id())) global.push_back(s->id());
      }
    });
    for (const std::string& id : global) {
      if (StopRequested()) return absl::CancelledError("the orchestrator is stopping");
      absl::Status s = RetryAborted([&] { return ReconcileAttempt(id, node_ids); });
      if (!s.ok()) dirty_services_.insert(id);  // the next pass covers every node of it
      note(id, s);
    }
    dirty_nodes_.clear();
  }
  return first;
}

absl::Status GlobalOrchestrator::Reconcile(const std::string& service_id) {
  absl::MutexLock work(&work_mu_);
  return RetryAborted([&] { return ReconcileAttempt(service_id, {}); });
}

absl::Status GlobalOrchestrator::ReconcileAttempt(const std::string& service_id,
                                                  const std::vector<std::string>& node_ids) {
  Plan plan;
  const absl::Time now = clock()->Now();
  store_->View([&](const store::ReadTx& tx) {
    const api::Service* svc = tx.Get<api::Service>(service_id);
    if (!IsGlobal(svc)) return;
    if (svc->pending_delete()) {
      plan.remove = TasksToRemove(tx, service_id);
      return;
    }
    absl::StatusOr<std::vector<scheduler::Constraint>> constraints =
        scheduler::ParseConstraints(svc->spec().task_template().placement().constraints());
    if (!constraints.ok()) {
      if (bad_constraints_reported_.insert(service_id).second) {
        spdlog::warn("global orchestrator: service {} ({}) left alone: {}; fix its constraints",
                     svc->spec().annotations().name(), service_id,
                     std::string(constraints.status().message()));
      }
      return;
    }
    bad_constraints_reported_.erase(service_id);

    auto decide = [&](const std::string& node_id, const api::Node* node,
                      const std::vector<const api::Task*>& live) {
      const NodeVerdict verdict = nodes_.Judge(node_id, node, now);
      const bool fits = node != nullptr && scheduler::NodeMatches(*constraints, *node);
      if (verdict == NodeVerdict::kUnusable || !fits) {
        for (const api::Task* t : live) plan.shutdown.push_back(t->id());
      } else if (verdict == NodeVerdict::kUsable && live.empty()) {
        plan.create.push_back(node_id);
      }
    };

    if (node_ids.empty()) {
      absl::flat_hash_map<std::string, std::vector<const api::Task*>> by_node;
      for (const api::Task* t : tx.FindTasksByService(service_id)) {
        if (t->slot() == 0 && !t->node_id().empty() && LiveForService(*t)) {
          by_node[t->node_id()].push_back(t);
        }
      }
      static const std::vector<const api::Task*> kNone;
      for (const api::Node* n : tx.List<api::Node>()) {
        auto it = by_node.find(n->id());
        decide(n->id(), n, it == by_node.end() ? kNone : it->second);
        if (it != by_node.end()) by_node.erase(it);
      }
      for (const auto& [node_id, live] : by_node) decide(node_id, nullptr, live);  // gone
    } else {
      for (const std::string& node_id : node_ids) {
        std::vector<const api::Task*> live;
        for (const api::Task* t : tx.FindTasksByServiceAndNode(service_id, node_id)) {
          if (LiveForService(*t)) live.push_back(t);
        }
        decide(node_id, tx.Get<api::Node>(node_id), live);
      }
    }
  });
  if (plan.create.empty() && plan.shutdown.empty() && plan.remove.empty()) {
    return absl::OkStatus();
  }

  Clock* const clk = clock();
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
  for (const std::string& node_id : plan.create) {
    ops.push_back([&, node_id](store::WriteTx& tx) -> absl::Status {
      const api::Service* s = tx.Get<api::Service>(service_id);
      if (!IsGlobal(s) || s->pending_delete() || HasLiveTask(tx, service_id, 0, node_id)) {
        return absl::OkStatus();
      }
      return tx.Create(NewTask(*s, FindCluster(tx), 0, node_id, clk->Now()));
    });
  }
  return RunBatch(store_, ops, stop_flag());
}

}  // namespace shoal::manager::orchestrator
