// ReplicatedOrchestrator, driven with ReconcileOnce: slots filled, scaling up and down (which
// slots go), lost nodes (drain, DOWN with and without grace, removed), finished tasks that keep
// their slot, removal of a service; and the loop thread following changes.
#include "manager/orchestrator/replicated.h"

#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using ::testing::ElementsAre;
using testing::OrchestratorFixture;
using testing::WaitFor;

class ReplicatedTest : public ::testing::Test, public OrchestratorFixture {
 protected:
  void Reconcile() {
    absl::Status s = orch_.ReconcileOnce();
    ASSERT_TRUE(s.ok()) << s;
  }
  // The live task in `slot`.
  api::Task InSlot(const std::string& service, uint64_t slot) {
    for (api::Task& t : Live(service)) {
      if (t.slot() == slot) return t;
    }
    ADD_FAILURE() << "no live task in slot " << slot;
    return api::Task();
  }

  ReplicatedOrchestrator orch_{&store(), options()};
};

TEST_F(ReplicatedTest, CreatesOneTaskPerSlot) {
  AddCluster(5, "json-file");
  AddService(Replicated("svc", "web", 3));
  Reconcile();
  std::vector<api::Task> tasks = Live("svc");
  ASSERT_EQ(tasks.size(), 3u);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const api::Task& t = tasks[i];
    EXPECT_EQ(t.slot(), i + 1);
    EXPECT_EQ(t.annotations().name(), "web." + std::to_string(i + 1) + "." + t.id());
    EXPECT_EQ(t.service_annotations().name(), "web");
    EXPECT_EQ(t.status().state(), api::TASK_STATE_PENDING);  // nothing to allocate
    EXPECT_EQ(FromProto(t.status().timestamp()), clock().Now());
    EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
    EXPECT_EQ(t.spec().container_spec().image(), "sim/run");
    EXPECT_EQ(t.spec_version().index(), 1u);
    EXPECT_EQ(t.log_driver().name(), "json-file");
    EXPECT_TRUE(t.node_id().empty());
  }
  // Nothing more to do.
  Reconcile();
  EXPECT_EQ(Tasks("svc").size(), 3u);
}

TEST_F(ReplicatedTest, IgnoresOtherModes) {
  AddService(Global("g", "glob"));
  AddService(ReplicatedJob("j", "job", 1, 1));
  AddNode("n1");
  Reconcile();
  EXPECT_TRUE(Tasks("g").empty());
  EXPECT_TRUE(Tasks("j").empty());
  EXPECT_TRUE(orch_.Reconcile("nosuch").ok());
}

TEST_F(ReplicatedTest, ScaleUpFillsTheLowestFreeSlots) {
  AddService(Replicated("svc", "web", 5));
  Reconcile();
  // Slots 2 and 4 lose their task (e.g. shut down by an update that has not replaced them).
  UpdateTask(InSlot("svc", 2).id(),
             [](api::Task* t) { t->set_desired_state(api::TASK_STATE_SHUTDOWN); });
  UpdateTask(InSlot("svc", 4).id(),
             [](api::Task* t) { t->set_desired_state(api::TASK_STATE_SHUTDOWN); });
  ASSERT_THAT(LiveSlots("svc"), ElementsAre(1, 3, 5));
  SetReplicas("svc", 6);
  Reconcile();
  EXPECT_THAT(LiveSlots("svc"), ElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_SHUTDOWN).size(), 2u);  // kept as history
}

TEST_F(ReplicatedTest, ScaleDownRemovesHighestSlotsWhenBalanced) {
  for (const char* n : {"n1", "n2", "n3"}) AddNode(n);
  AddService(Replicated("svc", "web", 6));
  Reconcile();
  for (const api::Task& t : Live("svc")) {
    Assign(t.id(), "n" + std::to_string((t.slot() - 1) % 3 + 1));
  }
  SetReplicas("svc", 3);
  Reconcile();
  EXPECT_THAT(LiveSlots("svc"), ElementsAre(1, 2, 3));
  std::vector<api::Task> removed = TasksDesired("svc", api::TASK_STATE_REMOVE);
  ASSERT_EQ(removed.size(), 3u);
  EXPECT_EQ(removed[0].slot(), 4u);
  EXPECT_EQ(removed[1].slot(), 5u);
  EXPECT_EQ(removed[2].slot(), 6u);
  // Once is enough.
  Reconcile();
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_REMOVE).size(), 3u);
}

TEST_F(ReplicatedTest, ScaleDownPrefersUnplacedThenCrowdedNodes) {
  AddNode("n1");
  AddNode("n2");
  AddService(Replicated("svc", "web", 4));
  Reconcile();
  Assign(InSlot("svc", 1).id(), "n1");
  Assign(InSlot("svc", 2).id(), "n1");
  Assign(InSlot("svc", 3).id(), "n2");
  // Slot 4 is still waiting for the scheduler.
  SetReplicas("svc", 2);
  Reconcile();
  EXPECT_THAT(LiveSlots("svc"), ElementsAre(1, 3));  // one per node left
}

TEST_F(ReplicatedTest, ScaleDownPrefersTasksNotRunning) {
  for (const char* n : {"n1", "n2", "n3"}) AddNode(n);
  AddService(Replicated("svc", "web", 3));
  Reconcile();
  Assign(InSlot("svc", 1).id(), "n1", api::TASK_STATE_PREPARING);
  Assign(InSlot("svc", 2).id(), "n2");
  Assign(InSlot("svc", 3).id(), "n3");
  SetReplicas("svc", 2);
  Reconcile();
  EXPECT_THAT(LiveSlots("svc"), ElementsAre(2, 3));
}

TEST_F(ReplicatedTest, ScaleToZeroAndBack) {
  AddService(Replicated("svc", "web", 2));
  Reconcile();
  SetReplicas("svc", 0);
  Reconcile();
  EXPECT_TRUE(Live("svc").empty());
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_REMOVE).size(), 2u);
  SetReplicas("svc", 2);
  Reconcile();
  EXPECT_THAT(LiveSlots("svc"), ElementsAre(1, 2));
}

TEST_F(ReplicatedTest, FinishedTaskKeepsItsSlot) {
  // A task that ended but is still desired RUNNING is the restart supervisor's business (or
  // stays, per its restart policy): the orchestrator does not fill its slot again.
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  Reconcile();
  const std::string id = InSlot("svc", 1).id();
  Assign(id, "n1");
  SetState(id, api::TASK_STATE_FAILED);
  Reconcile();
  ASSERT_EQ(Tasks("svc").size(), 1u);
  EXPECT_EQ(Live("svc")[0].id(), id);
}

TEST_F(ReplicatedTest, DrainedNodeTasksAreReplaced) {
  AddNode("n1");
  AddNode("n2");
  AddService(Replicated("svc", "web", 2));
  Reconcile();
  const std::string a = InSlot("svc", 1).id(), b = InSlot("svc", 2).id();
  Assign(a, "n1");
  Assign(b, "n2");
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  Reconcile();
  EXPECT_EQ(GetTask(a).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(GetTask(b).desired_state(), api::TASK_STATE_RUNNING);
  std::vector<api::Task> live = Live("svc");
  ASSERT_EQ(live.size(), 2u);
  EXPECT_EQ(live[0].slot(), 1u);
  EXPECT_NE(live[0].id(), a);
  EXPECT_TRUE(live[0].node_id().empty());  // for the scheduler to place
  EXPECT_EQ(live[0].desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(live[1].id(), b);
  // A paused node keeps its tasks.
  UpdateNode("n2", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  });
  Reconcile();
  EXPECT_EQ(GetTask(b).desired_state(), api::TASK_STATE_RUNNING);
}

TEST_F(ReplicatedTest, DownNodeTasksAreReplacedAtOnceByDefault) {
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  Reconcile();
  const std::string a = InSlot("svc", 1).id();
  Assign(a, "n1");
  UpdateNode("n1", [](api::Node* n) { n->mutable_status()->set_state(api::NodeStatus::DOWN); });
  Reconcile();
  EXPECT_EQ(GetTask(a).desired_state(), api::TASK_STATE_SHUTDOWN);
  ASSERT_EQ(Live("svc").size(), 1u);
  EXPECT_NE(Live("svc")[0].id(), a);
}

TEST_F(ReplicatedTest, DownNodeGraceIsHonoured) {
  OrchestratorOptions o = options();
  o.node_down_grace = absl::Seconds(30);
  ReplicatedOrchestrator orch(&store(), o);
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  const std::string a = InSlot("svc", 1).id();
  Assign(a, "n1");
  UpdateNode("n1", [](api::Node* n) { n->mutable_status()->set_state(api::NodeStatus::DOWN); });
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  clock().Advance(absl::Seconds(29));
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  EXPECT_EQ(GetTask(a).desired_state(), api::TASK_STATE_RUNNING);
  clock().Advance(absl::Seconds(1));
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  EXPECT_EQ(GetTask(a).desired_state(), api::TASK_STATE_SHUTDOWN);
  ASSERT_EQ(Live("svc").size(), 1u);
}

TEST_F(ReplicatedTest, RemovedNodeTasksAreReplaced) {
  AddNode("n1");
  AddService(Replicated("svc", "web", 1));
  Reconcile();
  const std::string a = InSlot("svc", 1).id();
  Assign(a, "n1");
  RemoveNode("n1");
  Reconcile();
  EXPECT_EQ(GetTask(a).desired_state(), api::TASK_STATE_SHUTDOWN);
  ASSERT_EQ(Live("svc").size(), 1u);
  EXPECT_NE(Live("svc")[0].id(), a);
}

TEST_F(ReplicatedTest, PendingDeleteMarksRunningTasksRemove) {
  AddNode("n1");
  AddService(Replicated("svc", "web", 3));
  Reconcile();
  Assign(InSlot("svc", 1).id(), "n1");
  Assign(InSlot("svc", 2).id(), "n1", api::TASK_STATE_ASSIGNED);
  const std::string unassigned = InSlot("svc", 3).id();
  UpdateService("svc", [](api::Service* s) { s->set_pending_delete(true); });
  Reconcile();
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_REMOVE).size(), 2u);
  // Never assigned: nothing runs it; the reaper deletes it as it is.
  EXPECT_EQ(GetTask(unassigned).desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(Tasks("svc").size(), 3u);  // and no new ones
}

TEST_F(ReplicatedTest, LoopFollowsChanges) {
  orch_.Start();
  AddService(Replicated("svc", "web", 2));
  EXPECT_TRUE(WaitFor([&] { return Live("svc").size() == 2; }));
  SetReplicas("svc", 4);
  EXPECT_TRUE(WaitFor([&] { return Live("svc").size() == 4; }));
  AddNode("n1");
  Assign(InSlot("svc", 1).id(), "n1");
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  EXPECT_TRUE(WaitFor([&] {
    return TasksDesired("svc", api::TASK_STATE_SHUTDOWN).size() == 1 && Live("svc").size() == 4;
  }));
  SetReplicas("svc", 1);
  EXPECT_TRUE(WaitFor([&] { return Live("svc").size() == 1; }));
  orch_.Stop();
  orch_.Stop();  // idempotent
  // Restartable.
  orch_.Start();
  SetReplicas("svc", 2);
  EXPECT_TRUE(WaitFor([&] { return Live("svc").size() == 2; }));
  orch_.Stop();
}

}  // namespace
}  // namespace shoal::manager::orchestrator
