// Watching the store: the change stream that reconcile loops (orchestrators, allocator,
// scheduler, dispatcher) and the Watch API consume.
//
// A Watcher comes from MemoryStore::ViewAndWatch: a consistent view of the store at version V
// and, atomically with it, the stream of every change committed after V — no change missed, none
// seen twice. Changes arrive one committed transaction at a time (StoreChange), in commit order,
// holding the events that pass the watcher's filter; transactions with none are skipped.
//
// Back-pressure: appliers never wait for watchers. Each watcher has a bounded queue; one that
// falls more than `queue_limit` events behind is closed with RESOURCE_EXHAUSTED. A watcher is
// also closed (ABORTED) when the store is replaced wholesale by a Raft snapshot. In both cases
// the consumer's picture may be stale: it starts over with a new ViewAndWatch. Closing drops
// whatever was still queued, so a consumer can never act on part of a stream it must discard.
//
// Threading: Next() and Close() may be called from any thread (one consumer at a time is the
// intended use). Filter predicates run on the applying thread while the store publishes an
// entry: they must be quick, must not block, and must not call into the store.
#ifndef SHOAL_MANAGER_STORE_WATCH_H_
#define SHOAL_MANAGER_STORE_WATCH_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "manager/store/apply.h"
#include "manager/store/objects.h"
#include "objects.pb.h"

namespace shoal::manager::store {

// One change to one object. The objects are the store's own immutable instances: keep the
// pointers as long as needed, never cast the constness away.
struct StoreEvent {
  api::StoreAction::Action action = api::StoreAction::UNKNOWN;  // CREATE, UPDATE or REMOVE
  ObjectPtr object;      // after the change (as it was, for REMOVE)
  ObjectPtr old_object;  // before the change, for UPDATE; null otherwise
  api::ObjectKind kind() const { return KindOf(*object); }
};

// The matching events of one committed transaction.
struct StoreChange {
  uint64_t version = 0;  // the transaction's Raft index: Meta.version of what it wrote
  std::vector<StoreEvent> events;
};

struct WatchFilter {
  // Kinds to deliver; empty = every kind.
  std::vector<api::ObjectKind> kinds;
  // Further narrows events (null = all): an UPDATE is delivered if the object matches before or
  // after the change (so a task moving off a node reaches that node's watcher).
  std::function<bool(const api::StoreObject&)> predicate;
  // Events queued before the watcher is closed; 0 = the store's default.
  size_t queue_limit = 0;

  static WatchFilter Kind(api::ObjectKind kind);
  static WatchFilter TasksOfService(std::string service_id);
  static WatchFilter TasksOnNode(std::string node_id);
};

namespace internal {
class WatchQueue;
}

class Watcher {
 public:
  // Closes the watcher (the store forgets it on its next commit).
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // The version of the view the stream starts after: every delivered change is newer.
  uint64_t start_version() const { return start_version_; }

  // The next change, waiting until `deadline` (wall-clock; absl::InfinitePast() polls).
  // DEADLINE_EXCEEDED if none came; once closed, the closing status every time:
  // RESOURCE_EXHAUSTED (fell behind), ABORTED (store restored from a snapshot), CANCELLED
  // (Close() was called, or the store was destroyed).
  absl::StatusOr<StoreChange> Next(absl::Time deadline);

  // Stops the stream; pending changes are dropped. Idempotent.
  void Close();

 private:
  friend class MemoryStore;
  Watcher(std::shared_ptr<internal::WatchQueue> queue, uint64_t start_version)
      : queue_(std::move(queue)), start_version_(start_version) {}

  std::shared_ptr<internal::WatchQueue> queue_;
  const uint64_t start_version_;
};

namespace internal {

// The queue between the store (producer) and one Watcher (consumer).
class WatchQueue {
 public:
  WatchQueue(WatchFilter filter, size_t limit);

  // Store side, called in commit order. Returns false once the queue is closed (the store then
  // drops it).
  bool Publish(uint64_t version, const std::vector<Change>& changes);
  void CloseWith(absl::Status status);

  // Consumer side.
  absl::StatusOr<StoreChange> Next(absl::Time deadline);

 private:
  bool Matches(const Change& c) const;

  const WatchFilter filter_;
  uint32_t kind_mask_ = 0;  // bit k set = deliver kind k; 0 = every kind
  const size_t limit_;

  absl::Mutex mu_;
  std::deque<StoreChange> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_events_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status closed_ ABSL_GUARDED_BY(mu_);  // OK while open
};

}  // namespace internal
}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_WATCH_H_
