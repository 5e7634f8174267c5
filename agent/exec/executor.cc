#include "agent/exec/executor.h"

#include <optional>
#include <utility>

namespace shoal::agent::exec {

void Cancellation::Cancel() {
  std::vector<std::function<void()>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
    cancelled_ = true;
    callbacks.swap(callbacks_);
  }
  for (auto& fn : callbacks) fn();
}

bool Cancellation::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void Cancellation::OnCancel(std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (!cancelled_) {
      callbacks_.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

absl::StatusOr<ExitStatus> Controller::Wait(Cancellation& cancel) {
  // Shared with the callbacks, which may outlive this call.
  struct WaitState {
    absl::Mutex mu;
    std::optional<ExitStatus> exit ABSL_GUARDED_BY(mu);
    bool cancelled ABSL_GUARDED_BY(mu) = false;
  };
  auto state = std::make_shared<WaitState>();
  NotifyExit([state](const ExitStatus& exit) {
    absl::MutexLock lock(&state->mu);
    state->exit = exit;
  });
  cancel.OnCancel([state] {
    absl::MutexLock lock(&state->mu);
    state->cancelled = true;
  });
  absl::MutexLock lock(&state->mu);
  auto done = [&state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
    return state->exit.has_value() || state->cancelled;
  };
  state->mu.Await(absl::Condition(&done));
  if (state->exit.has_value()) return *state->exit;
  return absl::CancelledError("the wait for the task's exit was cancelled");
}

}  // namespace shoal::agent::exec
