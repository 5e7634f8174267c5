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
//   1. Subscribe(node)         from now on, every event for the node is queued;
//   2. take a view at version V (ReadTx::version()) and call SkipThrough(V);
//   3. Next() returns the queued events newer than V, in commit order.
// Events newer than the hub's position at step 1 are queued; those up to V are already in the
// view, and SkipThrough drops them. Nothing is missed or seen twice.
//
// Resync: when the hub's own watcher falls behind or the store is restored from a snapshot, or a
// subscription's queue exceeds its limit, Next() returns ABORTED once: the subscriber starts
// over at step 2 with a fresh view (its queue was emptied).
//
// Thread-safety: all methods may be called from any thread; a Subscription has one consumer.
#ifndef SHOAL_MANAGER_DISPATCHER_ASSIGNMENT_HUB_H_
#define SHOAL_MANAGER_DISPATCHER_ASSIGNMENT_HUB_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
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
  // Events one subscription may hold before it is told to resync.
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
    // Moves the queued events into *events (in commit order), waiting until `deadline` for at
    // least one. OK with no events at the deadline; ABORTED when the subscriber must take a new
    // view (see Resync above); CANCELLED once the hub stopped.
    absl::Status Next(absl::Time deadline, std::vector<store::StoreEvent>* events);

   private:
    friend class AssignmentHub;
    struct Queued {
      uint64_t version;
      store::StoreEvent event;
    };
    // Queues one change's events for this subscription, all at once.
    void Push(uint64_t version, std::vector<store::StoreEvent> events, size_t limit);
    void Resync();
    void Cancel();

    absl::Mutex mu_;
    std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
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

  // REQUIRES: the Handle is destroyed before the hub.
  std::unique_ptr<Handle> Subscribe(const std::string& node_id);

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
