// task_lifecycle: the agent's one state-transition function for a task, and the statuses it
// reports. Pure: no I/O, no clock, no threads — the Worker gathers the facts, asks NextOp what to
// do, does it with the task's exec::Controller and reports the resulting status.
//
// A task moves ASSIGNED → ACCEPTED → PREPARING → READY → STARTING → RUNNING, one step per op,
// never past its desired state (a task whose desired state is READY is prepared and left there),
// and ends COMPLETE (exit 0), FAILED (non-zero exit, start failure, lost process), REJECTED
// (cannot be prepared here) or SHUTDOWN (stopped because its desired state is SHUTDOWN or it is
// no longer assigned). States only move forward; a finished task stays finished, and its runtime
// object is removed once the task is no longer assigned.
#ifndef SHOAL_AGENT_TASK_LIFECYCLE_H_
#define SHOAL_AGENT_TASK_LIFECYCLE_H_

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "agent/exec/executor.h"
#include "proto/objects.pb.h"
#include "proto/types.pb.h"

namespace shoal::agent {

// What the worker knows about one task.
struct TaskFacts {
  api::TaskState state = api::TASK_STATE_NEW;  // Of the latest status (reported or adopted).
  api::TaskState desired = api::TASK_STATE_NEW;
  bool assigned = true;                  // Still in the node's assignment set.
  bool attached = false;                 // A controller was made and the runtime inspected.
  std::optional<exec::ExitStatus> exit;  // The runtime reported the process's exit.
};

enum class TaskOp {
  kNone,          // Nothing to do until a fact changes.
  kAttach,        // Make the controller; Inspect the runtime (adopts what still runs).
  kAccept,        // → ACCEPTED
  kBeginPrepare,  // → PREPARING
  kPrepare,       // Controller::Prepare; → READY, or REJECTED
  kBeginStart,    // → STARTING
  kStart,         // Controller::Start; → RUNNING, or FAILED
  kFinish,        // The process exited: → COMPLETE, FAILED or SHUTDOWN (FinishedStatus)
  kShutdown,      // Controller::Shutdown (it may run); → SHUTDOWN
  kCancel,        // Never started: → SHUTDOWN without touching the runtime
  kRemove,        // Controller::Remove, then forget the task
};

const char* TaskOpName(TaskOp op);

TaskOp NextOp(const TaskFacts& facts);

// Finished states: COMPLETE and beyond.
bool IsTerminal(api::TaskState state);

// A status the agent reports: `state` with its usual message, observed at `now`.
api::TaskStatus MakeStatus(api::TaskState state, absl::Time now, const std::string& err = "");

// The status after the process ended with `exit`: SHUTDOWN when it was stopped because the task
// is to stop (`stop_wanted`), FAILED with `exit.error` when the runtime lost it, COMPLETE for
// code 0, else FAILED with "task: non-zero exit (N)". The exit code goes into container_status.
api::TaskStatus FinishedStatus(const exec::ExitStatus& exit, bool stop_wanted, absl::Time now);

// The failed state for an error at `state`: REJECTED before the task is ready, FAILED after.
api::TaskState FailureState(api::TaskState state);

}  // namespace shoal::agent

#endif  // SHOAL_AGENT_TASK_LIFECYCLE_H_
