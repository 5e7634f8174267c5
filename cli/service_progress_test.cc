#include "cli/service_progress.h"

#include <sstream>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

api::TaskSpec Template(const std::string& image) {
  api::TaskSpec t;
  t.mutable_container_spec()->set_image(image);
  return t;
}

api::Service Replicated(uint64_t replicas, const std::string& image = "app:1") {
  api::Service s;
  s.set_id("svc1");
  s.mutable_spec()->mutable_annotations()->set_name("web");
  s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
  *s.mutable_spec()->mutable_task_template() = Template(image);
  return s;
}

api::Task MakeTask(const std::string& id, uint64_t slot, const std::string& node,
                   api::TaskState state, api::TaskState desired = api::TASK_STATE_RUNNING,
                   const std::string& image = "app:1", int64_t created = 100) {
  api::Task t;
  t.set_id(id);
  t.set_service_id("svc1");
  t.set_slot(slot);
  t.set_node_id(node);
  *t.mutable_spec() = Template(image);
  t.mutable_status()->set_state(state);
  t.set_desired_state(desired);
  t.mutable_meta()->mutable_created_at()->set_seconds(created);
  return t;
}

api::Task Failed(const std::string& id, uint64_t slot, const std::string& err) {
  api::Task t = MakeTask(id, slot, "n1", api::TASK_STATE_FAILED, api::TASK_STATE_SHUTDOWN);
  t.mutable_status()->set_err(err);
  return t;
}

api::Node MakeNode(const std::string& id, api::NodeStatus::State state = api::NodeStatus::READY) {
  api::Node n;
  n.set_id(id);
  n.mutable_status()->set_state(state);
  return n;
}

const std::vector<api::Node> kNodes = {MakeNode("n1"), MakeNode("n2"),
                                       MakeNode("n3", api::NodeStatus::DOWN)};

std::string Lines(const ProgressReport& r) {
  std::vector<std::string> out;
  for (const ProgressLine& l : r.lines) out.push_back(l.Render());
  return absl::StrJoin(out, "\n");
}

TEST(EvaluateProgressTest, ReplicatedConvergesAfterTheMonitorPeriod) {
  const api::Service s = Replicated(3);
  ProgressState state;
  std::vector<api::Task> tasks = {MakeTask("t1", 1, "n1", api::TASK_STATE_RUNNING),
                                  MakeTask("t2", 2, "n2", api::TASK_STATE_PREPARING),
                                  MakeTask("t3", 3, "", api::TASK_STATE_PENDING)};
  ProgressReport r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kWaiting);
  EXPECT_EQ(Lines(r),
            "overall progress: 1 out of 3 tasks\n"
            "1/3: running\n"
            "2/3: preparing\n"
            "3/3: pending");
  EXPECT_EQ(r.done, 1u);
  EXPECT_EQ(r.total, 3u);

  tasks[1].mutable_status()->set_state(api::TASK_STATE_RUNNING);
  tasks[2].mutable_status()->set_state(api::TASK_STATE_RUNNING);
  tasks[2].set_node_id("n1");
  r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kWaiting);
  EXPECT_EQ(r.lines.back().Render(),
            "verify: Waiting 5 seconds to verify that tasks are stable...");
  r = EvaluateProgress(s, tasks, kNodes, kStart + absl::Milliseconds(2500), false, &state);
  EXPECT_EQ(r.lines.back().Render(),
            "verify: Waiting 3 seconds to verify that tasks are stable...");
  r = EvaluateProgress(s, tasks, kNodes, kStart + absl::Seconds(5), false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kDone);
  EXPECT_EQ(r.lines.back().Render(), "verify: Service converged");
}

TEST(EvaluateProgressTest, ATaskFailingDuringVerificationStartsItOver) {
  api::Service s = Replicated(1);
  s.mutable_spec()->mutable_update_config()->mutable_monitor()->set_seconds(2);
  ProgressState state;
  std::vector<api::Task> tasks = {MakeTask("t1", 1, "n1", api::TASK_STATE_RUNNING)};
  EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  tasks[0].mutable_status()->set_state(api::TASK_STATE_FAILED);
  ProgressReport r = EvaluateProgress(s, tasks, kNodes, kStart + absl::Seconds(1), false, &state);
  EXPECT_EQ(r.lines.back().Render(), "verify: Detected task failure");
  tasks.push_back(
      MakeTask("t2", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING, "app:1", 200));
  tasks[0].set_desired_state(api::TASK_STATE_SHUTDOWN);
  r = EvaluateProgress(s, tasks, kNodes, kStart + absl::Seconds(2), false, &state);
  EXPECT_EQ(r.lines.back().Render(),
            "verify: Waiting 2 seconds to verify that tasks are stable...");
  r = EvaluateProgress(s, tasks, kNodes, kStart + absl::Seconds(4), false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kDone);
}

TEST(EvaluateProgressTest, OnlyUpToDateTasksOnLiveNodesCount) {
  const api::Service s = Replicated(2, "app:2");
  ProgressState state;
  const std::vector<api::Task> tasks = {
      MakeTask("old1", 1, "n1", api::TASK_STATE_RUNNING),  // previous image
      MakeTask("new1", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING, "app:2"),
      MakeTask("new2", 2, "n3", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING, "app:2")};
  const ProgressReport r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(Lines(r), "overall progress: 1 out of 2 tasks\n1/2: running\n2/2:");
}

TEST(EvaluateProgressTest, ScaleToZeroConvergesAtOnce) {
  const api::Service s = Replicated(0);
  ProgressState state;
  const std::vector<api::Task> tasks = {
      MakeTask("t1", 1, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_REMOVE)};
  ProgressReport r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(Lines(r),
            "overall progress: 0 out of 0 tasks\n"
            "verify: Waiting 5 seconds to verify that tasks are stable...");
}

TEST(EvaluateProgressTest, ManyReplicasShowOnlyTheOverallLine) {
  const api::Service s = Replicated(21);
  ProgressState state;
  const ProgressReport r = EvaluateProgress(s, {}, kNodes, kStart, false, &state);
  EXPECT_EQ(Lines(r), "overall progress: 0 out of 21 tasks");
}

TEST(EvaluateProgressTest, RepeatedFailuresEndTheWait) {
  const api::Service s = Replicated(1);
  ProgressState state;
  state.failed_before = {"before"};
  std::vector<api::Task> tasks = {Failed("before", 1, "exit 1"), Failed("f1", 1, "exit 1"),
                                  Failed("f2", 1, "exit 1"),
                                  MakeTask("t", 1, "n1", api::TASK_STATE_STARTING)};
  ProgressReport r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kWaiting);  // 2 of this change's
  EXPECT_EQ(Lines(r), "overall progress: 0 out of 1 tasks\n1/1: starting");
  // The reaper deletes f1 and f2, a third failure comes: still seen as the third.
  tasks = {Failed("f3", 1, "exit 1")};
  r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kFailed);
  EXPECT_EQ(r.error, "tasks of service web keep failing: \"exit 1\" (3 times)");
}

TEST(EvaluateProgressTest, DifferentErrorsAreDifferentPatterns) {
  const api::Service s = Replicated(1);
  ProgressState state;
  const std::vector<api::Task> tasks = {Failed("f1", 1, "a"), Failed("f2", 1, "b"),
                                        Failed("f3", 1, "a")};
  const ProgressReport r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kWaiting);
  EXPECT_EQ(Lines(r), "overall progress: 0 out of 1 tasks\n1/1: a");
}

TEST(EvaluateProgressTest, ErrorsAreShownTruncated) {
  const api::Service s = Replicated(1);
  ProgressState state;
  api::Task t = MakeTask("t1", 1, "n1", api::TASK_STATE_REJECTED);
  t.mutable_status()->set_err(std::string(80, 'x') + "\nmore");
  const ProgressReport r = EvaluateProgress(s, {t}, kNodes, kStart, false, &state);
  EXPECT_EQ(r.lines[1].text, std::string(74, 'x') + "\xe2\x80\xa6");
}

TEST(EvaluateProgressTest, UpdateStatusEndsTheWait) {
  api::Service s = Replicated(1);
  ProgressState state;
  s.mutable_update_status()->set_state(api::UpdateStatus::PAUSED);
  s.mutable_update_status()->set_message("update paused due to failure of task x");
  ProgressReport r = EvaluateProgress(s, {}, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kFailed);
  EXPECT_EQ(r.error, "service update paused: update paused due to failure of task x");

  s.mutable_update_status()->set_state(api::UpdateStatus::ROLLBACK_PAUSED);
  s.mutable_update_status()->set_message("m");
  r = EvaluateProgress(s, {}, kNodes, kStart, true, &state);
  EXPECT_EQ(r.error, "service rollback paused: m");

  s.mutable_update_status()->set_state(api::UpdateStatus::ROLLBACK_COMPLETED);
  s.mutable_update_status()->set_message("rollback completed");
  r = EvaluateProgress(s, {}, kNodes, kStart, false, &state);
  EXPECT_EQ(r.error, "the update of service web failed and was rolled back: rollback completed");
}

TEST(EvaluateProgressTest, RollbackIsShownAsSuch) {
  api::Service s = Replicated(1);
  s.mutable_update_status()->set_state(api::UpdateStatus::ROLLBACK_STARTED);
  s.mutable_update_status()->set_message("manually requested rollback");
  ProgressState state;
  ProgressReport r = EvaluateProgress(s, {MakeTask("t1", 1, "n1", api::TASK_STATE_RUNNING)}, kNodes,
                                      kStart, true, &state);
  EXPECT_EQ(Lines(r),
            "rollback: manually requested rollback\n"
            "overall progress: rolling back update: 1 out of 1 tasks\n"
            "1/1: running\n"
            "verify: Waiting 5 seconds to verify that tasks are stable...");
  // An update the managers roll back on their own: shown, and the wait goes on.
  state = ProgressState();
  s.mutable_update_status()->set_message("update rolled back due to failure");
  r = EvaluateProgress(s, {}, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kWaiting);
  EXPECT_EQ(r.lines[1].Render(), "overall progress: rolling back update: 0 out of 1 tasks");
}

TEST(EvaluateProgressTest, GlobalCountsTheNodesTheManagersChose) {
  api::Service s = Replicated(0, "app:2");
  s.mutable_spec()->mutable_global();
  ProgressState state;
  ProgressReport r = EvaluateProgress(s, {}, kNodes, kStart, false, &state);
  EXPECT_EQ(Lines(r), "overall progress: waiting for new tasks");
  const std::vector<api::Task> tasks = {
      MakeTask("a", 0, "n1", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING, "app:2"),
      MakeTask("b", 0, "n2", api::TASK_STATE_RUNNING),  // old version still meant to run
      MakeTask("c", 0, "n3", api::TASK_STATE_RUNNING, api::TASK_STATE_RUNNING, "app:2")};
  r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(Lines(r), "overall progress: 1 out of 2 tasks\nn1: running\nn2:");
}

TEST(EvaluateProgressTest, ReplicatedJobCompletes) {
  api::Service s = Replicated(0);
  s.mutable_spec()->mutable_replicated_job()->set_total_completions(3);
  s.mutable_spec()->mutable_replicated_job()->set_max_concurrent(2);
  s.mutable_job_status()->mutable_job_iteration()->set_index(5);
  auto job_task = [](const std::string& id, uint64_t slot, api::TaskState state, uint64_t it) {
    api::Task t = MakeTask(id, slot, "n1", state, api::TASK_STATE_COMPLETE);
    t.mutable_job_iteration()->set_index(it);
    return t;
  };
  ProgressState state;
  std::vector<api::Task> tasks = {job_task("old", 1, api::TASK_STATE_COMPLETE, 4),
                                  job_task("a", 1, api::TASK_STATE_COMPLETE, 5),
                                  job_task("b", 2, api::TASK_STATE_RUNNING, 5)};
  ProgressReport r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(Lines(r), "overall progress: 1 out of 3 tasks\n2/3: running");
  tasks[2].mutable_status()->set_state(api::TASK_STATE_COMPLETE);
  tasks.push_back(job_task("c", 3, api::TASK_STATE_COMPLETE, 5));
  r = EvaluateProgress(s, tasks, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kDone);
  EXPECT_EQ(Lines(r), "overall progress: 3 out of 3 tasks\njob complete");
}

TEST(EvaluateProgressTest, GlobalJobCompletesOnEveryNode) {
  api::Service s = Replicated(0);
  s.mutable_spec()->mutable_global_job();
  ProgressState state;
  api::Task a = MakeTask("a", 0, "n1", api::TASK_STATE_COMPLETE, api::TASK_STATE_COMPLETE);
  api::Task b = MakeTask("b", 0, "n2", api::TASK_STATE_STARTING, api::TASK_STATE_COMPLETE);
  a.mutable_job_iteration();
  b.mutable_job_iteration();
  ProgressReport r = EvaluateProgress(s, {a, b}, kNodes, kStart, false, &state);
  EXPECT_EQ(Lines(r), "overall progress: 1 out of 2 tasks\nn2: starting");
  b.mutable_status()->set_state(api::TASK_STATE_COMPLETE);
  r = EvaluateProgress(s, {a, b}, kNodes, kStart, false, &state);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kDone);
}

TEST(EvaluateProgressTest, AJobsFailuresCountButNotItsCompletions) {
  api::Service s = Replicated(0);
  s.mutable_spec()->mutable_replicated_job()->set_total_completions(10);
  ProgressState state;
  std::vector<api::Task> tasks;
  for (int i = 0; i < 3; ++i) {
    api::Task t = MakeTask("c" + std::to_string(i), 1, "n1", api::TASK_STATE_COMPLETE,
                           api::TASK_STATE_COMPLETE);
    t.mutable_job_iteration();
    tasks.push_back(t);
  }
  EXPECT_EQ(EvaluateProgress(s, tasks, kNodes, kStart, false, &state).outcome,
            ProgressReport::Outcome::kWaiting);
  // A service's task that exits 0 is a failure to run.
  const api::Service svc = Replicated(1);
  std::vector<api::Task> done;
  for (int i = 0; i < 3; ++i) {
    done.push_back(MakeTask("d" + std::to_string(i), 1, "n1", api::TASK_STATE_COMPLETE,
                            api::TASK_STATE_SHUTDOWN));
  }
  ProgressState state2;
  const ProgressReport r = EvaluateProgress(svc, done, kNodes, kStart, false, &state2);
  EXPECT_EQ(r.outcome, ProgressReport::Outcome::kFailed);
  EXPECT_NE(r.error.find("task exited with code 0"), std::string::npos) << r.error;
}

TEST(FailedTaskIdsTest, TerminalTasksThatDidNotSucceed) {
  api::Task job_done = MakeTask("j", 1, "n1", api::TASK_STATE_COMPLETE);
  job_done.mutable_job_iteration();
  EXPECT_EQ(FailedTaskIds({Failed("f", 1, "x"), MakeTask("r", 1, "n1", api::TASK_STATE_RUNNING),
                           MakeTask("c", 1, "n1", api::TASK_STATE_COMPLETE), job_done}),
            (std::set<std::string>{"c", "f"}));
}

TEST(ProgressPrinterTest, PlainPrintsChangedLinesOnly) {
  std::ostringstream out;
  ProgressPrinter p(out, /*terminal=*/false);
  p.Show({{"overall progress", "0 out of 2 tasks"}, {"1/2", ""}, {"2/2", "pending"}});
  p.Show({{"overall progress", "0 out of 2 tasks"}, {"1/2", "running"}, {"2/2", "pending"}});
  p.Show({{"overall progress", "2 out of 2 tasks"}, {"1/2", "running"}, {"2/2", "running"}});
  p.Show({{"verify", "Waiting 2 seconds", true}});
  p.Show({{"verify", "Waiting 1 seconds", true}});  // a countdown is printed once
  p.Show({{"verify", "Service converged"}});
  p.Show({{"", "job complete"}});
  EXPECT_EQ(out.str(),
            "overall progress: 0 out of 2 tasks\n"
            "2/2: pending\n"
            "1/2: running\n"
            "overall progress: 2 out of 2 tasks\n"
            "2/2: running\n"
            "verify: Waiting 2 seconds\n"
            "verify: Service converged\n"
            "job complete\n");
}

TEST(ProgressPrinterTest, TerminalRedrawsInPlace) {
  std::ostringstream out;
  ProgressPrinter p(out, /*terminal=*/true);
  p.Show({{"overall progress", "0 out of 1 tasks"}, {"1/1", ""}});
  p.Show({{"overall progress", "0 out of 1 tasks"}, {"1/1", ""}});  // unchanged: nothing drawn
  p.Show({{"overall progress", "1 out of 1 tasks"}});
  EXPECT_EQ(out.str(),
            "\x1b[2Koverall progress: 0 out of 1 tasks\n"
            "\x1b[2K1/1:\n"
            "\x1b[2A"
            "\x1b[2Koverall progress: 1 out of 1 tasks\n"
            "\x1b[2K\n");
}

}  // namespace
}  // namespace shoal::cli
