// ConstraintEnforcer, driven with ReconcileOnce next to the orchestrators that refill what it
// shuts down: labels removed (==, !=), role changes, a node still matching, resources that
// shrink (which tasks go), global services left to the global orchestrator, tasks already shut
// down or finished, PAUSEd nodes, replicated jobs; then the loop thread: a new leader's enforcer
// fixing what it finds at start and following node changes, and all loops together.
#include "manager/orchestrator/constraint_enforcer.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/orchestrator/global.h"
#include "manager/orchestrator/jobs.h"
#include "manager/orchestrator/orchestrators.h"
#include "manager/orchestrator/replicated.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using ::testing::ElementsAre;
using testing::OrchestratorFixture;
using testing::WaitFor;

constexpr int64_t kGiB = int64_t{1} << 30;

api::Service WithConstraint(api::Service s, const std::string& expr) {
  s.mutable_spec()->mutable_task_template()->mutable_placement()->add_constraints(expr);
  return s;
}

api::Service WithMemory(api::Service s, int64_t bytes) {
  s.mutable_spec()
      ->mutable_task_template()
      ->mutable_resources()
      ->mutable_reservations()
      ->set_memory_bytes(bytes);
  return s;
}

class ConstraintEnforcerTest : public ::testing::Test, public OrchestratorFixture {
 protected:
  void Enforce() {
    absl::Status s = enforcer_.ReconcileOnce();
    ASSERT_TRUE(s.ok()) << s;
  }
  void Replicate() {
    absl::Status s = replicated_.ReconcileOnce();
    ASSERT_TRUE(s.ok()) << s;
  }
  void SetLabel(const std::string& node, const std::string& key, const std::string& value) {
    UpdateNode(node, [&](api::Node* n) {
      (*n->mutable_spec()->mutable_annotations()->mutable_labels())[key] = value;
    });
  }
  void RemoveLabel(const std::string& node, const std::string& key) {
    UpdateNode(node, [&](api::Node* n) {
      n->mutable_spec()->mutable_annotations()->mutable_labels()->erase(key);
    });
  }
  void SetMemory(const std::string& node, int64_t bytes) {
    UpdateNode(node, [&](api::Node* n) {
      n->mutable_description()->mutable_resources()->set_nano_cpus(4'000'000'000);
      n->mutable_description()->mutable_resources()->set_memory_bytes(bytes);
    });
  }
  // Creates the service's tasks and puts the i-th live one on nodes[i % nodes.size()], RUNNING.
  std::vector<std::string> Deploy(const api::Service& s, const std::vector<std::string>& nodes,
                                  api::TaskState state = api::TASK_STATE_RUNNING) {
    AddService(s);
    Replicate();
    std::vector<std::string> ids;
    std::vector<api::Task> live = Live(s.id());
    for (size_t i = 0; i < live.size(); ++i) {
      Assign(live[i].id(), nodes[i % nodes.size()], state);
      ids.push_back(live[i].id());
    }
    return ids;
  }
  // IDs of the service's live tasks on `node`.
  std::vector<std::string> LiveOn(const std::string& service, const std::string& node) {
    std::vector<std::string> out;
    for (const api::Task& t : Live(service)) {
      if (t.node_id() == node) out.push_back(t.id());
    }
    return out;
  }

  ConstraintEnforcer enforcer_{&store(), options()};
  ReplicatedOrchestrator replicated_{&store(), options()};
};

TEST_F(ConstraintEnforcerTest, LabelRemovedMovesTasksOffTheNode) {
  AddNode("n1", {{"zone", "a"}});
  AddNode("n2", {{"zone", "a"}});
  const std::vector<std::string> ids =
      Deploy(WithConstraint(Replicated("svc", "web", 4), "node.labels.zone==a"), {"n1", "n2"});
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 0u);

  RemoveLabel("n1", "zone");
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 2u);
  std::vector<uint64_t> moved_slots;
  for (const std::string& id : ids) {
    const api::Task t = GetTask(id);
    if (t.node_id() == "n1") {
      EXPECT_EQ(t.desired_state(), api::TASK_STATE_SHUTDOWN);
      EXPECT_EQ(t.status().message(),
                "task no longer satisfies placement constraints (node.labels.zone==a)");
      EXPECT_EQ(t.status().state(), api::TASK_STATE_RUNNING);  // the agent's to change
      EXPECT_EQ(t.status().applied_by(), "constraint-enforcer");
      moved_slots.push_back(t.slot());
    } else {
      EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
      EXPECT_NE(t.status().applied_by(), "constraint-enforcer");
    }
  }
  ASSERT_EQ(moved_slots.size(), 2u);

  // The replicated orchestrator refills the two slots at once (desired RUNNING, not yet placed).
  Replicate();
  std::vector<api::Task> live = Live("svc");
  ASSERT_EQ(live.size(), 4u);
  EXPECT_THAT(LiveSlots("svc"), ElementsAre(1, 2, 3, 4));
  for (const api::Task& t : live) {
    EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
    EXPECT_NE(t.node_id(), "n1");
  }
  for (uint64_t slot : moved_slots) {
    for (const api::Task& t : live) {
      if (t.slot() == slot) {
        EXPECT_TRUE(t.node_id().empty());
      }
    }
  }
  // Nothing more to do: the shut-down tasks are no longer live.
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 2u);
}

TEST_F(ConstraintEnforcerTest, NodeStillMatchingKeepsItsTasks) {
  AddNode("n1", {{"zone", "a"}});
  const std::vector<std::string> ids =
      Deploy(WithConstraint(Replicated("svc", "web", 2), "node.labels.zone==a"), {"n1"});
  Deploy(Replicated("free", "unconstrained", 1), {"n1"});
  // Other labels change, the zone's value changes case (values compare without case), the
  // hostname changes.
  SetLabel("n1", "rack", "r7");
  SetLabel("n1", "zone", "A");
  UpdateNode("n1", [](api::Node* n) { n->mutable_description()->set_hostname("renamed"); });
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 0u);
  for (const std::string& id : ids) EXPECT_EQ(GetTask(id).desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(Live("free").size(), 1u);
  // A service without constraints stays wherever its labels go.
  RemoveLabel("n1", "zone");
  Enforce();
  EXPECT_EQ(LiveOn("free", "n1").size(), 1u);
  EXPECT_TRUE(LiveOn("svc", "n1").empty());
}

TEST_F(ConstraintEnforcerTest, NotEqualConstraint) {
  AddNode("n1");
  AddNode("n2");
  Deploy(WithConstraint(Replicated("svc", "web", 2), "node.labels.gpu!=yes"), {"n1", "n2"});
  SetLabel("n2", "gpu", "no");
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 0u);
  SetLabel("n1", "gpu", "yes");
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 1u);
  std::vector<api::Task> down = TasksDesired("svc", api::TASK_STATE_SHUTDOWN);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].node_id(), "n1");
  EXPECT_EQ(down[0].status().message(),
            "task no longer satisfies placement constraints (node.labels.gpu!=yes)");
  EXPECT_EQ(LiveOn("svc", "n2").size(), 1u);
}

TEST_F(ConstraintEnforcerTest, RoleChange) {
  AddNode("n1");
  AddNode("n2");
  UpdateNode("n1", [](api::Node* n) { n->set_role(api::NODE_ROLE_MANAGER); });
  UpdateNode("n2", [](api::Node* n) { n->set_role(api::NODE_ROLE_MANAGER); });
  Deploy(WithConstraint(Replicated("mgr", "on-managers", 2), "node.role==manager"), {"n1", "n2"});
  // n2 is demoted: the role it has (Node.role) is what counts.
  UpdateNode("n2", [](api::Node* n) {
    n->mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
    n->set_role(api::NODE_ROLE_WORKER);
  });
  Enforce();
  std::vector<api::Task> down = TasksDesired("mgr", api::TASK_STATE_SHUTDOWN);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].node_id(), "n2");
  EXPECT_EQ(down[0].status().message(),
            "task no longer satisfies placement constraints (node.role==manager)");
  EXPECT_EQ(LiveOn("mgr", "n1").size(), 1u);
  Replicate();
  EXPECT_EQ(Live("mgr").size(), 2u);
}

TEST_F(ConstraintEnforcerTest, OnlyTheFailingConstraintsAreNamed) {
  AddNode("n1", {{"zone", "a"}, {"disk", "ssd"}});
  api::Service s = WithConstraint(Replicated("svc", "web", 1), "node.labels.zone==a");
  s = WithConstraint(s, "node.labels.disk==ssd");
  s = WithConstraint(s, "node.hostname!=host-n9");
  Deploy(s, {"n1"});
  UpdateNode("n1", [](api::Node* n) { n->mutable_spec()->mutable_annotations()->clear_labels(); });
  Enforce();
  std::vector<api::Task> down = TasksDesired("svc", api::TASK_STATE_SHUTDOWN);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].status().message(),
            "task no longer satisfies placement constraints (node.labels.zone==a, "
            "node.labels.disk==ssd)");
}

TEST_F(ConstraintEnforcerTest, ResourceShrinkRemovesTheLargestUntilTheRestFit) {
  AddNode("n1");
  SetMemory("n1", 8 * kGiB);
  const std::vector<std::string> small =
      Deploy(WithMemory(Replicated("a", "small", 3), kGiB), {"n1"});
  const std::vector<std::string> big =
      Deploy(WithMemory(Replicated("b", "big", 1), 3 * kGiB), {"n1"});
  Deploy(Replicated("c", "no-reservation", 2), {"n1"});
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 0u);  // 6 GiB of 8

  // 5 GiB: the three small ones (3) fit, the big one (3 more) does not.
  SetMemory("n1", 5 * kGiB);
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 1u);
  EXPECT_EQ(GetTask(big[0]).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(GetTask(big[0]).status().message(),
            "task no longer fits the node's resources (insufficient memory)");
  for (const std::string& id : small) {
    EXPECT_EQ(GetTask(id).desired_state(), api::TASK_STATE_RUNNING);
  }
  EXPECT_EQ(LiveOn("c", "n1").size(), 2u);

  // 1.5 GiB: one small one stays; tasks without reservations always fit.
  SetMemory("n1", 3 * kGiB / 2);
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 3u);
  EXPECT_EQ(LiveOn("a", "n1").size(), 1u);
  EXPECT_EQ(LiveOn("c", "n1").size(), 2u);
  // Their slots are refilled elsewhere (not yet placed).
  Replicate();
  EXPECT_EQ(Live("a").size(), 3u);
  EXPECT_EQ(Live("b").size(), 1u);
}

TEST_F(ConstraintEnforcerTest, ResourceShrinkKeepsRunningTasksFirst) {
  AddNode("n1");
  SetMemory("n1", 8 * kGiB);
  // Two small tasks still starting, one big one running.
  const std::vector<std::string> small =
      Deploy(WithMemory(Replicated("a", "small", 2), kGiB), {"n1"}, api::TASK_STATE_STARTING);
  const std::vector<std::string> big =
      Deploy(WithMemory(Replicated("b", "big", 1), 3 * kGiB), {"n1"});
  SetMemory("n1", 4 * kGiB);
  Enforce();
  // The running one keeps its place; one of the starting ones still fits beside it (equal size
  // and age: the lower ID stays).
  EXPECT_EQ(GetTask(big[0]).desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(enforcer_.tasks_shut_down(), 1u);
  const std::string& kept = std::min(small[0], small[1]);
  const std::string& gone = std::max(small[0], small[1]);
  EXPECT_EQ(GetTask(kept).desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(GetTask(gone).desired_state(), api::TASK_STATE_SHUTDOWN);
}

TEST_F(ConstraintEnforcerTest, ANodeThatHasNotReportedResourcesIsNotEmptied) {
  AddNode("n1");
  SetMemory("n1", 8 * kGiB);
  Deploy(WithMemory(Replicated("a", "small", 2), kGiB), {"n1"});
  UpdateNode("n1", [](api::Node* n) { n->mutable_description()->clear_resources(); });
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 0u);
  EXPECT_EQ(LiveOn("a", "n1").size(), 2u);
}

TEST_F(ConstraintEnforcerTest, NamedGenericUnitNoLongerOffered) {
  AddNode("n1");
  UpdateNode("n1", [](api::Node* n) {
    for (const char* unit : {"GPU-0", "GPU-1"}) {
      api::GenericResource* g = n->mutable_description()->mutable_resources()->add_generic();
      g->mutable_named()->set_kind("gpu");
      g->mutable_named()->set_value(unit);
    }
  });
  api::Service s = Replicated("svc", "cuda", 2);
  api::GenericResource* want = s.mutable_spec()
                                   ->mutable_task_template()
                                   ->mutable_resources()
                                   ->mutable_reservations()
                                   ->add_generic();
  want->mutable_discrete()->set_kind("gpu");
  want->mutable_discrete()->set_value(1);
  const std::vector<std::string> ids = Deploy(s, {"n1"});
  for (size_t i = 0; i < ids.size(); ++i) {
    UpdateTask(ids[i], [i](api::Task* t) {
      api::GenericResource* g = t->add_assigned_generic_resources();
      g->mutable_named()->set_kind("gpu");
      g->mutable_named()->set_value(i == 0 ? "GPU-0" : "GPU-1");
    });
  }
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 0u);
  // GPU-1 is gone (and another unit appeared): the task holding GPU-1 goes.
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_description()->mutable_resources()->mutable_generic(1)->mutable_named()->set_value(
        "GPU-7");
  });
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 1u);
  EXPECT_EQ(GetTask(ids[0]).desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(GetTask(ids[1]).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(GetTask(ids[1]).status().message(),
            "task no longer fits the node's resources (generic resource gpu=GPU-1 no longer "
            "offered)");
}

TEST_F(ConstraintEnforcerTest, GlobalServicesAreLeftToTheGlobalOrchestrator) {
  GlobalOrchestrator global(&store(), options());
  AddNode("n1", {{"zone", "a"}});
  AddNode("n2", {{"zone", "a"}});
  SetMemory("n1", 4 * kGiB);
  AddService(WithMemory(WithConstraint(Global("g", "agent"), "node.labels.zone==a"), 3 * kGiB));
  ASSERT_TRUE(global.ReconcileOnce().ok());
  std::vector<api::Task> tasks = Live("g");
  ASSERT_EQ(tasks.size(), 2u);
  for (const api::Task& t : tasks) Assign(t.id(), t.node_id());
  const std::vector<std::string> rep =
      Deploy(WithMemory(Replicated("r", "web", 1), 2 * kGiB), {"n1"});

  // Resources: the global task stays (it cannot go elsewhere); the replicated one goes.
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 1u);
  EXPECT_EQ(GetTask(rep[0]).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(Live("g").size(), 2u);

  // Constraints: the enforcer leaves the global task alone; the global orchestrator shuts it
  // down (exactly one of them acts), without the enforcer's message.
  RemoveLabel("n2", "zone");
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 1u);
  EXPECT_EQ(Live("g").size(), 2u);
  ASSERT_TRUE(global.ReconcileOnce().ok());
  EXPECT_THAT(LiveNodes("g"), ElementsAre("n1"));
  for (const api::Task& t : Tasks("g")) EXPECT_NE(t.status().applied_by(), "constraint-enforcer");
}

TEST_F(ConstraintEnforcerTest, TasksAlreadyShutDownOrFinishedAreIgnored) {
  AddNode("n1", {{"zone", "a"}});
  api::Service s = WithConstraint(Replicated("svc", "web", 4), "node.labels.zone==a");
  SetRestart(&s, api::RestartPolicy::NONE, absl::ZeroDuration());
  const std::vector<std::string> ids = Deploy(s, {"n1"});
  // 0: desired SHUTDOWN, still running. 1: desired REMOVE. 2: FAILED, not restarted (policy
  // NONE: still desired RUNNING, keeps its slot). 3: running.
  UpdateTask(ids[0], [](api::Task* t) {
    t->set_desired_state(api::TASK_STATE_SHUTDOWN);
    t->mutable_status()->set_message("stopping for an update");
  });
  UpdateTask(ids[1], [](api::Task* t) { t->set_desired_state(api::TASK_STATE_REMOVE); });
  SetState(ids[2], api::TASK_STATE_FAILED);
  RemoveLabel("n1", "zone");
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 1u);
  EXPECT_EQ(GetTask(ids[0]).status().message(), "stopping for an update");
  EXPECT_EQ(GetTask(ids[1]).desired_state(), api::TASK_STATE_REMOVE);
  EXPECT_EQ(GetTask(ids[2]).desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(GetTask(ids[3]).desired_state(), api::TASK_STATE_SHUTDOWN);
}

TEST_F(ConstraintEnforcerTest, PausedAndDrainedNodesAreLeftAlone) {
  AddNode("n1", {{"zone", "a"}});
  AddNode("n2", {{"zone", "a"}});
  Deploy(WithConstraint(Replicated("svc", "web", 2), "node.labels.zone==a"), {"n1", "n2"});
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  });
  UpdateNode("n2", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  RemoveLabel("n1", "zone");
  RemoveLabel("n2", "zone");
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 0u);
  EXPECT_EQ(LiveOn("svc", "n1").size(), 1u);  // PAUSE keeps its tasks
  // The drained node's task is the replicated orchestrator's to move.
  Replicate();
  EXPECT_TRUE(LiveOn("svc", "n2").empty());
  // n1 back to ACTIVE: now enforced.
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_ACTIVE);
  });
  Enforce();
  EXPECT_TRUE(LiveOn("svc", "n1").empty());
}

TEST_F(ConstraintEnforcerTest, ReplicatedJobTaskIsRerunElsewhere) {
  JobOrchestrator jobs(&store(), options());
  AddNode("n1", {{"zone", "a"}});
  AddService(WithConstraint(ReplicatedJob("j", "batch", 2, 2), "node.labels.zone==a"));
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  std::vector<api::Task> live = Live("j");
  ASSERT_EQ(live.size(), 2u);
  Assign(live[0].id(), "n1", api::TASK_STATE_COMPLETE);  // done: never touched again
  Assign(live[1].id(), "n1");
  RemoveLabel("n1", "zone");
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 1u);
  EXPECT_EQ(GetTask(live[0].id()).desired_state(), api::TASK_STATE_COMPLETE);
  EXPECT_EQ(GetTask(live[1].id()).desired_state(), api::TASK_STATE_SHUTDOWN);
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  std::vector<api::Task> now = Live("j");
  ASSERT_EQ(now.size(), 2u);
  EXPECT_EQ(now[1].slot(), live[1].slot());
  EXPECT_NE(now[1].id(), live[1].id());
  EXPECT_TRUE(now[1].node_id().empty());
}

TEST_F(ConstraintEnforcerTest, TasksOfServicesBeingDeletedAreLeftToTheirRemoval) {
  AddNode("n1", {{"zone", "a"}});
  Deploy(WithConstraint(Replicated("svc", "web", 1), "node.labels.zone==a"), {"n1"});
  UpdateService("svc", [](api::Service* s) { s->set_pending_delete(true); });
  RemoveLabel("n1", "zone");
  Enforce();
  EXPECT_EQ(enforcer_.tasks_shut_down(), 0u);
}

TEST_F(ConstraintEnforcerTest, ANewLeaderFixesWhatItFindsAndFollowsNodeChanges) {
  AddNode("n1", {{"zone", "a"}});
  AddNode("n2", {{"zone", "a"}});
  Deploy(WithConstraint(Replicated("svc", "web", 2), "node.labels.zone==a"), {"n1", "n2"});
  // The label goes while no enforcer runs (the old leader died).
  RemoveLabel("n1", "zone");
  ConstraintEnforcer fresh(&store(), options());
  fresh.Start();
  ASSERT_TRUE(WaitFor([&] { return LiveOn("svc", "n1").empty(); }));
  EXPECT_EQ(fresh.tasks_shut_down(), 1u);
  // A later change is followed from the watch (no resync: the manual clock stands still).
  RemoveLabel("n2", "zone");
  ASSERT_TRUE(WaitFor([&] { return LiveOn("svc", "n2").empty(); }));
  EXPECT_EQ(fresh.tasks_shut_down(), 2u);
  fresh.Stop();
}

TEST_F(ConstraintEnforcerTest, AllLoopsTogether) {
  AddNode("n1", {{"zone", "a"}});
  AddNode("n2", {{"zone", "a"}});
  Orchestrators loops(&store(), options());
  loops.Start();
  AddService(WithConstraint(Replicated("svc", "web", 4), "node.labels.zone==a"));
  ASSERT_TRUE(WaitFor([&] { return Live("svc").size() == 4; }));
  std::vector<api::Task> live = Live("svc");
  for (size_t i = 0; i < live.size(); ++i) Assign(live[i].id(), i % 2 == 0 ? "n1" : "n2");

  RemoveLabel("n1", "zone");
  // n1's two tasks are shut down and their slots refilled (waiting for the scheduler).
  ASSERT_TRUE(WaitFor([&] {
    std::vector<api::Task> l = Live("svc");
    int unplaced = 0;
    for (const api::Task& t : l) unplaced += t.node_id().empty();
    return l.size() == 4 && unplaced == 2 && LiveOn("svc", "n1").empty();
  }));
  EXPECT_EQ(loops.constraint_enforcer().tasks_shut_down(), 2u);
  // Play the agent: the shut-down tasks stop; nothing else happens to them (no restart).
  for (const api::Task& t : TasksDesired("svc", api::TASK_STATE_SHUTDOWN)) {
    SetState(t.id(), api::TASK_STATE_SHUTDOWN);
  }
  // A resync of every loop. The clock moves on at each look: a loop that was not yet waiting when
  // it first moved computes its resync deadline from the later time.
  ASSERT_TRUE(WaitFor([&] {
    clock().Advance(absl::Seconds(10));
    return loops.constraint_enforcer().passes() >= 3;
  }));
  EXPECT_EQ(Live("svc").size(), 4u);
  EXPECT_EQ(loops.constraint_enforcer().tasks_shut_down(), 2u);
  loops.Stop();
}

}  // namespace
}  // namespace shoal::manager::orchestrator
