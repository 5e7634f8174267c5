// Services end to end on real shoald processes with the simulated executor (--executor sim):
// create and converge, scale, remove, reschedule after a node dies, drain, global services
// following nodes, constraints that cannot be met explaining themselves, restart limits, jobs,
// and rolling updates: pause on failure and resume, continue, the failure ratio, start-first
// keeping capacity, manual rollback, --force, and a leader lost in the middle of an update.
//
// The CLI drives every change; observations that need fields the CLI does not print (slots,
// spec versions, full task IDs) read the Control API on the same socket.
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/control.grpc.pb.h"
#include "tests/harness/control.h"
#include "tests/harness/daemon.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

constexpr absl::Duration kConverge = absl::Seconds(60);

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::vector<nlohmann::json> JsonLines(const CommandResult& r) {
  std::vector<nlohmann::json> out;
  if (r.exit_code != 0) return out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(j);
  }
  return out;
}

// Serving tasks by image.
std::map<std::string, int> ServingImages(const std::vector<api::Task>& tasks) {
  std::map<std::string, int> out;
  for (const api::Task& t : tasks) {
    if (Serving(t)) ++out[ImageOf(t)];
  }
  return out;
}

// The slots that have (had) a task with `image`.
std::set<uint64_t> SlotsWithImage(const std::vector<api::Task>& tasks, const std::string& image) {
  std::set<uint64_t> out;
  for (const api::Task& t : tasks) {
    if (ImageOf(t) == image) out.insert(t.slot());
  }
  return out;
}

std::string UpdateStateOf(const api::Service& s) {
  return s.has_update_status() ? api::UpdateStatus::State_Name(s.update_status().state())
                               : "(none)";
}

class ServiceTest : public ::testing::Test {
 protected:
  // One manager and `workers` workers; heartbeats every `heartbeat` (a dead node is Down after
  // three missed ones: ~3 s by default).
  void Build(int workers, const std::string& heartbeat = "1s") {
    manager_ = &cluster_.Add(ShoaldOptions{.node_name = "mgr"});
    CommandResult init =
        manager_->Cli({"swarm", "init", "--listen-addr", manager_->swarm_addr(), "--advertise-addr",
                       manager_->swarm_addr(), "--dispatcher-heartbeat", heartbeat});
    ASSERT_EQ(init.exit_code, 0) << init.err << manager_->LogText();
    const std::string token = Trim(manager_->Cli({"swarm", "join-token", "-q", "worker"}).out);
    for (int i = 1; i <= workers; ++i) {
      ShoaldProcess& w = cluster_.Add(ShoaldOptions{.node_name = absl::StrCat("wrk", i)});
      CommandResult r = w.Cli({"swarm", "join", "--token", token, manager_->swarm_addr()});
      ASSERT_EQ(r.exit_code, 0) << r.err << w.LogText();
      workers_.push_back(&w);
    }
    ASSERT_TRUE(WaitFor(
        [&] {
          std::vector<nlohmann::json> nodes =
              JsonLines(manager_->Cli({"node", "ls", "--format", "json"}));
          if (static_cast<int>(nodes.size()) != workers + 1) return false;
          for (const auto& n : nodes) {
            if (n.value("Status", "") != "Ready") return false;
          }
          return true;
        },
        kConverge, absl::Milliseconds(100)));
    control_ = std::make_unique<ControlClient>(*manager_);
  }

  CommandResult Cli(const std::vector<std::string>& args) {
    return manager_->Cli(args, {.timeout = absl::Seconds(120)});
  }

  // Running tasks of `service` (desired Running, current Running) by node hostname.
  std::map<std::string, int> RunningByNode(const std::string& service) {
    std::map<std::string, int> out;
    for (const nlohmann::json& t : JsonLines(Cli({"service", "ps", service, "--format", "json"}))) {
      if (absl::StartsWith(t.value("DesiredState", ""), "Running") &&
          absl::StartsWith(t.value("CurrentState", ""), "Running")) {
        ++out[t.value("Node", "")];
      }
    }
    return out;
  }

  int Running(const std::string& service) {
    int n = 0;
    for (const auto& [node, count] : RunningByNode(service)) n += count;
    return n;
  }

  std::string Describe(const std::string& service) {
    return Cli({"service", "ps", "--no-trunc", service}).out;
  }

  // The service's ID, read through the CLI ("" if it cannot be read).
  std::string ServiceId(const std::string& service) {
    CommandResult r = Cli({"service", "inspect", service});
    if (r.exit_code != 0) return "";
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.empty()) return "";
    return j[0].value("ID", "");
  }

  // `service inspect` of one service as JSON (null if it failed).
  nlohmann::json Inspect(const std::string& service) {
    CommandResult r = Cli({"service", "inspect", service});
    if (r.exit_code != 0) return nullptr;
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.is_array() || j.empty()) return nullptr;
    return j[0];
  }

  std::string InspectUpdateState(const std::string& service) {
    nlohmann::json j = Inspect(service);
    if (j.is_null() || !j.contains("UpdateStatus")) return "";
    return j["UpdateStatus"].value("State", "");
  }

  std::vector<api::Task> TasksOf(const std::string& service_id) {
    return control_->Tasks(service_id).value_or(std::vector<api::Task>{});
  }

  TestCluster cluster_;
  ShoaldProcess* manager_ = nullptr;
  std::vector<ShoaldProcess*> workers_;
  std::unique_ptr<ControlClient> control_;
};

TEST_F(ServiceTest, CreateScaleAndRemove) {
  Build(2);
  const absl::Time t = absl::Now();
  CommandResult create =
      Cli({"service", "create", "--name", "web", "--replicas", "3", "sim/web:1"});
  ASSERT_EQ(create.exit_code, 0) << create.err << create.out << manager_->LogText();
  std::cout << "[ metric ] service create of 3 replicas converged in "
            << absl::FormatDuration(absl::Now() - t) << " (including the 5 s monitor wait)\n";
  EXPECT_EQ(Running("web"), 3) << Describe("web");
  // Spread over the three nodes (the manager runs tasks too).
  EXPECT_EQ(RunningByNode("web").size(), 3u) << Describe("web");
  std::vector<nlohmann::json> ls = JsonLines(Cli({"service", "ls", "--format", "json"}));
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0].value("Replicas", ""), "3/3");

  ASSERT_EQ(Cli({"service", "scale", "web=6", "-d"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return Running("web") == 6; }, kConverge, absl::Milliseconds(200)))
      << Describe("web");
  ASSERT_EQ(Cli({"service", "scale", "web=1", "-d"}).exit_code, 0);
  EXPECT_TRUE(WaitFor([&] { return Running("web") == 1; }, kConverge, absl::Milliseconds(200)))
      << Describe("web");

  ASSERT_EQ(Cli({"service", "rm", "web"}).exit_code, 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        return JsonLines(Cli({"service", "ls", "--format", "json"})).empty();
      },
      kConverge, absl::Milliseconds(200)));
  EXPECT_NE(Cli({"service", "ps", "web"}).exit_code, 0);
}

TEST_F(ServiceTest, TasksOfADeadNodeAreRescheduledAndDrainMovesThem) {
  Build(2);
  ASSERT_EQ(
      Cli({"service", "create", "-d", "--name", "api", "--replicas", "4", "sim/api:1"}).exit_code,
      0);
  ASSERT_TRUE(WaitFor([&] { return Running("api") == 4; }, kConverge, absl::Milliseconds(200)))
      << Describe("api");
  // Kill wrk1: once it is Down its tasks are replaced on the others.
  workers_[0]->Kill();
  EXPECT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> by = RunningByNode("api");
        int total = 0;
        for (const auto& [n, c] : by) total += c;
        return total == 4 && by.count("wrk1") == 0;
      },
      kConverge, absl::Milliseconds(200)))
      << Describe("api");
  // Drain wrk2: everything moves to the manager.
  ASSERT_EQ(Cli({"node", "update", "--availability", "drain", "wrk2"}).exit_code, 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> by = RunningByNode("api");
        return by.size() == 1 && by.count("mgr") == 1 && by["mgr"] == 4;
      },
      kConverge, absl::Milliseconds(200)))
      << Describe("api");
}

TEST_F(ServiceTest, GlobalServiceFollowsNodes) {
  Build(1);
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "agent", "--mode", "global", "sim/agent:1"})
                .exit_code,
            0);
  EXPECT_TRUE(WaitFor([&] { return RunningByNode("agent").size() == 2; }, kConverge,
                      absl::Milliseconds(200)))
      << Describe("agent");
  // A node that joins gets its task.
  const std::string token = Trim(manager_->Cli({"swarm", "join-token", "-q", "worker"}).out);
  ShoaldProcess& late = cluster_.Add(ShoaldOptions{.node_name = "late"});
  ASSERT_EQ(late.Cli({"swarm", "join", "--token", token, manager_->swarm_addr()}).exit_code, 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> by = RunningByNode("agent");
        return by.size() == 3 && by.count("late") == 1;
      },
      kConverge, absl::Milliseconds(200)))
      << Describe("agent");
}

TEST_F(ServiceTest, ImpossibleConstraintExplainsItself) {
  Build(1);
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "picky", "--constraint",
                 "node.labels.zone==mars", "sim/picky:1"})
                .exit_code,
            0);
  EXPECT_TRUE(WaitFor(
      [&] {
        CommandResult ps = Cli({"service", "ps", "--no-trunc", "picky"});
        return ps.out.find("no suitable node") != std::string::npos;
      },
      kConverge, absl::Milliseconds(200)))
      << Cli({"service", "ps", "--no-trunc", "picky"}).out;
  // Give a node the label: the task is placed there.
  ASSERT_EQ(Cli({"node", "update", "--label-add", "zone=mars", "wrk1"}).exit_code, 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> by = RunningByNode("picky");
        return by.size() == 1 && by.count("wrk1") == 1;
      },
      kConverge, absl::Milliseconds(200)))
      << Describe("picky");
}

TEST_F(ServiceTest, RestartPolicyLimitsAndJobsComplete) {
  Build(1);
  // Fails at once; restarted at most twice, so three failed tasks in all.
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "crash", "--restart-delay", "100ms",
                 "--restart-max-attempts", "2", "sim/exit:1"})
                .exit_code,
            0);
  auto failed = [&] {
    int n = 0;
    for (const nlohmann::json& t : JsonLines(Cli({"service", "ps", "crash", "--format", "json"}))) {
      if (absl::StartsWith(t.value("CurrentState", ""), "Failed")) ++n;
    }
    return n;
  };
  EXPECT_TRUE(WaitFor([&] { return failed() == 3; }, kConverge, absl::Milliseconds(200)))
      << Describe("crash");

  // A replicated job of 3 completions, 2 at a time.
  CommandResult job = Cli({"service", "create", "--name", "batch", "--mode", "replicated-job",
                           "--replicas", "3", "--max-concurrent", "2", "sim/exit:0"});
  ASSERT_EQ(job.exit_code, 0) << job.err << job.out;
  int complete = 0;
  for (const nlohmann::json& t : JsonLines(Cli({"service", "ps", "batch", "--format", "json"}))) {
    if (absl::StartsWith(t.value("CurrentState", ""), "Complete")) ++complete;
  }
  EXPECT_EQ(complete, 3) << Describe("batch");
}

TEST_F(ServiceTest, RollingUpdateAndAutomaticRollback) {
  Build(1);
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "app", "--replicas", "4",
                 "--update-parallelism", "2", "--update-delay", "200ms", "--update-monitor", "1s",
                 "--update-failure-action", "rollback", "--rollback-monitor", "1s", "sim/app:1"})
                .exit_code,
            0);
  ASSERT_TRUE(WaitFor([&] { return Running("app") == 4; }, kConverge, absl::Milliseconds(200)))
      << Describe("app");
  auto running_images = [&] {
    std::map<std::string, int> images;
    for (const nlohmann::json& t : JsonLines(Cli({"service", "ps", "app", "--format", "json"}))) {
      if (absl::StartsWith(t.value("DesiredState", ""), "Running") &&
          absl::StartsWith(t.value("CurrentState", ""), "Running")) {
        ++images[t.value("Image", "")];
      }
    }
    return images;
  };
  // A good update rolls every task to the new image, two at a time; the CLI waits for it.
  CommandResult up = Cli({"service", "update", "--image", "sim/app:2", "app"});
  ASSERT_EQ(up.exit_code, 0) << up.err << up.out << manager_->LogText();
  EXPECT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> images = running_images();
        return images.size() == 1 && images.count("sim/app:2") == 1 && images["sim/app:2"] == 4;
      },
      kConverge, absl::Milliseconds(200)))
      << Describe("app");
  nlohmann::json inspect = nlohmann::json::parse(Cli({"service", "inspect", "app"}).out)[0];
  EXPECT_EQ(inspect["UpdateStatus"].value("State", ""), "completed") << inspect.dump();
  // A bad update (its tasks fail at once) is rolled back automatically to sim/app:2.
  CommandResult bad = Cli({"service", "update", "-d", "--image", "sim/exit:1", "app"});
  ASSERT_EQ(bad.exit_code, 0) << bad.err;
  EXPECT_TRUE(WaitFor(
      [&] {
        nlohmann::json i = nlohmann::json::parse(Cli({"service", "inspect", "app"}).out)[0];
        std::map<std::string, int> images = running_images();
        return i["UpdateStatus"].value("State", "") == "rollback_completed" && images.size() == 1 &&
               images["sim/app:2"] == 4;
      },
      kConverge, absl::Milliseconds(200)))
      << Describe("app") << Cli({"service", "inspect", "app"}).out;
}

// --update-failure-action pause: the first batch fails within the monitor window, the update
// stops there (the other slots keep the old image), `service inspect` says "paused" and names the
// failed task; a new `service update` with a good image then completes.
TEST_F(ServiceTest, FailedUpdatePausesAndANewUpdateResumesIt) {
  Build(2);
  // The delay between batches lets the first batch's failure be seen before a second batch
  // starts (a batch is done once its task has started, and sim/exit:1 fails right after).
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "app", "--replicas", "4",
                 "--update-parallelism", "1", "--update-delay", "3s", "--update-monitor", "2s",
                 "--update-failure-action", "pause", "--restart-delay", "200ms", "sim/app:1"})
                .exit_code,
            0);
  const std::string id = ServiceId("app");
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(WaitFor([&] { return ServingImages(TasksOf(id))["sim/app:1"] == 4; }, kConverge,
                      absl::Milliseconds(100)))
      << Dump(TasksOf(id));

  CommandResult bad = Cli({"service", "update", "-d", "--image", "sim/exit:1", "app"});
  ASSERT_EQ(bad.exit_code, 0) << bad.err;
  ASSERT_TRUE(WaitFor([&] { return InspectUpdateState("app") == "paused"; }, kConverge,
                      absl::Milliseconds(100)))
      << Inspect("app").dump(2) << Dump(TasksOf(id));
  const nlohmann::json paused = Inspect("app");
  const std::string message = paused["UpdateStatus"].value("Message", "");
  EXPECT_TRUE(absl::StrContains(message, "update paused due to failure")) << message;
  EXPECT_TRUE(absl::StrContains(message, "task app.")) << message;          // which task
  EXPECT_TRUE(absl::StrContains(message, "non-zero exit (1)")) << message;  // and why
  EXPECT_FALSE(paused["UpdateStatus"].contains("CompletedAt")) << paused.dump(2);

  // The failed slot keeps restarting its (new, failing) task; let it do so a few times while
  // paused: the update must not touch another slot meanwhile.
  ASSERT_TRUE(WaitFor(
      [&] {
        int in_failed_slot = 0;
        for (const api::Task& t : TasksOf(id)) {
          if (ImageOf(t) == "sim/exit:1" && t.status().state() == api::TASK_STATE_FAILED) {
            ++in_failed_slot;
          }
        }
        return in_failed_slot >= 3;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(TasksOf(id));
  std::vector<api::Task> tasks = TasksOf(id);
  EXPECT_EQ(SlotsWithImage(tasks, "sim/exit:1").size(), 1u) << Dump(tasks);
  EXPECT_EQ(ServingImages(tasks)["sim/app:1"], 3) << Dump(tasks);
  EXPECT_EQ(InspectUpdateState("app"), "paused");

  // A new update (Docker's way of going on from a pause) rolls every slot and completes.
  CommandResult good =
      Cli({"service", "update", "--image", "sim/app:2", "--update-delay", "0s", "app"});
  ASSERT_EQ(good.exit_code, 0) << good.err << good.out;
  EXPECT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> images = ServingImages(TasksOf(id));
        return InspectUpdateState("app") == "completed" && images.size() == 1 &&
               images["sim/app:2"] == 4;
      },
      kConverge, absl::Milliseconds(100)))
      << Inspect("app").dump(2) << Dump(TasksOf(id));
}

// Docker resumes a paused update with a plain `docker service update SERVICE` (no changes): the
// update status is reset and the rollout goes on with the next slot (here failing again, so it
// pauses again after touching a second slot).
TEST_F(ServiceTest, PlainServiceUpdateResumesAPausedUpdate) {
  Build(1);
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "app", "--replicas", "4",
                 "--update-parallelism", "1", "--update-delay", "3s", "--update-monitor", "2s",
                 "--update-failure-action", "pause", "sim/app:1"})
                .exit_code,
            0);
  const std::string id = ServiceId("app");
  ASSERT_TRUE(WaitFor([&] { return ServingImages(TasksOf(id))["sim/app:1"] == 4; }, kConverge,
                      absl::Milliseconds(100)));
  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/exit:1", "app"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return InspectUpdateState("app") == "paused"; }, kConverge,
                      absl::Milliseconds(100)))
      << Dump(TasksOf(id));
  ASSERT_EQ(SlotsWithImage(TasksOf(id), "sim/exit:1").size(), 1u);

  CommandResult resume = Cli({"service", "update", "-d", "app"});
  ASSERT_EQ(resume.exit_code, 0) << resume.err;
  EXPECT_TRUE(WaitFor([&] { return SlotsWithImage(TasksOf(id), "sim/exit:1").size() >= 2; },
                      absl::Seconds(30), absl::Milliseconds(100)))
      << Inspect("app").dump(2) << Dump(TasksOf(id));
}

// --update-failure-action continue ignores failures, whatever the ratio: every slot is rolled
// onto an image whose tasks all fail and the update completes. With pause, failures above
// --update-max-failure-ratio stop it.
TEST_F(ServiceTest, FailureActionContinueCompletesAndFailuresAboveTheRatioPause) {
  Build(1);
  ASSERT_EQ(
      Cli({"service", "create", "-d", "--name", "cont", "--replicas", "2", "--update-parallelism",
           "1", "--update-monitor", "2s", "--update-failure-action", "continue",
           "--update-max-failure-ratio", "0.5", "--restart-delay", "1s", "sim/cont:1"})
          .exit_code,
      0);
  ASSERT_EQ(
      Cli({"service", "create", "-d", "--name", "halt", "--replicas", "4", "--update-parallelism",
           "0", "--update-monitor", "5s", "--update-failure-action", "pause",
           "--update-max-failure-ratio", "0.5", "--restart-delay", "1s", "sim/halt:1"})
          .exit_code,
      0);
  const std::string cont = ServiceId("cont"), halt = ServiceId("halt");
  ASSERT_TRUE(WaitFor(
      [&] {
        return ServingImages(TasksOf(cont))["sim/cont:1"] == 2 &&
               ServingImages(TasksOf(halt))["sim/halt:1"] == 4;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(TasksOf(cont)) << Dump(TasksOf(halt));

  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/exit:1", "cont"}).exit_code, 0);
  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/exit:1", "halt"}).exit_code, 0);

  // continue: both slots rolled, every new task failed, and still "completed".
  EXPECT_TRUE(WaitFor(
      [&] {
        std::vector<api::Task> tasks = TasksOf(cont);
        return InspectUpdateState("cont") == "completed" &&
               SlotsWithImage(tasks, "sim/exit:1").size() == 2 &&
               ServingImages(tasks)["sim/cont:1"] == 0;
      },
      kConverge, absl::Milliseconds(100)))
      << Inspect("cont").dump(2) << Dump(TasksOf(cont));
  int failed = 0;
  for (const api::Task& t : TasksOf(cont)) {
    if (ImageOf(t) == "sim/exit:1" && t.status().state() == api::TASK_STATE_FAILED) ++failed;
  }
  EXPECT_GE(failed, 2) << Dump(TasksOf(cont));

  // pause with ratio 0.5: all four fail (4/4 > 0.5), so the update pauses.
  EXPECT_TRUE(WaitFor([&] { return InspectUpdateState("halt") == "paused"; }, kConverge,
                      absl::Milliseconds(100)))
      << Inspect("halt").dump(2) << Dump(TasksOf(halt));
}

// --update-max-failure-ratio with real task failures inside the monitor window: the node holding
// half the new tasks of two services restarts without its (simulated) containers, as after a
// host reboot, and reports them FAILED. 2 failures of 4 are not above a ratio of 0.5: that update
// completes; they are above 0.25: that one pauses, naming a lost task.
TEST_F(ServiceTest, FailuresUpToTheMaxFailureRatioAreTolerated) {
  // A slow heartbeat so that the worker's restart does not get it marked Down (which would shut
  // its tasks down instead of letting them fail).
  Build(2, "5s");
  const std::vector<std::pair<std::string, std::string>> services = {{"tol", "0.5"},
                                                                     {"strict", "0.25"}};
  for (const auto& [name, ratio] : services) {
    ASSERT_EQ(Cli({"service",
                   "create",
                   "-d",
                   "--name",
                   name,
                   "--replicas",
                   "4",
                   "--constraint",
                   "node.role==worker",
                   "--replicas-max-per-node",
                   "2",
                   "--update-parallelism",
                   "0",
                   "--update-monitor",
                   "20s",
                   "--update-failure-action",
                   "pause",
                   "--update-max-failure-ratio",
                   ratio,
                   absl::StrCat("sim/", name, ":1")})
                  .exit_code,
              0);
  }
  const std::string tol = ServiceId("tol"), strict = ServiceId("strict");
  ASSERT_TRUE(WaitFor(
      [&] {
        return ServingImages(TasksOf(tol))["sim/tol:1"] == 4 &&
               ServingImages(TasksOf(strict))["sim/strict:1"] == 4;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(TasksOf(tol)) << Dump(TasksOf(strict));

  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/tol:2", "tol"}).exit_code, 0);
  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/strict:2", "strict"}).exit_code, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return ServingImages(TasksOf(tol))["sim/tol:2"] == 4 &&
               ServingImages(TasksOf(strict))["sim/strict:2"] == 4;
      },
      kConverge, absl::Milliseconds(50)))
      << Dump(TasksOf(tol)) << Dump(TasksOf(strict));
  const absl::Time running_at = absl::Now();
  // The new tasks on wrk1: two of each service (at most 2 per node, over 2 workers).
  const nlohmann::json node = nlohmann::json::parse(Cli({"node", "inspect", "wrk1"}).out)[0];
  const std::string wrk1_id = node.value("ID", "");
  std::set<std::string> doomed;
  for (const std::string& id : {tol, strict}) {
    for (const api::Task& t : TasksOf(id)) {
      if (Serving(t) && t.node_id() == wrk1_id) doomed.insert(t.id());
    }
  }
  ASSERT_EQ(doomed.size(), 4u) << Dump(TasksOf(tol)) << Dump(TasksOf(strict));

  ShoaldProcess& wrk1 = *workers_[0];
  ASSERT_TRUE(wrk1.Stop().ok()) << wrk1.LogText();
  ASSERT_EQ(::unlink((wrk1.state_dir() + "/worker/sim.json").c_str()), 0);
  ASSERT_TRUE(wrk1.Start().ok()) << wrk1.LogText();
  ASSERT_TRUE(WaitFor(
      [&] {
        int failed = 0;
        for (const std::string& id : {tol, strict}) {
          for (const api::Task& t : TasksOf(id)) {
            if (doomed.count(t.id()) && t.status().state() == api::TASK_STATE_FAILED) ++failed;
          }
        }
        return failed == 4;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(TasksOf(tol)) << Dump(TasksOf(strict)) << wrk1.LogText();
  const absl::Duration failed_after = absl::Now() - running_at;
  std::cout << "[ metric ] worker restarted and its lost tasks reported FAILED "
            << absl::FormatDuration(failed_after) << " after the new tasks ran\n";
  EXPECT_LT(failed_after, absl::Seconds(15))
      << "the failures came too late to fall inside the 20 s monitor window";

  // strict: 2/4 > 0.25, paused, naming a task lost on wrk1.
  EXPECT_TRUE(WaitFor([&] { return InspectUpdateState("strict") == "paused"; }, kConverge,
                      absl::Milliseconds(100)))
      << Inspect("strict").dump(2) << Dump(TasksOf(strict));
  const std::string message = Inspect("strict")["UpdateStatus"].value("Message", "");
  EXPECT_TRUE(absl::StrContains(message, "task strict.")) << message;
  EXPECT_TRUE(absl::StrContains(message, "lost while the agent was down")) << message;

  // tol: 2/4 is not above 0.5: the update completes, never pausing.
  std::string state;
  EXPECT_TRUE(WaitFor(
      [&] {
        std::optional<api::Service> s = control_->Service("tol");
        state = s ? UpdateStateOf(*s) : "";
        return state == "COMPLETED" || state == "PAUSED";
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(TasksOf(tol));
  EXPECT_EQ(state, "COMPLETED") << Inspect("tol").dump(2) << Dump(TasksOf(tol));
  EXPECT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> images = ServingImages(TasksOf(tol));
        return images.size() == 1 && images["sim/tol:2"] == 4;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(TasksOf(tol));
}

// Docker divides the failures by the number of tasks the update covers (SwarmKit's updater:
// totalFailures / len(dirtySlots) > MaxFailureRatio), so with 4 replicas, parallelism 1 and
// ratio 0.5, two failed tasks are tolerated and the update pauses on the third.
TEST_F(ServiceTest, MaxFailureRatioCountsAgainstEveryTaskOfTheUpdate) {
  Build(1);
  ASSERT_EQ(
      Cli({"service", "create", "-d", "--name", "ratio", "--replicas", "4", "--update-parallelism",
           "1", "--update-monitor", "5s", "--update-failure-action", "pause",
           "--update-max-failure-ratio", "0.5", "--restart-delay", "1s", "sim/ratio:1"})
          .exit_code,
      0);
  const std::string id = ServiceId("ratio");
  ASSERT_TRUE(WaitFor([&] { return ServingImages(TasksOf(id))["sim/ratio:1"] == 4; }, kConverge,
                      absl::Milliseconds(100)));
  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/exit:1", "ratio"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return InspectUpdateState("ratio") == "paused"; }, kConverge,
                      absl::Milliseconds(100)))
      << Dump(TasksOf(id));
  EXPECT_GE(SlotsWithImage(TasksOf(id), "sim/exit:1").size(), 3u)
      << Inspect("ratio").dump(2) << Dump(TasksOf(id));
}

// --update-order start-first: a replacement runs before its predecessor is stopped, so the
// service never has fewer than its 3 replicas serving while the update runs.
TEST_F(ServiceTest, StartFirstUpdateKeepsCapacity) {
  Build(2);
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "web", "--replicas", "3",
                 "--update-parallelism", "1", "--update-delay", "500ms", "--update-monitor", "1s",
                 "--update-order", "start-first", "sim/web:1"})
                .exit_code,
            0);
  const std::string id = ServiceId("web");
  ASSERT_TRUE(WaitFor([&] { return ServingImages(TasksOf(id))["sim/web:1"] == 3; }, kConverge,
                      absl::Milliseconds(100)))
      << Dump(TasksOf(id));

  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/web:2", "web"}).exit_code, 0);
  int observations = 0, min_serving = 1 << 20, max_running = 0;
  bool mixed = false;  // seen old and new serving at once: observed mid-update
  std::string at_min;
  const absl::Time start = absl::Now();
  const bool done = WaitFor(
      [&] {
        std::optional<api::Service> s = control_->Service("web");
        std::optional<std::vector<api::Task>> tasks = control_->Tasks(id);
        if (!s || !tasks) return false;
        ++observations;
        std::map<std::string, int> images = ServingImages(*tasks);
        int serving = 0, running = 0;
        for (const auto& [image, n] : images) serving += n;
        for (const api::Task& t : *tasks) {
          if (t.status().state() == api::TASK_STATE_RUNNING) ++running;
        }
        max_running = std::max(max_running, running);
        if (serving < min_serving) {
          min_serving = serving;
          at_min = Dump(*tasks);
        }
        if (images.count("sim/web:1") && images.count("sim/web:2")) mixed = true;
        return s->update_status().state() == api::UpdateStatus::COMPLETED && images.size() == 1 &&
               images["sim/web:2"] == 3 && running == 3;
      },
      kConverge, absl::Milliseconds(10));
  std::cout << "[ metric ] start-first update of 3 replicas: " << observations
            << " observations in " << absl::FormatDuration(absl::Now() - start) << ", at least "
            << min_serving << " serving, at most " << max_running << " running\n";
  EXPECT_TRUE(done) << Inspect("web").dump(2) << Dump(TasksOf(id));
  EXPECT_GE(min_serving, 3) << "capacity dropped; tasks then:\n" << at_min;
  EXPECT_TRUE(mixed) << "never observed the update in progress";
}

// `service rollback` after a successful update: the previous spec comes back with its version,
// the spec rolled back from becomes the previous one, and the tasks converge to the old image.
TEST_F(ServiceTest, RollbackRestoresThePreviousSpec) {
  Build(1);
  ASSERT_EQ(Cli({"service", "create", "--name", "rb", "--replicas", "3", "--update-monitor", "1s",
                 "--rollback-monitor", "1s", "sim/rb:1"})
                .exit_code,
            0);
  const std::string id = ServiceId("rb");
  std::optional<api::Service> v1 = control_->Service("rb");
  ASSERT_TRUE(v1.has_value());
  CommandResult up = Cli({"service", "update", "--image", "sim/rb:2", "rb"});
  ASSERT_EQ(up.exit_code, 0) << up.err << up.out;
  std::optional<api::Service> v2 = control_->Service("rb");
  ASSERT_TRUE(v2.has_value());
  EXPECT_NE(v2->spec_version().index(), v1->spec_version().index());
  EXPECT_EQ(v2->previous_spec().task_template().container_spec().image(), "sim/rb:1");
  EXPECT_EQ(v2->previous_spec_version().index(), v1->spec_version().index());
  ASSERT_TRUE(WaitFor(
      [&] {
        std::map<std::string, int> images = ServingImages(TasksOf(id));
        return images.size() == 1 && images["sim/rb:2"] == 3;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(TasksOf(id));

  CommandResult rollback = Cli({"service", "rollback", "rb"});
  ASSERT_EQ(rollback.exit_code, 0) << rollback.err << rollback.out << manager_->LogText();
  std::optional<api::Service> v3 = control_->Service("rb");
  ASSERT_TRUE(v3.has_value());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(v3->spec(), v1->spec()))
      << v3->spec().DebugString() << "\nvs\n"
      << v1->spec().DebugString();
  EXPECT_EQ(v3->spec_version().index(), v1->spec_version().index());
  EXPECT_NE(v3->spec_version().index(), v2->spec_version().index());
  EXPECT_EQ(v3->previous_spec().task_template().container_spec().image(), "sim/rb:2");
  EXPECT_EQ(v3->previous_spec_version().index(), v2->spec_version().index());
  const nlohmann::json j = Inspect("rb");
  EXPECT_EQ(j["Spec"]["TaskTemplate"]["ContainerSpec"].value("Image", ""), "sim/rb:1") << j.dump(2);
  EXPECT_TRUE(WaitFor(
      [&] {
        std::vector<api::Task> tasks = TasksOf(id);
        std::map<std::string, int> images = ServingImages(tasks);
        if (InspectUpdateState("rb") != "rollback_completed" || images.size() != 1 ||
            images["sim/rb:1"] != 3) {
          return false;
        }
        for (const api::Task& t : tasks) {
          if (Serving(t) && t.spec_version().index() != v1->spec_version().index()) return false;
        }
        return true;
      },
      kConverge, absl::Milliseconds(100)))
      << Inspect("rb").dump(2) << Dump(TasksOf(id));
}

// A leader SIGKILLed in the middle of a rolling update: a new leader resumes it from the store
// and it completes, one task per slot, all on the new image.
TEST_F(ServiceTest, UpdateResumesAfterLeaderFailover) {
  std::vector<ShoaldProcess*> managers;
  for (const char* name : {"mgr1", "mgr2", "mgr3"}) {
    managers.push_back(&cluster_.Add(ShoaldOptions{.node_name = name}));
  }
  ShoaldProcess& mgr1 = *managers[0];
  CommandResult init =
      mgr1.Cli({"swarm", "init", "--listen-addr", mgr1.swarm_addr(), "--advertise-addr",
                mgr1.swarm_addr(), "--dispatcher-heartbeat", "1s"});
  ASSERT_EQ(init.exit_code, 0) << init.err << mgr1.LogText();
  const std::string mtoken = Trim(mgr1.Cli({"swarm", "join-token", "-q", "manager"}).out);
  const std::string wtoken = Trim(mgr1.Cli({"swarm", "join-token", "-q", "worker"}).out);
  for (size_t i = 1; i < managers.size(); ++i) {
    ShoaldProcess& m = *managers[i];
    CommandResult r = m.Cli({"swarm", "join", "--token", mtoken, "--listen-addr", m.swarm_addr(),
                             "--advertise-addr", m.swarm_addr(), mgr1.swarm_addr()});
    ASSERT_EQ(r.exit_code, 0) << r.err << m.LogText();
  }
  for (const char* name : {"wrk1", "wrk2"}) {
    ShoaldProcess& w = cluster_.Add(ShoaldOptions{.node_name = name});
    CommandResult r = w.Cli({"swarm", "join", "--token", wtoken, mgr1.swarm_addr()});
    ASSERT_EQ(r.exit_code, 0) << r.err << w.LogText();
  }
  auto leader_name = [](const ShoaldProcess& via) {
    std::string leader;
    for (const nlohmann::json& n : JsonLines(via.Cli({"node", "ls", "--format", "json"}))) {
      if (n.value("ManagerStatus", "") == "Leader") leader = n.value("Hostname", "");
    }
    return leader;
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        std::vector<nlohmann::json> nodes = JsonLines(mgr1.Cli({"node", "ls", "--format", "json"}));
        int ready = 0, reachable = 0;
        for (const nlohmann::json& n : nodes) {
          if (n.value("Status", "") == "Ready") ++ready;
          if (n.value("ManagerStatus", "") == "Reachable") ++reachable;
        }
        return ready == 5 && reachable == 2 && !leader_name(mgr1).empty();
      },
      kConverge, absl::Milliseconds(100)))
      << mgr1.Cli({"node", "ls"}).out;
  // Tasks on the workers only, so losing the leader's node loses no task.
  for (const char* name : {"mgr1", "mgr2", "mgr3"}) {
    ASSERT_EQ(mgr1.Cli({"node", "update", "--availability", "drain", name}).exit_code, 0);
  }
  ASSERT_EQ(mgr1.Cli({"service", "create", "-d", "--name", "fo", "--replicas", "4",
                      "--update-parallelism", "1", "--update-delay", "2s", "--update-monitor", "1s",
                      "sim/fo:1"})
                .exit_code,
            0);
  ControlClient via1(mgr1);
  std::optional<api::Service> created = via1.Service("fo");
  ASSERT_TRUE(created.has_value());
  const std::string id = created->id();
  ASSERT_TRUE(WaitFor(
      [&] {
        return ServingImages(via1.Tasks(id).value_or(std::vector<api::Task>{}))["sim/fo:1"] == 4;
      },
      kConverge, absl::Milliseconds(100)));

  ASSERT_EQ(mgr1.Cli({"service", "update", "-d", "--image", "sim/fo:2", "fo"}).exit_code, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        return ServingImages(via1.Tasks(id).value_or(std::vector<api::Task>{}))["sim/fo:2"] >= 1;
      },
      kConverge, absl::Milliseconds(20)));
  const std::string leader = leader_name(mgr1);
  ShoaldProcess* dead = nullptr;
  for (ShoaldProcess* m : managers) {
    if (m->node_name() == leader) dead = m;
  }
  ASSERT_NE(dead, nullptr) << leader;
  const size_t updated_before = SlotsWithImage(via1.Tasks(id).value(), "sim/fo:2").size();
  const absl::Time killed = absl::Now();
  dead->Kill();
  ASSERT_LT(updated_before, 4u) << "the update ended before the leader was killed";
  ShoaldProcess& survivor = *(dead == managers[0] ? managers[1] : managers[0]);
  ControlClient via(survivor);

  std::vector<api::Task> tasks;
  const bool done = WaitFor(
      [&] {
        std::optional<api::Service> s = via.Service("fo");
        std::optional<std::vector<api::Task>> t = via.Tasks(id);
        if (!s || !t) return false;
        tasks = *t;
        if (s->update_status().state() != api::UpdateStatus::COMPLETED) return false;
        // Per slot: exactly one live task (wanted up to RUNNING), serving the new image, and
        // nothing else still running.
        std::map<uint64_t, int> live, running;
        for (const api::Task& task : tasks) {
          if (task.desired_state() <= api::TASK_STATE_RUNNING) ++live[task.slot()];
          if (task.status().state() == api::TASK_STATE_RUNNING) ++running[task.slot()];
        }
        std::map<std::string, int> images = ServingImages(tasks);
        if (images.size() != 1 || images["sim/fo:2"] != 4) return false;
        for (uint64_t slot = 1; slot <= 4; ++slot) {
          if (live[slot] != 1 || running[slot] != 1) return false;
        }
        return live.size() == 4 && running.size() == 4;
      },
      kConverge, absl::Milliseconds(100));
  std::cout << "[ metric ] update of 4 replicas resumed and completed "
            << absl::FormatDuration(absl::Now() - killed) << " after the leader (" << leader
            << ") was killed with " << updated_before << " slot(s) updated\n";
  EXPECT_TRUE(done) << Dump(tasks) << survivor.Cli({"service", "inspect", "fo"}).out
                    << survivor.LogText();
}

// `service update --force` redeploys every task (new IDs) with the same spec apart from the
// force counter.
TEST_F(ServiceTest, ForceUpdateRedeploysEveryTask) {
  Build(1);
  ASSERT_EQ(Cli({"service", "create", "--name", "f", "--replicas", "3", "--update-monitor", "1s",
                 "sim/f:1"})
                .exit_code,
            0);
  const std::string id = ServiceId("f");
  std::optional<api::Service> before = control_->Service("f");
  ASSERT_TRUE(before.has_value());
  std::set<std::string> old_ids;
  ASSERT_TRUE(WaitFor(
      [&] {
        old_ids.clear();
        for (const api::Task& t : TasksOf(id)) {
          if (Serving(t)) old_ids.insert(t.id());
        }
        return old_ids.size() == 3;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(TasksOf(id));

  CommandResult force = Cli({"service", "update", "--force", "f"});
  ASSERT_EQ(force.exit_code, 0) << force.err << force.out;
  std::optional<api::Service> after = control_->Service("f");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->spec().task_template().force_update(),
            before->spec().task_template().force_update() + 1);
  EXPECT_NE(after->spec_version().index(), before->spec_version().index());
  api::ServiceSpec a = after->spec(), b = before->spec();
  a.mutable_task_template()->clear_force_update();
  b.mutable_task_template()->clear_force_update();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(a, b))
      << a.DebugString() << "\nvs\n"
      << b.DebugString();

  std::vector<api::Task> tasks;
  EXPECT_TRUE(WaitFor(
      [&] {
        tasks = TasksOf(id);
        std::set<uint64_t> slots;
        for (const api::Task& t : tasks) {
          if (!Serving(t)) continue;
          if (old_ids.count(t.id()) || ImageOf(t) != "sim/f:1") return false;
          slots.insert(t.slot());
        }
        return slots == std::set<uint64_t>{1, 2, 3} && InspectUpdateState("f") == "completed";
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(tasks);
  for (const api::Task& t : tasks) {
    if (old_ids.count(t.id())) {
      EXPECT_NE(t.desired_state(), api::TASK_STATE_RUNNING) << Dump(tasks);
    }
  }
}

}  // namespace
}  // namespace shoal::testing
