#include "manager/orchestrator/task_reaper.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "manager/cluster_object.h"
#include "spdlog/spdlog.h"

namespace shoal::manager::orchestrator {
namespace {

using Op = std::function<absl::Status(store::WriteTx&)>;

int64_t RetentionLimit(const store::ReadTx& tx) {
  const api::Cluster* c = FindCluster(tx);
  if (c == nullptr || !c->spec().has_orchestration()) return kDefaultTaskHistoryRetention;
  return c->spec().orchestration().task_history_retention_limit();
}

bool NodeGone(const store::ReadTx& tx, const api::Task& t) {
  return !t.node_id().empty() && tx.Get<api::Node>(t.node_id()) == nullptr;
}

// A history task: shut down (not to be removed) and finished.
bool IsHistory(const store::ReadTx& tx, const api::Task& t) {
  return t.desired_state() > api::TASK_STATE_COMPLETE &&
         t.desired_state() < api::TASK_STATE_REMOVE && (IsFinished(t) || NodeGone(tx, t));
}

enum class Fate { kKeep, kDelete, kMarkRemove };

// What happens to `t` regardless of the history limit.
Fate FateOf(const store::ReadTx& tx, const api::Task& t) {
  const bool gone = NodeGone(tx, t);
  const bool done = IsFinished(t) || gone;
  const api::Service* svc = tx.Get<api::Service>(t.service_id());
  if (svc == nullptr) {
    if (done) return Fate::kDelete;
    return t.desired_state() < api::TASK_STATE_REMOVE ? Fate::kMarkRemove : Fate::kKeep;
  }
  if (done && (t.desired_state() == api::TASK_STATE_REMOVE || svc->pending_delete())) {
    return Fate::kDelete;
  }
  if (gone && t.desired_state() > api::TASK_STATE_COMPLETE) return Fate::kDelete;
  return Fate::kKeep;
}

}  // namespace

TaskReaper::TaskReaper(store::MemoryStore* store, OrchestratorOptions options)
    : ReconcileLoop(store, options, "task reaper",
                    {api::OBJECT_KIND_TASK, api::OBJECT_KIND_SERVICE, api::OBJECT_KIND_NODE,
                     api::OBJECT_KIND_CLUSTER}) {}

TaskReaper::~TaskReaper() { Stop(); }

TaskReaper::SlotId TaskReaper::SlotOf(const api::Task& t) {
  if (t.slot() > 0) return SlotId(t.service_id(), t.slot(), "");
  return SlotId(t.service_id(), 0, t.node_id());
}

void TaskReaper::MarkAll(const store::ReadTx&) { full_ = true; }

void TaskReaper::Observe(const store::StoreEvent& e) {
  switch (e.kind()) {
    case api::OBJECT_KIND_TASK: {
      const api::Task& t = e.object->task();
      if (e.action == api::StoreAction::REMOVE) {
        dirty_services_.insert(t.service_id());
      } else if (t.desired_state() > api::TASK_STATE_COMPLETE) {
        dirty_tasks_.insert(t.id());
        dirty_slots_.insert(SlotOf(t));
      }
      break;
    }
    case api::OBJECT_KIND_SERVICE:
      if (e.action == api::StoreAction::REMOVE || e.object->service().pending_delete()) {
        dirty_services_.insert(e.object->service().id());
      }
      break;
    case api::OBJECT_KIND_NODE:
      if (e.action == api::StoreAction::REMOVE) dirty_nodes_.insert(e.object->node().id());
      break;
    case api::OBJECT_KIND_CLUSTER:
      if (e.action != api::StoreAction::UPDATE ||
          e.old_object->cluster().spec().orchestration().task_history_retention_limit() !=
              e.object->cluster().spec().orchestration().task_history_retention_limit()) {
        full_ = true;
      }
      break;
    default:
      break;
  }
}

absl::Status TaskReaper::Process() {
  return RetryAborted([this] { return ProcessAttempt(); });
}

absl::Status TaskReaper::ProcessAttempt() {
  if (!full_ && dirty_slots_.empty() && dirty_tasks_.empty() && dirty_services_.empty() &&
      dirty_nodes_.empty()) {
    return absl::OkStatus();
  }
  std::vector<std::string> deletes;
  std::vector<std::string> mark_remove;
  std::vector<std::string> services;
  int64_t limit = kDefaultTaskHistoryRetention;
  store_->View([&](const store::ReadTx& tx) {
    limit = RetentionLimit(tx);
    absl::flat_hash_set<std::string> decided;
    auto consider = [&](const api::Task& t) {
      if (!decided.insert(t.id()).second) return;
      switch (FateOf(tx, t)) {
        case Fate::kDelete:
          deletes.push_back(t.id());
          break;
        case Fate::kMarkRemove:
          mark_remove.push_back(t.id());
          break;
        case Fate::kKeep:
          break;
      }
    };
    // History beyond the limit, oldest first, among tasks not deleted for another reason.
    auto trim = [&](const std::vector<const api::Task*>& slot_tasks) {
      if (limit < 0) return;
      std::vector<std::pair<absl::Time, const api::Task*>> history;
      for (const api::Task* t : slot_tasks) {
        if (IsHistory(tx, *t) && FateOf(tx, *t) == Fate::kKeep) {
          history.emplace_back(CreatedAt(*t), t);
        }
      }
      if (history.size() <= static_cast<size_t>(limit)) return;
      std::sort(history.begin(), history.end(), [](const auto& a, const auto& b) {
        if (a.first != b.first) return a.first < b.first;
        return a.second->id() < b.second->id();
      });
      for (size_t i = 0; i + limit < history.size(); ++i) {
        deletes.push_back(history[i].second->id());
        decided.insert(history[i].second->id());
      }
    };

    if (full_) {
      absl::flat_hash_map<SlotId, std::vector<const api::Task*>> slots;
      for (const api::Task* t : tx.List<api::Task>()) {
        consider(*t);
        if (IsHistory(tx, *t)) slots[SlotOf(*t)].push_back(t);
      }
      for (const auto& [id, slot_tasks] : slots) trim(slot_tasks);
      for (const api::Service* s : tx.List<api::Service>()) {
        if (s->pending_delete()) services.push_back(s->id());
      }
      return;
    }
    for (const std::string& id : dirty_tasks_) {
      if (const api::Task* t = tx.Get<api::Task>(id)) consider(*t);
    }
    for (const std::string& node_id : dirty_nodes_) {
      for (const api::Task* t : tx.FindTasksByNode(node_id)) consider(*t);
    }
    for (const std::string& service_id : dirty_services_) {
      const api::Service* s = tx.Get<api::Service>(service_id);
      if (s != nullptr && !s->pending_delete()) continue;
      for (const api::Task* t : tx.FindTasksByService(service_id)) consider(*t);
      if (s != nullptr) services.push_back(service_id);
    }
    for (const SlotId& slot : dirty_slots_) {
      const auto& [service_id, number, node_id] = slot;
      if (number > 0) {
        trim(tx.FindTasksBySlot(service_id, number));
      } else if (!node_id.empty()) {
        trim(tx.FindTasksByServiceAndNode(service_id, node_id));
      } else {
        std::vector<const api::Task*> unplaced;
        for (const api::Task* t : tx.FindTasksByService(service_id)) {
          if (t->slot() == 0 && t->node_id().empty()) unplaced.push_back(t);
        }
        trim(unplaced);
      }
    }
  });

  std::vector<Op> ops;
  ops.reserve(deletes.size() + mark_remove.size() + services.size());
  for (const std::string& id : deletes) {
    ops.push_back([id](store::WriteTx& tx) -> absl::Status {
      const api::Task* t = tx.Get<api::Task>(id);
      // Still deletable as this transaction sees it (history rank aside)?
      if (t == nullptr || (FateOf(tx, *t) != Fate::kDelete && !IsHistory(tx, *t))) {
        return absl::OkStatus();
      }
      return tx.Delete<api::Task>(id);
    });
  }
  for (const std::string& id : mark_remove) {
    ops.push_back([id](store::WriteTx& tx) -> absl::Status {
      const api::Task* t = tx.Get<api::Task>(id);
      if (t == nullptr || tx.Get<api::Service>(t->service_id()) != nullptr) {
        return absl::OkStatus();
      }
      return RaiseDesiredState(tx, id, api::TASK_STATE_REMOVE);
    });
  }
  for (const std::string& id : services) {
    ops.push_back([id](store::WriteTx& tx) -> absl::Status {
      const api::Service* s = tx.Get<api::Service>(id);
      if (s == nullptr || !s->pending_delete() || !tx.FindTasksByService(id).empty()) {
        return absl::OkStatus();
      }
      spdlog::info("task reaper: deleting service {} ({}): its removal is complete",
                   s->spec().annotations().name(), id);
      return tx.Delete<api::Service>(id);
    });
  }
  absl::Status s = RunBatch(store_, ops, stop_flag());
  if (!s.ok()) {
    full_ = true;  // start from a fresh full read
    return s;
  }
  full_ = false;
  dirty_slots_.clear();
  dirty_tasks_.clear();
  dirty_services_.clear();
  dirty_nodes_.clear();
  return absl::OkStatus();
}

}  // namespace shoal::manager::orchestrator
