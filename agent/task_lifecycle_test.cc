// The task state-transition function and the statuses it leads to.
#include "agent/task_lifecycle.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

using ::testing::ElementsAre;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

// Applies NextOp until nothing is left to do, as the worker would with a controller that always
// succeeds, and returns the ops taken.
std::vector<TaskOp> Step(TaskFacts& f) {
  std::vector<TaskOp> ops;
  for (int i = 0; i < 20; ++i) {
    const TaskOp op = NextOp(f);
    if (op == TaskOp::kNone) break;
    ops.push_back(op);
    switch (op) {
      case TaskOp::kAttach:
        f.attached = true;
        break;
      case TaskOp::kAccept:
        f.state = api::TASK_STATE_ACCEPTED;
        break;
      case TaskOp::kBeginPrepare:
        f.state = api::TASK_STATE_PREPARING;
        break;
      case TaskOp::kPrepare:
        f.state = api::TASK_STATE_READY;
        break;
      case TaskOp::kBeginStart:
        f.state = api::TASK_STATE_STARTING;
        break;
      case TaskOp::kStart:
        f.state = api::TASK_STATE_RUNNING;
        break;
      case TaskOp::kFinish:
        f.state =
            FinishedStatus(*f.exit, !f.assigned || f.desired >= api::TASK_STATE_SHUTDOWN, kNow)
                .state();
        break;
      case TaskOp::kShutdown:
      case TaskOp::kCancel:
        f.state = api::TASK_STATE_SHUTDOWN;
        break;
      case TaskOp::kRemove:
        return ops;
      case TaskOp::kNone:
        break;
    }
  }
  return ops;
}

TEST(NextOpTest, AssignedTaskRunsStepByStep) {
  TaskFacts f;
  f.state = api::TASK_STATE_ASSIGNED;
  f.desired = api::TASK_STATE_RUNNING;
  EXPECT_THAT(Step(f), ElementsAre(TaskOp::kAttach, TaskOp::kAccept, TaskOp::kBeginPrepare,
                                   TaskOp::kPrepare, TaskOp::kBeginStart, TaskOp::kStart));
  EXPECT_EQ(f.state, api::TASK_STATE_RUNNING);
  // Running: the exit decides.
  f.exit = exec::ExitStatus{0, false, ""};
  EXPECT_THAT(Step(f), ElementsAre(TaskOp::kFinish));
  EXPECT_EQ(f.state, api::TASK_STATE_COMPLETE);
}

TEST(NextOpTest, NeverPastTheDesiredState) {
  TaskFacts f;
  f.state = api::TASK_STATE_ASSIGNED;
  f.desired = api::TASK_STATE_READY;
  EXPECT_THAT(Step(f), ElementsAre(TaskOp::kAttach, TaskOp::kAccept, TaskOp::kBeginPrepare,
                                   TaskOp::kPrepare));
  EXPECT_EQ(f.state, api::TASK_STATE_READY);
  f.desired = api::TASK_STATE_RUNNING;  // Released.
  EXPECT_THAT(Step(f), ElementsAre(TaskOp::kBeginStart, TaskOp::kStart));

  TaskFacts assigned_only;
  assigned_only.attached = true;
  assigned_only.state = api::TASK_STATE_ASSIGNED;
  assigned_only.desired = api::TASK_STATE_ASSIGNED;
  EXPECT_EQ(NextOp(assigned_only), TaskOp::kNone);
}

TEST(NextOpTest, JobsRunToCompletion) {
  TaskFacts f;
  f.state = api::TASK_STATE_ASSIGNED;
  f.desired = api::TASK_STATE_COMPLETE;
  Step(f);
  EXPECT_EQ(f.state, api::TASK_STATE_RUNNING);
  f.exit = exec::ExitStatus{3, false, ""};
  Step(f);
  EXPECT_EQ(f.state, api::TASK_STATE_FAILED);
}

TEST(NextOpTest, DesiredShutdownStopsOrCancels) {
  TaskFacts running;
  running.attached = true;
  running.state = api::TASK_STATE_RUNNING;
  running.desired = api::TASK_STATE_SHUTDOWN;
  EXPECT_EQ(NextOp(running), TaskOp::kShutdown);
  running.state = api::TASK_STATE_STARTING;
  EXPECT_EQ(NextOp(running), TaskOp::kShutdown);

  TaskFacts accepted = running;
  accepted.state = api::TASK_STATE_ACCEPTED;
  EXPECT_EQ(NextOp(accepted), TaskOp::kCancel);

  TaskFacts done = running;
  done.state = api::TASK_STATE_SHUTDOWN;
  EXPECT_EQ(NextOp(done), TaskOp::kNone);  // Kept until it leaves the set.
  done.assigned = false;
  EXPECT_EQ(NextOp(done), TaskOp::kRemove);
}

TEST(NextOpTest, UnassignedTasksStopThenGo) {
  TaskFacts f;
  f.attached = true;
  f.state = api::TASK_STATE_RUNNING;
  f.desired = api::TASK_STATE_RUNNING;
  f.assigned = false;
  EXPECT_THAT(Step(f), ElementsAre(TaskOp::kShutdown, TaskOp::kRemove));

  TaskFacts never_attached;
  never_attached.assigned = false;
  EXPECT_THAT(Step(never_attached), ElementsAre(TaskOp::kAttach, TaskOp::kCancel, TaskOp::kRemove));
}

TEST(NextOpTest, AnExitBeatsAStopRequest) {
  TaskFacts f;
  f.attached = true;
  f.state = api::TASK_STATE_RUNNING;
  f.desired = api::TASK_STATE_SHUTDOWN;
  f.exit = exec::ExitStatus{2, false, ""};
  EXPECT_EQ(NextOp(f), TaskOp::kFinish);
  f.state = api::TASK_STATE_FAILED;
  EXPECT_EQ(NextOp(f), TaskOp::kNone);
}

TEST(FinishedStatusTest, ExitCodesAndStops) {
  api::TaskStatus ok = FinishedStatus({0, false, ""}, false, kNow);
  EXPECT_EQ(ok.state(), api::TASK_STATE_COMPLETE);
  EXPECT_EQ(ok.err(), "");
  EXPECT_EQ(ok.timestamp().seconds(), 1700000000);

  api::TaskStatus failed = FinishedStatus({3, false, ""}, false, kNow);
  EXPECT_EQ(failed.state(), api::TASK_STATE_FAILED);
  EXPECT_EQ(failed.err(), "task: non-zero exit (3)");
  EXPECT_EQ(failed.container_status().exit_code(), 3);

  EXPECT_EQ(FinishedStatus({0, true, ""}, true, kNow).state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(FinishedStatus({137, true, ""}, true, kNow).state(), api::TASK_STATE_SHUTDOWN);
  // Stopped by someone else while it should run: judged by its code.
  EXPECT_EQ(FinishedStatus({137, true, ""}, false, kNow).state(), api::TASK_STATE_FAILED);

  api::TaskStatus lost = FinishedStatus({0, false, "task: gone"}, false, kNow);
  EXPECT_EQ(lost.state(), api::TASK_STATE_FAILED);
  EXPECT_EQ(lost.err(), "task: gone");
}

TEST(FailureStateTest, RejectedBeforeReadyFailedAfter) {
  EXPECT_EQ(FailureState(api::TASK_STATE_ASSIGNED), api::TASK_STATE_REJECTED);
  EXPECT_EQ(FailureState(api::TASK_STATE_PREPARING), api::TASK_STATE_REJECTED);
  EXPECT_EQ(FailureState(api::TASK_STATE_READY), api::TASK_STATE_FAILED);
  EXPECT_EQ(FailureState(api::TASK_STATE_RUNNING), api::TASK_STATE_FAILED);
}

TEST(MakeStatusTest, MessagesAsDocker) {
  EXPECT_EQ(MakeStatus(api::TASK_STATE_RUNNING, kNow).message(), "started");
  EXPECT_EQ(MakeStatus(api::TASK_STATE_READY, kNow).message(), "prepared");
  EXPECT_EQ(MakeStatus(api::TASK_STATE_REJECTED, kNow, "bad image").err(), "bad image");
}

}  // namespace
}  // namespace shoal::agent
