// MemoryStore: the managers' replicated store — every Node, Service, Task, Network, Secret,
// Config and Cluster, in memory and indexed, identical on every manager because it changes only
// by applying committed Raft entries.
//
//   View(fn)           fn reads a consistent snapshot (ReadTx). Views never block writes or each
//                      other: the store publishes each version as an immutable Tables, and a
//                      view holds one (copy-on-write maps, see persistent_map.h).
//   Update(fn)         fn records changes in a WriteTx; they become one StoreProposal handed to
//                      the Proposer (Raft); Update returns once the entry is applied here, with
//                      the result of applying it (see apply.h for the rules, e.g. ABORTED when an
//                      object changed since it was read). Proposer errors come back unchanged
//                      and nothing was written by this manager's hand — the store only ever
//                      changes in Apply.
//   Batch(fn)          for bulk writes: fn calls batch.Update(...) many times; the changes go out
//                      in as many entries as the size limits require, each atomic on its own.
//   ViewAndWatch(fn)   a view and, atomically with it, the stream of later changes (watch.h).
//   Apply/Snapshot/Restore   the raft::StateMachine the Raft node drives.
//
// Writes are optimistic: transactions do not lock anything while their callback runs, so two
// managers (or threads) may race; the entry applied second fails with ABORTED and the writer
// re-reads and retries. Determinism: Apply depends only on the entries (timestamps come from
// the proposer's clock inside the proposal) and Snapshot() serialises deterministically, so
// stores fed the same entries hold byte-identical snapshots.
//
// Threading: View, Update, Batch, ViewAndWatch, Counts and version may be called from any thread,
// concurrently — except from the thread that applies entries (the Raft loop: an Update there
// would wait for itself). Apply and Restore serialise on an internal mutex; Snapshot encodes a
// published version and may run beside them. Callbacks run on the caller's thread with no store
// lock held, so they may take their time and may even call the store.
#ifndef SHOAL_MANAGER_STORE_MEMORY_STORE_H_
#define SHOAL_MANAGER_STORE_MEMORY_STORE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/store/apply.h"
#include "manager/store/objects.h"
#include "manager/store/proposer.h"
#include "manager/store/read_tx.h"
#include "manager/store/tables.h"
#include "manager/store/watch.h"
#include "manager/store/write_tx.h"
#include "raft/node/raft_node.h"

namespace shoal::manager::store {

struct StoreOptions {
  // Stamps proposals (Meta.created_at / updated_at). nullptr = RealClock().
  Clock* clock = nullptr;
  // How long Update and each Batch entry wait for the proposer (wall-clock).
  absl::Duration proposal_timeout = absl::Seconds(30);
  // Batch starts a new entry once the current one holds this many changed objects or about this
  // many bytes. One Batch::Update callback always goes into a single entry, however large.
  size_t batch_max_objects = 500;
  size_t batch_max_bytes = 1 << 20;
  // Default WatchFilter::queue_limit: events a watcher may fall behind before it is closed.
  size_t watch_queue_limit = 10000;
};

// Objects per kind, e.g. for metrics.
struct StoreCounts {
  uint64_t version = 0;
  std::array<size_t, kNumKinds + 1> by_kind{};  // indexed by api::ObjectKind
  size_t of(api::ObjectKind kind) const { return by_kind[kind]; }
};

class MemoryStore;

// The handle a Batch callback writes through.
class Batch {
 public:
  // Runs fn in a transaction that sees the store plus the batch's changes so far. If fn fails,
  // its changes are dropped and its error returned (the batch goes on). Once the pending changes
  // reach the entry limits they are proposed; if that fails, the batch stops: this and every
  // later call return the proposal's error without running fn.
  absl::Status Update(const std::function<absl::Status(WriteTx&)>& fn);

  // Entries proposed (and applied) so far.
  size_t entries_committed() const { return entries_committed_; }

 private:
  friend class MemoryStore;
  explicit Batch(MemoryStore* store);
  absl::Status Flush();

  MemoryStore* const store_;
  std::unique_ptr<WriteTx> tx_;
  absl::Status failed_;
  size_t entries_committed_ = 0;
};

class MemoryStore : public raft::StateMachine {
 public:
  // `proposer` is not owned and must outlive the store; nullptr makes a read-only store (every
  // write fails with FAILED_PRECONDITION) that still applies entries.
  explicit MemoryStore(Proposer* proposer, StoreOptions options = {});
  // Closes every watcher (CANCELLED).
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  void View(const std::function<void(const ReadTx&)>& fn) const;

  // Runs fn; if it returns OK and changed something, proposes the changes and waits for them to
  // be applied. Returns fn's error (nothing proposed), the proposer's error unchanged, or the
  // result of applying the entry.
  absl::Status Update(const std::function<absl::Status(WriteTx&)>& fn);

  // Runs fn with a Batch, then proposes what is still pending. Returns fn's error (pending
  // changes are then dropped; entries already proposed stay) or the first proposal error.
  absl::Status Batch(const std::function<absl::Status(store::Batch&)>& fn);

  // Runs fn on a view and returns a watcher of every change committed after it.
  std::unique_ptr<Watcher> ViewAndWatch(const std::function<void(const ReadTx&)>& fn,
                                        WatchFilter filter = {});

  StoreCounts Counts() const;
  // The Raft index of the last entry applied (0 for an empty store).
  uint64_t version() const;

  // raft::StateMachine. Apply's result is a serialized api::StoreApplyResult (see DecodeResult).
  // Entries with an index at or below the store's version are refused (FAILED_PRECONDITION)
  // and change nothing.
  std::string Apply(uint64_t index, const std::string& data) override;
  // A serialized api::StoreSnapshot of the last applied version.
  std::string Snapshot() override;
  // Keeps the current (immutable) version; serialising it later does not hold off Apply.
  std::function<std::string()> CaptureSnapshot() override;
  // Replaces everything with a snapshot's content; closes every watcher (ABORTED) since their
  // streams no longer continue their views. DATA_LOSS on a malformed snapshot (store unchanged).
  absl::Status Restore(const std::string& data) override;

  // What Update returns for an Apply result.
  static absl::Status DecodeResult(const std::string& result);

 private:
  friend class store::Batch;

  std::shared_ptr<const Tables> Current() const;
  // Proposes what `tx` recorded; OK without proposing if it recorded nothing.
  absl::Status Commit(WriteTx& tx);
  // Makes `tables` the current version and tells the watchers.
  void Publish(std::shared_ptr<const Tables> tables, const std::vector<Change>& changes);

  // Proposals of this store's own writers, decoded, until Apply takes them (see Commit).
  uint64_t RememberLocal(const std::string& data, DecodedProposal decoded);
  bool TakeLocal(const std::string& data, DecodedProposal* decoded);
  void ForgetLocal(uint64_t ticket);

  Proposer* const proposer_;
  const StoreOptions options_;
  Clock* const clock_;

  struct LocalProposal {
    uint64_t ticket;
    std::string data;
    DecodedProposal decoded;
  };
  absl::Mutex local_mu_;
  std::vector<LocalProposal> local_ ABSL_GUARDED_BY(local_mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(local_mu_) = 0;

  absl::Mutex apply_mu_;  // serialises Apply and Restore (the only writers of state_)

  mutable absl::Mutex mu_;
  std::shared_ptr<const Tables> state_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<internal::WatchQueue>> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_MEMORY_STORE_H_
