// Services end to end on real shoald processes with the simulated executor (--executor sim):
// create and converge, scale, remove, reschedule after a node dies, drain, global services
// following nodes, constraints that cannot be met explaining themselves, restart limits, jobs.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
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

class ServiceTest : public ::testing::Test {
 protected:
  // One manager and `workers` workers; heartbeats every second so a dead node is Down in ~3 s.
  void Build(int workers) {
    manager_ = &cluster_.Add(ShoaldOptions{.node_name = "mgr"});
    CommandResult init =
        manager_->Cli({"swarm", "init", "--listen-addr", manager_->swarm_addr(), "--advertise-addr",
                       manager_->swarm_addr(), "--dispatcher-heartbeat", "1s"});
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

  TestCluster cluster_;
  ShoaldProcess* manager_ = nullptr;
  std::vector<ShoaldProcess*> workers_;
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

}  // namespace
}  // namespace shoal::testing
