// Worker: runs the node's assigned tasks (docs/orchestration.md, "Agents and executors").
//
// It receives the node's tasks from Dispatcher.Assignments (a COMPLETE set, then INCREMENTAL
// changes), runs one exec::Controller per task, and reports each task's status changes with
// Dispatcher.UpdateTaskStatus. Both calls go over the node's dispatcher session
// (agent::Session::connection(): its session ID and channel).
//
// Per task the decisions are task_lifecycle.h's NextOp: ASSIGNED → ACCEPTED → PREPARING → READY
// → STARTING → RUNNING, never past the desired state, then COMPLETE / FAILED per exit code;
// desired SHUTDOWN stops the task (SHUTDOWN); a task that leaves the set (desired REMOVE, deleted,
// or absent from a COMPLETE set) is stopped, reported SHUTDOWN, removed from the runtime and
// forgotten. Runtime objects of tasks the set does not know (left over from an earlier life) are
// removed the same way when a COMPLETE set arrives.
//
// Threads:
//   - assignments: opens the stream whenever a session is open, applies its messages, and
//     reopens it (backoff between min_backoff and max_backoff) when it ends, or at once when an
//     INCREMENTAL message does not apply to the set it holds (it then gets a COMPLETE set);
//   - a pool of `threads` task threads: each task's ops run on one of them, one op at a time per
//     task; exits arrive through Controller::NotifyExit, so a running task holds no thread and
//     thousands of tasks per worker are fine;
//   - reporter: coalesces status changes (the latest per task) for `batch_window`, sends them in
//     calls of at most `max_batch`, and retries failed calls with backoff, never letting an older
//     status overwrite a newer one;
//   - supervisor: every `poll_interval` notices a new session (then resends every task's latest
//     status and drops an assignments stream of an older session), re-runs ops that failed once
//     their backoff passed, and saves the task records (at most `save_delay` after a change).
//
// Restarts: the records are kept in <state_dir>/worker/tasks.json (worker_state.h). Start()
// loads them and attaches every task at once: the controller's Inspect says what the runtime
// still has, so a task that still runs is adopted (reported RUNNING, never started again), one
// that exited meanwhile is reported COMPLETE / FAILED, and one whose process is gone while it
// was RUNNING is reported FAILED. Stop() leaves tasks running (SIGTERM semantics).
//
// Time: status timestamps come from `clock`. Batching, backoff and polling are real-time
// transport concerns and use absl::Now(); no test needs to advance a clock for them.
//
// Thread-safety: every public method may be called from any thread.
#ifndef SHOAL_AGENT_WORKER_H_
#define SHOAL_AGENT_WORKER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/exec/executor.h"
#include "agent/session.h"
#include "agent/task_lifecycle.h"
#include "agent/worker_state.h"
#include "common/clock.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::agent {

struct WorkerOptions {
  // The daemon's --state-dir; the records go to <state_dir>/worker/tasks.json. Empty: none kept.
  std::string state_dir;
  // REQUIRES: set, and outlives the worker.
  exec::Executor* executor = nullptr;
  // The open session, or an empty one (e.g. [s] { return s->connection(); } for a Session).
  // Called from the worker's threads. REQUIRES: set.
  std::function<DispatcherConnection()> connection;
  Clock* clock = &RealClock();
  int threads = 4;
  absl::Duration batch_window = absl::Milliseconds(50);
  int max_batch = 200;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  absl::Duration rpc_timeout = absl::Seconds(10);
  absl::Duration poll_interval = absl::Milliseconds(50);
  absl::Duration save_delay = absl::Milliseconds(100);
  // Called (on a task thread) when a task the worker received in ASSIGNED reaches RUNNING, with
  // the real time that took on this node: pull, prepare, start. May be null.
  std::function<void(absl::Duration)> on_task_started;
};

struct WorkerStats {
  int64_t status_calls = 0;     // Successful UpdateTaskStatus calls.
  int64_t statuses_sent = 0;    // Updates in them.
  int64_t status_failures = 0;  // Failed calls (retried).
  int64_t largest_batch = 0;
  int64_t assignment_streams = 0;  // Streams opened.
  int64_t assignment_messages = 0;
  int64_t sessions = 0;  // Distinct sessions seen (each triggers a resend of every status).
};

class Worker {
 public:
  // Loads the records (an unreadable file is logged and ignored: the COMPLETE set and the
  // executor's Inspect rebuild everything) and starts the threads. Errors: INVALID_ARGUMENT for
  // unusable options.
  static absl::StatusOr<std::unique_ptr<Worker>> Start(WorkerOptions options);

  ~Worker();  // Stop()
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Joins the threads (an op in progress finishes first), saves the records, and releases the
  // controllers; tasks keep running in the runtime. Idempotent.
  void Stop();

  // Wakes the threads waiting for a session (call it when the session changes; they also poll).
  void Kick();

  // The latest status the worker holds for a task (its own, or the manager's before it acted).
  std::optional<api::TaskStatus> task_status(const std::string& task_id) const;
  // The tasks the worker holds (assigned, or being stopped and removed).
  std::vector<std::string> task_ids() const;
  // Status changes not yet acknowledged by a dispatcher.
  size_t pending_statuses() const;
  WorkerStats stats() const;

  // The secrets and configs the node's tasks reference, with their data, as the assignments
  // delivered them (held in memory only, never written to disk). NOT_FOUND when not assigned.
  absl::StatusOr<api::Secret> secret(const std::string& id) const;
  absl::StatusOr<api::Config> config(const std::string& id) const;

 private:
  struct Runner {
    api::Task task;
    api::TaskStatus status;
    bool assigned = true;
    bool attached = false;
    std::optional<exec::ExitStatus> exit;
    // Touched only by the task thread that holds `busy`, and by Stop() after the pool is gone.
    std::unique_ptr<exec::Controller> controller;
    bool busy = false;
    bool queued = false;
    bool forgotten = false;
    uint64_t incarnation = 0;
    absl::Time retry_at = absl::InfinitePast();  // Real time.
    absl::Duration backoff = absl::ZeroDuration();
    // Real time the worker first saw the task ASSIGNED (for on_task_started); InfinitePast when
    // it arrived in a later state (e.g. after a restart).
    absl::Time assigned_at = absl::InfinitePast();
    // The controller's latest health verdict; carried into the task's RUNNING statuses.
    api::TaskStatus::Health health = api::TaskStatus::UNKNOWN;
  };

  explicit Worker(WorkerOptions options);

  void RunAssignments();
  void RunReporter();
  void RunSupervisor();
  void RunTasks();

  void Drive(const std::shared_ptr<Runner>& runner);
  // Performs `op` for `runner` (not holding mu_).
  void Perform(TaskOp op, const std::shared_ptr<Runner>& runner);
  // Records a failed op: logged, retried after the runner's backoff.
  void OpFailed(const std::shared_ptr<Runner>& runner, TaskOp op, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WatchExit(const std::shared_ptr<Runner>& runner);
  void OnExit(const std::string& task_id, uint64_t incarnation, const exec::ExitStatus& exit);
  // The controller's progress message (shown while PREPARING) and health (while RUNNING),
  // reported as a new status of the same state when they change.
  void OnControllerStatus(const std::string& task_id, uint64_t incarnation,
                          const exec::ControllerStatus& controller_status);

  void Apply(const api::AssignmentsMessage& message);
  void UpsertLocked(const api::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnassignLocked(const std::string& task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Secrets and configs: UPDATE stores, REMOVE drops.
  void ApplyDependencyLocked(const api::AssignmentChange& change)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked(const std::shared_ptr<Runner>& runner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(Runner& runner, api::TaskStatus status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueStatusLocked(const std::string& task_id, const api::TaskStatus& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TaskFacts FactsLocked(const Runner& runner) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkDirtyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Waits up to `d` of real time, or until stopping or kicked. False when stopping.
  bool Pause(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);
  void Save();
  std::string StatePath() const;

  const WorkerOptions options_;
  Clock* const clock_;
  exec::Executor* const executor_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t kicks_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, std::shared_ptr<Runner>> runners_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, api::Secret> secrets_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, api::Config> configs_ ABSL_GUARDED_BY(mu_);
  uint64_t next_incarnation_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::shared_ptr<Runner>> run_queue_ ABSL_GUARDED_BY(mu_);
  // Statuses to report: the latest per task, in the order the tasks first changed.
  absl::flat_hash_map<std::string, api::TaskStatus> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> pending_order_ ABSL_GUARDED_BY(mu_);
  bool state_dirty_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time dirty_since_ ABSL_GUARDED_BY(mu_);
  // The session the statuses were last (re)sent for, and the open assignments stream.
  DispatcherConnection seen_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* stream_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string stream_session_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* report_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  WorkerStats stats_ ABSL_GUARDED_BY(mu_);

  absl::Mutex save_mu_;  // Serialises writes of the records.
  absl::Mutex stop_mu_;  // Serialises Stop() callers around the joins.
  std::thread assignments_thread_;
  std::thread reporter_thread_;
  std::thread supervisor_thread_;
  std::vector<std::thread> task_threads_;
};

}  // namespace shoal::agent

#endif  // SHOAL_AGENT_WORKER_H_
