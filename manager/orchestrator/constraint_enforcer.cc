#include "manager/orchestrator/constraint_enforcer.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "scheduler/constraint.h"
#include "scheduler/filter.h"
#include "scheduler/node_info.h"
#include "spdlog/spdlog.h"

namespace shoal::manager::orchestrator {
namespace {

using Op = std::function<absl::Status(store::WriteTx&)>;
using google::protobuf::util::MessageDifferencer;

// TaskStatus.applied_by for the status messages the enforcer writes.
constexpr char kWriter[] = "constraint-enforcer";

// A task the enforcer may move: of a replicated service or replicated job (slot > 0) that
// exists and is not being deleted. Global services and jobs are their orchestrators'.
bool Movable(const api::Service* s, const api::Task& t) {
  if (s == nullptr || s->pending_delete() || t.slot() == 0) return false;
  switch (ModeOf(*s)) {
    case ServiceMode::kReplicated:
      return !IsJobTask(t);
    case ServiceMode::kReplicatedJob:
      return IsJobTask(t);
    default:
      return false;
  }
}

// Live, assigned to its node and not finished: it runs there, or is about to.
bool Occupying(const api::Task& t) { return IsLive(t) && !IsFinished(t); }

bool IsActiveNode(const api::Node& n) {
  return n.spec().availability() == api::NODE_AVAILABILITY_ACTIVE;
}

// Whether the node has told us what it has (a node that has not reported is not emptied).
bool ReportsResources(const api::Node& n) {
  if (!n.description().has_resources()) return false;
  const api::Resources& r = n.description().resources();
  return r.nano_cpus() > 0 || r.memory_bytes() > 0 || r.generic_size() > 0;
}

// The first named generic unit `t` holds that `node` no longer offers ("gpu=GPU-3"), or "".
std::string MissingNamedUnit(const api::Task& t, const api::Node& node) {
  for (const api::GenericResource& held : t.assigned_generic_resources()) {
    if (!held.has_named()) continue;
    bool offered = false;
    for (const api::GenericResource& g : node.description().resources().generic()) {
      if (g.has_named() && g.named().kind() == held.named().kind() &&
          g.named().value() == held.named().value()) {
        offered = true;
        break;
      }
    }
    if (!offered) return absl::StrCat(held.named().kind(), "=", held.named().value());
  }
  return "";
}

// The largest fraction of the node's CPU or memory the demand takes (infinite if the node has
// none of something it asks for).
double DominantShare(const scheduler::TaskDemand& d, const api::Resources& total) {
  auto share = [](int64_t want, int64_t have) -> double {
    if (want <= 0) return 0;
    if (have <= 0) return std::numeric_limits<double>::infinity();
    return static_cast<double>(want) / static_cast<double>(have);
  };
  return std::max(share(d.nano_cpus, total.nano_cpus()),
                  share(d.memory_bytes, total.memory_bytes()));
}

std::string Insufficient(scheduler::Refusal r, const scheduler::TaskDemand& d) {
  switch (r) {
    case scheduler::Refusal::kCpu:
      return "insufficient CPU";
    case scheduler::Refusal::kMemory:
      return "insufficient memory";
    default: {
      std::vector<std::string> kinds;
      for (const auto& g : d.generic) kinds.push_back(g.first);
      return absl::StrCat("insufficient generic resources (", absl::StrJoin(kinds, ", "), ")");
    }
  }
}

}  // namespace

struct ConstraintEnforcer::Eviction {
  std::string task_id;
  std::string task_name;
  std::string reason;
  // A constraint eviction: these must still fail on the node when it is written. A resource
  // eviction: the node's resources must still be those it was planned with.
  std::vector<scheduler::Constraint> constraints;
  bool resources = false;
};

ConstraintEnforcer::ConstraintEnforcer(store::MemoryStore* store, OrchestratorOptions options)
    : ReconcileLoop(store, options, "constraint enforcer", {api::OBJECT_KIND_NODE}) {}

ConstraintEnforcer::~ConstraintEnforcer() { Stop(); }

void ConstraintEnforcer::MarkAll(const store::ReadTx& tx) {
  for (const api::Node* n : tx.List<api::Node>()) dirty_nodes_.insert(n->id());
}

void ConstraintEnforcer::Observe(const store::StoreEvent& e) {
  if (e.kind() != api::OBJECT_KIND_NODE) return;
  const api::Node& n = e.object->node();
  if (e.action == api::StoreAction::REMOVE) {
    dirty_nodes_.erase(n.id());  // its tasks are the orchestrators' to move
    return;
  }
  if (e.action == api::StoreAction::UPDATE) {
    const api::Node& old = e.old_object->node();
    if (old.role() == n.role() && old.status().addr() == n.status().addr() &&
        MessageDifferencer::Equals(old.spec(), n.spec()) &&
        MessageDifferencer::Equals(old.description(), n.description())) {
      return;  // e.g. READY <-> DOWN: nothing a constraint or reservation looks at
    }
  }
  dirty_nodes_.insert(n.id());
}

absl::Status ConstraintEnforcer::Process() {
  std::vector<std::string> ids(dirty_nodes_.begin(), dirty_nodes_.end());
  std::sort(ids.begin(), ids.end());
  absl::Status first;
  for (const std::string& id : ids) {
    if (StopRequested()) return absl::CancelledError("the constraint enforcer is stopping");
    absl::Status s = RetryAborted([&] { return EnforceAttempt(id); });
    if (s.ok()) {
      dirty_nodes_.erase(id);
    } else if (first.ok()) {
      first = absl::Status(s.code(), absl::StrCat("node ", id, ": ", s.message()));
    }
  }
  return first;
}

absl::Status ConstraintEnforcer::Enforce(const std::string& node_id) {
  absl::MutexLock work(&work_mu_);
  return RetryAborted([&] { return EnforceAttempt(node_id); });
}

absl::Status ConstraintEnforcer::EnforceAttempt(const std::string& node_id) {
  std::vector<Eviction> evictions;
  api::Resources planned_resources;
  store_->View([&](const store::ReadTx& tx) {
    const api::Node* node = tx.Get<api::Node>(node_id);
    if (node == nullptr || !IsActiveNode(*node)) return;
    planned_resources = node->description().resources();

    absl::flat_hash_map<std::string, const api::Service*> services;
    absl::flat_hash_map<std::string, absl::StatusOr<std::vector<scheduler::Constraint>>> parsed;
    std::vector<const api::Task*> fixed;    // never moved here, but they take resources
    std::vector<const api::Task*> movable;  // satisfy the constraints; resources next
    for (const api::Task* t : tx.FindTasksByNode(node_id)) {
      if (!Occupying(*t)) continue;
      auto [sit, added] = services.try_emplace(t->service_id(), nullptr);
      if (added) sit->second = tx.Get<api::Service>(t->service_id());
      const api::Service* svc = sit->second;
      if (!Movable(svc, *t)) {
        fixed.push_back(t);
        continue;
      }
      const auto& exprs = t->spec().placement().constraints();
      if (!exprs.empty()) {
        std::string key = absl::StrJoin(exprs, "\n");
        auto pit = parsed.find(key);
        if (pit == parsed.end()) {
          pit = parsed.emplace(std::move(key), scheduler::ParseConstraints(exprs)).first;
        }
        if (!pit->second.ok()) {
          if (bad_constraints_reported_.insert(svc->id()).second) {
            spdlog::warn(
                "constraint enforcer: tasks of service {} ({}) left in place: {}; fix the "
                "service's constraints",
                svc->spec().annotations().name(), svc->id(),
                std::string(pit->second.status().message()));
          }
        } else {
          std::vector<std::string> failing;
          for (const scheduler::Constraint& c : *pit->second) {
            if (!c.Matches(*node)) failing.push_back(c.ToString());
          }
          if (!failing.empty()) {
            evictions.push_back(
                Eviction{t->id(), t->annotations().name(),
                         absl::StrCat("task no longer satisfies placement constraints (",
                                      absl::StrJoin(failing, ", "), ")"),
                         *pit->second, false});
            continue;
          }
        }
      }
      movable.push_back(t);
    }

    if (!ReportsResources(*node) || movable.empty()) return;
    scheduler::NodeInfo info(*node);
    for (const api::Task* t : fixed) info.AddTask(*t);
    struct Candidate {
      const api::Task* task;
      bool running;
      double share;
      absl::Time created;
    };
    std::vector<Candidate> candidates;
    candidates.reserve(movable.size());
    for (const api::Task* t : movable) {
      candidates.push_back(Candidate{
          t, t->status().state() == api::TASK_STATE_RUNNING,
          DominantShare(*scheduler::TaskDemand::FromTask(*t), planned_resources), CreatedAt(*t)});
    }
    // The order in which tasks keep their place: running first, smallest first, oldest first.
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      if (a.running != b.running) return a.running;
      if (a.share != b.share) return a.share < b.share;
      if (a.created != b.created) return a.created < b.created;
      return a.task->id() < b.task->id();
    });
    scheduler::ResourceFilter filter;
    for (const Candidate& c : candidates) {
      std::string why;
      if (filter.Enabled(*c.task)) {
        const scheduler::Refusal r = filter.Check(info);
        if (r != scheduler::Refusal::kNone) {
          why = Insufficient(r, *scheduler::TaskDemand::FromTask(*c.task));
        }
      }
      if (why.empty()) {
        const std::string unit = MissingNamedUnit(*c.task, *node);
        if (!unit.empty()) why = absl::StrCat("generic resource ", unit, " no longer offered");
      }
      if (!why.empty()) {
        evictions.push_back(
            Eviction{c.task->id(),
                     c.task->annotations().name(),
                     absl::StrCat("task no longer fits the node's resources (", why, ")"),
                     {},
                     true});
        continue;
      }
      info.AddTask(*c.task);
    }
  });
  if (evictions.empty()) return absl::OkStatus();

  Clock* const clk = clock();
  std::vector<const Eviction*> written;
  std::vector<Op> ops;
  ops.reserve(evictions.size());
  for (const Eviction& e : evictions) {
    ops.push_back([&, e = &e](store::WriteTx& tx) -> absl::Status {
      const api::Task* t = tx.Get<api::Task>(e->task_id);
      if (t == nullptr || t->node_id() != node_id || !Occupying(*t)) return absl::OkStatus();
      const api::Node* n = tx.Get<api::Node>(node_id);
      if (n == nullptr || !IsActiveNode(*n)) return absl::OkStatus();
      if (e->resources) {
        if (!MessageDifferencer::Equals(n->description().resources(), planned_resources)) {
          return absl::OkStatus();  // the next pass (this node changed again) decides afresh
        }
      } else if (scheduler::NodeMatches(e->constraints, *n)) {
        return absl::OkStatus();
      }
      api::Task updated = *t;
      updated.set_desired_state(api::TASK_STATE_SHUTDOWN);
      api::TaskStatus* status = updated.mutable_status();
      status->set_message(e->reason);
      status->set_applied_by(kWriter);
      ToProto(clk->Now(), status->mutable_applied_at());
      if (absl::Status s = tx.Update(std::move(updated)); !s.ok()) return s;
      written.push_back(e);
      return absl::OkStatus();
    });
  }
  absl::Status s = RunBatch(store_, ops, stop_flag());
  if (s.ok()) {
    shut_down_.fetch_add(written.size());
    for (const Eviction* e : written) {
      spdlog::info("constraint enforcer: task {} ({}) on node {} shut down: {}", e->task_name,
                   e->task_id, node_id, e->reason);
    }
  }
  return s;
}

}  // namespace shoal::manager::orchestrator
