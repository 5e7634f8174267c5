#include "manager/dispatcher/write_batcher.h"

#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"

namespace shoal::manager {

WriteBatcher::WriteBatcher(store::MemoryStore* store, WriteBatcherOptions options)
    : store_(store), options_(options) {
  thread_ = std::thread([this] { Run(); });
}

WriteBatcher::~WriteBatcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void WriteBatcher::WriteAsync(WriteFn fn, DoneFn done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Pending{std::move(fn), std::move(done)});
      return;
    }
  }
  done(absl::UnavailableError("the dispatcher is shutting down; retry with the current leader"));
}

absl::Status WriteBatcher::Write(WriteFn fn) {
  absl::Notification finished;
  absl::Status result;
  WriteAsync(std::move(fn), [&](absl::Status s) {
    result = std::move(s);
    finished.Notify();
  });
  finished.WaitForNotification();
  return result;
}

size_t WriteBatcher::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

void WriteBatcher::Run() {
  for (;;) {
    std::deque<Pending> writes;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) {
        writes.swap(queue_);
      } else {
        while (!queue_.empty() && writes.size() < options_.max_writes_per_commit) {
          writes.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      if (stopping_) {
        for (Pending& p : writes) {
          p.done(absl::UnavailableError(
              "the dispatcher is shutting down; retry with the current leader"));
        }
        return;
      }
    }
    Commit(writes);
  }
}

void WriteBatcher::Commit(std::deque<Pending>& writes) {
  std::vector<absl::Status> own(writes.size());
  absl::Status commit;
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    commit = store_->Batch([&](store::Batch& batch) -> absl::Status {
      for (size_t i = 0; i < writes.size(); ++i) own[i] = batch.Update(writes[i].fn);
      return absl::OkStatus();
    });
    if (commit.code() != absl::StatusCode::kAborted) break;
  }
  {
    absl::MutexLock lock(&mu_);
    ++commits_;
  }
  for (size_t i = 0; i < writes.size(); ++i) {
    // A function's own error stands; otherwise the commit's result is everyone's.
    const bool own_error = !own[i].ok() && (commit.ok() || own[i] != commit);
    writes[i].done(own_error ? own[i] : commit);
  }
}

}  // namespace shoal::manager
