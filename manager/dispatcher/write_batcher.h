// WriteBatcher: group commit of many small store writes (task status reports, node
// registrations) into few Raft entries.
//
// Every agent reports task states, and a thousand agents reporting one by one would cost a
// thousand Raft round trips. Writers hand their change to the batcher as a function over a
// WriteTx; one thread takes everything queued, runs the functions one after another in a single
// MemoryStore::Batch (each in its own sub-transaction, so one function's error drops only its
// own changes) and commits them together. While a commit is in flight, the next writes queue up
// and go out in the next one: under load, batches grow by themselves; idle, a write goes out at
// once (no timer, no added latency).
//
// A writer learns its own result: the function's error, or the commit's. A write is reported OK
// only once it is applied (acknowledged writes survive a leader crash). Commits that fail with
// ABORTED (an object changed under a function) are retried; so functions must be safe to run
// again — the dispatcher's are (status reports only move forward; registrations set a state).
// On any other commit error every function of that commit is told that error, even one whose
// changes happened to land in an earlier entry of the same batch: the writer retries, and the
// retry is harmless for the same reason.
//
// Thread-safety: all methods may be called from any thread. Callbacks (WriteAsync's `done`) run
// on the batcher's thread and must not block.
#ifndef SHOAL_MANAGER_DISPATCHER_WRITE_BATCHER_H_
#define SHOAL_MANAGER_DISPATCHER_WRITE_BATCHER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {

struct WriteBatcherOptions {
  // Most functions in one commit (one MemoryStore::Batch; the store splits it into entries).
  size_t max_writes_per_commit = 5000;
  // Attempts of a commit that keeps failing with ABORTED.
  int max_attempts = 10;
};

class WriteBatcher {
 public:
  using WriteFn = std::function<absl::Status(store::WriteTx&)>;
  using DoneFn = std::function<void(absl::Status)>;

  // `store` is not owned and must outlive the batcher. Starts the commit thread.
  explicit WriteBatcher(store::MemoryStore* store, WriteBatcherOptions options = {});
  // Fails what is still queued (UNAVAILABLE) and joins the thread.
  ~WriteBatcher();
  WriteBatcher(const WriteBatcher&) = delete;
  WriteBatcher& operator=(const WriteBatcher&) = delete;

  // Queues `fn`; `done` gets its result once committed (or failed).
  void WriteAsync(WriteFn fn, DoneFn done);
  // Queues `fn` and waits for its result.
  absl::Status Write(WriteFn fn);

  // Commits done so far (each one MemoryStore::Batch), for tests and metrics.
  size_t commits() const;

 private:
  struct Pending {
    WriteFn fn;
    DoneFn done;
  };
  void Run();
  void Commit(std::deque<Pending>& writes);

  store::MemoryStore* const store_;
  const WriteBatcherOptions options_;

  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t commits_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_DISPATCHER_WRITE_BATCHER_H_
