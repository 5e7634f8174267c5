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
#include "manager/loop/batching_loop.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {

// Clock (which also stamps task statuses), batch window, resync interval, watch queue limit.
using AllocatorOptions = BatchingLoopOptions;

// The status messages the allocator writes.
inline constexpr char kAllocatedMessage[] = "pending task scheduling";
inline constexpr char kWaitingForNetworksMessage[] = "waiting for network allocation";

// Whether new tasks of `service` have anything for the allocator to do: networks to attach, or
// the service's endpoint (published ports, virtual IPs) to copy. The orchestrators create the
// tasks of a service that needs none of it PENDING at once (kAllocatedMessage): the allocator
// would only have moved them there, at the cost of one more store write per task.
inline bool NeedsAllocation(const api::Service& service) {
  return !service.spec().task_template().networks().empty() || service.spec().has_endpoint_spec() ||
         service.has_endpoint();
}

class Allocator : public BatchingLoop {
 public:
  // `store` is not owned and must outlive the allocator.
  Allocator(store::MemoryStore* store, AllocatorOptions options = {});
  ~Allocator() override;  // Stop()s

  // Start, Stop, ReconcileOnce and passes() come from BatchingLoop. ReconcileOnce: one full
  // pass from a fresh read of the store — rebuilds the port table, brings every service's
  // endpoint up to date and allocates every NEW task that can be; returns the first store write
  // error (the rest of the pass still ran); conflicts are not errors (they are written to the
  // tasks).

 private:
  struct State;

  // BatchingLoop. Pass's `resync`: first mark every service and every NEW task in the store.
  void Rebuild(const store::ReadTx& tx) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  void Observe(const store::StoreChange& change) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  absl::Status Pass(bool resync) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  bool HasWork() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);

  absl::Status AllocateServices() ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  absl::Status AllocateTasks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);

  std::unique_ptr<State> state_ ABSL_GUARDED_BY(work_mu_);
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_ALLOCATOR_ALLOCATOR_H_
