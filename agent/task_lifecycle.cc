#include "agent/task_lifecycle.h"

#include "absl/strings/str_cat.h"

namespace shoal::agent {

const char* TaskOpName(TaskOp op) {
  switch (op) {
    case TaskOp::kNone:
      return "none";
    case TaskOp::kAttach:
      return "attach";
    case TaskOp::kAccept:
      return "accept";
    case TaskOp::kBeginPrepare:
      return "begin-prepare";
    case TaskOp::kPrepare:
      return "prepare";
    case TaskOp::kBeginStart:
      return "begin-start";
    case TaskOp::kStart:
      return "start";
    case TaskOp::kFinish:
      return "finish";
    case TaskOp::kShutdown:
      return "shutdown";
    case TaskOp::kCancel:
      return "cancel";
    case TaskOp::kRemove:
      return "remove";
  }
  return "?";
}

bool IsTerminal(api::TaskState state) { return state >= api::TASK_STATE_COMPLETE; }

TaskOp NextOp(const TaskFacts& f) {
  if (!f.attached) return TaskOp::kAttach;
  const bool terminal = IsTerminal(f.state);
  // An exit the runtime reported is the truth, whatever was wanted meanwhile.
  if (!terminal && f.exit.has_value()) return TaskOp::kFinish;

  const bool stop_wanted = !f.assigned || f.desired >= api::TASK_STATE_SHUTDOWN;
  if (stop_wanted) {
    if (!terminal) return f.state >= api::TASK_STATE_STARTING ? TaskOp::kShutdown : TaskOp::kCancel;
    return f.assigned ? TaskOp::kNone : TaskOp::kRemove;
  }
  if (terminal) return TaskOp::kNone;

  // One step forward, if the desired state allows it.
  struct Step {
    api::TaskState below;  // Taken while state < below …
    TaskOp op;             // … and `below` <= desired.
  };
  static constexpr Step kSteps[] = {
      {api::TASK_STATE_ACCEPTED, TaskOp::kAccept},
      {api::TASK_STATE_PREPARING, TaskOp::kBeginPrepare},
      {api::TASK_STATE_READY, TaskOp::kPrepare},
      {api::TASK_STATE_STARTING, TaskOp::kBeginStart},
      {api::TASK_STATE_RUNNING, TaskOp::kStart},
  };
  for (const Step& step : kSteps) {
    if (f.state < step.below) return step.below <= f.desired ? step.op : TaskOp::kNone;
  }
  return TaskOp::kNone;  // RUNNING: the exit will tell.
}

api::TaskState FailureState(api::TaskState state) {
  return state < api::TASK_STATE_READY ? api::TASK_STATE_REJECTED : api::TASK_STATE_FAILED;
}

api::TaskStatus MakeStatus(api::TaskState state, absl::Time now, const std::string& err) {
  api::TaskStatus status;
  status.set_state(state);
  const char* message = "";
  switch (state) {
    case api::TASK_STATE_ACCEPTED:
      message = "accepted";
      break;
    case api::TASK_STATE_PREPARING:
      message = "preparing";
      break;
    case api::TASK_STATE_READY:
      message = "prepared";
      break;
    case api::TASK_STATE_STARTING:
      message = "starting";
      break;
    case api::TASK_STATE_RUNNING:
      message = "started";
      break;
    case api::TASK_STATE_COMPLETE:
      message = "finished";
      break;
    case api::TASK_STATE_SHUTDOWN:
      message = "shutdown";
      break;
    case api::TASK_STATE_FAILED:
      message = "failed";
      break;
    case api::TASK_STATE_REJECTED:
      message = "rejected";
      break;
    default:
      break;
  }
  status.set_message(message);
  status.set_err(err);
  const int64_t nanos = absl::ToUnixNanos(now);
  status.mutable_timestamp()->set_seconds(nanos / 1000000000);
  status.mutable_timestamp()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return status;
}

api::TaskStatus FinishedStatus(const exec::ExitStatus& exit, bool stop_wanted, absl::Time now) {
  api::TaskStatus status;
  if (exit.stopped && stop_wanted) {
    status = MakeStatus(api::TASK_STATE_SHUTDOWN, now);
  } else if (!exit.error.empty()) {
    status = MakeStatus(api::TASK_STATE_FAILED, now, exit.error);
  } else if (exit.exit_code == 0) {
    status = MakeStatus(api::TASK_STATE_COMPLETE, now);
  } else {
    status = MakeStatus(api::TASK_STATE_FAILED, now,
                        absl::StrCat("task: non-zero exit (", exit.exit_code, ")"));
  }
  status.mutable_container_status()->set_exit_code(exit.exit_code);
  return status;
}

}  // namespace shoal::agent
