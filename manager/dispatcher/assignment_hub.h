// AssignmentHub: one store watcher for every node's assignment stream.
//
// With a watcher per stream, every task change would be offered to every node's filter on the
// thread that applies Raft entries: 100,000 task changes x 1,000 nodes = 10^8 predicate calls.
// The hub holds a single watcher (tasks, secrets, configs) and routes each task event, by hash
// lookup, to the subscriptions of the node(s) it concerns (the node it is on and, for a task
// moved off a node, the one it left); secret and config events go to every subscription, which
// keeps those its tasks reference. Routing costs O(events), whatever the number of nodes.
//
// A subscriber pairs a view with the events after it without any lock across the two:
//   1. Subscribe(node)         from now on, every event for the node is kept;
//   2. take a view at version V (ReadTx::version()) and call SkipThrough(V);
//   3. Next() / Take() return the kept events newer than V.
// Events newer than the hub's position at step 1 are kept; those up to V are already in the
// view, and SkipThrough drops them. Nothing is missed or seen twice.
//
// Coalescing: a subscription keeps a pending set, not a queue: one event per object (kind, ID),
// the newest, which says everything a consumer diffing against what it last sent needs (an
// object created then removed is a REMOVE; one updated ten times is its last version). So a
// consumer that is slow to take (an agent whose stream write is stalled) costs at most one
// entry per object it cares about, however many changes pile up. Next() and Take() return the
// pending events in the order of their (latest) commits.
//
// Push: Subscribe's `on_ready` is called when the subscription goes from having nothing to take
// to having something (events, a resync or the cancellation): edge-triggered, so a consumer
// that does not take everything at once must come back by itself. It runs on the hub's thread
// (or the one destroying the hub) with the hub's lock held: it must be quick and must not call
// into the hub or the subscription; typically it queues the consumer for a worker. It is not
// called once Unsubscribe (the Handle's destruction) has returned.
//
// Resync: when the hub's own watcher falls behind or the store is restored from a snapshot, or a
// subscription's pending set exceeds its limit, Next() returns ABORTED once: the subscriber
// starts over at step 2 with a fresh view (its pending set was emptied).
//
// Thread-safety: all methods may be called from any thread; a Subscription has one consumer.
#ifndef SHOAL_MANAGER_DISPATCHER_ASSIGNMENT_HUB_H_
#define SHOAL_MANAGER_DISPATCHER_ASSIGNMENT_HUB_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {

struct AssignmentHubOptions {
  // Events the hub's watcher may fall behind the store before it resyncs everyone.
  size_t hub_queue_limit = 4'000'000;
  // Objects one subscription's pending set may hold before it is told to resync.
  size_t subscription_queue_limit = 200'000;
  // Longest wait of the routing thread before it checks for Stop.
  absl::Duration poll_interval = absl::Milliseconds(200);
};

class AssignmentHub {
 public:
  class Subscription {
   public:
    // Drops queued and future events with a version <= `version` (the view's).
    void SkipThrough(uint64_t version);
    // Moves the pending events into *events (in commit order), waiting until `deadline` for at
    // least one. OK with no events at the deadline; ABORTED when the subscriber must take a new
    // view (see Resync above); CANCELLED once the hub stopped.
    absl::Status Next(absl::Time deadline, std::vector<store::StoreEvent>* events);
    // Next without waiting.
    absl::Status Take(std::vector<store::StoreEvent>* events) {
      return Next(absl::InfinitePast(), events);
    }

   private:
    friend class AssignmentHub;
    using Key = std::pair<api::ObjectKind, std::string>;
    struct Pending {
      uint64_t version;
      uint64_t order;  // of arrival, for commit order
      store::StoreEvent event;
    };
    // Adds one change's events to the pending set, all at once. Returns whether the
    // subscription just became ready (the caller then notifies, outside mu_).
    bool Push(uint64_t version, std::vector<store::StoreEvent> events, size_t limit);
    bool Resync();
    bool Cancel();
    bool ReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !pending_.empty() || resync_ || cancelled_;
    }

    std::function<void()> on_ready_;  // set before the subscription is published
    absl::Mutex mu_;
    absl::flat_hash_map<Key, Pending> pending_ ABSL_GUARDED_BY(mu_);
    uint64_t next_order_ ABSL_GUARDED_BY(mu_) = 0;
    uint64_t skip_through_ ABSL_GUARDED_BY(mu_) = 0;
    bool resync_ ABSL_GUARDED_BY(mu_) = false;
    bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  };

  // A subscription that unsubscribes when destroyed.
  class Handle {
   public:
    Handle(AssignmentHub* hub, std::string node_id, std::shared_ptr<Subscription> sub)
        : hub_(hub), node_id_(std::move(node_id)), sub_(std::move(sub)) {}
    ~Handle() { hub_->Unsubscribe(node_id_, sub_.get()); }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    Subscription* operator->() const { return sub_.get(); }

   private:
    AssignmentHub* const hub_;
    const std::string node_id_;
    const std::shared_ptr<Subscription> sub_;
  };

  // Starts the routing thread. `store` is not owned and must outlive the hub.
  explicit AssignmentHub(store::MemoryStore* store, AssignmentHubOptions options = {});
  // Cancels every subscription and joins the thread.
  ~AssignmentHub();
  AssignmentHub(const AssignmentHub&) = delete;
  AssignmentHub& operator=(const AssignmentHub&) = delete;

  // `on_ready` (may be empty): see Push above. REQUIRES: the Handle is destroyed before the hub.
  std::unique_ptr<Handle> Subscribe(const std::string& node_id,
                                    std::function<void()> on_ready = nullptr);

  // Subscriptions open now, and resyncs of the hub's own watcher so far (tests, metrics).
  size_t subscription_count() const;
  size_t hub_resyncs() const;

 private:
  void Unsubscribe(const std::string& node_id, Subscription* sub);
  std::unique_ptr<store::Watcher> Watch();
  void Run(std::unique_ptr<store::Watcher> watcher);
  void Route(const store::StoreChange& change);

  store::MemoryStore* const store_;
  const AssignmentHubOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Subscription>>> by_node_
      ABSL_GUARDED_BY(mu_);
  size_t subscriptions_ ABSL_GUARDED_BY(mu_) = 0;
  size_t hub_resyncs_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_DISPATCHER_ASSIGNMENT_HUB_H_
