// GlobalOrchestrator, driven with ReconcileOnce: one task per eligible node, following node
// joins, drains, pauses, label changes, DOWN nodes and removals; constraints; service removal;
// and the loop thread following a node join.
#include "manager/orchestrator/global.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::OrchestratorFixture;
using testing::WaitFor;

class GlobalTest : public ::testing::Test, public OrchestratorFixture {
 protected:
  void Reconcile() {
    absl::Status s = orch_.ReconcileOnce();
    ASSERT_TRUE(s.ok()) << s;
  }
  std::string TaskOn(const std::string& service, const std::string& node) {
    for (const api::Task& t : Live(service)) {
      if (t.node_id() == node) return t.id();
    }
    ADD_FAILURE() << "no live task on " << node;
    return "";
  }
  static api::Service WithConstraint(api::Service s, const std::string& c) {
    s.mutable_spec()->mutable_task_template()->mutable_placement()->add_constraints(c);
    return s;
  }

  GlobalOrchestrator orch_{&store(), options()};
};

TEST_F(GlobalTest, OneTaskPerNode) {
  for (const char* n : {"n1", "n2", "n3"}) AddNode(n);
  AddService(Global("g", "agent"));
  Reconcile();
  std::vector<api::Task> live = Live("g");
  ASSERT_EQ(live.size(), 3u);
  for (const api::Task& t : live) {
    EXPECT_EQ(t.slot(), 0u);
    EXPECT_EQ(t.annotations().name(), "agent." + t.node_id() + "." + t.id());
    EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
    EXPECT_EQ(t.status().state(), api::TASK_STATE_PENDING);  // nothing to allocate
  }
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1", "n2", "n3"));
  Reconcile();
  EXPECT_EQ(Tasks("g").size(), 3u);
  // Replicated services are not its business.
  AddService(Replicated("r", "web", 2));
  Reconcile();
  EXPECT_THAT(Tasks("r"), IsEmpty());
}

TEST_F(GlobalTest, NodeJoinGetsATask) {
  AddNode("n1");
  AddService(Global("g", "agent"));
  Reconcile();
  AddNode("n2");
  Reconcile();
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1", "n2"));
}

TEST_F(GlobalTest, DrainShutsDownAndReactivationRecreates) {
  AddNode("n1");
  AddNode("n2");
  AddService(Global("g", "agent"));
  Reconcile();
  const std::string t1 = TaskOn("g", "n1");
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  Reconcile();
  EXPECT_EQ(GetTask(t1).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n2"));
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_ACTIVE);
  });
  Reconcile();
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1", "n2"));
  EXPECT_NE(TaskOn("g", "n1"), t1);
}

TEST_F(GlobalTest, PausedNodeKeepsItsTaskButGetsNoNewOne) {
  AddNode("n1");
  AddService(Global("g", "agent"));
  Reconcile();
  const std::string t1 = TaskOn("g", "n1");
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  });
  AddNode("n2");
  UpdateNode("n2", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  });
  Reconcile();
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1"));
  EXPECT_EQ(TaskOn("g", "n1"), t1);
}

TEST_F(GlobalTest, FollowsLabelChangesAndConstraintChanges) {
  AddNode("n1", {{"zone", "east"}});
  AddNode("n2", {{"zone", "west"}});
  AddService(WithConstraint(Global("g", "agent"), "node.labels.zone==east"));
  Reconcile();
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1"));
  // n2 moves east: it gets one.
  UpdateNode("n2", [](api::Node* n) {
    (*n->mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "East";
  });
  Reconcile();
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1", "n2"));
  // n1 moves west: its task is shut down.
  const std::string t1 = TaskOn("g", "n1");
  UpdateNode("n1", [](api::Node* n) {
    (*n->mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "west";
  });
  Reconcile();
  EXPECT_EQ(GetTask(t1).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n2"));
  // The service's constraint changes to west.
  UpdateService("g", [](api::Service* s) {
    s->mutable_spec()->mutable_task_template()->mutable_placement()->set_constraints(
        0, "node.labels.zone!=east");
  });
  Reconcile();
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1"));
}

TEST_F(GlobalTest, InvalidConstraintsLeaveTheServiceAlone) {
  AddNode("n1");
  AddService(WithConstraint(Global("g", "agent"), "zone=east"));
  Reconcile();
  EXPECT_THAT(Tasks("g"), IsEmpty());
}

TEST_F(GlobalTest, RemovedNodeTaskIsShutDown) {
  AddNode("n1");
  AddNode("n2");
  AddService(Global("g", "agent"));
  Reconcile();
  const std::string t2 = TaskOn("g", "n2");
  Assign(t2, "n2");
  RemoveNode("n2");
  Reconcile();
  EXPECT_EQ(GetTask(t2).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1"));
}

TEST_F(GlobalTest, DownNodeTaskIsShutDownAndRecreatedWhenBack) {
  AddNode("n1");
  AddService(Global("g", "agent"));
  Reconcile();
  const std::string t1 = TaskOn("g", "n1");
  UpdateNode("n1", [](api::Node* n) { n->mutable_status()->set_state(api::NodeStatus::DOWN); });
  Reconcile();
  EXPECT_EQ(GetTask(t1).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_THAT(Live("g"), IsEmpty());
  UpdateNode("n1", [](api::Node* n) { n->mutable_status()->set_state(api::NodeStatus::READY); });
  Reconcile();
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1"));
}

TEST_F(GlobalTest, DownNodeWithinGraceKeepsItsTask) {
  OrchestratorOptions o = options();
  o.node_down_grace = absl::Seconds(30);
  GlobalOrchestrator orch(&store(), o);
  AddNode("n1");
  AddService(Global("g", "agent"));
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  const std::string t1 = TaskOn("g", "n1");
  UpdateNode("n1", [](api::Node* n) { n->mutable_status()->set_state(api::NodeStatus::DOWN); });
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  EXPECT_EQ(GetTask(t1).desired_state(), api::TASK_STATE_RUNNING);
  clock().Advance(absl::Seconds(30));
  ASSERT_TRUE(orch.ReconcileOnce().ok());
  EXPECT_EQ(GetTask(t1).desired_state(), api::TASK_STATE_SHUTDOWN);
}

TEST_F(GlobalTest, FinishedTaskIsNotDuplicated) {
  AddNode("n1");
  AddService(Global("g", "agent"));
  Reconcile();
  const std::string t1 = TaskOn("g", "n1");
  Assign(t1, "n1");
  SetState(t1, api::TASK_STATE_FAILED);
  Reconcile();
  EXPECT_EQ(Tasks("g").size(), 1u);  // the restart supervisor's business
}

TEST_F(GlobalTest, PendingDeleteMarksRemove) {
  AddNode("n1");
  AddNode("n2");
  AddService(Global("g", "agent"));
  Reconcile();
  Assign(TaskOn("g", "n1"), "n1");
  Assign(TaskOn("g", "n2"), "n2");
  UpdateService("g", [](api::Service* s) { s->set_pending_delete(true); });
  AddNode("n3");
  Reconcile();
  EXPECT_EQ(TasksDesired("g", api::TASK_STATE_REMOVE).size(), 2u);
  EXPECT_EQ(Tasks("g").size(), 2u);
}

TEST_F(GlobalTest, LoopFollowsNodes) {
  orch_.Start();
  AddService(Global("g", "agent"));
  AddNode("n1");
  EXPECT_TRUE(WaitFor([&] { return Live("g").size() == 1; }));
  AddNode("n2", {{"gpu", "yes"}});
  EXPECT_TRUE(WaitFor([&] { return Live("g").size() == 2; }));
  UpdateService("g", [](api::Service* s) {
    s->mutable_spec()->mutable_task_template()->mutable_placement()->add_constraints(
        "node.labels.gpu==yes");
  });
  EXPECT_TRUE(WaitFor([&] { return LiveNodes("g") == std::vector<std::string>{"n2"}; }));
  RemoveNode("n2");
  EXPECT_TRUE(WaitFor([&] { return Live("g").empty(); }));
  orch_.Stop();
}

}  // namespace
}  // namespace shoal::manager::orchestrator
