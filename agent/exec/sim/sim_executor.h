// sim: the simulated executor (`shoald --executor sim`, /work/shared/INTERFACE.md).
//
// A task "runs" as a record in memory, with no process behind it, so that scale tests and
// control-plane tests need no containers. The image name says what the simulated process does:
//
//   sim/exit:N                 exits with code N (0-255) right after it starts;
//   sim/crash-after:DURATION   exits with code 1 once DURATION (Go syntax: 2s, 500ms, 1m30s) has
//                              passed since it started;
//   anything else              runs until it is stopped.
//
// The image may carry a registry or namespace prefix and a digest ("docker.io/sim/exit:3",
// "sim/exit:3@sha256:…"): only the last two path components count. A malformed sim image
// ("sim/exit:x") is rejected when the controller is made.
//
// Stopping: Shutdown ends the process with code 0 (it honours the stop signal at once, whatever
// the grace); Terminate and Remove of a running process end it with 137 (killed).
//
// Restarts: with a `state_file`, the records outlive the executor as containers outlive dockerd:
// a new SimExecutor on the same file finds the processes still running (and exiting on schedule,
// since times are absolute), which is what lets a restarted agent adopt them. The file is written
// behind (at most `flush_delay` after a change) and when the executor is destroyed; a crash loses
// at most the changes of that window — simulated processes die with their daemon, as they would.
//
// Logs: every simulated process writes a real per-task log (sim_log.h: JSON lines with
// timestamps, as docker's json-file driver, bounded and rotated) — "sim: task <id> started (image
// X)" on stdout when it starts, "sim: exiting with code N" when it exits by itself (on stderr when
// N is not 0), "sim: stopped" when Shutdown, Terminate or Remove ends it. The files are in
// `log_dir` (default: sim-logs/ beside the state file) and go with the task when it is removed;
// log_source() reads them for `shoal service logs`.
//
// Time: start and exit times come from `clock`. A timer thread delivers scheduled exits; it looks
// at the clock at least every `poll_interval` of real time, so a ManualClock's Advance is noticed.
// Inspect() settles due exits itself, so a test sees them right after advancing the clock.
//
// Thread-safety: as Executor and Controller (agent/exec/executor.h). REQUIRES: the executor
// outlives its controllers.
#ifndef SHOAL_AGENT_EXEC_SIM_SIM_EXECUTOR_H_
#define SHOAL_AGENT_EXEC_SIM_SIM_EXECUTOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/exec/executor.h"
#include "agent/exec/sim/sim_log.h"
#include "agent/logs/log_source.h"
#include "common/clock.h"

namespace shoal::agent::exec {

// What a sim image asks the simulated process to do.
struct SimBehavior {
  enum class Kind { kRunForever, kExit, kCrashAfter };
  Kind kind = Kind::kRunForever;
  int exit_code = 0;                            // kExit: N; kCrashAfter: 1.
  absl::Duration after = absl::ZeroDuration();  // kCrashAfter.
};

// Errors: INVALID_ARGUMENT for a malformed sim/exit or sim/crash-after image.
absl::StatusOr<SimBehavior> ParseSimImage(absl::string_view image);

struct SimExecutorOptions {
  Clock* clock = &RealClock();
  // Where the records are kept across restarts (e.g. <state-dir>/worker/sim.json). Empty: in
  // memory only.
  std::string state_file;
  // Where the per-task logs go. Empty: <directory of state_file>/sim-logs, or no logs at all
  // when there is no state file either.
  std::string log_dir;
  absl::Duration poll_interval = absl::Milliseconds(20);
  absl::Duration flush_delay = absl::Milliseconds(100);
};

class SimExecutor : public Executor {
 public:
  // Loads `state_file` if it exists. Errors: the file cannot be read or parsed (the message
  // names it; delete it to start with no simulated processes).
  static absl::StatusOr<std::unique_ptr<SimExecutor>> Create(SimExecutorOptions options);
  ~SimExecutor() override;  // Writes the records. REQUIRES: every controller destroyed.
  SimExecutor(const SimExecutor&) = delete;
  SimExecutor& operator=(const SimExecutor&) = delete;

  api::EngineDescription Describe() const override;
  absl::StatusOr<std::unique_ptr<Controller>> NewController(const api::Task& task) override;
  absl::StatusOr<std::vector<std::string>> ListAdoptable() override;

  // Writes the records now (when there is a state file).
  absl::Status Flush();

  // The simulated processes' output, for the log publisher; null when there are no logs (no
  // log_dir and no state_file). Valid as long as the executor.
  logs::TaskLogSource* log_source() { return log_source_.get(); }
  // The directory of the per-task logs; "" when there are none.
  std::string log_dir() const;

  // For tests and `shoal info`: how many times the task's process was started (kept across
  // restarts; a task is never started twice), and how many processes run now.
  int64_t starts(const std::string& task_id) const;
  size_t running_count() const;

 private:
  friend class SimController;

  struct Process {
    std::string image;
    SimBehavior behavior;
    RuntimeState::Phase phase = RuntimeState::Phase::kCreated;
    absl::Time started_at = absl::InfinitePast();
    absl::Time exit_at = absl::InfiniteFuture();  // When a running process exits by itself.
    ExitStatus exit;
    int pid = 0;
    int64_t starts = 0;
  };
  struct Registration {
    const void* owner;
    Controller::ExitCallback fn;
  };

  explicit SimExecutor(SimExecutorOptions options);
  absl::Status Load();
  void Run();  // The timer thread.

  // Controller operations, by task ID.
  absl::Status Prepare(const std::string& id, const std::string& image);
  absl::Status Start(const std::string& id);
  absl::StatusOr<RuntimeState> Inspect(const std::string& id);
  void NotifyExit(const std::string& id, const void* owner, Controller::ExitCallback fn);
  void Unregister(const std::string& id, const void* owner);
  absl::Status Stop(const std::string& id, int exit_code);
  absl::Status Remove(const std::string& id);

  // Ends process `id` with `exit` and queues its exit callbacks.
  void EndLocked(const std::string& id, Process& p, ExitStatus exit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends `p` if its scheduled exit is due.
  void SettleLocked(const std::string& id, Process& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkDirtyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs the queued exit callbacks. REQUIRES: mu_ not held.
  void Deliver();
  std::string SerializeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends a line to the task's log (errors are logged: output is not worth failing a task).
  void LogLine(const std::string& id, api::LogStream stream, const std::string& line,
               absl::Time when);

  const SimExecutorOptions options_;
  Clock* const clock_;
  std::unique_ptr<SimLogStore> log_store_;  // null without logs
  std::unique_ptr<SimLogSource> log_source_;

  // Serialises callback registration and delivery, so that each callback runs at most once and
  // none runs after its controller is gone. Taken before mu_.
  absl::Mutex callback_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unordered_multimap<std::string, Registration> callbacks_ ABSL_GUARDED_BY(callback_mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Process> processes_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, std::string>> timers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, ExitStatus>> to_notify_ ABSL_GUARDED_BY(mu_);
  int next_pid_ ABSL_GUARDED_BY(mu_) = 1000;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time dirty_since_ ABSL_GUARDED_BY(mu_);  // Real time.
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex flush_mu_;  // Serialises file writes.
  std::thread thread_;
};

}  // namespace shoal::agent::exec

#endif  // SHOAL_AGENT_EXEC_SIM_SIM_EXECUTOR_H_
