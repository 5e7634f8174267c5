#include "manager/loop/batching_loop.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "spdlog/spdlog.h"

namespace shoal::manager {
namespace {

// With an injected clock the loop re-reads it at least this often (real time).
constexpr absl::Duration kInjectedClockPoll = absl::Milliseconds(20);

}  // namespace

BatchingLoop::BatchingLoop(store::MemoryStore* store, BatchingLoopOptions options, std::string name,
                           std::vector<api::ObjectKind> kinds)
    : store_(store),
      options_(options),
      name_(std::move(name)),
      kinds_(std::move(kinds)),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock()) {}

BatchingLoop::~BatchingLoop() { Stop(); }

void BatchingLoop::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void BatchingLoop::Stop() {
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watcher_ != nullptr) watcher_->Close();
    thread = std::move(thread_);
  }
  if (thread.joinable()) thread.join();
}

bool BatchingLoop::Stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

absl::Status BatchingLoop::ReconcileOnce() {
  absl::MutexLock lock(&work_mu_);
  store_->View([&](const store::ReadTx& tx) ABSL_NO_THREAD_SAFETY_ANALYSIS { Rebuild(tx); });
  return CountedPass(/*resync=*/false);
}

absl::Status BatchingLoop::CountedPass(bool resync) {
  absl::Status s = Pass(resync);
  passes_.fetch_add(1);
  return s;
}

void BatchingLoop::Run() {
  store::WatchFilter filter;
  filter.kinds = kinds_;
  filter.queue_limit = options_.watch_queue_limit;
  while (true) {
    std::unique_ptr<store::Watcher> watcher;
    {
      absl::MutexLock work(&work_mu_);
      watcher = store_->ViewAndWatch(
          [&](const store::ReadTx& tx) ABSL_NO_THREAD_SAFETY_ANALYSIS { Rebuild(tx); }, filter);
    }
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      watcher_ = watcher.get();
    }
    absl::Time next_resync = clock_->Now() + options_.resync_interval;
    absl::Time retry_at = absl::InfiniteFuture();
    absl::Time window_end = absl::InfiniteFuture();
    bool due = true;  // The first pass, on the fresh view.
    bool resync = false;
    absl::Status closed;
    while (closed.ok() && !Stopping()) {
      if (due) {
        absl::MutexLock work(&work_mu_);
        absl::Status s = CountedPass(resync);
        if (!s.ok()) spdlog::warn("{}: {}", name_, s.ToString());
        const absl::Time now = clock_->Now();
        retry_at = s.ok() ? absl::InfiniteFuture() : now + options_.retry_after_error;
        if (resync) next_resync = now + options_.resync_interval;
        // Work left for later (e.g. decisions whose write did not commit) gets its own pass.
        window_end = s.ok() && HasWork() ? now + options_.batch_window : absl::InfiniteFuture();
        due = resync = false;
      }
      const absl::Time wake = std::min({next_resync, retry_at, window_end});
      absl::Duration wait = std::max(wake - clock_->Now(), absl::ZeroDuration());
      if (clock_ != &RealClock()) wait = std::min(wait, kInjectedClockPoll);
      absl::StatusOr<store::StoreChange> change = watcher->Next(absl::Now() + wait);
      if (change.ok()) {
        absl::MutexLock work(&work_mu_);
        Observe(*change);
        if (window_end == absl::InfiniteFuture() && HasWork()) {
          window_end = clock_->Now() + options_.batch_window;
        }
      } else if (!absl::IsDeadlineExceeded(change.status())) {
        closed = change.status();
      }
      const absl::Time now = clock_->Now();
      resync = now >= next_resync;
      due = resync || now >= window_end || now >= retry_at;
    }
    {
      absl::MutexLock lock(&mu_);
      watcher_ = nullptr;
      if (stopping_) return;
    }
    spdlog::info("{}: watch closed ({}); starting over from the store", name_,
                 std::string(closed.message()));
  }
}

}  // namespace shoal::manager
