// `shoal service logs` end to end on real shoald processes (one manager, one worker,
// --executor sim): every node's lines through the leader's broker, docker's prefix, --tail,
// --raw, --timestamps, a task ID instead of a service, a worker refusing, -f following new
// tasks and the ones an update stops, and -f surviving the death of the leader (three managers).
//
// Tagged manual until the broker, the publisher and the CLI command are wired into shoald and
// shoal (see manager/logbroker/log_broker.h).
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/daemon.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

constexpr absl::Duration kConverge = absl::Seconds(60);

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

std::vector<nlohmann::json> JsonLines(const CommandResult& r) {
  std::vector<nlohmann::json> out;
  if (r.exit_code != 0) return out;
  for (const std::string& line : Lines(r.out)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(j);
  }
  return out;
}

class LogsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manager_ = &cluster_.Add(ShoaldOptions{.node_name = "mgr"});
    CommandResult init = manager_->Cli({"swarm", "init", "--listen-addr", manager_->swarm_addr(),
                                        "--advertise-addr", manager_->swarm_addr()});
    ASSERT_EQ(init.exit_code, 0) << init.err << manager_->LogText();
    const std::string token = Trim(manager_->Cli({"swarm", "join-token", "-q", "worker"}).out);
    worker_ = &cluster_.Add(ShoaldOptions{.node_name = "wrk"});
    CommandResult join = worker_->Cli({"swarm", "join", "--token", token, manager_->swarm_addr()});
    ASSERT_EQ(join.exit_code, 0) << join.err << worker_->LogText();
    ASSERT_TRUE(WaitFor(
        [&] {
          std::vector<nlohmann::json> nodes =
              JsonLines(manager_->Cli({"node", "ls", "--format", "json"}));
          if (nodes.size() != 2) return false;
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

  // Running tasks of `service`, by the ps table's JSON.
  std::vector<nlohmann::json> RunningTasks(const std::string& service) {
    std::vector<nlohmann::json> out;
    for (const nlohmann::json& t : JsonLines(Cli({"service", "ps", service, "--format", "json"}))) {
      if (absl::StartsWith(t.value("DesiredState", ""), "Running") &&
          absl::StartsWith(t.value("CurrentState", ""), "Running")) {
        out.push_back(t);
      }
    }
    return out;
  }

  std::string Logs() { return manager_->LogText() + "\n---- worker ----\n" + worker_->LogText(); }

  TestCluster cluster_;
  ShoaldProcess* manager_ = nullptr;
  ShoaldProcess* worker_ = nullptr;
};

TEST_F(LogsE2eTest, ServiceLogsFromEveryNode) {
  CommandResult create = Cli({"service", "create", "--name", "web", "--replicas", "2",
                              "--replicas-max-per-node", "1", "-d", "sim/web:1"});
  ASSERT_EQ(create.exit_code, 0) << create.err << Logs();
  ASSERT_TRUE(
      WaitFor([&] { return RunningTasks("web").size() == 2; }, kConverge, absl::Milliseconds(100)));

  CommandResult logs = Cli({"service", "logs", "web"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err << Logs();
  std::vector<std::string> lines = Lines(logs.out);
  ASSERT_EQ(lines.size(), 2u) << logs.out;
  bool on_mgr = false, on_wrk = false;
  for (const std::string& line : lines) {
    // web.<slot>.<12-char task ID>@<node>    | sim: task <ID> started (image sim/web:1)
    EXPECT_TRUE(absl::StartsWith(line, "web.")) << line;
    EXPECT_TRUE(absl::StrContains(line, " | sim: task ")) << line;
    EXPECT_TRUE(absl::EndsWith(line, " started (image sim/web:1)")) << line;
    on_mgr = on_mgr || absl::StrContains(line, "@mgr ");
    on_wrk = on_wrk || absl::StrContains(line, "@wrk ");
  }
  EXPECT_TRUE(on_mgr && on_wrk) << logs.out;

  // --raw, --timestamps, --tail.
  CommandResult raw = Cli({"service", "logs", "--raw", "web"});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  for (const std::string& line : Lines(raw.out)) {
    EXPECT_TRUE(absl::StartsWith(line, "sim: task ")) << line;
  }
  CommandResult ts = Cli({"service", "logs", "-t", "--tail", "1", "web"});
  ASSERT_EQ(ts.exit_code, 0) << ts.err;
  ASSERT_EQ(Lines(ts.out).size(), 2u) << ts.out;  // one line per task
  EXPECT_TRUE(absl::StrContains(ts.out, "Z sim: task ")) << ts.out;
  CommandResult none = Cli({"service", "logs", "--tail", "0", "web"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(none.out, "");

  // One task by ID (a unique prefix will do).
  const std::string task_id = RunningTasks("web")[0].value("ID", "");
  ASSERT_FALSE(task_id.empty());
  CommandResult one = Cli({"service", "logs", task_id.substr(0, 8)});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(Lines(one.out).size(), 1u) << one.out;

  // Errors name the problem.
  CommandResult unknown = Cli({"service", "logs", "nosuch"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(unknown.err, "nosuch")) << unknown.err;
  CommandResult on_worker = worker_->Cli({"service", "logs", "web"});
  EXPECT_NE(on_worker.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(on_worker.err, "manager")) << on_worker.err;
}

TEST_F(LogsE2eTest, FollowSeesNewTasksAndStops) {
  CommandResult create =
      Cli({"service", "create", "--name", "app", "--replicas", "1", "-d", "sim/app:1"});
  ASSERT_EQ(create.exit_code, 0) << create.err << Logs();
  ASSERT_TRUE(
      WaitFor([&] { return RunningTasks("app").size() == 1; }, kConverge, absl::Milliseconds(100)));

  const std::string out_path = absl::StrCat(cluster_.root(), "/follow.out");
  absl::StatusOr<ChildProcess> follow = ChildProcess::Start(
      {ShoalBinary(), "-H", manager_->host(), "service", "logs", "-f", "app"}, out_path);
  ASSERT_TRUE(follow.ok()) << follow.status();
  auto output = [&] { return ReadFile(out_path).value_or(""); };
  auto count = [&](const std::string& what) {
    const std::string text = output();
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return count(" started (image sim/app:1)") == 1; }, kConverge,
                      absl::Milliseconds(50)))
      << output() << Logs();

  // A new task (on whichever node) shows up in the running follow...
  ASSERT_EQ(Cli({"service", "scale", "-d", "app=3"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return count(" started (image sim/app:1)") == 3; }, kConverge,
                      absl::Milliseconds(50)))
      << output() << Logs();
  // ...and so do tasks an update stops (kept, with their logs, as history) and their
  // replacements.
  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/app:2", "app"}).exit_code, 0);
  ASSERT_TRUE(WaitFor(
      [&] { return count("| sim: stopped") >= 1 && count(" started (image sim/app:2)") >= 1; },
      kConverge, absl::Milliseconds(50)))
      << output() << Logs();
  // Nothing was printed twice.
  EXPECT_EQ(count(" started (image sim/app:1)"), 3u) << output();
  ASSERT_TRUE(follow->Stop(absl::Seconds(5)).ok());
}

// Three managers; `shoal service logs -f` through one of them keeps going when the leader dies:
// the CLI resubscribes through the new leader, which hands the subscription to the agents once
// they reconnect, and no line is printed twice.
TEST(LogsLeaderChangeTest, FollowSurvivesTheLeadersDeath) {
  TestCluster cluster;
  ShoaldProcess& m1 = cluster.Add(ShoaldOptions{.node_name = "m1"});
  CommandResult init =
      m1.Cli({"swarm", "init", "--listen-addr", m1.swarm_addr(), "--advertise-addr",
              m1.swarm_addr(), "--dispatcher-heartbeat", "1s"});
  ASSERT_EQ(init.exit_code, 0) << init.err << m1.LogText();
  const std::string token = Trim(m1.Cli({"swarm", "join-token", "-q", "manager"}).out);
  std::vector<ShoaldProcess*> others;
  for (const char* name : {"m2", "m3"}) {
    ShoaldProcess& m = cluster.Add(ShoaldOptions{.node_name = name});
    CommandResult join = m.Cli({"swarm", "join", "--token", token, "--listen-addr", m.swarm_addr(),
                                "--advertise-addr", m.swarm_addr(), m1.swarm_addr()});
    ASSERT_EQ(join.exit_code, 0) << join.err << m.LogText();
    others.push_back(&m);
  }
  ShoaldProcess& m2 = *others[0];
  auto cli = [&](const std::vector<std::string>& args) {
    return m2.Cli(args, {.timeout = absl::Seconds(120)});
  };
  auto running = [&](const std::string& service) {
    int n = 0;
    for (const nlohmann::json& t : JsonLines(cli({"service", "ps", service, "--format", "json"}))) {
      if (absl::StartsWith(t.value("CurrentState", ""), "Running") &&
          absl::StartsWith(t.value("DesiredState", ""), "Running")) {
        ++n;
      }
    }
    return n;
  };
  ASSERT_TRUE(WaitFor(
      [&] {
        std::vector<nlohmann::json> nodes = JsonLines(cli({"node", "ls", "--format", "json"}));
        if (nodes.size() != 3) return false;
        for (const auto& n : nodes) {
          if (n.value("Status", "") != "Ready") return false;
        }
        return true;
      },
      kConverge, absl::Milliseconds(100)));
  ASSERT_EQ(
      cli({"service", "create", "--name", "app", "--replicas", "3", "-d", "sim/app:1"}).exit_code,
      0);
  ASSERT_TRUE(WaitFor([&] { return running("app") == 3; }, kConverge, absl::Milliseconds(100)));

  const std::string out_path = absl::StrCat(cluster.root(), "/follow.out");
  absl::StatusOr<ChildProcess> follow = ChildProcess::Start(
      {ShoalBinary(), "-H", m2.host(), "service", "logs", "-f", "app"}, out_path);
  ASSERT_TRUE(follow.ok()) << follow.status();
  auto output = [&] { return ReadFile(out_path).value_or(""); };
  auto started = [&] {
    size_t n = 0;
    for (const std::string& line : Lines(output())) {
      if (absl::EndsWith(line, " started (image sim/app:1)")) ++n;
    }
    return n;
  };
  ASSERT_TRUE(WaitFor([&] { return started() == 3; }, kConverge, absl::Milliseconds(50)))
      << output();

  m1.Kill();  // the leader
  // A new leader; then new tasks, whose lines must reach the same follow.
  ASSERT_TRUE(WaitFor(
      [&] {
        return cli({"service", "scale", "-d", "app=5"}).exit_code == 0;
      },
      kConverge, absl::Milliseconds(200)))
      << m2.LogText();
  ASSERT_TRUE(WaitFor([&] { return started() >= 5; }, kConverge, absl::Milliseconds(50)))
      << output() << "\n---- m2 ----\n"
      << m2.LogText();
  EXPECT_TRUE(follow->running());
  std::vector<std::string> lines = Lines(output());
  std::set<std::string> unique(lines.begin(), lines.end());
  EXPECT_EQ(unique.size(), lines.size()) << "a line was printed twice:\n" << output();
  ASSERT_TRUE(follow->Stop(absl::Seconds(5)).ok());
}

}  // namespace
}  // namespace shoal::testing
