#include "manager/scheduling/scheduling_loop.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "scheduler/node_set.h"
#include "scheduler/scheduler.h"
#include "spdlog/spdlog.h"

namespace shoal::manager {
namespace {

// Passes with at least this many tasks are logged with their timings.
constexpr size_t kLogPassFrom = 1000;

constexpr char kWriter[] = "scheduler";

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t s = absl::ToUnixSeconds(t);
  ts->set_seconds(s);
  ts->set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(s)) / absl::Nanoseconds(1)));
}

// A task waiting for the scheduler: PENDING and meant to run.
bool Schedulable(const api::Task& t) {
  return t.status().state() == api::TASK_STATE_PENDING &&
         t.desired_state() <= api::TASK_STATE_COMPLETE;
}

// The node whose resources `t` holds: from ASSIGNED until it finishes. Empty if none.
const std::string& HeldNode(const api::Task& t) {
  static const std::string* const kNone = new std::string();
  const api::TaskState s = t.status().state();
  if (s < api::TASK_STATE_ASSIGNED || s > api::TASK_STATE_RUNNING) return *kNone;
  return t.node_id();
}

}  // namespace

struct SchedulingLoop::State {
  scheduler::NodeSet nodes;

  // What the loop knows of a task that holds resources on a node or waits to be placed.
  struct Tracked {
    std::string node;      // recorded on this node in `nodes`; empty while PENDING
    uint64_t version = 0;  // Meta.version of the state this reflects
  };
  absl::flat_hash_map<std::string, Tracked> tasks;
  absl::flat_hash_map<std::string, uint64_t> node_versions;

  // PENDING tasks not tried since they became PENDING.
  absl::btree_set<std::string> fresh;
  // PENDING tasks the last try could not place; tried again when `changed`.
  absl::btree_set<std::string> unplaced;
  // Something may have made room since the unplaced tasks were tried.
  bool changed = false;

  // Brings what is known of `t` up to date with `t` as of `version` (removed: `t` is gone).
  // Events older than what is known are ignored: a view read after them already showed more.
  void Track(const api::Task& t, bool removed) {
    const uint64_t version = t.meta().version().index();
    auto it = tasks.find(t.id());
    if (it != tasks.end() &&
        (removed ? version < it->second.version : version <= it->second.version)) {
      return;
    }
    const std::string held = removed ? std::string() : HeldNode(t);
    const bool pending = !removed && Schedulable(t);
    const std::string old = it == tasks.end() ? std::string() : it->second.node;
    if (!held.empty()) {
      if (old != held) {
        if (!old.empty() && nodes.RemoveTask(old, t.id())) changed = true;
        nodes.AddTask(t);
      } else if (nodes.AddTask(t)) {
        changed = true;  // It stopped (or started) counting towards balance and max-replicas.
      }
    } else if (!old.empty() && nodes.RemoveTask(old, t.id())) {
      changed = true;  // Finished, or gone: its resources are free.
    }
    if (pending) {
      if (!unplaced.contains(t.id())) fresh.insert(t.id());
    } else {
      fresh.erase(t.id());
      unplaced.erase(t.id());
    }
    if (held.empty() && !pending) {
      if (it != tasks.end()) tasks.erase(it);
      return;
    }
    Tracked& tr = it != tasks.end() ? it->second : tasks[t.id()];
    tr.node = held;
    tr.version = version;
  }
};

SchedulingLoop::SchedulingLoop(store::MemoryStore* store, SchedulingOptions options)
    : BatchingLoop(store, options, "scheduler", {api::OBJECT_KIND_NODE, api::OBJECT_KIND_TASK}) {}

SchedulingLoop::~SchedulingLoop() { Stop(); }

SchedulingPassStats SchedulingLoop::last_pass() const {
  absl::MutexLock lock(&stats_mu_);
  return last_pass_;
}

void SchedulingLoop::Rebuild(const store::ReadTx& tx) {
  state_ = std::make_unique<State>();
  State& st = *state_;
  for (const api::Node* n : tx.List<api::Node>()) {
    st.nodes.AddOrUpdateNode(*n);
    st.node_versions[n->id()] = n->meta().version().index();
  }
  for (const api::Task* t : tx.List<api::Task>()) st.Track(*t, /*removed=*/false);
  st.changed = false;
}

void SchedulingLoop::Observe(const store::StoreChange& change) {
  State& st = *state_;
  for (const store::StoreEvent& e : change.events) {
    const bool removed = e.action == api::StoreAction::REMOVE;
    if (e.kind() == api::OBJECT_KIND_TASK) {
      st.Track(e.object->task(), removed);
      continue;
    }
    if (e.kind() != api::OBJECT_KIND_NODE) continue;
    const api::Node& n = e.object->node();
    const uint64_t version = n.meta().version().index();
    auto it = st.node_versions.find(n.id());
    if (it != st.node_versions.end() && (removed ? version < it->second : version <= it->second)) {
      continue;  // A view read after this change already showed it.
    }
    if (removed) {
      st.nodes.RemoveNode(n.id());
      st.node_versions.erase(n.id());
      continue;
    }
    const bool known = st.nodes.Find(n.id()) != nullptr;
    st.nodes.AddOrUpdateNode(n);
    st.node_versions[n.id()] = version;
    st.changed = true;
    if (!known) {
      // A node (re)appearing: record the tasks the store already has on it. (A new node has
      // none; one deleted and created again may.)
      store_->View([&](const store::ReadTx& tx) {
        for (const api::Task* t : tx.FindTasksByNode(n.id())) {
          if (HeldNode(*t) != n.id()) continue;
          st.nodes.AddTask(*t);
          auto [tr, added] = st.tasks.try_emplace(t->id());
          tr->second.node = n.id();
          tr->second.version = std::max(tr->second.version, t->meta().version().index());
        }
      });
    }
  }
}

bool SchedulingLoop::HasWork() const {
  return !state_->fresh.empty() || (state_->changed && !state_->unplaced.empty());
}

absl::Status SchedulingLoop::Pass(bool resync) {
  if (state_ == nullptr) {
    store_->View([&](const store::ReadTx& tx) ABSL_NO_THREAD_SAFETY_ANALYSIS { Rebuild(tx); });
  }
  State& st = *state_;
  if (resync) {
    store_->View([&](const store::ReadTx& tx) {
      for (api::TaskState desired : {api::TASK_STATE_RUNNING, api::TASK_STATE_COMPLETE}) {
        for (const api::Task* t : tx.FindTasksByDesiredState(desired)) {
          if (Schedulable(*t) && !st.unplaced.contains(t->id())) st.fresh.insert(t->id());
        }
      }
    });
  }
  std::vector<std::string> ids(st.fresh.begin(), st.fresh.end());
  st.fresh.clear();
  if (resync || st.changed) {
    ids.insert(ids.end(), st.unplaced.begin(), st.unplaced.end());
    st.unplaced.clear();
    st.changed = false;
    std::sort(ids.begin(), ids.end());
  }
  if (ids.empty()) return absl::OkStatus();

  SchedulingPassStats stats;
  const absl::Time started = absl::Now();
  struct Note {
    std::string task_id;
    std::string reason;
  };
  scheduler::Decisions decisions;
  std::vector<Note> notes;
  store_->View([&](const store::ReadTx& tx) {
    std::vector<const api::Task*> tasks;
    tasks.reserve(ids.size());
    absl::flat_hash_map<absl::string_view, const api::Task*> by_id;
    by_id.reserve(ids.size());
    for (const std::string& id : ids) {
      const api::Task* t = tx.Get<api::Task>(id);
      // No longer waiting: the change that says so updates what is known.
      if (t == nullptr || !Schedulable(*t)) continue;
      tasks.push_back(t);
      by_id.emplace(t->id(), t);
    }
    stats.tasks = tasks.size();
    decisions = scheduler::Schedule(&st.nodes, absl::MakeConstSpan(tasks));
    for (const scheduler::Assignment& a : decisions.assigned) {
      State::Tracked& tr = st.tasks[a.task_id];
      tr.node = a.node_id;
      tr.version = std::max(tr.version, by_id[a.task_id]->meta().version().index());
    }
    for (scheduler::Unplaced& u : decisions.unplaced) {
      const api::Task* t = by_id[u.task_id];
      State::Tracked& tr = st.tasks[u.task_id];
      tr.version = std::max(tr.version, t->meta().version().index());
      st.unplaced.insert(u.task_id);
      if (t->status().message() != u.reason || t->status().err() != u.reason) {
        notes.push_back(Note{std::move(u.task_id), std::move(u.reason)});
      }
    }
  });
  stats.assigned = decisions.assigned.size();
  stats.unplaced = decisions.unplaced.size();
  stats.notes = notes.size();
  const absl::Time scheduled = absl::Now();
  stats.read_and_schedule = scheduled - started;

  google::protobuf::Timestamp stamp;
  SetTime(clock()->Now(), &stamp);
  auto set_status = [&](api::TaskStatus* s, const std::string& message, const std::string& err) {
    s->set_message(message);
    s->set_err(err);
    *s->mutable_timestamp() = stamp;
    s->set_applied_by(kWriter);
    *s->mutable_applied_at() = stamp;
  };
  // Assignments whose write is known not to have been recorded.
  std::vector<bool> dropped(decisions.assigned.size(), false);
  absl::Status status = store_->Batch([&](store::Batch& batch) {
    for (size_t i = 0; i < decisions.assigned.size(); ++i) {
      const scheduler::Assignment& a = decisions.assigned[i];
      absl::Status s = batch.Update([&](store::WriteTx& tx) -> absl::Status {
        const api::Task* t = tx.Get<api::Task>(a.task_id);
        if (t == nullptr || !Schedulable(*t) ||
            (!t->node_id().empty() && t->node_id() != a.node_id)) {
          return absl::FailedPreconditionError("the task changed since it was read");
        }
        api::Task updated = *t;
        updated.set_node_id(a.node_id);
        updated.mutable_assigned_generic_resources()->Assign(a.generic_resources.begin(),
                                                             a.generic_resources.end());
        updated.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
        set_status(updated.mutable_status(), kAssignedMessage, "");
        return tx.Update(std::move(updated));
      });
      if (!s.ok()) dropped[i] = true;
    }
    for (const Note& n : notes) {
      batch
          .Update([&](store::WriteTx& tx) -> absl::Status {
            const api::Task* t = tx.Get<api::Task>(n.task_id);
            if (t == nullptr || !Schedulable(*t)) return absl::OkStatus();
            if (t->status().message() == n.reason && t->status().err() == n.reason) {
              return absl::OkStatus();
            }
            api::Task updated = *t;
            set_status(updated.mutable_status(), n.reason, n.reason);
            return tx.Update(std::move(updated));
          })
          .IgnoreError();  // A message that did not get written is written by a later try.
    }
    return absl::OkStatus();
  });
  if (!status.ok()) {
    // Some entries did not commit: find out which assignments did.
    store_->View([&](const store::ReadTx& tx) {
      for (size_t i = 0; i < decisions.assigned.size(); ++i) {
        if (dropped[i]) continue;
        const scheduler::Assignment& a = decisions.assigned[i];
        const api::Task* t = tx.Get<api::Task>(a.task_id);
        dropped[i] = t == nullptr || t->node_id() != a.node_id ||
                     t->status().state() < api::TASK_STATE_ASSIGNED;
      }
    });
  }
  // Take back what did not commit; those still PENDING are tried again.
  for (size_t i = 0; i < decisions.assigned.size(); ++i) {
    if (!dropped[i]) continue;
    const scheduler::Assignment& a = decisions.assigned[i];
    st.nodes.RemoveTask(a.node_id, a.task_id);
    auto it = st.tasks.find(a.task_id);
    if (it != st.tasks.end() && it->second.node == a.node_id) it->second.node.clear();
    st.fresh.insert(a.task_id);
    ++stats.failed;
  }
  stats.assigned -= stats.failed;
  stats.write = absl::Now() - scheduled;
  if (stats.tasks >= kLogPassFrom || stats.failed > 0) {
    spdlog::info(
        "scheduler: {} pending tasks: {} assigned, {} fit nowhere ({} messages written), {} not "
        "written; read and schedule {}, write {}",
        stats.tasks, stats.assigned, stats.unplaced, stats.notes, stats.failed,
        absl::FormatDuration(stats.read_and_schedule), absl::FormatDuration(stats.write));
  }
  {
    absl::MutexLock lock(&stats_mu_);
    last_pass_ = stats;
  }
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("scheduler: writing assignments: ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace shoal::manager
