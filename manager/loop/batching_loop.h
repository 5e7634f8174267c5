// BatchingLoop: the thread, watch and timers of a leader-only loop that gathers store changes
// for a short window and then handles them in one pass — the allocator and the scheduling loop.
//
// A loop's life: ViewAndWatch (filtered to `kinds`) hands it a consistent view, from which it
// rebuilds what it knows (Rebuild); then a first pass; then the stream of later changes, each
// taken in by Observe. When a change brings work (HasWork), the loop waits batch_window for
// more, then runs one pass. A pass that fails is retried after retry_after_error; every
// resync_interval a pass is told to re-read the store for work a missed change would leave
// behind (Pass(true)); work a pass leaves for later gets another window. A watcher that closes
// (fell behind, store restored from a snapshot) makes the loop start over from a fresh view.
//
// Compared with orchestrator::ReconcileLoop (one pass after each burst of changes), this loop
// trades batch_window of latency for larger passes: what the allocator and the scheduler do
// costs much less per task when many tasks are handled together.
//
// Leader-only: the manager Start()s it on becoming the Raft leader and Stop()s it on losing
// leadership; Start rebuilds everything from the store, so a new leader resumes where the old
// one stopped.
//
// Thread-safety: Start, Stop and ReconcileOnce may be called from any thread (Start and Stop
// not concurrently with each other). The hooks are always called with work_mu_ held, so the
// thread's passes and ReconcileOnce's never overlap. A derived class must call Stop() in its
// destructor (the thread calls its hooks). The store must outlive the loop.
#ifndef SHOAL_MANAGER_LOOP_BATCHING_LOOP_H_
#define SHOAL_MANAGER_LOOP_BATCHING_LOOP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {

struct BatchingLoopOptions {
  // Paces the loop. nullptr = RealClock(). With another clock (a test's ManualClock) the loop
  // also looks at it every few tens of milliseconds of real time.
  Clock* clock = nullptr;
  // Changes arriving within this long of the first one that brings work go into one pass.
  absl::Duration batch_window = absl::Milliseconds(50);
  // How often a pass re-reads the store for work a missed change would leave behind.
  absl::Duration resync_interval = absl::Seconds(5);
  // After a pass failed, the next one comes this soon.
  absl::Duration retry_after_error = absl::Milliseconds(500);
  // Events the watcher may fall behind before the store closes it. The loop's own writes come
  // back through it, so it must exceed the largest pass (100,000 tasks written at once are
  // 100,000 events).
  size_t watch_queue_limit = 1 << 21;
};

class BatchingLoop {
 public:
  virtual ~BatchingLoop();
  BatchingLoop(const BatchingLoop&) = delete;
  BatchingLoop& operator=(const BatchingLoop&) = delete;

  // Starts the loop on a thread of its own. No-op if running; may be called again after Stop().
  void Start();
  // Stops the loop and joins its thread (a pass under way finishes first). Idempotent.
  void Stop();

  // One full pass now, on this thread, from a fresh read of the store (Rebuild, then
  // Pass(false)). Returns the pass's error. For tests, and usable while the loop runs.
  absl::Status ReconcileOnce();

  // Passes completed (by the loop or ReconcileOnce). For tests and metrics.
  uint64_t passes() const { return passes_.load(); }

 protected:
  // `name` appears in logs ("allocator", "scheduler").
  BatchingLoop(store::MemoryStore* store, BatchingLoopOptions options, std::string name,
               std::vector<api::ObjectKind> kinds);

  // The hooks, called with work_mu_ held. Rebuild: forget everything and learn it from `tx`.
  // Observe: one committed change. Pass: handle what is marked; `resync`: first look in the store
  // for work a missed change would leave behind. HasWork: whether a pass would do anything.
  virtual void Rebuild(const store::ReadTx& tx) = 0;
  virtual void Observe(const store::StoreChange& change) = 0;
  virtual absl::Status Pass(bool resync) = 0;
  virtual bool HasWork() const = 0;

  bool Stopping() const;
  Clock* clock() const { return clock_; }

  store::MemoryStore* const store_;
  // Held for a pass and while changes are taken in.
  absl::Mutex work_mu_;

 private:
  void Run();
  absl::Status CountedPass(bool resync) ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);

  const BatchingLoopOptions options_;
  const std::string name_;
  const std::vector<api::ObjectKind> kinds_;
  Clock* const clock_;
  std::atomic<uint64_t> passes_{0};

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  store::Watcher* watcher_ ABSL_GUARDED_BY(mu_) = nullptr;  // the loop's, closed by Stop()
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_LOOP_BATCHING_LOOP_H_
