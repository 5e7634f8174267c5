// ReconcileLoop: the thread, watch and timers every orchestrator loop runs on; the loops
// (replicated, global, jobs, restart supervisor, task reaper) derive from it and supply the
// reconciling.
//
// A loop's life: ViewAndWatch (filtered to the kinds it cares about) hands it a consistent view,
// from which it marks everything as needing a look (MarkAll), then the stream of later changes,
// from which it marks what each change touches (Observe). After each burst of changes (all that
// is queued is taken at once), when a timer of its own is due (NextWakeup), after a failed pass
// (options.retry) and every options.resync (a fresh view, MarkAll), it runs Process, which does
// the work and writes through MemoryStore::Batch. A watcher that closes (fell behind, store
// restored from a snapshot) makes it start over from a fresh view.
//
// ReconcileOnce() runs one full pass synchronously on the caller's thread: a fresh view, MarkAll,
// Process. Tests drive the loops with it, without a thread; the hooks never run concurrently
// (a mutex serialises passes, the thread's and ReconcileOnce's).
//
// Leader-only: the manager Start()s the loops when it becomes the Raft leader and Stop()s them
// when it loses leadership. Everything a loop knows is rebuilt from the store on Start; what it
// only kept in memory (restart history, since when nodes are DOWN) starts afresh.
//
// Thread-safety: Start, Stop and ReconcileOnce may be called from any thread (Start and Stop not
// concurrently with each other). Stop is prompt: it closes the watcher, and long passes check
// StopRequested() between items. The store must outlive the loop. A derived class must call
// Stop() in its destructor (the thread calls its hooks).
#ifndef SHOAL_MANAGER_ORCHESTRATOR_RECONCILE_LOOP_H_
#define SHOAL_MANAGER_ORCHESTRATOR_RECONCILE_LOOP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/orchestrator/common.h"
#include "manager/store/memory_store.h"

namespace shoal::manager::orchestrator {

class ReconcileLoop {
 public:
  virtual ~ReconcileLoop();
  ReconcileLoop(const ReconcileLoop&) = delete;
  ReconcileLoop& operator=(const ReconcileLoop&) = delete;

  // Starts the loop thread. No-op if it is running; may be called again after Stop().
  void Start();
  // Stops the loop and joins its thread. Idempotent.
  void Stop();

  // One full pass now, on this thread: a fresh view, everything marked, Process(). Returns the
  // first error of the pass (what could not be done stays marked for the next pass).
  absl::Status ReconcileOnce();

  // Passes completed so far (the thread's and ReconcileOnce's). For tests and metrics.
  uint64_t passes() const { return passes_.load(); }

 protected:
  ReconcileLoop(store::MemoryStore* store, OrchestratorOptions options, std::string name,
                std::vector<api::ObjectKind> kinds);

  // The hooks, always called with work_mu_ held. MarkAll: everything in the view needs a look
  // (also where in-memory state is refreshed). Observe: one change. Process: do what is marked
  // and due. NextWakeup: the loop's next timer (InfiniteFuture: none).
  virtual void MarkAll(const store::ReadTx& tx) = 0;
  virtual void Observe(const store::StoreEvent& event) = 0;
  virtual absl::Status Process() = 0;
  virtual absl::Time NextWakeup() { return absl::InfiniteFuture(); }

  // True once Stop() was called: long passes give up early (the next leader redoes the work).
  bool StopRequested() const { return stop_requested_.load(); }
  const std::atomic<bool>* stop_flag() const { return &stop_requested_; }
  Clock* clock() const { return clock_; }
  const std::string& name() const { return name_; }

  store::MemoryStore* const store_;
  const OrchestratorOptions options_;
  // Serialises the hooks (the loop thread's passes and ReconcileOnce).
  absl::Mutex work_mu_;

 private:
  void Run();
  void Pass() ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);

  const std::string name_;
  const std::vector<api::ObjectKind> kinds_;
  Clock* const clock_;

  std::thread thread_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<uint64_t> passes_{0};
  absl::Time retry_at_ ABSL_GUARDED_BY(work_mu_) = absl::InfiniteFuture();
  std::string last_error_ ABSL_GUARDED_BY(work_mu_);

  absl::Mutex mu_;
  store::Watcher* watcher_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Runs `attempt` until it returns anything but ABORTED (a concurrent write got in first: the next
// attempt re-reads), at most `tries` times.
absl::Status RetryAborted(const std::function<absl::Status()>& attempt, int tries = 5);

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_RECONCILE_LOOP_H_
