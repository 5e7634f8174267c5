// Allocator: the leader-only loop that moves tasks from NEW to PENDING once what they need from
// the cluster is allocated (docs/orchestration.md). For now that is the service's endpoint:
//
//  * Service.endpoint follows Service.spec.endpoint_spec: endpoint.spec is a copy of it and
//    endpoint.ports its ports with the INGRESS ones' published ports filled in — explicit ones as
//    given, published_port 0 from the dynamic range 30000-32767 (kept across spec updates). An
//    INGRESS port is published on every node, so it is unique across services (PortAllocator).
//    A service whose ports conflict keeps the endpoint it had; its NEW tasks stay NEW with the
//    conflict as status.message (and status.err), e.g. "port 8080/tcp is already published by
//    service web (ID …); publish another port or remove it from that service", and are
//    allocated once the port is free.
//  * A NEW task (desired RUNNING or COMPLETE) of an allocated service gets Task.endpoint = the
//    service's endpoint and moves to PENDING ("pending task scheduling").
//  * Tasks that attach to networks (spec.networks not empty) stay NEW with the message "waiting
//    for network allocation": network attachments (addresses, VIPs) are not allocated yet — the
//    network allocator comes with the networking capability.
//  * Tasks of a service that is gone or pending deletion are left alone (the orchestrators and
//    the reaper deal with them). A service pending deletion, or deleted, frees its ports.
//
// Writes go through MemoryStore::Batch (one callback per object, so one failure costs only that
// object); a write that fails (e.g. ABORTED: someone changed the object meanwhile) is retried on
// the next pass from a fresh read.
//
// Leader-only: the manager Start()s it on becoming the Raft leader and Stop()s it on losing
// leadership. Start rebuilds everything from the store (ViewAndWatch: the port table from the
// services' endpoints, the NEW tasks), then follows the change stream: changes are collected for
// options.batch_window after the first one, then handled in one pass. Every
// options.resync_interval a pass also re-reads the store for NEW tasks and services a missed
// change would leave behind.
//
// Thread-safety: Start, Stop and ReconcileOnce may be called from any thread; passes (the
// loop's and ReconcileOnce's) are serialised. The store must outlive the allocator.
#ifndef SHOAL_MANAGER_ALLOCATOR_ALLOCATOR_H_
#define SHOAL_MANAGER_ALLOCATOR_ALLOCATOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {

struct AllocatorOptions {
  // Stamps task statuses and paces the loop. nullptr = RealClock(). With another clock (a test's
  // ManualClock) the loop also looks at it every few tens of milliseconds of real time.
  Clock* clock = nullptr;
  // Changes arriving within this long of the first one are handled in one pass.
  absl::Duration batch_window = absl::Milliseconds(50);
  // How often a pass re-reads the store for work a missed change would leave behind.
  absl::Duration resync_interval = absl::Seconds(5);
  // Events the loop's watcher may fall behind before the store closes it (the loop then starts
  // over from a fresh read). Its own writes come back through it, so it must exceed the largest
  // pass: 100,000 tasks allocated at once are 100,000 events.
  size_t watch_queue_limit = 1 << 21;
};

// The status messages the allocator writes.
inline constexpr char kAllocatedMessage[] = "pending task scheduling";
inline constexpr char kWaitingForNetworksMessage[] = "waiting for network allocation";

class Allocator {
 public:
  // `store` is not owned and must outlive the allocator.
  Allocator(store::MemoryStore* store, AllocatorOptions options = {});
  ~Allocator();  // Stop()s
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // Starts the loop on a thread of its own. No-op if running; may be called again after Stop().
  void Start();
  // Stops the loop and joins its thread. Idempotent.
  void Stop();

  // One full pass, from a fresh read of the store: rebuilds the port table, brings every
  // service's endpoint up to date and allocates every NEW task that can be. Returns the first
  // store write error (the rest of the pass still ran); conflicts are not errors (they are
  // written to the tasks). For tests, and usable while the loop runs.
  absl::Status ReconcileOnce();

  // Passes completed (by the loop or ReconcileOnce). For tests and metrics.
  uint64_t passes() const { return passes_.load(); }

 private:
  struct State;

  void Run();
  bool Stopping() const;
  // Rebuilds `state_` from `tx`.
  void Rebuild(const store::ReadTx& tx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  // Takes one committed change into `state_`.
  void Observe(const store::StoreChange& change) ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  // Handles the services and tasks marked in `state_`. `scan`: first mark every service and
  // every NEW task in the store (the periodic resync).
  absl::Status Pass(bool scan) ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  absl::Status AllocateServices() ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  absl::Status AllocateTasks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);

  store::MemoryStore* const store_;
  const AllocatorOptions options_;
  Clock* const clock_;
  std::atomic<uint64_t> passes_{0};

  // Held for a pass and while changes are taken in.
  absl::Mutex work_mu_;
  std::unique_ptr<State> state_ ABSL_GUARDED_BY(work_mu_);

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  store::Watcher* watcher_ ABSL_GUARDED_BY(mu_) = nullptr;  // the loop's, closed by Stop()
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_ALLOCATOR_ALLOCATOR_H_
