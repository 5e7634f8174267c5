// TaskReaper, driven with ReconcileOnce: history per slot / per node beyond the cluster's limit
// (oldest first, finished only), REMOVE tasks, services pending deletion, tasks of services or
// nodes that are gone; and the loop thread.
#include "manager/orchestrator/task_reaper.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using ::testing::IsEmpty;
using testing::OrchestratorFixture;
using ::testing::UnorderedElementsAre;
using testing::WaitFor;

class TaskReaperTest : public ::testing::Test, public OrchestratorFixture {
 protected:
  void Reap() {
    absl::Status s = reaper_.ReconcileOnce();
    ASSERT_TRUE(s.ok()) << s;
  }
  // Creates a task as the orchestrators would have (a second later than the previous one).
  void AddTask(const std::string& id, const std::string& service, uint64_t slot,
               const std::string& node, api::TaskState state, api::TaskState desired) {
    clock().Advance(absl::Seconds(1));
    api::Task t;
    t.set_id(id);
    t.set_service_id(service);
    t.set_slot(slot);
    t.set_node_id(node);
    t.mutable_status()->set_state(state);
    t.set_desired_state(desired);
    Write([&](store::WriteTx& tx) { return tx.Create(t); });
  }
  std::vector<std::string> Ids(const std::string& service) {
    std::vector<std::string> out;
    for (const api::Task& t : Tasks(service)) out.push_back(t.id());
    return out;
  }

  TaskReaper reaper_{&store(), options()};
};

TEST_F(TaskReaperTest, KeepsTheNewestHistoryPerSlot) {
  AddCluster(2);
  AddNode("n1");
  AddService(Replicated("svc", "web", 2));
  for (int i = 1; i <= 5; ++i) {
    AddTask(absl::StrCat("old", i), "svc", 1, "n1", api::TASK_STATE_FAILED,
            api::TASK_STATE_SHUTDOWN);
  }
  AddTask("cur1", "svc", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING);
  // Slot 2: within the limit.
  AddTask("s2old", "svc", 2, "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_SHUTDOWN);
  AddTask("cur2", "svc", 2, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING);
  Reap();
  EXPECT_THAT(Ids("svc"), UnorderedElementsAre("old4", "old5", "cur1", "s2old", "cur2"));
  Reap();
  EXPECT_EQ(Ids("svc").size(), 5u);
}

TEST_F(TaskReaperTest, OnlyFinishedTasksAreHistory) {
  AddCluster(0);
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  // Shut down but still running on its node: kept until it stops.
  AddTask("stopping", "svc", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_SHUTDOWN);
  // Shut down before it was ever assigned: nothing runs it.
  AddTask("unassigned", "svc", 1, "", api::TASK_STATE_PENDING, api::TASK_STATE_SHUTDOWN);
  // Finished, but still desired RUNNING (its restart policy did not restart it): its slot's task.
  AddTask("failed", "svc", 1, "n1", api::TASK_STATE_FAILED, api::TASK_STATE_RUNNING);
  Reap();
  EXPECT_THAT(Ids("svc"), UnorderedElementsAre("stopping", "failed"));
  SetState("stopping", api::TASK_STATE_SHUTDOWN);
  Reap();
  EXPECT_THAT(Ids("svc"), UnorderedElementsAre("failed"));
}

TEST_F(TaskReaperTest, DefaultAndUnlimitedRetention) {
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  for (int i = 1; i <= 7; ++i) {
    AddTask(absl::StrCat("t", i), "svc", 1, "n1", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
  }
  Reap();  // no cluster: 5
  EXPECT_EQ(Ids("svc").size(), 5u);
  AddCluster(-1);
  AddTask("t8", "svc", 1, "n1", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
  Reap();
  EXPECT_EQ(Ids("svc").size(), 6u);
}

TEST_F(TaskReaperTest, GlobalHistoryIsPerNode) {
  AddCluster(1);
  AddNode("n1");
  AddNode("n2");
  AddService(Global("g", "agent"));
  for (const char* n : {"n1", "n2"}) {
    for (int i = 1; i <= 3; ++i) {
      AddTask(absl::StrCat(n, "-", i), "g", 0, n, api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
    }
  }
  Reap();
  EXPECT_THAT(Ids("g"), UnorderedElementsAre("n1-3", "n2-3"));
}

TEST_F(TaskReaperTest, JobCompletionsAreKept) {
  AddCluster(0);
  AddNode("n1");
  AddService(ReplicatedJob("j", "batch", 1, 1));
  AddTask("done", "j", 1, "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE);
  Reap();
  EXPECT_THAT(Ids("j"), UnorderedElementsAre("done"));
}

TEST_F(TaskReaperTest, RemoveTasksGoOnceFinished) {
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  AddTask("stopped", "svc", 3, "n1", api::TASK_STATE_SHUTDOWN, api::TASK_STATE_REMOVE);
  AddTask("never", "svc", 4, "", api::TASK_STATE_NEW, api::TASK_STATE_REMOVE);
  AddTask("running", "svc", 5, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_REMOVE);
  Reap();
  EXPECT_THAT(Ids("svc"), UnorderedElementsAre("running"));
  SetState("running", api::TASK_STATE_SHUTDOWN);
  Reap();
  EXPECT_THAT(Ids("svc"), IsEmpty());
  EXPECT_TRUE(HasService("svc"));  // not being removed
}

TEST_F(TaskReaperTest, ServicePendingDeletionIsDeletedWhenItsTasksAreGone) {
  AddNode("n1");
  api::Service svc = Replicated("svc", "web", 1);
  svc.set_pending_delete(true);
  AddService(svc);
  AddTask("running", "svc", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_REMOVE);
  AddTask("history", "svc", 1, "n1", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
  AddTask("pending", "svc", 2, "", api::TASK_STATE_PENDING, api::TASK_STATE_RUNNING);
  Reap();
  EXPECT_THAT(Ids("svc"), UnorderedElementsAre("running"));
  EXPECT_TRUE(HasService("svc"));
  SetState("running", api::TASK_STATE_SHUTDOWN);
  Reap();
  EXPECT_THAT(Ids("svc"), IsEmpty());
  EXPECT_FALSE(HasService("svc"));
}

TEST_F(TaskReaperTest, TasksOfMissingServicesAndNodes) {
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  AddTask("orphan-running", "ghost", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING);
  AddTask("orphan-done", "ghost", 2, "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_RUNNING);
  AddNode("n2");
  AddTask("on-removed-node", "svc", 1, "n2", api::TASK_STATE_RUNNING, api::TASK_STATE_SHUTDOWN);
  AddTask("live-on-removed-node", "svc", 2, "n2", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING);
  RemoveNode("n2");
  Reap();
  EXPECT_THAT(Ids("ghost"), UnorderedElementsAre("orphan-running"));
  EXPECT_EQ(GetTask("orphan-running").desired_state(), api::TASK_STATE_REMOVE);
  // The live one is the replicated orchestrator's to replace first.
  EXPECT_THAT(Ids("svc"), UnorderedElementsAre("live-on-removed-node"));
}

TEST_F(TaskReaperTest, LoopFollowsChanges) {
  AddCluster(1);
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  reaper_.Start();
  AddTask("a", "svc", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_SHUTDOWN);
  AddTask("b", "svc", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_SHUTDOWN);
  SetState("a", api::TASK_STATE_SHUTDOWN);
  SetState("b", api::TASK_STATE_SHUTDOWN);
  EXPECT_TRUE(WaitFor([&] { return Ids("svc") == std::vector<std::string>{"b"}; }));
  UpdateService("svc", [](api::Service* s) { s->set_pending_delete(true); });
  EXPECT_TRUE(WaitFor([&] { return !HasService("svc"); }));
  reaper_.Stop();
}

}  // namespace
}  // namespace shoal::manager::orchestrator
