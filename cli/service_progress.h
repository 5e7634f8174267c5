// Waiting for a service to converge after `service create|update|scale|rollback`, with docker's
// progress display:
//
//   overall progress: 2 out of 3 tasks
//   1/3: running
//   2/3: running
//   3/3: preparing
//   verify: Waiting 5 seconds to verify that tasks are stable...
//   verify: Service converged
//
// The judgement is a pure function over snapshots (EvaluateProgress: the service, its tasks and
// the nodes, at a time `now`), carrying what it must remember from one poll to the next in a
// ProgressState; WaitForService polls the daemon every 500 ms and feeds it. What counts, as
// docker counts it:
//   * Only tasks whose spec is the service's current task template ("up to date"), on nodes that
//     are not DOWN, and — for jobs — of the current job iteration.
//   * Replicated: converged when `replicas` such tasks are RUNNING with desired state RUNNING.
//     Global: when every node holding a task meant to run (any version) runs an up-to-date one;
//     nodes are those the managers created tasks for (eligibility is theirs to judge).
//     Replicated job: when total_completions tasks completed. Global job: when every node's
//     task completed.
//   * Services (not jobs) must then stay converged for the update monitor period (default 5 s)
//     before "Service converged"; a task failing meanwhile starts the wait over.
//   * The update status: a paused update or rollback, or an update that was rolled back, ends the
//     wait with an error saying so.
//   * A failure pattern ends the wait: the same error (Task.status.err, else its message) on
//     kFailureRepeats up-to-date tasks that failed (FAILED or REJECTED; COMPLETE for services
//     that are not jobs) since the wait began. The tasks go on being restarted by the managers;
//     the user is told to look at `shoal service ps`.
#ifndef SHOAL_CLI_SERVICE_PROGRESS_H_
#define SHOAL_CLI_SERVICE_PROGRESS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cli/context.h"
#include "objects.pb.h"

namespace shoal::cli {

inline constexpr int kFailureRepeats = 3;
// How long the CLI waits for convergence (docker waits without limit); -d does not wait.
inline constexpr absl::Duration kConvergenceTimeout = absl::Minutes(5);
inline constexpr absl::Duration kConvergencePoll = absl::Milliseconds(500);

// What one evaluation remembers for the next.
struct ProgressState {
  // Tasks that had failed before the wait began (they are not this change's failures).
  std::set<std::string> failed_before;
  // Failed tasks seen during the wait: task ID → its error. Kept although the task reaper may
  // delete the tasks, so that a pattern is seen even with a short history.
  std::map<std::string, std::string> failures;
  std::optional<absl::Time> converged_since;
  bool rolling_back = false;  // the update status said a rollback started
};

// A line of the display: `id` ("overall progress", "1/3", "verify", "rollback") and its text.
// A line with an empty id is printed as the text alone.
struct ProgressLine {
  std::string id;
  std::string text;
  // A countdown ("Waiting 4 seconds…"): printed once, not at every tick, when not on a terminal.
  bool countdown = false;
  bool operator==(const ProgressLine& o) const {
    return id == o.id && text == o.text && countdown == o.countdown;
  }
  std::string Render() const {
    if (id.empty()) return text;
    return text.empty() ? id + ":" : id + ": " + text;
  }
};

struct ProgressReport {
  enum class Outcome { kWaiting, kDone, kFailed };
  Outcome outcome = Outcome::kWaiting;
  std::vector<ProgressLine> lines;
  std::string error;   // kFailed: what went wrong (without the "see service ps" advice)
  uint64_t done = 0;   // tasks running (or jobs: completed) …
  uint64_t total = 0;  // … out of this many
};

// The IDs of tasks that have failed (terminal and not a job's COMPLETE), for
// ProgressState::failed_before.
std::set<std::string> FailedTaskIds(const std::vector<api::Task>& tasks);

// One evaluation. `rollback`: the command is `service rollback` (or `update --rollback`), so a
// rollback is what is expected, not a failure.
ProgressReport EvaluateProgress(const api::Service& service, const std::vector<api::Task>& tasks,
                                const std::vector<api::Node>& nodes, absl::Time now, bool rollback,
                                ProgressState* state);

// Shows successive sets of lines. On a terminal, the lines are redrawn in place; otherwise a
// line is printed when its text changed since it was last printed (a new id included).
class ProgressPrinter {
 public:
  ProgressPrinter(std::ostream& out, bool terminal) : out_(out), terminal_(terminal) {}
  void Show(const std::vector<ProgressLine>& lines);

 private:
  std::ostream& out_;
  const bool terminal_;
  std::vector<ProgressLine> drawn_;              // terminal: what is on the screen
  std::map<std::string, ProgressLine> printed_;  // plain: last line printed per id
};

struct WaitOptions {
  bool rollback = false;
  bool quiet = false;  // no progress display
  absl::Duration timeout = kConvergenceTimeout;
  absl::Duration poll = kConvergencePoll;
  std::set<std::string> failed_before;
};

// Polls GetService, ListTasks and ListNodes through ctx (timed by ctx.clock()) until
// EvaluateProgress says done; shows the progress on ctx.out() unless quiet. Throws CommandError
// when the service fails to converge (the report's error), is removed meanwhile, or has not
// converged after the timeout — saying how far it got and that the managers go on in the
// background. `name` is how the user named the service (for the messages).
void WaitForService(Context& ctx, const std::string& service_id, const std::string& name,
                    const WaitOptions& options);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SERVICE_PROGRESS_H_
