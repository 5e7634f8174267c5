#include "manager/dispatcher/assignment_hub.h"

#include <algorithm>
#include <utility>

#include "spdlog/spdlog.h"

namespace shoal::manager {

// --- Subscription ------------------------------------------------------------------------------

void AssignmentHub::Subscription::SkipThrough(uint64_t version) {
  absl::MutexLock lock(&mu_);
  skip_through_ = version;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.version <= version) {
      pending_.erase(it++);
    } else {
      ++it;
    }
  }
}

absl::Status AssignmentHub::Subscription::Next(absl::Time deadline,
                                               std::vector<store::StoreEvent>* events) {
  events->clear();
  std::vector<Pending> taken;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ReadyLocked(); };
    mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
    if (cancelled_) return absl::CancelledError("the assignment hub stopped");
    if (resync_) {
      resync_ = false;
      pending_.clear();
      return absl::AbortedError("assignment events were dropped; take a new view");
    }
    taken.reserve(pending_.size());
    for (auto& [key, p] : pending_) taken.push_back(std::move(p));
    pending_.clear();
  }
  std::sort(taken.begin(), taken.end(),
            [](const Pending& a, const Pending& b) { return a.order < b.order; });
  events->reserve(taken.size());
  for (Pending& p : taken) events->push_back(std::move(p.event));
  return absl::OkStatus();
}

bool AssignmentHub::Subscription::Push(uint64_t version, std::vector<store::StoreEvent> events,
                                       size_t limit) {
  absl::MutexLock lock(&mu_);
  if (resync_ || cancelled_ || version <= skip_through_) return false;
  const bool was_ready = ReadyLocked();
  for (store::StoreEvent& e : events) {
    Key key(e.kind(), store::IdOf(*e.object));
    Pending& p = pending_[std::move(key)];
    p.version = version;
    p.order = next_order_++;
    p.event = std::move(e);
  }
  if (pending_.size() > limit) {
    resync_ = true;
    pending_.clear();
  }
  return !was_ready && ReadyLocked();
}

bool AssignmentHub::Subscription::Resync() {
  absl::MutexLock lock(&mu_);
  const bool was_ready = ReadyLocked();
  resync_ = true;
  pending_.clear();
  return !was_ready;
}

bool AssignmentHub::Subscription::Cancel() {
  absl::MutexLock lock(&mu_);
  const bool was_ready = ReadyLocked();
  cancelled_ = true;
  pending_.clear();
  return !was_ready;
}

// --- Hub ---------------------------------------------------------------------------------------

AssignmentHub::AssignmentHub(store::MemoryStore* store, AssignmentHubOptions options)
    : store_(store), options_(options) {
  // The watcher exists before anyone can subscribe: a subscriber's view is never older than it.
  std::unique_ptr<store::Watcher> watcher = Watch();
  thread_ = std::thread([this, w = std::move(watcher)]() mutable { Run(std::move(w)); });
}

AssignmentHub::~AssignmentHub() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [node, subs] : by_node_) {
      for (auto& sub : subs) {
        if (sub->Cancel() && sub->on_ready_) sub->on_ready_();
      }
    }
  }
  thread_.join();
}

std::unique_ptr<AssignmentHub::Handle> AssignmentHub::Subscribe(const std::string& node_id,
                                                                std::function<void()> on_ready) {
  auto sub = std::make_shared<Subscription>();
  sub->on_ready_ = std::move(on_ready);
  absl::MutexLock lock(&mu_);
  if (stopping_ && sub->Cancel() && sub->on_ready_) sub->on_ready_();
  by_node_[node_id].push_back(sub);
  ++subscriptions_;
  return std::make_unique<Handle>(this, node_id, std::move(sub));
}

void AssignmentHub::Unsubscribe(const std::string& node_id, Subscription* sub) {
  absl::MutexLock lock(&mu_);
  auto it = by_node_.find(node_id);
  if (it == by_node_.end()) return;
  auto& subs = it->second;
  auto pos = std::find_if(subs.begin(), subs.end(),
                          [sub](const std::shared_ptr<Subscription>& s) { return s.get() == sub; });
  if (pos == subs.end()) return;
  subs.erase(pos);
  --subscriptions_;
  if (subs.empty()) by_node_.erase(it);
}

size_t AssignmentHub::subscription_count() const {
  absl::MutexLock lock(&mu_);
  return subscriptions_;
}

size_t AssignmentHub::hub_resyncs() const {
  absl::MutexLock lock(&mu_);
  return hub_resyncs_;
}

std::unique_ptr<store::Watcher> AssignmentHub::Watch() {
  store::WatchFilter filter;
  filter.kinds = {api::OBJECT_KIND_TASK, api::OBJECT_KIND_SECRET, api::OBJECT_KIND_CONFIG};
  filter.queue_limit = options_.hub_queue_limit;
  return store_->ViewAndWatch([](const store::ReadTx&) {}, filter);
}

void AssignmentHub::Run(std::unique_ptr<store::Watcher> watcher) {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    absl::StatusOr<store::StoreChange> change = watcher->Next(absl::Now() + options_.poll_interval);
    if (change.ok()) {
      Route(*change);
      continue;
    }
    if (change.status().code() == absl::StatusCode::kDeadlineExceeded) continue;
    // Fell behind, or the store was restored (or destroyed): start over, and so does everyone.
    spdlog::warn("dispatcher: assignment watcher restarts ({}); every node resyncs",
                 change.status().ToString());
    watcher = Watch();
    absl::MutexLock lock(&mu_);
    ++hub_resyncs_;
    for (auto& [node, subs] : by_node_) {
      for (auto& sub : subs) {
        if (sub->Resync() && sub->on_ready_) sub->on_ready_();
      }
    }
  }
}

void AssignmentHub::Route(const store::StoreChange& change) {
  absl::MutexLock lock(&mu_);
  // Each subscription's share of the change, handed over in one piece.
  absl::flat_hash_map<Subscription*, std::vector<store::StoreEvent>> shares;
  auto deliver = [&](const std::string& node_id, const store::StoreEvent& event) {
    if (node_id.empty()) return;
    auto it = by_node_.find(node_id);
    if (it == by_node_.end()) return;
    for (auto& sub : it->second) shares[sub.get()].push_back(event);
  };
  for (const store::StoreEvent& event : change.events) {
    if (event.kind() == api::OBJECT_KIND_TASK) {
      const std::string& now_on = event.object->task().node_id();
      deliver(now_on, event);
      if (event.old_object != nullptr) {
        const std::string& was_on = event.old_object->task().node_id();
        if (was_on != now_on) deliver(was_on, event);
      }
      continue;
    }
    // Secrets and configs: every subscription decides whether its tasks use them.
    for (auto& [node, subs] : by_node_) {
      for (auto& sub : subs) shares[sub.get()].push_back(event);
    }
  }
  for (auto& [sub, events] : shares) {
    if (sub->Push(change.version, std::move(events), options_.subscription_queue_limit) &&
        sub->on_ready_) {
      sub->on_ready_();
    }
  }
}

}  // namespace shoal::manager
