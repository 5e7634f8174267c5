#include "manager/store/watch.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::manager::store {

WatchFilter WatchFilter::Kind(api::ObjectKind kind) {
  WatchFilter f;
  f.kinds = {kind};
  return f;
}

WatchFilter WatchFilter::TasksOfService(std::string service_id) {
  WatchFilter f = Kind(api::OBJECT_KIND_TASK);
  f.predicate = [id = std::move(service_id)](const api::StoreObject& o) {
    return o.task().service_id() == id;
  };
  return f;
}

WatchFilter WatchFilter::TasksOnNode(std::string node_id) {
  WatchFilter f = Kind(api::OBJECT_KIND_TASK);
  f.predicate = [id = std::move(node_id)](const api::StoreObject& o) {
    return o.task().node_id() == id;
  };
  return f;
}

Watcher::~Watcher() { Close(); }

absl::StatusOr<StoreChange> Watcher::Next(absl::Time deadline) { return queue_->Next(deadline); }

void Watcher::Close() { queue_->CloseWith(absl::CancelledError("watcher closed")); }

namespace internal {

WatchQueue::WatchQueue(WatchFilter filter, size_t limit)
    : filter_(std::move(filter)), limit_(limit) {
  for (api::ObjectKind k : filter_.kinds) kind_mask_ |= 1u << k;
}

bool WatchQueue::Matches(const Change& c) const {
  if (kind_mask_ != 0 && (kind_mask_ & (1u << KindOf(*c.object))) == 0) return false;
  if (!filter_.predicate) return true;
  return filter_.predicate(*c.object) ||
         (c.old_object != nullptr && filter_.predicate(*c.old_object));
}

bool WatchQueue::Publish(uint64_t version, const std::vector<Change>& changes) {
  StoreChange change;
  change.version = version;
  for (const Change& c : changes) {
    if (Matches(c)) change.events.push_back(StoreEvent{c.action, c.object, c.old_object});
  }
  absl::MutexLock lock(&mu_);
  if (!closed_.ok()) return false;
  if (change.events.empty()) return true;
  if (queued_events_ + change.events.size() > limit_) {
    closed_ = absl::ResourceExhaustedError(
        absl::StrCat("store watcher fell more than ", limit_, " events behind (at version ",
                     version, "); re-read the store with a new ViewAndWatch"));
    queue_.clear();
    queued_events_ = 0;
    return false;
  }
  queued_events_ += change.events.size();
  queue_.push_back(std::move(change));
  return true;
}

void WatchQueue::CloseWith(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (!closed_.ok()) return;
  closed_ = std::move(status);
  queue_.clear();
  queued_events_ = 0;
}

absl::StatusOr<StoreChange> WatchQueue::Next(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || !closed_.ok(); };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  if (!queue_.empty()) {
    StoreChange c = std::move(queue_.front());
    queue_.pop_front();
    queued_events_ -= c.events.size();
    return c;
  }
  if (!closed_.ok()) return closed_;
  return absl::DeadlineExceededError("no store change before the deadline");
}

}  // namespace internal
}  // namespace shoal::manager::store
