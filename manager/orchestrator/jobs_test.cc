// JobOrchestrator, driven with ReconcileOnce: replicated jobs run total_completions tasks at most
// max_concurrent at once, failures that are (not) restarted, new iterations; global jobs run once
// per eligible node per iteration.
#include "manager/orchestrator/jobs.h"

#include <algorithm>
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

class JobsTest : public ::testing::Test, public OrchestratorFixture {
 protected:
  void Reconcile() {
    absl::Status s = orch_.ReconcileOnce();
    ASSERT_TRUE(s.ok()) << s;
  }
  // The job's tasks that are live and not complete: the ones running.
  std::vector<api::Task> Running(const std::string& service) {
    std::vector<api::Task> out;
    for (api::Task& t : Live(service)) {
      if (!IsTerminal(t)) out.push_back(std::move(t));
    }
    return out;
  }
  int Completed(const std::string& service) {
    int n = 0;
    for (const api::Task& t : Tasks(service)) n += t.status().state() == api::TASK_STATE_COMPLETE;
    return n;
  }

  JobOrchestrator orch_{&store(), options()};
};

TEST_F(JobsTest, ReplicatedJobRunsTotalCompletionsAtMostMaxConcurrent) {
  AddService(ReplicatedJob("j", "batch", 2, 5));
  Reconcile();
  std::vector<api::Task> running = Running("j");
  ASSERT_EQ(running.size(), 2u);
  EXPECT_EQ(running[0].slot(), 1u);
  EXPECT_EQ(running[1].slot(), 2u);
  for (const api::Task& t : running) {
    EXPECT_EQ(t.desired_state(), api::TASK_STATE_COMPLETE);
    EXPECT_EQ(t.job_iteration().index(), 1u);
    EXPECT_EQ(t.annotations().name(), "batch." + std::to_string(t.slot()) + "." + t.id());
  }
  // Completions free places; each is done for good.
  int guard = 0;
  while (Completed("j") < 5 && ++guard < 20) {
    running = Running("j");
    ASSERT_LE(running.size(), 2u);
    ASSERT_FALSE(running.empty());
    SetState(running[0].id(), api::TASK_STATE_COMPLETE);
    Reconcile();
  }
  EXPECT_EQ(Completed("j"), 5);
  EXPECT_THAT(Running("j"), IsEmpty());
  EXPECT_EQ(Tasks("j").size(), 5u);
  std::vector<uint64_t> slots;
  for (const api::Task& t : Tasks("j")) slots.push_back(t.slot());
  std::sort(slots.begin(), slots.end());
  EXPECT_THAT(slots, ElementsAre(1, 2, 3, 4, 5));
  Reconcile();
  EXPECT_EQ(Tasks("j").size(), 5u);
}

TEST_F(JobsTest, DefaultsRunOneTask) {
  AddService(ReplicatedJob("j", "once", 0, 0));
  Reconcile();
  ASSERT_EQ(Live("j").size(), 1u);
  SetState(Live("j")[0].id(), api::TASK_STATE_COMPLETE);
  Reconcile();
  EXPECT_EQ(Tasks("j").size(), 1u);
}

TEST_F(JobsTest, FailedTaskToBeRestartedKeepsItsPlace) {
  AddService(ReplicatedJob("j", "batch", 1, 3));
  Reconcile();
  ASSERT_EQ(Live("j").size(), 1u);
  SetState(Live("j")[0].id(), api::TASK_STATE_FAILED);
  Reconcile();
  // The restart supervisor replaces it in slot 1: no second task meanwhile.
  EXPECT_EQ(Tasks("j").size(), 1u);
}

TEST_F(JobsTest, FailedTaskNotRestartedIsSpent) {
  api::Service j = ReplicatedJob("j", "batch", 1, 2);
  SetRestart(&j, api::RestartPolicy::NONE, absl::ZeroDuration());
  AddService(j);
  Reconcile();
  SetState(Live("j")[0].id(), api::TASK_STATE_FAILED);
  Reconcile();
  std::vector<api::Task> running = Running("j");
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].slot(), 2u);
  SetState(running[0].id(), api::TASK_STATE_COMPLETE);
  Reconcile();
  EXPECT_EQ(Tasks("j").size(), 2u);  // the job ends with one completion short
}

TEST_F(JobsTest, NewIterationShutsDownTheOldOne) {
  AddService(ReplicatedJob("j", "batch", 2, 2));
  Reconcile();
  std::vector<api::Task> first = Live("j");
  ASSERT_EQ(first.size(), 2u);
  SetState(first[0].id(), api::TASK_STATE_COMPLETE);
  UpdateService(
      "j", [](api::Service* s) { s->mutable_job_status()->mutable_job_iteration()->set_index(2); });
  Reconcile();
  EXPECT_EQ(GetTask(first[0].id()).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_EQ(GetTask(first[1].id()).desired_state(), api::TASK_STATE_SHUTDOWN);
  std::vector<api::Task> second = Live("j");
  ASSERT_EQ(second.size(), 2u);
  for (const api::Task& t : second) EXPECT_EQ(t.job_iteration().index(), 2u);
}

TEST_F(JobsTest, ReplicatedJobTaskOnDrainedNodeIsReplaced) {
  AddNode("n1");
  AddService(ReplicatedJob("j", "batch", 1, 1));
  Reconcile();
  const std::string a = Live("j")[0].id();
  Assign(a, "n1");
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  Reconcile();
  EXPECT_EQ(GetTask(a).desired_state(), api::TASK_STATE_SHUTDOWN);
  ASSERT_EQ(Live("j").size(), 1u);
  EXPECT_NE(Live("j")[0].id(), a);
  EXPECT_EQ(Live("j")[0].slot(), 1u);
}

TEST_F(JobsTest, GlobalJobRunsOncePerEligibleNode) {
  AddNode("n1");
  AddNode("n2", {{"role", "db"}});
  AddService(GlobalJob("gj", "migrate"));
  Reconcile();
  EXPECT_THAT(LiveNodes("gj"), ElementsAre("n1", "n2"));
  for (const api::Task& t : Live("gj")) {
    EXPECT_EQ(t.slot(), 0u);
    EXPECT_EQ(t.desired_state(), api::TASK_STATE_COMPLETE);
    Assign(t.id(), t.node_id(), api::TASK_STATE_COMPLETE);
  }
  Reconcile();
  EXPECT_EQ(Tasks("gj").size(), 2u);  // done: not run again
  AddNode("n3");
  Reconcile();
  EXPECT_EQ(Tasks("gj").size(), 3u);  // a new node gets its run
  // A drained node's unfinished run is shut down; a completed one stays.
  const std::string t3 = Live("gj")[2].id();
  UpdateNode("n3", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  UpdateNode("n1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  Reconcile();
  EXPECT_EQ(GetTask(t3).desired_state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_THAT(LiveNodes("gj"), ElementsAre("n1", "n2"));
  // A new iteration runs again where eligible.
  UpdateService("gj", [](api::Service* s) {
    s->mutable_job_status()->mutable_job_iteration()->set_index(2);
    s->mutable_spec()->mutable_task_template()->mutable_placement()->add_constraints(
        "node.labels.role==db");
  });
  Reconcile();
  std::vector<api::Task> live = Live("gj");
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].node_id(), "n2");
  EXPECT_EQ(live[0].job_iteration().index(), 2u);
}

TEST_F(JobsTest, PendingDeleteMarksRemove) {
  AddNode("n1");
  AddService(ReplicatedJob("j", "batch", 2, 4));
  Reconcile();
  for (const api::Task& t : Live("j")) Assign(t.id(), "n1");
  UpdateService("j", [](api::Service* s) { s->set_pending_delete(true); });
  Reconcile();
  EXPECT_EQ(TasksDesired("j", api::TASK_STATE_REMOVE).size(), 2u);
  EXPECT_EQ(Tasks("j").size(), 2u);
}

TEST_F(JobsTest, LoopRunsAJobToCompletion) {
  orch_.Start();
  AddService(ReplicatedJob("j", "batch", 2, 4));
  for (int done = 0; done < 4; ++done) {
    ASSERT_TRUE(WaitFor([&] { return !Running("j").empty(); }));
    SetState(Running("j")[0].id(), api::TASK_STATE_COMPLETE);
  }
  EXPECT_TRUE(WaitFor([&] { return Completed("j") == 4; }));
  orch_.Stop();
  EXPECT_EQ(Tasks("j").size(), 4u);
}

}  // namespace
}  // namespace shoal::manager::orchestrator
