#include "manager/rolemanager/role_manager.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "manager/rolemanager/quorum.h"
#include "spdlog/spdlog.h"

namespace shoal::manager {
namespace {

// With an injected clock the loop re-reads it at least this often (real time).
constexpr absl::Duration kInjectedClockPoll = absl::Milliseconds(20);

bool NeedsRoleChange(const api::Node& n) { return n.spec().desired_role() != n.role(); }

std::string NodeName(const api::Node& node) {
  const std::string& host = node.description().hostname();
  if (host.empty() || host == node.id()) return node.id();
  return absl::StrCat(host, " (", node.id(), ")");
}

}  // namespace

RoleManager::RoleManager(store::MemoryStore* store, RaftControl* raft, RoleManagerOptions options)
    : store_(store),
      raft_(raft),
      options_(options),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock()) {}

RoleManager::~RoleManager() { Stop(); }

void RoleManager::Start() {
  if (thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void RoleManager::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watcher_ != nullptr) watcher_->Close();
  }
  if (thread_.joinable()) thread_.join();
}

bool RoleManager::Running() const {
  absl::MutexLock lock(&mu_);
  return !stopping_;
}

void RoleManager::Run() {
  while (true) {
    // A fresh view and watch: the nodes waiting for a role change, then every later node change.
    // Also where the loop starts over after its watcher fell behind or the store was restored.
    std::set<std::string> pending;
    std::unique_ptr<store::Watcher> watcher = store_->ViewAndWatch(
        [&](const store::ReadTx& tx) {
          for (const api::Node* n : tx.List<api::Node>()) {
            if (NeedsRoleChange(*n)) pending.insert(n->id());
          }
        },
        store::WatchFilter::Kind(api::OBJECT_KIND_NODE));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      watcher_ = watcher.get();
    }
    // The next retry is due `retry` after a round starts (set first, so that whoever sees the
    // round completed and moves the clock on also moves past this deadline).
    absl::Time next_retry = clock_->Now() + options_.retry;
    ReconcileAll(pending);

    absl::Status closed;
    while (closed.ok()) {
      absl::Duration wait = std::max(next_retry - clock_->Now(), absl::ZeroDuration());
      if (clock_ != &RealClock()) wait = std::min(wait, kInjectedClockPoll);
      absl::StatusOr<store::StoreChange> change = watcher->Next(absl::Now() + wait);
      if (change.ok()) {
        std::set<std::string> touched;
        for (const store::StoreEvent& e : change->events) {
          const api::Node& n = e.object->node();
          if (e.action != api::StoreAction::REMOVE && NeedsRoleChange(n)) {
            pending.insert(n.id());
            touched.insert(n.id());
          } else {
            pending.erase(n.id());
            reported_.erase(n.id());
          }
        }
        if (!touched.empty()) ReconcileAll(touched);
      } else if (absl::IsDeadlineExceeded(change.status())) {
        if (clock_->Now() >= next_retry) {
          next_retry = clock_->Now() + options_.retry;
          ReconcileAll(pending);
        }
      } else {
        closed = change.status();
      }
    }
    {
      absl::MutexLock lock(&mu_);
      watcher_ = nullptr;
      if (stopping_) return;
    }
    spdlog::info("role manager: node watch closed ({}); starting over from the store",
                 std::string(closed.message()));
  }
}

void RoleManager::ReconcileAll(const std::set<std::string>& ids) {
  for (const std::string& id : ids) {
    if (!Running()) return;
    Reconcile(id);
  }
  passes_.fetch_add(1);
}

void RoleManager::Reconcile(const std::string& node_id) {
  // Leader-only: a manager that lost leadership leaves the work to the new leader's loop.
  if (!raft_->IsLeader()) return;
  api::Node node;
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Node* n = tx.Get<api::Node>(node_id)) node = *n;
  });
  if (node.id().empty() || !NeedsRoleChange(node)) return;
  if (node.spec().desired_role() == api::NODE_ROLE_MANAGER) {
    Promote(node_id);
  } else {
    Demote(node_id, NodeName(node));
  }
}

void RoleManager::Promote(const std::string& node_id) {
  std::string name;
  const absl::Status s = store_->Update([&](store::WriteTx& tx) -> absl::Status {
    const api::Node* n = tx.Get<api::Node>(node_id);
    if (n == nullptr || n->spec().desired_role() != api::NODE_ROLE_MANAGER ||
        n->role() != api::NODE_ROLE_WORKER) {
      return absl::OkStatus();  // changed meanwhile: the watch brings the new state
    }
    name = NodeName(*n);
    api::Node updated = *n;
    updated.set_role(api::NODE_ROLE_MANAGER);
    updated.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::RENEW);
    updated.mutable_certificate()->mutable_status()->clear_err();
    return tx.Update(std::move(updated));
  });
  if (!s.ok()) {
    Report(node_id,
           absl::StrCat("cannot promote node ", node_id, " yet (", s.message(), "); retrying"));
    return;
  }
  reported_.erase(node_id);
  if (!name.empty()) {
    spdlog::info(
        "role manager: promoted node {} to manager; it will renew its certificate and "
        "join Raft",
        name);
  }
}

void RoleManager::Demote(const std::string& node_id, const std::string& name) {
  std::vector<ManagerMember> members = raft_->Members();
  auto member = std::find_if(members.begin(), members.end(),
                             [&](const ManagerMember& m) { return m.node_id == node_id; });
  if (member != members.end()) {
    const uint64_t raft_id = member->raft_id;
    if (absl::Status s = CheckDemotionKeepsQuorum(members, raft_id, name); !s.ok()) {
      Report(node_id, absl::StrCat("waiting to demote node ", name, ": ", s.message()));
      return;
    }
    spdlog::info(
        "role manager: demoting node {}: removing Raft member {:x}{}", name, raft_id,
        raft_id == raft_->local_raft_id() ? " (this manager; leadership moves first)" : "");
    if (absl::Status s = raft_->RemoveMember(raft_id, absl::Now() + options_.removal_timeout);
        !s.ok()) {
      Report(node_id, absl::StrCat("cannot remove node ", name, " from Raft yet (", s.message(),
                                   "); retrying"));
      return;
    }
    members = raft_->Members();
    if (std::any_of(members.begin(), members.end(),
                    [&](const ManagerMember& m) { return m.node_id == node_id; })) {
      return;  // not applied here yet; the retry finishes the job
    }
  }
  bool changed = false;
  const absl::Status s = store_->Update([&](store::WriteTx& tx) -> absl::Status {
    const api::Node* n = tx.Get<api::Node>(node_id);
    if (n == nullptr || n->spec().desired_role() != api::NODE_ROLE_WORKER ||
        n->role() != api::NODE_ROLE_MANAGER) {
      return absl::OkStatus();
    }
    api::Node updated = *n;
    updated.set_role(api::NODE_ROLE_WORKER);
    updated.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::RENEW);
    updated.mutable_certificate()->mutable_status()->clear_err();
    changed = true;
    return tx.Update(std::move(updated));
  });
  if (!s.ok()) {
    Report(node_id, absl::StrCat("cannot record the demotion of node ", name, " yet (", s.message(),
                                 "); retrying"));
    return;
  }
  reported_.erase(node_id);
  if (changed) {
    spdlog::info("role manager: demoted node {} to worker; it will renew its certificate", name);
  }
}

void RoleManager::Report(const std::string& node_id, const std::string& message) {
  std::string& last = reported_[node_id];
  if (last == message) {
    spdlog::debug("role manager: {}", message);
    return;
  }
  last = message;
  spdlog::warn("role manager: {}", message);
}

}  // namespace shoal::manager
