#include "manager/orchestrator/reconcile_loop.h"

#include <algorithm>
#include <utility>

#include "absl/status/statusor.h"
#include "spdlog/spdlog.h"

namespace shoal::manager::orchestrator {
namespace {

// With an injected clock the loop re-reads it at least this often (real time).
constexpr absl::Duration kInjectedClockPoll = absl::Milliseconds(20);
// Changes taken off the watcher at most before a pass runs.
constexpr int kMaxChangesPerPass = 4096;

}  // namespace

absl::Status RetryAborted(const std::function<absl::Status()>& attempt, int tries) {
  absl::Status s;
  for (int i = 0; i < tries; ++i) {
    s = attempt();
    if (!absl::IsAborted(s)) return s;
  }
  return s;
}

ReconcileLoop::ReconcileLoop(store::MemoryStore* store, OrchestratorOptions options,
                             std::string name, std::vector<api::ObjectKind> kinds)
    : store_(store),
      options_(options),
      name_(std::move(name)),
      kinds_(std::move(kinds)),
      clock_(options.clock != nullptr ? options.clock : &RealClock()) {}

ReconcileLoop::~ReconcileLoop() { Stop(); }

void ReconcileLoop::Start() {
  if (thread_.joinable()) return;
  stop_requested_.store(false);
  thread_ = std::thread([this] { Run(); });
}

void ReconcileLoop::Stop() {
  stop_requested_.store(true);
  {
    absl::MutexLock lock(&mu_);
    if (watcher_ != nullptr) watcher_->Close();
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status ReconcileLoop::ReconcileOnce() {
  absl::MutexLock work(&work_mu_);
  store_->View([&](const store::ReadTx& tx) { MarkAll(tx); });
  absl::Status s = Process();
  passes_.fetch_add(1);
  return s;
}

void ReconcileLoop::Pass() {
  const absl::Status s = Process();
  passes_.fetch_add(1);
  if (s.ok()) {
    retry_at_ = absl::InfiniteFuture();
    if (!last_error_.empty()) spdlog::info("{}: recovered; pass succeeded", name_);
    last_error_.clear();
    return;
  }
  retry_at_ = clock_->Now() + options_.retry;
  if (StopRequested()) return;
  std::string message(s.message());
  if (message != last_error_) {
    spdlog::warn("{}: pass incomplete ({}); retrying in {}", name_, message,
                 absl::FormatDuration(options_.retry));
    last_error_ = std::move(message);
  }
}

void ReconcileLoop::Run() {
  store::WatchFilter filter;
  filter.kinds = kinds_;
  filter.queue_limit = options_.watch_queue_limit;
  const bool injected = clock_ != &RealClock();
  while (!StopRequested()) {
    std::unique_ptr<store::Watcher> watcher;
    {
      absl::MutexLock work(&work_mu_);
      watcher = store_->ViewAndWatch([&](const store::ReadTx& tx) { MarkAll(tx); }, filter);
    }
    {
      absl::MutexLock lock(&mu_);
      if (StopRequested()) return;
      watcher_ = watcher.get();
    }
    absl::Time next_resync = clock_->Now() + options_.resync;
    {
      absl::MutexLock work(&work_mu_);
      Pass();
    }

    absl::Status closed;
    while (closed.ok() && !StopRequested()) {
      absl::Time wake;
      {
        absl::MutexLock work(&work_mu_);
        wake = std::min({next_resync, NextWakeup(), retry_at_});
      }
      absl::Duration wait = std::max(wake - clock_->Now(), absl::ZeroDuration());
      if (injected) wait = std::min(wait, kInjectedClockPoll);
      absl::StatusOr<store::StoreChange> change = watcher->Next(
          wait == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + wait);
      if (change.ok()) {
        absl::MutexLock work(&work_mu_);
        for (const store::StoreEvent& e : change->events) Observe(e);
        for (int i = 0; i < kMaxChangesPerPass; ++i) {
          absl::StatusOr<store::StoreChange> more = watcher->Next(absl::InfinitePast());
          if (!more.ok()) {
            if (!absl::IsDeadlineExceeded(more.status())) closed = more.status();
            break;
          }
          for (const store::StoreEvent& e : more->events) Observe(e);
        }
        if (!closed.ok()) break;
        Pass();
      } else if (absl::IsDeadlineExceeded(change.status())) {
        const absl::Time now = clock_->Now();
        if (now < wake) continue;
        absl::MutexLock work(&work_mu_);
        if (now >= next_resync) {
          store_->View([&](const store::ReadTx& tx) { MarkAll(tx); });
          next_resync = now + options_.resync;
        }
        Pass();
      } else {
        closed = change.status();
      }
    }
    {
      absl::MutexLock lock(&mu_);
      watcher_ = nullptr;
    }
    if (StopRequested()) return;
    spdlog::info("{}: store watch closed ({}); starting over from the store", name_,
                 std::string(closed.message()));
  }
}

}  // namespace shoal::manager::orchestrator
