// Updater, driven with ReconcileOnce beside the replicated and global orchestrators: stop-first
// batches with parallelism and delay, start-first capacity, the monitor window and the failure
// actions (pause, continue, rollback), force redeploys, resuming after a restart, global
// services, nothing to do when tasks are current; and the loop thread inside Orchestrators.
#include "manager/orchestrator/update.h"

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "manager/orchestrator/global.h"
#include "manager/orchestrator/orchestrators.h"
#include "manager/orchestrator/replicated.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using testing::OrchestratorFixture;
using testing::WaitFor;

class UpdateTest : public ::testing::Test, public OrchestratorFixture {
 protected:
  void Run(ReconcileLoop& loop) {
    absl::Status s = loop.ReconcileOnce();
    ASSERT_TRUE(s.ok()) << s;
  }
  void Update() { Run(updater_); }

  // A replicated service with `replicas` tasks, all RUNNING on nodes n1, n2.
  void StartService(uint64_t replicas, const std::function<void(api::Service*)>& tweak = {}) {
    AddNode("n1");
    AddNode("n2");
    api::Service s = Replicated("svc", "web", replicas);
    if (tweak) tweak(&s);
    AddService(s);
    Run(replicated_);
    Agents();
  }

  // What controlapi's UpdateService does for a new spec.
  void ChangeSpec(const std::function<void(api::ServiceSpec*)>& change) {
    UpdateService("svc", [&](api::Service* s) {
      *s->mutable_previous_spec() = s->spec();
      *s->mutable_previous_spec_version() = s->spec_version();
      change(s->mutable_spec());
      s->mutable_spec_version()->set_index(s->spec_version().index() + 100);
      s->clear_update_status();
    });
  }
  void SetImage(const std::string& image) {
    ChangeSpec([&](api::ServiceSpec* spec) {
      spec->mutable_task_template()->mutable_container_spec()->set_image(image);
    });
  }

  // The agents: tasks desired RUNNING start (on n1/n2 by slot), tasks desired SHUTDOWN or REMOVE
  // stop; an image in `fail_images` fails instead of running.
  void Agents(const std::set<std::string>& fail_images = {}) {
    for (const api::Task& t : Tasks("svc")) {
      if (IsTerminal(t)) continue;
      if (t.desired_state() > api::TASK_STATE_RUNNING) {
        SetState(t.id(), api::TASK_STATE_SHUTDOWN);
      } else if (t.desired_state() == api::TASK_STATE_RUNNING &&
                 t.status().state() < api::TASK_STATE_RUNNING) {
        const std::string node =
            t.node_id().empty() ? (t.slot() % 2 == 1 ? "n1" : "n2") : t.node_id();
        if (fail_images.count(t.spec().container_spec().image()) > 0) {
          UpdateTask(t.id(), [&](api::Task* x) {
            x->set_node_id(node);
            x->mutable_status()->set_state(api::TASK_STATE_FAILED);
            x->mutable_status()->set_err("exit code 1");
          });
        } else {
          Assign(t.id(), node);
        }
      }
    }
  }

  api::Service Svc() {
    api::Service out;
    store().View([&](const store::ReadTx& tx) { out = *tx.Get<api::Service>("svc"); });
    return out;
  }
  // Live tasks whose image is `image`.
  int LiveWith(const std::string& image) {
    int n = 0;
    for (const api::Task& t : Live("svc")) n += t.spec().container_spec().image() == image;
    return n;
  }
  int RunningWith(const std::string& image) {
    int n = 0;
    for (const api::Task& t : Tasks("svc")) {
      n += t.spec().container_spec().image() == image &&
           t.status().state() == api::TASK_STATE_RUNNING &&
           t.desired_state() <= api::TASK_STATE_RUNNING;
    }
    return n;
  }
  int Running() {
    int n = 0;
    for (const api::Task& t : Tasks("svc")) n += t.status().state() == api::TASK_STATE_RUNNING;
    return n;
  }
  static void Config(api::ServiceSpec* spec, uint64_t parallelism, absl::Duration delay,
                     api::UpdateConfig::FailureAction action = api::UpdateConfig::PAUSE,
                     api::UpdateConfig::Order order = api::UpdateConfig::STOP_FIRST,
                     absl::Duration monitor = absl::Seconds(5), float ratio = 0) {
    api::UpdateConfig* c = spec->mutable_update_config();
    c->set_parallelism(parallelism);
    c->mutable_delay()->set_seconds(absl::ToInt64Seconds(delay));
    c->set_failure_action(action);
    c->set_order(order);
    c->mutable_monitor()->set_seconds(absl::ToInt64Seconds(monitor));
    c->set_max_failure_ratio(ratio);
  }

  // Runs updater and agents until nothing changes or `rounds` are used, advancing the clock
  // by `step` each round.
  void Converge(absl::Duration step, int rounds = 40, const std::set<std::string>& fail = {}) {
    for (int i = 0; i < rounds; ++i) {
      Update();
      Agents(fail);
      Update();
      clock().Advance(step);
    }
  }

  ReplicatedOrchestrator replicated_{&store(), options()};
  GlobalOrchestrator global_{&store(), options()};
  Updater updater_{&store(), options()};
};

TEST_F(UpdateTest, NothingToDoWhenTasksAreCurrent) {
  StartService(3);
  Update();
  EXPECT_EQ(updater_.active_updates(), 0u);
  EXPECT_FALSE(Svc().has_update_status());
  // Scaling changes spec_version but not the task spec: nothing rolls.
  ChangeSpec([](api::ServiceSpec* s) { s->mutable_replicated()->set_replicas(4); });
  Run(replicated_);
  Agents();
  Update();
  EXPECT_EQ(updater_.active_updates(), 0u);
  EXPECT_FALSE(Svc().has_update_status());
  EXPECT_EQ(Tasks("svc").size(), 4u);
}

TEST_F(UpdateTest, StopFirstBatchesWithParallelismAndDelay) {
  StartService(4, [](api::Service* s) { Config(s->mutable_spec(), 2, absl::Seconds(10)); });
  SetImage("sim/v2");
  Update();
  api::Service svc = Svc();
  EXPECT_EQ(svc.update_status().state(), api::UpdateStatus::UPDATING);
  EXPECT_EQ(svc.update_status().message(), "update in progress");
  EXPECT_EQ(FromProto(svc.update_status().started_at()), clock().Now());
  // First batch: slots 1 and 2; old tasks desired SHUTDOWN, new ones wait with desired READY.
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_SHUTDOWN).size(), 2u);
  std::vector<api::Task> ready = TasksDesired("svc", api::TASK_STATE_READY);
  ASSERT_EQ(ready.size(), 2u);
  EXPECT_EQ(ready[0].slot(), 1u);
  EXPECT_EQ(ready[1].slot(), 2u);
  EXPECT_EQ(ready[0].spec().container_spec().image(), "sim/v2");
  // The replicated orchestrator sees every slot taken.
  Run(replicated_);
  EXPECT_EQ(Live("svc").size(), 4u);
  // Not started while the old tasks still run.
  Update();
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_READY).size(), 2u);
  Agents();  // old tasks stop
  Update();  // new ones are started
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_READY).size(), 0u);
  Agents();  // new ones run
  Update();
  EXPECT_EQ(RunningWith("sim/v2"), 2);
  // The delay holds the second batch.
  clock().Advance(absl::Seconds(9));
  Update();
  EXPECT_EQ(LiveWith("sim/run"), 2);
  clock().Advance(absl::Seconds(1));
  Update();
  EXPECT_EQ(LiveWith("sim/run"), 0);
  EXPECT_EQ(LiveWith("sim/v2"), 4);
  Agents();
  Update();
  Agents();
  Update();
  EXPECT_EQ(RunningWith("sim/v2"), 4);
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::UPDATING);  // monitoring
  clock().Advance(absl::Seconds(5));
  Update();
  svc = Svc();
  EXPECT_EQ(svc.update_status().state(), api::UpdateStatus::COMPLETED);
  EXPECT_EQ(svc.update_status().message(), "update completed");
  EXPECT_EQ(FromProto(svc.update_status().completed_at()), clock().Now());
  EXPECT_EQ(updater_.active_updates(), 0u);
  for (const api::Task& t : Live("svc")) EXPECT_EQ(t.spec_version().index(), 101u);
}

TEST_F(UpdateTest, ParallelismZeroUpdatesAllAtOnce) {
  StartService(3, [](api::Service* s) { Config(s->mutable_spec(), 0, absl::ZeroDuration()); });
  SetImage("sim/v2");
  Update();
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_READY).size(), 3u);
}

TEST_F(UpdateTest, StopFirstDoesNotWaitForATaskOnADownNode) {
  StartService(2, [](api::Service* s) { Config(s->mutable_spec(), 0, absl::ZeroDuration()); });
  // n1 (slot 1's node) goes down: its task will never report that it stopped.
  UpdateNode("n1", [](api::Node* n) { n->mutable_status()->set_state(api::NodeStatus::DOWN); });
  SetImage("sim/v2");
  Update();  // both replacements created, waiting (READY)
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_READY).size(), 2u);
  Update();
  ASSERT_EQ(TasksDesired("svc", api::TASK_STATE_READY).size(), 1u);  // slot 2 waits for its task
  EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_READY)[0].slot(), 2u);
  // Slot 1's replacement was started at once.
  int started = 0;
  for (const api::Task& t : Live("svc")) {
    if (t.slot() == 1 && t.spec().container_spec().image() == "sim/v2") {
      EXPECT_EQ(t.desired_state(), api::TASK_STATE_RUNNING);
      ++started;
    }
  }
  EXPECT_EQ(started, 1);
}

TEST_F(UpdateTest, StartFirstKeepsCapacity) {
  StartService(3, [](api::Service* s) {
    Config(s->mutable_spec(), 1, absl::ZeroDuration(), api::UpdateConfig::PAUSE,
           api::UpdateConfig::START_FIRST);
  });
  SetImage("sim/v2");
  for (int i = 0; i < 30 && Svc().update_status().state() != api::UpdateStatus::COMPLETED; ++i) {
    Update();
    Run(replicated_);
    EXPECT_GE(RunningWith("sim/run") + RunningWith("sim/v2"), 3) << "round " << i;
    EXPECT_LE(Live("svc").size(), 4u);
    Agents();
    EXPECT_GE(RunningWith("sim/run") + RunningWith("sim/v2"), 3) << "round " << i;
    clock().Advance(absl::Seconds(5));
  }
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::COMPLETED);
  EXPECT_EQ(RunningWith("sim/v2"), 3);
  EXPECT_EQ(LiveWith("sim/run"), 0);
}

TEST_F(UpdateTest, StartFirstShutsOldTaskOnlyOnceNewRuns) {
  StartService(1, [](api::Service* s) {
    Config(s->mutable_spec(), 1, absl::ZeroDuration(), api::UpdateConfig::PAUSE,
           api::UpdateConfig::START_FIRST);
  });
  SetImage("sim/v2");
  Update();
  ASSERT_EQ(Live("svc").size(), 2u);
  EXPECT_EQ(LiveWith("sim/run"), 1);
  Update();
  EXPECT_EQ(LiveWith("sim/run"), 1);
  Agents();  // the new one runs
  Update();
  EXPECT_EQ(LiveWith("sim/run"), 0);
  EXPECT_EQ(RunningWith("sim/v2"), 1);
}

TEST_F(UpdateTest, FailurePausesWithMessage) {
  StartService(3, [](api::Service* s) { Config(s->mutable_spec(), 1, absl::ZeroDuration()); });
  SetImage("sim/bad");
  Update();
  Agents({"sim/bad"});
  Update();             // the replacement starts
  Agents({"sim/bad"});  // and fails
  Update();
  api::Service svc = Svc();
  EXPECT_EQ(svc.update_status().state(), api::UpdateStatus::PAUSED);
  EXPECT_NE(svc.update_status().message().find("update paused due to failure"), std::string::npos)
      << svc.update_status().message();
  EXPECT_NE(svc.update_status().message().find("web.1."), std::string::npos);
  EXPECT_NE(svc.update_status().message().find("exit code 1"), std::string::npos);
  // Stays paused: the other slots keep the old spec.
  Converge(absl::Seconds(5), 5, {"sim/bad"});
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::PAUSED);
  EXPECT_EQ(LiveWith("sim/run"), 2);
  // A new spec (e.g. --force) starts over.
  ChangeSpec([](api::ServiceSpec* s) {
    s->mutable_task_template()->mutable_container_spec()->set_image("sim/good");
  });
  Converge(absl::Seconds(5), 10);
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::COMPLETED);
  EXPECT_EQ(RunningWith("sim/good"), 3);
}

TEST_F(UpdateTest, FailureDuringMonitorWindowCounts) {
  StartService(2, [](api::Service* s) {
    Config(s->mutable_spec(), 1, absl::ZeroDuration(), api::UpdateConfig::PAUSE,
           api::UpdateConfig::STOP_FIRST, absl::Seconds(30));
  });
  SetImage("sim/v2");
  Update();
  Agents();
  Update();
  Agents();
  Update();  // slot 1's new task seen RUNNING: monitored for 30 s
  std::vector<api::Task> v2;
  for (const api::Task& t : Live("svc")) {
    if (t.spec().container_spec().image() == "sim/v2" && t.slot() == 1) v2.push_back(t);
  }
  ASSERT_EQ(v2.size(), 1u);
  clock().Advance(absl::Seconds(29));
  SetState(v2[0].id(), api::TASK_STATE_FAILED);
  Update();
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::PAUSED);
}

TEST_F(UpdateTest, FailureAfterMonitorWindowDoesNotCount) {
  StartService(1, [](api::Service* s) {
    Config(s->mutable_spec(), 1, absl::ZeroDuration(), api::UpdateConfig::PAUSE,
           api::UpdateConfig::STOP_FIRST, absl::Seconds(30));
  });
  SetImage("sim/v2");
  Update();
  Agents();
  Update();
  Agents();
  Update();
  clock().Advance(absl::Seconds(30));
  Update();
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::COMPLETED);
  SetState(Live("svc")[0].id(), api::TASK_STATE_FAILED);
  Update();
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::COMPLETED);
}

TEST_F(UpdateTest, ContinueIgnoresFailures) {
  StartService(3, [](api::Service* s) {
    Config(s->mutable_spec(), 1, absl::ZeroDuration(), api::UpdateConfig::CONTINUE);
  });
  SetImage("sim/bad");
  Converge(absl::Seconds(1), 20, {"sim/bad"});
  // Every slot moved to the new spec; nothing paused.
  EXPECT_EQ(LiveWith("sim/run"), 0);
  EXPECT_EQ(LiveWith("sim/bad"), 3);
  EXPECT_NE(Svc().update_status().state(), api::UpdateStatus::PAUSED);
}

TEST_F(UpdateTest, MaxFailureRatioTolerates) {
  StartService(4, [](api::Service* s) {
    Config(s->mutable_spec(), 1, absl::ZeroDuration(), api::UpdateConfig::PAUSE,
           api::UpdateConfig::STOP_FIRST, absl::Seconds(5), 0.5f);
  });
  SetImage("sim/v2");
  // Slot 1's new task fails: 1 of 1 > 0.5 pauses; so let it run, fail the second: 1/2 = 0.5.
  Update();
  Agents();
  Update();
  Agents();
  Update();
  clock().Advance(absl::Seconds(1));
  Update();  // batch settled: slot 2
  Agents();
  Update();
  Agents({"sim/v2"});
  Update();
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::UPDATING);
}

TEST_F(UpdateTest, MaxFailureRatioCountsAgainstEverySlotOfTheUpdate) {
  // 4 slots, parallelism 1, ratio 0.5, every new task fails: as in Docker, failures are counted
  // against the 4 slots of the update, so the first two are tolerated and the third pauses.
  StartService(4, [](api::Service* s) {
    Config(s->mutable_spec(), 1, absl::ZeroDuration(), api::UpdateConfig::CONTINUE,
           api::UpdateConfig::STOP_FIRST, absl::Seconds(5), 0.5f);
    s->mutable_spec()->mutable_update_config()->set_failure_action(api::UpdateConfig::PAUSE);
  });
  SetImage("sim/bad");
  int failed_slots_when_paused = -1;
  for (int i = 0; i < 40 && failed_slots_when_paused < 0; ++i) {
    Update();
    Agents({"sim/bad"});
    Update();
    if (Svc().update_status().state() == api::UpdateStatus::PAUSED) {
      std::set<uint64_t> slots;
      for (const api::Task& t : Tasks("svc")) {
        if (t.spec().container_spec().image() == "sim/bad" &&
            t.status().state() == api::TASK_STATE_FAILED) {
          slots.insert(t.slot());
        }
      }
      failed_slots_when_paused = static_cast<int>(slots.size());
    }
    clock().Advance(absl::Seconds(1));
  }
  EXPECT_EQ(failed_slots_when_paused, 3);
}

TEST_F(UpdateTest, RollbackRestoresPreviousSpecAndCompletes) {
  StartService(3, [](api::Service* s) {
    Config(s->mutable_spec(), 1, absl::ZeroDuration(), api::UpdateConfig::ROLLBACK);
    s->mutable_spec()->mutable_rollback_config()->set_parallelism(0);
  });
  SetImage("sim/bad");
  const api::Service before = Svc();
  Update();
  Agents({"sim/bad"});
  Update();
  Agents({"sim/bad"});
  Update();
  api::Service svc = Svc();
  EXPECT_EQ(svc.update_status().state(), api::UpdateStatus::ROLLBACK_STARTED);
  EXPECT_NE(svc.update_status().message().find("rolled back"), std::string::npos);
  EXPECT_EQ(svc.spec().task_template().container_spec().image(), "sim/run");
  EXPECT_EQ(svc.spec_version().index(), before.previous_spec_version().index());
  EXPECT_EQ(svc.previous_spec().task_template().container_spec().image(), "sim/bad");
  EXPECT_EQ(svc.previous_spec_version().index(), before.spec_version().index());
  Converge(absl::Seconds(5), 10, {"sim/bad"});
  svc = Svc();
  EXPECT_EQ(svc.update_status().state(), api::UpdateStatus::ROLLBACK_COMPLETED);
  EXPECT_EQ(svc.update_status().message(), "rollback completed");
  EXPECT_EQ(RunningWith("sim/run"), 3);
  EXPECT_EQ(LiveWith("sim/bad"), 0);
}

TEST_F(UpdateTest, ForceUpdateRedeploys) {
  StartService(2, [](api::Service* s) { Config(s->mutable_spec(), 0, absl::ZeroDuration()); });
  const std::vector<api::Task> before = Live("svc");
  ChangeSpec([](api::ServiceSpec* s) { s->mutable_task_template()->set_force_update(1); });
  Converge(absl::Seconds(5), 6);
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::COMPLETED);
  const std::vector<api::Task> after = Live("svc");
  ASSERT_EQ(after.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NE(after[i].id(), before[i].id());
    EXPECT_EQ(after[i].spec().force_update(), 1u);
    EXPECT_EQ(after[i].status().state(), api::TASK_STATE_RUNNING);
  }
}

TEST_F(UpdateTest, ResumesAfterRestart) {
  StartService(4, [](api::Service* s) { Config(s->mutable_spec(), 2, absl::Seconds(10)); });
  SetImage("sim/v2");
  Update();  // first batch: two slots shut down, replacements READY
  Agents();  // old stop
  {
    // A new leader's updater: nothing in memory.
    Updater fresh(&store(), options());
    ASSERT_TRUE(fresh.ReconcileOnce().ok());
    EXPECT_EQ(TasksDesired("svc", api::TASK_STATE_READY).size(), 0u);  // adopted and started
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(fresh.ReconcileOnce().ok());
      Agents();
      ASSERT_TRUE(fresh.ReconcileOnce().ok());
      clock().Advance(absl::Seconds(5));
    }
  }
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::COMPLETED);
  EXPECT_EQ(RunningWith("sim/v2"), 4);
  EXPECT_EQ(Live("svc").size(), 4u);
}

TEST_F(UpdateTest, GlobalServiceUpdatedNodeByNode) {
  AddNode("n1");
  AddNode("n2");
  AddNode("n3");
  api::Service s = Global("svc", "agent");
  Config(s.mutable_spec(), 1, absl::ZeroDuration());
  AddService(s);
  Run(global_);
  Agents();
  EXPECT_EQ(Running(), 3);
  SetImage("sim/v2");
  Update();
  std::vector<api::Task> ready = TasksDesired("svc", api::TASK_STATE_READY);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].node_id(), "n1");
  EXPECT_EQ(ready[0].slot(), 0u);
  Run(global_);  // no second task for n1
  EXPECT_EQ(Live("svc").size(), 3u);
  Agents();
  Update();
  Agents();
  Update();
  EXPECT_EQ(RunningWith("sim/v2"), 1);
  // n1 settled: n2 is next (no delay).
  std::vector<api::Task> next = TasksDesired("svc", api::TASK_STATE_READY);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].node_id(), "n2");
  Converge(absl::Seconds(5), 10);
  EXPECT_EQ(Svc().update_status().state(), api::UpdateStatus::COMPLETED);
  EXPECT_EQ(RunningWith("sim/v2"), 3);
  EXPECT_EQ(Live("svc").size(), 3u);
}

TEST_F(UpdateTest, LoopThreadInsideOrchestrators) {
  AddNode("n1");
  AddNode("n2");
  api::Service s = Replicated("svc", "web", 2);
  Config(s.mutable_spec(), 1, absl::ZeroDuration());
  AddService(s);
  Orchestrators all(&store(), options());
  all.Start();
  ASSERT_TRUE(WaitFor([&] { return Live("svc").size() == 2; }));
  Agents();
  SetImage("sim/v2");
  ASSERT_TRUE(WaitFor([&] {
    Agents();
    clock().Advance(absl::Seconds(1));
    return Svc().update_status().state() == api::UpdateStatus::COMPLETED;
  }));
  all.Stop();
  EXPECT_EQ(RunningWith("sim/v2"), 2);
}

}  // namespace
}  // namespace shoal::manager::orchestrator
