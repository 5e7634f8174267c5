#include "manager/scheduling/scheduling_loop.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "manager/store/test_objects.h"
#include "scheduler/test_util.h"

namespace shoal::manager {
namespace {

using scheduler::testing::kCpu;
using scheduler::testing::kGiB;
using scheduler::testing::NodeBuilder;
using scheduler::testing::TaskBuilder;
using store::testing::StoreFixture;
using Counts = std::map<std::string, int>;

class SchedulingLoopTest : public ::testing::Test {
 protected:
  SchedulingLoopTest() : loop_(&f_.store, Options()) {}

  SchedulingOptions Options() {
    SchedulingOptions o;
    o.clock = &f_.clock;
    return o;
  }

  void Put(const api::Node& node) {
    ASSERT_TRUE(f_.store
                    .Update([&](store::WriteTx& tx) {
                      const api::Node* old = tx.Get<api::Node>(node.id());
                      if (old == nullptr) return tx.Create(node);
                      api::Node updated = node;
                      *updated.mutable_meta() = old->meta();
                      return tx.Update(updated);
                    })
                    .ok());
  }
  void Put(const std::vector<api::Task>& tasks) {
    ASSERT_TRUE(f_.store
                    .Update([&](store::WriteTx& tx) {
                      for (const api::Task& t : tasks) {
                        if (absl::Status s = tx.Create(t); !s.ok()) return s;
                      }
                      return absl::OkStatus();
                    })
                    .ok());
  }
  void Put(const api::Task& task) { Put(std::vector<api::Task>{task}); }
  void ChangeTask(const std::string& id, const std::function<void(api::Task*)>& change) {
    ASSERT_TRUE(f_.store
                    .Update([&](store::WriteTx& tx) {
                      api::Task t = *tx.Get<api::Task>(id);
                      change(&t);
                      return tx.Update(t);
                    })
                    .ok());
  }

  api::Task GetTask(const std::string& id) {
    api::Task out;
    f_.store.View([&](const store::ReadTx& tx) {
      if (const api::Task* t = tx.Get<api::Task>(id)) out = *t;
    });
    return out;
  }
  // Node ID -> ASSIGNED tasks there.
  Counts Assigned() {
    Counts out;
    f_.store.View([&](const store::ReadTx& tx) {
      for (const api::Task* t : tx.List<api::Task>()) {
        if (t->status().state() == api::TASK_STATE_ASSIGNED) ++out[t->node_id()];
      }
    });
    return out;
  }
  int CountInState(api::TaskState state) {
    int n = 0;
    f_.store.View([&](const store::ReadTx& tx) {
      for (const api::Task* t : tx.List<api::Task>()) n += t->status().state() == state;
    });
    return n;
  }

  // Waits (real time, bounded) for `cond`, moving the manual clock on so that the loop's batch
  // window and retry delays pass.
  bool WaitFor(const std::function<bool()>& cond) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (cond()) return true;
      f_.clock.Advance(absl::Milliseconds(10));
      absl::SleepFor(absl::Milliseconds(2));
    }
    return cond();
  }

  StoreFixture f_;
  SchedulingLoop loop_;
};

TEST_F(SchedulingLoopTest, SpreadsReplicatedTasksOverTheNodes) {
  for (const char* id : {"n1", "n2", "n3"}) Put(NodeBuilder(id).Build());
  Put(TaskBuilder().Replicas(7));
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(Assigned(), (Counts{{"n1", 3}, {"n2", 2}, {"n3", 2}}));
  api::Task t = GetTask("t001");
  EXPECT_EQ(t.status().state(), api::TASK_STATE_ASSIGNED);
  EXPECT_EQ(t.status().message(), kAssignedMessage);
  EXPECT_EQ(t.status().err(), "");
  EXPECT_TRUE(t.status().has_timestamp());
  EXPECT_EQ(loop_.last_pass().tasks, 7u);
  EXPECT_EQ(loop_.last_pass().assigned, 7u);

  // The next pass counts what is there: 2 more go to the nodes with fewest of the service.
  Put(TaskBuilder().Replicas(2, "u"));
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(Assigned(), (Counts{{"n1", 3}, {"n2", 3}, {"n3", 3}}));
  // Nothing left to do: nothing written.
  const uint64_t version = f_.store.version();
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(f_.store.version(), version);
}

TEST_F(SchedulingLoopTest, SpreadPreference) {
  Put(NodeBuilder("a1").Label("zone", "a").Build());
  Put(NodeBuilder("b1").Label("zone", "b").Build());
  Put(NodeBuilder("b2").Label("zone", "b").Build());
  Put(NodeBuilder("b3").Label("zone", "b").Build());
  Put(TaskBuilder().Spread("node.labels.zone").Replicas(6));
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(Assigned(), (Counts{{"a1", 3}, {"b1", 1}, {"b2", 1}, {"b3", 1}}));
}

TEST_F(SchedulingLoopTest, Constraints) {
  Put(NodeBuilder("a1").Label("zone", "a").Build());
  Put(NodeBuilder("a2").Label("zone", "a").Build());
  Put(NodeBuilder("b1").Label("zone", "b").Build());
  Put(TaskBuilder().Constraint("node.labels.zone==a").Replicas(4));
  Put(TaskBuilder().Service("other").Constraint("node.labels.zone==c").Replicas(1, "c"));
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(Assigned(), (Counts{{"a1", 2}, {"a2", 2}}));
  api::Task c = GetTask("c001");
  EXPECT_EQ(c.status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(c.status().message(), "no suitable node (3 nodes did not satisfy constraints)");
  EXPECT_EQ(c.status().err(), c.status().message());
}

TEST_F(SchedulingLoopTest, ResourcesExhaustedThenANodeJoins) {
  Put(NodeBuilder("n1").NanoCpus(4 * kCpu).Build());
  Put(TaskBuilder().NanoCpus(kCpu).Replicas(6));
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(Assigned(), (Counts{{"n1", 4}}));
  const std::string reason = "no suitable node (1 node with insufficient CPU)";
  int pending = 0;
  for (const char* id : {"t001", "t002", "t003", "t004", "t005", "t006"}) {
    api::Task t = GetTask(id);
    if (t.status().state() != api::TASK_STATE_PENDING) continue;
    ++pending;
    EXPECT_EQ(t.status().message(), reason);
  }
  EXPECT_EQ(pending, 2);
  // The reason is written once.
  const uint64_t version = f_.store.version();
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(f_.store.version(), version);

  // The loop notices a node joining and places the rest there.
  loop_.Start();
  Put(NodeBuilder("n2").NanoCpus(kCpu).Build());
  ASSERT_TRUE(WaitFor([&] { return Assigned() == Counts({{"n1", 4}, {"n2", 1}}); }));
  // The last one now reads as 2 nodes short of CPU.
  ASSERT_TRUE(WaitFor([&] {
    for (const char* id : {"t001", "t002", "t003", "t004", "t005", "t006"}) {
      api::Task t = GetTask(id);
      if (t.status().state() == api::TASK_STATE_PENDING) {
        return t.status().message() == "no suitable node (2 nodes with insufficient CPU)";
      }
    }
    return false;
  }));

  // A task finishing frees its CPU: the last one goes there.
  std::string finished;
  for (const char* id : {"t001", "t002", "t003", "t004", "t005", "t006"}) {
    if (GetTask(id).node_id() == "n1") finished = id;
  }
  ChangeTask(finished,
             [](api::Task* t) { t->mutable_status()->set_state(api::TASK_STATE_COMPLETE); });
  ASSERT_TRUE(WaitFor([&] {
    return Assigned() == Counts({{"n1", 4}, {"n2", 1}}) &&
           CountInState(api::TASK_STATE_PENDING) == 0;
  }));
  loop_.Stop();
}

TEST_F(SchedulingLoopTest, TasksHoldingResourcesAreCountedOnRebuild) {
  Put(NodeBuilder("n1").Memory(4 * kGiB).Build());
  // A running task holds 3 GiB; a finished one held 3 GiB and no longer does.
  Put(TaskBuilder("running").Memory(3 * kGiB).Node("n1").Build());
  ChangeTask("running",
             [](api::Task* t) { t->mutable_status()->set_state(api::TASK_STATE_RUNNING); });
  Put(TaskBuilder("done").Memory(3 * kGiB).Node("n1").Build());
  ChangeTask("done", [](api::Task* t) { t->mutable_status()->set_state(api::TASK_STATE_FAILED); });
  Put(TaskBuilder("small").Memory(kGiB).Build());
  Put(TaskBuilder("big").Service("big").Memory(2 * kGiB).Build());
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(GetTask("small").status().state(), api::TASK_STATE_ASSIGNED);
  EXPECT_EQ(GetTask("big").status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(GetTask("big").status().message(),
            "no suitable node (1 node with insufficient memory)");
}

TEST_F(SchedulingLoopTest, GlobalTasksOnlyCheckTheirNode) {
  Put(NodeBuilder("n1").Build());
  Put(NodeBuilder("n2").State(api::NodeStatus::DOWN).Build());
  // n1 already runs a task; a global task for n1 still goes there, not to an emptier node.
  Put(NodeBuilder("n3").Build());
  Put(TaskBuilder("g1").Service("global").Node("n1").Build());
  Put(TaskBuilder("g2").Service("global").Node("n2").Build());
  Put(TaskBuilder("g3").Service("global").Node("gone").Build());
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  api::Task g1 = GetTask("g1");
  EXPECT_EQ(g1.status().state(), api::TASK_STATE_ASSIGNED);
  EXPECT_EQ(g1.node_id(), "n1");
  api::Task g2 = GetTask("g2");
  EXPECT_EQ(g2.status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(g2.node_id(), "n2");
  EXPECT_EQ(g2.status().message(), "no suitable node (1 node not available for new tasks)");
  EXPECT_EQ(GetTask("g3").status().message(), "no suitable node (node gone not found)");

  // n2 comes back: the loop places g2 there.
  loop_.Start();
  Put(NodeBuilder("n2").Build());
  ASSERT_TRUE(WaitFor([&] { return GetTask("g2").status().state() == api::TASK_STATE_ASSIGNED; }));
  EXPECT_EQ(GetTask("g2").node_id(), "n2");
  loop_.Stop();
}

TEST_F(SchedulingLoopTest, DownDrainedAndPausedNodesGetNothingNew) {
  Put(NodeBuilder("down").State(api::NodeStatus::DOWN).Build());
  Put(NodeBuilder("disconnected").State(api::NodeStatus::DISCONNECTED).Build());
  Put(NodeBuilder("drain").Availability(api::NODE_AVAILABILITY_DRAIN).Build());
  Put(NodeBuilder("pause").Availability(api::NODE_AVAILABILITY_PAUSE).Build());
  Put(TaskBuilder().Replicas(2));
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(Assigned(), Counts());
  EXPECT_EQ(GetTask("t001").status().message(),
            "no suitable node (4 nodes not available for new tasks)");

  Put(NodeBuilder("ok").Build());
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(Assigned(), (Counts{{"ok", 2}}));
}

TEST_F(SchedulingLoopTest, NodeDrainedWhileRunningTheLoop) {
  Put(NodeBuilder("n1").Build());
  Put(NodeBuilder("n2").Build());
  loop_.Start();
  Put(NodeBuilder("n1").Availability(api::NODE_AVAILABILITY_DRAIN).Build());
  Put(TaskBuilder().Replicas(4));
  ASSERT_TRUE(WaitFor([&] { return Assigned() == Counts({{"n2", 4}}); }));
  loop_.Stop();
}

TEST_F(SchedulingLoopTest, GenericResourcesAreRecorded) {
  Put(NodeBuilder("n1").Named("gpu", "gpu0").Named("gpu", "gpu1").Build());
  Put(TaskBuilder().Generic("gpu", 1).Replicas(3));
  ASSERT_TRUE(loop_.ReconcileOnce().ok());
  EXPECT_EQ(Assigned(), (Counts{{"n1", 2}}));
  api::Task t = GetTask("t001");
  ASSERT_EQ(t.assigned_generic_resources_size(), 1);
  EXPECT_EQ(t.assigned_generic_resources(0).named().value(), "gpu0");
  EXPECT_EQ(GetTask("t002").assigned_generic_resources(0).named().value(), "gpu1");
}

TEST_F(SchedulingLoopTest, FailedWritesAreTakenBackAndRetried) {
  // Room for exactly 4: if a failed write left its placement behind, some would never fit.
  Put(NodeBuilder("n1").NanoCpus(2 * kCpu).Build());
  Put(NodeBuilder("n2").NanoCpus(2 * kCpu).Build());
  Put(TaskBuilder().NanoCpus(kCpu).Replicas(4));
  f_.proposer.FailWith(absl::UnavailableError("not the leader"), /*once=*/true);
  loop_.Start();
  ASSERT_TRUE(WaitFor([&] { return Assigned() == Counts({{"n1", 2}, {"n2", 2}}); }));
  loop_.Stop();
}

TEST_F(SchedulingLoopTest, FollowsTheStoreAcrossRestarts) {
  Put(NodeBuilder("n1").Build());
  loop_.Start();
  Put(TaskBuilder().Replicas(3));
  ASSERT_TRUE(WaitFor([&] { return Assigned() == Counts({{"n1", 3}}); }));
  loop_.Stop();
  loop_.Stop();  // Idempotent.
  // Leadership regained: what came meanwhile is scheduled, what was assigned is counted.
  Put(NodeBuilder("n2").Build());
  Put(TaskBuilder().Replicas(3, "u"));
  loop_.Start();
  ASSERT_TRUE(WaitFor([&] { return Assigned() == Counts({{"n1", 3}, {"n2", 3}}); }));
  loop_.Stop();
}

TEST_F(SchedulingLoopTest, StartsOverWhenTheStoreIsRestoredFromASnapshot) {
  Put(NodeBuilder("n1").Build());
  Put(TaskBuilder().Replicas(3));
  const std::string snapshot = f_.store.Snapshot();  // The tasks still PENDING.
  loop_.Start();
  ASSERT_TRUE(WaitFor([&] { return Assigned() == Counts({{"n1", 3}}); }));
  // The restore closes the loop's watcher; the loop reads the store again and, finding the
  // tasks PENDING and n1 empty, assigns them again.
  ASSERT_TRUE(f_.store.Restore(snapshot).ok());
  ASSERT_TRUE(WaitFor([&] { return Assigned() == Counts({{"n1", 3}}); }));
  Put(NodeBuilder("n2").Build());
  Put(TaskBuilder().Replicas(1, "u"));
  ASSERT_TRUE(WaitFor([&] { return Assigned() == Counts({{"n1", 3}, {"n2", 1}}); }));
  loop_.Stop();
}

TEST_F(SchedulingLoopTest, PeriodicResyncRewritesNothing) {
  Put(NodeBuilder("n1").NanoCpus(kCpu).Build());
  Put(TaskBuilder().NanoCpus(kCpu).Replicas(2));
  loop_.Start();
  ASSERT_TRUE(WaitFor([&] {
    return Assigned() == Counts({{"n1", 1}}) && !GetTask("t002").status().message().empty() &&
           GetTask("t002").status().state() == api::TASK_STATE_PENDING;
  }));
  const uint64_t version = f_.store.version();
  const uint64_t passes = loop_.passes();
  f_.clock.Advance(absl::Seconds(6));
  ASSERT_TRUE(WaitFor([&] { return loop_.passes() > passes; }));
  EXPECT_EQ(f_.store.version(), version);
  loop_.Stop();
}

}  // namespace
}  // namespace shoal::manager
