// RestartSupervisor, driven with ReconcileOnce and a ManualClock: replacements after the delay,
// restart conditions, max attempts within a window, global and job tasks, drained nodes, timers
// rebuilt by a new supervisor, and the loop thread.
#include "manager/orchestrator/restart.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/orchestrator/global.h"
#include "manager/orchestrator/jobs.h"
#include "manager/orchestrator/replicated.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using ::testing::IsEmpty;
using testing::OrchestratorFixture;
using testing::WaitFor;

class RestartTest : public ::testing::Test, public OrchestratorFixture {
 protected:
  void Restart() {
    absl::Status s = sup_.ReconcileOnce();
    ASSERT_TRUE(s.ok()) << s;
  }
  // A replicated service with one running task on n1; returns the task's ID.
  std::string RunOne(api::Service svc) {
    AddNode("n1");
    AddService(svc);
    ReplicatedOrchestrator orch(&store(), options());
    EXPECT_TRUE(orch.ReconcileOnce().ok());
    std::vector<api::Task> live = Live(svc.id());
    EXPECT_EQ(live.size(), 1u);
    if (live.empty()) return "";
    Assign(live[0].id(), "n1");
    return live[0].id();
  }
  // The one live task other than `old`.
  api::Task Replacement(const std::string& service, const std::string& old) {
    std::vector<api::Task> live = Live(service);
    for (const api::Task& t : live) {
      if (t.id() != old) return t;
    }
    ADD_FAILURE() << "no replacement of " << old;
    return api::Task();
  }
  // Fails the live task and lets the supervisor act; returns the new live task's ID ("" if none).
  std::string FailAndRestart(const std::string& service, const std::string& id,
                             api::TaskState state = api::TASK_STATE_FAILED) {
    SetState(id, state);
    Restart();
    for (const api::Task& t : Live(service)) {
      if (t.id() != id) return t.id();
    }
    return "";
  }

  RestartSupervisor sup_{&store(), options()};
};

TEST_F(RestartTest, FailedTaskIsReplacedAfterTheDelay) {
  const std::string old = RunOne(Replicated("svc", "web", 1));
  SetState(old, api::TASK_STATE_FAILED);
  Restart();
  EXPECT_EQ(GetTask(old).desired_state(), api::TASK_STATE_SHUTDOWN);
  api::Task next = Replacement("svc", old);
  EXPECT_EQ(next.slot(), 1u);
  EXPECT_EQ(next.status().state(), api::TASK_STATE_PENDING);  // nothing to allocate
  EXPECT_EQ(next.desired_state(), api::TASK_STATE_READY);     // waits out the 5 s default
  EXPECT_TRUE(next.node_id().empty());
  EXPECT_EQ(sup_.pending_delayed_starts(), 1u);

  clock().Advance(absl::Seconds(4));
  Restart();
  EXPECT_EQ(GetTask(next.id()).desired_state(), api::TASK_STATE_READY);
  clock().Advance(absl::Seconds(1));
  Restart();
  EXPECT_EQ(GetTask(next.id()).desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(sup_.pending_delayed_starts(), 0u);
  EXPECT_EQ(Live("svc").size(), 1u);
  // The replicated orchestrator sees nothing to add meanwhile or after.
  ReplicatedOrchestrator orch(&store(), options());
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  EXPECT_EQ(Tasks("svc").size(), 2u);
}

TEST_F(RestartTest, ZeroDelayStartsAtOnce) {
  api::Service svc = Replicated("svc", "web", 1);
  SetRestart(&svc, api::RestartPolicy::ANY, absl::ZeroDuration());
  const std::string old = RunOne(svc);
  const std::string next = FailAndRestart("svc", old);
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(GetTask(next).desired_state(), api::TASK_STATE_RUNNING);
}

TEST_F(RestartTest, EveryUnrequestedEndIsRestartedWithAny) {
  api::Service svc = Replicated("svc", "web", 1);
  SetRestart(&svc, api::RestartPolicy::ANY, absl::ZeroDuration());
  std::string id = RunOne(svc);
  for (api::TaskState s :
       {api::TASK_STATE_COMPLETE, api::TASK_STATE_SHUTDOWN, api::TASK_STATE_REJECTED,
        api::TASK_STATE_ORPHANED, api::TASK_STATE_FAILED}) {
    Assign(id, "n1");
    const std::string next = FailAndRestart("svc", id, s);
    ASSERT_FALSE(next.empty()) << api::TaskState_Name(s);
    id = next;
  }
  EXPECT_EQ(Tasks("svc").size(), 6u);
}

TEST_F(RestartTest, ConditionNoneLeavesTheTask) {
  api::Service svc = Replicated("svc", "web", 1);
  SetRestart(&svc, api::RestartPolicy::NONE, absl::ZeroDuration());
  const std::string old = RunOne(svc);
  EXPECT_EQ(FailAndRestart("svc", old), "");
  EXPECT_EQ(GetTask(old).desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(Tasks("svc").size(), 1u);
  // Nor does the orchestrator fill the slot.
  ReplicatedOrchestrator orch(&store(), options());
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  EXPECT_EQ(Tasks("svc").size(), 1u);
  Restart();
  EXPECT_EQ(Tasks("svc").size(), 1u);
}

TEST_F(RestartTest, OnFailureRestartsFailuresOnly) {
  api::Service svc = Replicated("svc", "web", 1);
  SetRestart(&svc, api::RestartPolicy::ON_FAILURE, absl::ZeroDuration());
  const std::string old = RunOne(svc);
  const std::string next = FailAndRestart("svc", old);
  ASSERT_FALSE(next.empty());
  Assign(next, "n1");
  EXPECT_EQ(FailAndRestart("svc", next, api::TASK_STATE_COMPLETE), "");
  EXPECT_EQ(Tasks("svc").size(), 2u);
}

TEST_F(RestartTest, MaxAttempts) {
  api::Service svc = Replicated("svc", "web", 1);
  SetRestart(&svc, api::RestartPolicy::ANY, absl::ZeroDuration(), 2);
  std::string id = RunOne(svc);
  for (int i = 0; i < 2; ++i) {
    clock().Advance(absl::Seconds(1));
    Assign(id, "n1");
    id = FailAndRestart("svc", id);
    ASSERT_FALSE(id.empty()) << "restart " << i + 1;
  }
  clock().Advance(absl::Seconds(1));
  Assign(id, "n1");
  EXPECT_EQ(FailAndRestart("svc", id), "");  // two restarts were allowed
  EXPECT_EQ(Tasks("svc").size(), 3u);
  // Stays given up.
  clock().Advance(absl::Hours(1));
  Restart();
  EXPECT_EQ(Tasks("svc").size(), 3u);
}

TEST_F(RestartTest, MaxAttemptsCountFromTheStoreForANewSupervisor) {
  api::Service svc = Replicated("svc", "web", 1);
  SetRestart(&svc, api::RestartPolicy::ANY, absl::ZeroDuration(), 1);
  std::string id = RunOne(svc);
  Assign(id, "n1");
  id = FailAndRestart("svc", id);
  ASSERT_FALSE(id.empty());
  clock().Advance(absl::Seconds(1));
  Assign(id, "n1");
  SetState(id, api::TASK_STATE_FAILED);
  RestartSupervisor fresh(&store(), options());  // e.g. after a leader change
  ASSERT_TRUE(fresh.ReconcileOnce().ok());
  EXPECT_EQ(Tasks("svc").size(), 2u);
}

TEST_F(RestartTest, MaxAttemptsWithinWindow) {
  api::Service svc = Replicated("svc", "web", 1);
  SetRestart(&svc, api::RestartPolicy::ANY, absl::ZeroDuration(), 1, absl::Seconds(10));
  std::string id = RunOne(svc);
  clock().Advance(absl::Seconds(1));
  id = FailAndRestart("svc", id);  // restart 1
  ASSERT_FALSE(id.empty());
  // Fails again 20 s later: the first restart is out of the window.
  clock().Advance(absl::Seconds(20));
  Assign(id, "n1");
  id = FailAndRestart("svc", id);
  ASSERT_FALSE(id.empty());
  // Fails again 5 s later: one restart within the window already.
  clock().Advance(absl::Seconds(5));
  Assign(id, "n1");
  EXPECT_EQ(FailAndRestart("svc", id), "");
}

TEST_F(RestartTest, DrainedNodeSkipsTheDelay) {
  const std::string old = RunOne(Replicated("svc", "web", 1));
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  const std::string next = FailAndRestart("svc", old);
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(GetTask(next).desired_state(), api::TASK_STATE_RUNNING);
}

TEST_F(RestartTest, GlobalTaskIsReplacedOnItsNode) {
  AddNode("n1");
  AddNode("n2");
  api::Service g = Global("g", "agent");
  SetRestart(&g, api::RestartPolicy::ANY, absl::ZeroDuration());
  AddService(g);
  GlobalOrchestrator orch(&store(), options());
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  std::string on1, on2;
  for (const api::Task& t : Live("g")) (t.node_id() == "n1" ? on1 : on2) = t.id();
  Assign(on1, "n1");
  Assign(on2, "n2");
  const std::string next = FailAndRestart("g", on1);
  ASSERT_FALSE(next.empty());
  EXPECT_EQ(GetTask(next).node_id(), "n1");
  EXPECT_EQ(GetTask(next).slot(), 0u);
  // A task on a drained node is not restarted there: the global orchestrator shuts it down.
  UpdateNode("n2", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  SetState(on2, api::TASK_STATE_FAILED);
  Restart();
  EXPECT_EQ(Live("g").size(), 2u);  // the new n1 task and the failed n2 one
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  EXPECT_EQ(GetTask(on2).desired_state(), api::TASK_STATE_SHUTDOWN);
  // A paused node: the restart waits until the node is active again.
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  });
  Assign(next, "n1");
  SetState(next, api::TASK_STATE_FAILED);
  Restart();
  EXPECT_EQ(GetTask(next).desired_state(), api::TASK_STATE_RUNNING);
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_ACTIVE);
  });
  Restart();
  EXPECT_EQ(GetTask(next).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(LiveNodes("g"), std::vector<std::string>{"n1"});
}

TEST_F(RestartTest, JobTasks) {
  AddNode("n1");
  AddService(ReplicatedJob("j", "batch", 2, 2));
  JobOrchestrator jobs(&store(), options());
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  std::vector<api::Task> live = Live("j");
  ASSERT_EQ(live.size(), 2u);
  Assign(live[0].id(), "n1", api::TASK_STATE_COMPLETE);
  Assign(live[1].id(), "n1", api::TASK_STATE_FAILED);
  Restart();
  // The completion is final; the failure is retried in its slot, same iteration, after 5 s.
  EXPECT_EQ(GetTask(live[0].id()).desired_state(), api::TASK_STATE_COMPLETE);
  EXPECT_EQ(GetTask(live[1].id()).desired_state(), api::TASK_STATE_SHUTDOWN);
  api::Task next = Replacement("j", live[0].id());
  if (next.id() == live[1].id()) next = Live("j").back();
  EXPECT_EQ(next.slot(), live[1].slot());
  EXPECT_EQ(next.job_iteration().index(), 1u);
  EXPECT_EQ(next.desired_state(), api::TASK_STATE_READY);
  clock().Advance(absl::Seconds(5));
  Restart();
  EXPECT_EQ(GetTask(next.id()).desired_state(), api::TASK_STATE_COMPLETE);
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  EXPECT_EQ(Tasks("j").size(), 3u);
}

TEST_F(RestartTest, NoRestartForARemovedService) {
  const std::string old = RunOne(Replicated("svc", "web", 1));
  UpdateService("svc", [](api::Service* s) { s->set_pending_delete(true); });
  EXPECT_EQ(FailAndRestart("svc", old), "");
  EXPECT_EQ(Tasks("svc").size(), 1u);
}

TEST_F(RestartTest, ANewSupervisorFinishesDelayedStarts) {
  const std::string old = RunOne(Replicated("svc", "web", 1));
  SetState(old, api::TASK_STATE_FAILED);
  {
    RestartSupervisor first(&store(), options());
    ASSERT_TRUE(first.ReconcileOnce().ok());
  }
  const std::string next = Replacement("svc", old).id();
  EXPECT_EQ(GetTask(next).desired_state(), api::TASK_STATE_READY);
  clock().Advance(absl::Seconds(2));
  RestartSupervisor second(&store(), options());
  ASSERT_TRUE(second.ReconcileOnce().ok());
  EXPECT_EQ(GetTask(next).desired_state(), api::TASK_STATE_READY);
  EXPECT_EQ(second.pending_delayed_starts(), 1u);
  clock().Advance(absl::Seconds(3));
  ASSERT_TRUE(second.ReconcileOnce().ok());
  EXPECT_EQ(GetTask(next).desired_state(), api::TASK_STATE_RUNNING);
}

TEST_F(RestartTest, LoopRestartsAfterTheDelay) {
  const std::string old = RunOne(Replicated("svc", "web", 1));
  sup_.Start();
  SetState(old, api::TASK_STATE_FAILED);
  ASSERT_TRUE(WaitFor([&] { return Live("svc").size() == 1 && Live("svc")[0].id() != old; }));
  const std::string next = Live("svc")[0].id();
  EXPECT_EQ(GetTask(next).desired_state(), api::TASK_STATE_READY);
  clock().Advance(absl::Seconds(5));
  EXPECT_TRUE(WaitFor([&] { return GetTask(next).desired_state() == api::TASK_STATE_RUNNING; }));
  sup_.Stop();
}

}  // namespace
}  // namespace shoal::manager::orchestrator
