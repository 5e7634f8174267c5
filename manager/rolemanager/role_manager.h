// RoleManager: the leader-only loop that carries out promotions and demotions.
//
// `node promote` / `node demote` only change Node.spec.desired_role (ControlApi::UpdateNode,
// which refuses an unsafe demotion up front). This loop makes Node.role follow:
//
//   promotion (desired MANAGER, role WORKER): role := MANAGER and the node's certificate status
//     := RENEW. The node's agent sees it, renews its certificate as a manager, starts the manager
//     role and joins Raft by itself (as a learner first).
//   demotion (desired WORKER, role MANAGER): while the node is a Raft member, re-check that
//     removing it keeps a reachable quorum (quorum.h; reachability may have changed since the
//     request) and remove it with RaftControl::RemoveMember, which hands leadership away first
//     if the node is this manager. Once it is no longer a member: role := WORKER and
//     certificate status := RENEW (the node renews as a worker and stops its manager role).
//
// An unsafe demotion, or a failed step, is logged and retried every `retry`; the loop also acts
// at once on every node change (it watches the store with ViewAndWatch, filtered to nodes). The
// nodes still waiting are kept in memory only: a new leader's RoleManager finds them again in
// the store, so nothing is lost in a failover.
//
// The manager Start()s it when it becomes the Raft leader and Stop()s it when it loses
// leadership; every step also checks RaftControl::IsLeader, so a stale loop acts on nothing.
//
// Thread-safety: Start and Stop may be called from any thread (not concurrently with each
// other); the loop runs on its own thread. Stop returns promptly when the loop is idle; when a
// step is under way it first waits for it (a Raft removal is bounded by `removal_timeout`, a
// store write by the store's proposal timeout). The store and Raft control must outlive it.
#ifndef SHOAL_MANAGER_ROLEMANAGER_ROLE_MANAGER_H_
#define SHOAL_MANAGER_ROLEMANAGER_ROLE_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/raft_control.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {

struct RoleManagerOptions {
  // Paces the retries. nullptr = RealClock(). With another clock (a test's ManualClock) the loop
  // looks at it every few tens of milliseconds of real time, so an Advance() is noticed.
  Clock* clock = nullptr;
  // How often nodes whose role change is still pending are tried again.
  absl::Duration retry = absl::Seconds(1);
  // Bound on one RaftControl::RemoveMember call (wall-clock).
  absl::Duration removal_timeout = absl::Seconds(30);
};

class RoleManager {
 public:
  RoleManager(store::MemoryStore* store, RaftControl* raft, RoleManagerOptions options);
  // Stops the loop.
  ~RoleManager();
  RoleManager(const RoleManager&) = delete;
  RoleManager& operator=(const RoleManager&) = delete;

  // Starts the loop thread. No-op if it is running; may be called again after Stop().
  void Start();
  // Stops the loop and joins its thread. Idempotent.
  void Stop();

  // Reconcile rounds completed so far (the first on the initial view, then one per batch of node
  // changes and one per retry period). For tests and metrics.
  uint64_t passes() const { return passes_.load(); }

 private:
  void Run();
  // Returns false once Stop() was called.
  bool Running() const;
  // Works on each of `ids` (nodes whose role differs from their desired role).
  void ReconcileAll(const std::set<std::string>& ids);
  void Reconcile(const std::string& node_id);
  void Promote(const std::string& node_id);
  void Demote(const std::string& node_id, const std::string& name);
  // Logs a refusal or failure for `node_id` once per distinct message (retries repeat them).
  void Report(const std::string& node_id, const std::string& message);

  store::MemoryStore* const store_;
  RaftControl* const raft_;
  const RoleManagerOptions options_;
  Clock* const clock_;

  std::atomic<uint64_t> passes_{0};
  std::thread thread_;
  // Only the loop thread touches this.
  std::map<std::string, std::string> reported_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  store::Watcher* watcher_ ABSL_GUARDED_BY(mu_) = nullptr;  // the loop's, closed by Stop()
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_ROLEMANAGER_ROLE_MANAGER_H_
