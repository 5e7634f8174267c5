// All the loops running together on their threads (Orchestrators), with the test playing the
// scheduler and the agents: a service's life end to end — creation, a failure and its delayed
// replacement, a drained node, scaling down, removal — and prompt, idempotent Start/Stop.
#include "manager/orchestrator/orchestrators.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using testing::OrchestratorFixture;
using testing::WaitFor;

class LoopsTest : public ::testing::Test, public OrchestratorFixture {
 protected:
  // What the scheduler and agents would do: every live task not placed yet goes to `node` and
  // runs; every task desired SHUTDOWN / REMOVE that still runs stops.
  void PlayAgents(const std::string& service, const std::string& node) {
    for (const api::Task& t : Tasks(service)) {
      if (t.desired_state() == api::TASK_STATE_RUNNING &&
          t.status().state() < api::TASK_STATE_ASSIGNED) {
        Assign(t.id(), node);
      } else if (t.desired_state() > api::TASK_STATE_COMPLETE && !IsTerminal(t) &&
                 !t.node_id().empty()) {
        SetState(t.id(), api::TASK_STATE_SHUTDOWN);
      }
    }
  }
  int RunningOn(const std::string& service, const std::string& node) {
    int n = 0;
    for (const api::Task& t : Live(service)) {
      n += t.node_id() == node && t.status().state() == api::TASK_STATE_RUNNING;
    }
    return n;
  }
};

TEST_F(LoopsTest, ServiceLifeEndToEnd) {
  AddCluster(2);
  AddNode("n1");
  AddNode("n2");
  Orchestrators loops(&store(), options());
  loops.Start();

  AddService(Replicated("svc", "web", 3));
  ASSERT_TRUE(WaitFor([&] { return Live("svc").size() == 3; }));
  PlayAgents("svc", "n1");
  ASSERT_EQ(RunningOn("svc", "n1"), 3);

  // A failure: replaced in its slot, started after the 5 s delay.
  const api::Task victim = Live("svc")[1];
  SetState(victim.id(), api::TASK_STATE_FAILED);
  ASSERT_TRUE(
      WaitFor([&] { return GetTask(victim.id()).desired_state() == api::TASK_STATE_SHUTDOWN; }));
  std::vector<api::Task> live = Live("svc");
  ASSERT_EQ(live.size(), 3u);
  EXPECT_EQ(live[1].slot(), victim.slot());
  EXPECT_EQ(live[1].desired_state(), api::TASK_STATE_READY);
  clock().Advance(absl::Seconds(5));
  ASSERT_TRUE(
      WaitFor([&] { return GetTask(live[1].id()).desired_state() == api::TASK_STATE_RUNNING; }));
  PlayAgents("svc", "n1");

  // n1 drained: everything moves to n2.
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  ASSERT_TRUE(WaitFor([&] {
    std::vector<api::Task> l = Live("svc");
    return l.size() == 3 &&
           std::all_of(l.begin(), l.end(), [](const api::Task& t) { return t.node_id().empty(); });
  }));
  PlayAgents("svc", "n2");
  EXPECT_EQ(RunningOn("svc", "n2"), 3);
  // The reaper keeps at most 2 finished tasks per slot.
  ASSERT_TRUE(WaitFor([&] {
    std::map<uint64_t, int> history;
    for (const api::Task& t : Tasks("svc")) history[t.slot()] += !IsLive(t);
    for (const auto& [slot, n] : history) {
      if (n > 2) return false;
    }
    return true;
  }));

  // Scale down to 1: two tasks removed, then deleted once stopped.
  SetReplicas("svc", 1);
  ASSERT_TRUE(WaitFor([&] { return Live("svc").size() == 1; }));
  PlayAgents("svc", "n2");
  ASSERT_TRUE(WaitFor([&] { return TasksDesired("svc", api::TASK_STATE_REMOVE).empty(); }));

  // Removal: the last task is stopped, everything deleted, then the service.
  UpdateService("svc", [](api::Service* s) { s->set_pending_delete(true); });
  ASSERT_TRUE(WaitFor([&] { return TasksDesired("svc", api::TASK_STATE_REMOVE).size() == 1; }));
  PlayAgents("svc", "n2");
  EXPECT_TRUE(WaitFor([&] { return !HasService("svc") && Tasks("svc").empty(); }));

  loops.Stop();
  loops.Stop();
}

TEST_F(LoopsTest, GlobalServiceAndJobTogether) {
  AddNode("n1");
  Orchestrators loops(&store(), options());
  loops.Start();
  AddService(Global("g", "agent"));
  AddService(GlobalJob("gj", "setup"));
  ASSERT_TRUE(WaitFor([&] { return Live("g").size() == 1 && Live("gj").size() == 1; }));
  AddNode("n2");
  ASSERT_TRUE(WaitFor([&] { return Live("g").size() == 2 && Live("gj").size() == 2; }));
  for (const api::Task& t : Live("gj")) Assign(t.id(), t.node_id(), api::TASK_STATE_COMPLETE);
  loops.Stop();
  // Nothing reruns after a restart of the loops (e.g. a new leader).
  Orchestrators again(&store(), options());
  again.Start();
  ASSERT_TRUE(
      WaitFor([&] { return again.jobs().passes() >= 1 && again.restarts().passes() >= 1; }));
  clock().Advance(absl::Seconds(10));  // a resync pass too
  ASSERT_TRUE(
      WaitFor([&] { return again.jobs().passes() >= 2 && again.restarts().passes() >= 2; }));
  EXPECT_EQ(Tasks("gj").size(), 2u);
  EXPECT_EQ(Tasks("g").size(), 2u);
  again.Stop();
}

TEST_F(LoopsTest, StopIsPromptAndStartIsRepeatable) {
  Orchestrators loops(&store(), options());
  for (int i = 0; i < 3; ++i) {
    loops.Start();
    loops.Start();  // no-op while running
    const absl::Time t0 = absl::Now();
    loops.Stop();
    EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  }
  loops.Stop();
  // Stopped loops do nothing.
  AddService(Replicated("svc", "web", 1));
  EXPECT_TRUE(Tasks("svc").empty());
}

}  // namespace
}  // namespace shoal::manager::orchestrator
