// executor: the seam between the agent's worker and a container runtime.
//
// An Executor knows one runtime (`sim` now, containerd next). For every task the worker asks it
// for a Controller, which drives that one task's runtime object (a container, a simulated
// process) through its life:
//
//   Prepare   create what the task needs (pull the image, create the container). An error
//             rejects the task (REJECTED).
//   Start     start it. An error fails the task (FAILED).
//   (exit)    the runtime reports the exit through NotifyExit callbacks (or the blocking Wait).
//   Shutdown  stop it gracefully (stop signal, then kill after `grace`); Terminate kills at once.
//   Remove    delete everything the task left behind, stopping it first if it still runs.
//
// Every operation is idempotent (Prepare on a prepared task, Start on a running one, Remove of
// nothing succeed) because the worker retries and because, after an agent restart, it resumes a
// task from whatever its last report said: Inspect tells it what the runtime really has, so a
// task that still runs is adopted instead of being started twice.
//
// Asynchrony: exits arrive through NotifyExit callbacks so that a worker can hold thousands of
// running tasks without a thread blocked per task; the blocking Wait (with a Cancellation) is a
// convenience built on it. The other operations may block (an image pull takes minutes); the
// worker calls them from a small pool of threads.
//
// Thread-safety: Executor methods may be called from any thread concurrently. A Controller's
// operations are called by one thread at a time (the worker serialises them per task), except
// NotifyExit, Inspect and the destructor, which may be called from any thread. NotifyExit
// callbacks run on any thread (the runtime's event thread, or the thread of the operation that
// caused the exit) and must not block or call back into the same Controller. Once the
// Controller's destructor returns, none of its callbacks runs any more.
#ifndef SHOAL_AGENT_EXEC_EXECUTOR_H_
#define SHOAL_AGENT_EXEC_EXECUTOR_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/objects.pb.h"
#include "proto/types.pb.h"

namespace shoal::agent::exec {

// How a task's process ended.
struct ExitStatus {
  int exit_code = 0;
  // True when Shutdown, Terminate or Remove ended it (rather than the process itself).
  bool stopped = false;
  // Set when the runtime lost the process or failed it for a reason of its own ("OOM killed",
  // "the executor no longer has the task"); the task then fails with this message whatever the
  // exit code.
  std::string error;
};

// What a controller tells the worker about its task besides the exit: progress while it
// prepares (the task's status message) and the result of its health check.
struct ControllerStatus {
  // The latest progress message ("pulling busybox: 3.1 MB / 12 MB"); empty when there is none.
  std::string message;
  // The health check's verdict: UNKNOWN without a check (or before the task started), then
  // STARTING, HEALTHY or UNHEALTHY. An UNHEALTHY task is killed by the executor, whose exit then
  // carries the error ("task: unhealthy container (...)").
  api::TaskStatus::Health health = api::TaskStatus::UNKNOWN;
};

// What the runtime holds for a task.
struct RuntimeState {
  enum class Phase {
    kAbsent,   // Nothing: never prepared, or removed.
    kCreated,  // Prepared, not started.
    kRunning,
    kExited,  // `exit` says how.
  };
  Phase phase = Phase::kAbsent;
  ExitStatus exit;           // Valid when kExited.
  std::string container_id;  // Empty when kAbsent.
  int pid = 0;               // 0 unless kRunning.
};

// A one-shot cancellation signal for blocking calls. Thread-safe.
class Cancellation {
 public:
  void Cancel();
  bool cancelled() const;
  // Calls `fn` once when Cancel() is called (at once if it already was), on the cancelling
  // thread. `fn` must not block.
  void OnCancel(std::function<void()> fn);

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::function<void()>> callbacks_ ABSL_GUARDED_BY(mu_);
};

class Controller {
 public:
  using ExitCallback = std::function<void(const ExitStatus&)>;
  using StatusListener = std::function<void(const ControllerStatus&)>;

  virtual ~Controller() = default;

  // Creates the runtime object for the task (image, container, ...). Idempotent. An error means
  // the task cannot run here (the worker reports REJECTED with the message).
  virtual absl::Status Prepare() = 0;
  // Starts the prepared task. Idempotent while it runs. Errors: FAILED_PRECONDITION when it was
  // not prepared or has already exited (a task is never started twice).
  virtual absl::Status Start() = 0;
  // What the runtime holds for the task now.
  virtual absl::StatusOr<RuntimeState> Inspect() = 0;
  // Registers `on_exit`, called once when the started process exits — at once, on this thread,
  // if it already has. Never called for a task that is removed before it started. Each
  // registered callback runs at most once.
  virtual void NotifyExit(ExitCallback on_exit) = 0;
  // Stops the task gracefully: the stop signal, then a kill once `grace` has passed. Returns
  // when it has stopped. OK when it was not running.
  virtual absl::Status Shutdown(absl::Duration grace) = 0;
  // Kills the task at once. OK when it was not running.
  virtual absl::Status Terminate() = 0;
  // Deletes the runtime object (stopping the task first if it runs). OK when there is nothing.
  virtual absl::Status Remove() = 0;

  // Registers `listener` (replacing an earlier one; null removes it), called with the whole
  // current ControllerStatus whenever it changes, and once at once when there is something to
  // say already. It runs on any thread, must not block or call back into the same Controller,
  // and never runs after this call replaced it or the Controller was destroyed. Default: runtimes
  // with nothing to report ignore it.
  virtual void SetStatusListener(StatusListener listener) { (void)listener; }

  // Blocks until the process exits (its ExitStatus) or `cancel` fires (CANCELLED).
  absl::StatusOr<ExitStatus> Wait(Cancellation& cancel);
};

class Executor {
 public:
  virtual ~Executor() = default;

  // The runtime, for NodeDescription.engine ("sim", "containerd 1.6.20").
  virtual api::EngineDescription Describe() const = 0;
  // A controller for `task`. Errors: INVALID_ARGUMENT when the task spec cannot run on this
  // runtime at all (the worker rejects the task). A task that carries only its ID (a leftover
  // that ListAdoptable named but nobody assigns any more) must still get a controller able to
  // Inspect, Shutdown and Remove what the runtime holds for it.
  virtual absl::StatusOr<std::unique_ptr<Controller>> NewController(const api::Task& task) = 0;
  // IDs of the tasks the runtime holds something for (created, running or exited) — what a
  // restarted agent may adopt, and what it must clean up when it is no longer assigned.
  virtual absl::StatusOr<std::vector<std::string>> ListAdoptable() = 0;
};

}  // namespace shoal::agent::exec

#endif  // SHOAL_AGENT_EXEC_EXECUTOR_H_
