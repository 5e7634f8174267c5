// swarm_sim against real swarms (shoald processes): simulated nodes join and show as Ready
// workers, run a service's tasks (reported RUNNING, and FAILED for sim/exit:3), scale down (the
// surplus reported SHUTDOWN), follow a leader change, and swarm_sim exits 0 on SIGTERM. Its
// thread count stays small whatever the number of nodes.
#include <signal.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/daemon.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

constexpr absl::Duration kConverge = absl::Seconds(30);

std::string SwarmSimBinary() { return RunfilePath("bench/swarm_sim/swarm_sim"); }

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object()) out.push_back(j);
  }
  return out;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The "Threads:" line of /proc/PID/status, or -1.
int Threads(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(f, line);) {
    absl::string_view v(line);
    int n = 0;
    if (absl::ConsumePrefix(&v, "Threads:") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &n)) {
      return n;
    }
  }
  return -1;
}

// Ready, Active nodes whose hostname starts with `prefix`, as `manager` lists them.
int ReadySims(const ShoaldProcess& manager, const std::string& prefix) {
  int n = 0;
  for (const nlohmann::json& o : JsonLines(manager.Cli({"node", "ls", "--format", "json"}).out)) {
    if (absl::StartsWith(o.value("Hostname", ""), prefix) && o.value("Status", "") == "Ready" &&
        o.value("Availability", "") == "Active") {
      ++n;
    }
  }
  return n;
}

// The service's "Replicas" column ("3/5"), or "".
std::string Replicas(const ShoaldProcess& manager, const std::string& service) {
  for (const nlohmann::json& o :
       JsonLines(manager.Cli({"service", "ls", "--format", "json"}).out)) {
    if (o.value("Name", "") == service) return o.value("Replicas", "");
  }
  return "";
}

// The service's tasks, from `service ps --format json`.
std::vector<nlohmann::json> Tasks(const ShoaldProcess& manager, const std::string& service) {
  return JsonLines(manager.Cli({"service", "ps", "--no-trunc", "--format", "json", service}).out);
}

int CountState(const std::vector<nlohmann::json>& tasks, const std::string& state) {
  int n = 0;
  for (const nlohmann::json& t : tasks) {
    if (absl::StartsWith(t.value("CurrentState", ""), state)) ++n;
  }
  return n;
}

// A running swarm_sim process and its log.
struct Sim {
  std::string log;
  absl::StatusOr<ChildProcess> process;
};

Sim StartSim(const TestCluster& cluster, const std::string& manager_addr, const std::string& token,
             int nodes, const std::string& prefix) {
  Sim s;
  s.log = absl::StrCat(cluster.root(), "/", prefix, ".log");
  s.process = ChildProcess::Start({SwarmSimBinary(), "--manager", manager_addr, "--token", token,
                                   "--nodes", std::to_string(nodes), "--name-prefix", prefix,
                                   "--join-timeout", "60s", "--stats-interval", "1s"},
                                  s.log);
  return s;
}

std::string WorkerToken(ShoaldProcess& m) {
  return Trim(m.Cli({"swarm", "join-token", "-q", "worker"}).out);
}

TEST(SwarmSimTest, SimulatedNodesJoinRunAndScaleDownWithFewThreads) {
  constexpr int kNodes = 24;
  TestCluster cluster;
  ShoaldProcess& m = cluster.Add({.node_name = "manager"});
  ASSERT_EQ(
      m.Cli({"swarm", "init", "--listen-addr", m.swarm_addr(), "--advertise-addr", m.swarm_addr()})
          .exit_code,
      0)
      << m.LogText();
  ASSERT_EQ(m.Cli({"node", "update", "--availability", "drain", "manager"}).exit_code, 0);
  const std::string token = WorkerToken(m);
  ASSERT_TRUE(absl::StartsWith(token, "SWMTKN-")) << token;

  Sim sim = StartSim(cluster, m.swarm_addr(), token, kNodes, "simnode");
  ASSERT_TRUE(sim.process.ok()) << sim.process.status();

  // Every simulated node is a Ready, Active worker named after the prefix.
  ASSERT_TRUE(WaitFor([&] { return ReadySims(m, "simnode-") == kNodes; }, kConverge,
                      absl::Milliseconds(200)))
      << ReadAll(sim.log) << m.LogText();
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(ReadAll(sim.log),
                                 absl::StrCat("all ", kNodes, " simulated nodes joined"));
      },
      absl::Seconds(10)))
      << ReadAll(sim.log);

  // A service's tasks run on them (the manager is drained), reported RUNNING by their agents.
  ASSERT_EQ(
      m.Cli({"service", "create", "-d", "--name", "app", "--replicas", "60", "sim/app"}).exit_code,
      0);
  EXPECT_TRUE(
      WaitFor([&] { return Replicas(m, "app") == "60/60"; }, kConverge, absl::Milliseconds(200)))
      << m.Cli({"service", "ps", "app"}).out << ReadAll(sim.log) << m.LogText();
  {
    const std::vector<nlohmann::json> tasks = Tasks(m, "app");
    EXPECT_EQ(CountState(tasks, "Running"), 60);
    for (const nlohmann::json& t : tasks) {
      EXPECT_TRUE(absl::StartsWith(t.value("Node", ""), "simnode-")) << t.dump();
    }
  }
  // The thread count does not grow with the nodes (the real agent needs ~7 per node).
  const int threads = Threads(sim.process->pid());
  std::cout << "[ metric ] swarm_sim threads with " << kNodes << " nodes: " << threads << "\n";
  EXPECT_GT(threads, 0);
  EXPECT_LT(threads, 40);

  // A task that exits with code 3 is reported FAILED with its code.
  ASSERT_EQ(m.Cli({"service", "create", "-d", "--name", "fails", "--replicas", "2",
                   "--restart-condition", "none", "sim/exit:3"})
                .exit_code,
            0);
  EXPECT_TRUE(WaitFor([&] { return CountState(Tasks(m, "fails"), "Failed") == 2; }, kConverge,
                      absl::Milliseconds(200)))
      << m.Cli({"service", "ps", "fails"}).out;
  for (const nlohmann::json& t : Tasks(m, "fails")) {
    EXPECT_NE(t.value("Error", "").find("non-zero exit (3)"), std::string::npos) << t.dump();
  }

  // Scaling down: the surplus is stopped by the agents (no longer Running in the store).
  ASSERT_EQ(m.Cli({"service", "scale", "-d", "app=5"}).exit_code, 0);
  EXPECT_TRUE(WaitFor(
      [&] { return Replicas(m, "app") == "5/5" && CountState(Tasks(m, "app"), "Running") == 5; },
      kConverge, absl::Milliseconds(200)))
      << m.Cli({"service", "ps", "app"}).out << ReadAll(sim.log);

  absl::StatusOr<int> st = sim.process->Signal(SIGTERM, absl::Seconds(15));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << ReadAll(sim.log);
  EXPECT_TRUE(absl::StrContains(ReadAll(sim.log), "swarm_sim: stopped")) << ReadAll(sim.log);
}

TEST(SwarmSimTest, SimulatedNodesFollowALeaderChange) {
  constexpr int kNodes = 10;
  TestCluster cluster;
  std::vector<ShoaldProcess*> managers;
  for (const char* name : {"m1", "m2", "m3"}) {
    managers.push_back(&cluster.Add({.node_name = name, .log_level = "info"}));
  }
  ShoaldProcess& m1 = *managers[0];
  ASSERT_EQ(m1.Cli({"swarm", "init", "--listen-addr", m1.swarm_addr(), "--advertise-addr",
                    m1.swarm_addr()})
                .exit_code,
            0)
      << m1.LogText();
  const std::string mtoken = Trim(m1.Cli({"swarm", "join-token", "-q", "manager"}).out);
  for (int i = 1; i < 3; ++i) {
    ShoaldProcess& m = *managers[i];
    CommandResult r = m.Cli({"swarm", "join", "--token", mtoken, "--listen-addr", m.swarm_addr(),
                             "--advertise-addr", m.swarm_addr(), m1.swarm_addr()});
    ASSERT_EQ(r.exit_code, 0) << r.err << m.LogText();
  }
  // Every manager is in Raft (Leader or Reachable) and drained: only simulated nodes run tasks.
  ASSERT_TRUE(WaitFor(
      [&] {
        int n = 0;
        for (const nlohmann::json& o : JsonLines(m1.Cli({"node", "ls", "--format", "json"}).out)) {
          const std::string ms = o.value("ManagerStatus", "");
          if (ms == "Leader" || ms == "Reachable") ++n;
        }
        return n == 3;
      },
      kConverge, absl::Milliseconds(200)))
      << m1.Cli({"node", "ls"}).out;
  for (ShoaldProcess* m : managers) {
    CommandResult r;
    EXPECT_TRUE(WaitFor(
        [&] {
          r = m1.Cli({"node", "update", "--availability", "drain", m->node_name()});
          return r.exit_code == 0;
        },
        kConverge, absl::Milliseconds(200)))
        << r.err;
  }
  // The simulated nodes know only m1 at first; the sessions tell them about the others.
  Sim sim = StartSim(cluster, m1.swarm_addr(), WorkerToken(m1), kNodes, "simnode");
  ASSERT_TRUE(sim.process.ok()) << sim.process.status();
  ASSERT_TRUE(WaitFor([&] { return ReadySims(m1, "simnode-") == kNodes; }, kConverge,
                      absl::Milliseconds(200)))
      << ReadAll(sim.log) << m1.LogText();
  ASSERT_EQ(
      m1.Cli({"service", "create", "-d", "--name", "app", "--replicas", "10", "sim/app"}).exit_code,
      0);
  ASSERT_TRUE(
      WaitFor([&] { return Replicas(m1, "app") == "10/10"; }, kConverge, absl::Milliseconds(200)))
      << m1.Cli({"service", "ps", "app"}).out;

  // The leader dies; another manager takes over, and the nodes' sessions must follow it: new
  // tasks reach them only through the new leader's dispatcher.
  const absl::Time killed = absl::Now();
  m1.Kill();
  ShoaldProcess& m2 = *managers[1];
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const nlohmann::json& n : JsonLines(m2.Cli({"node", "ls", "--format", "json"}).out)) {
          if (n.value("ManagerStatus", "") == "Leader" && n.value("Hostname", "") != "m1") {
            return true;
          }
        }
        return false;
      },
      kConverge, absl::Milliseconds(100)))
      << m2.LogText();
  const absl::Time elected = absl::Now();
  ASSERT_EQ(m2.Cli({"service", "scale", "-d", "app=20"}).exit_code, 0);
  EXPECT_TRUE(
      WaitFor([&] { return Replicas(m2, "app") == "20/20"; }, kConverge, absl::Milliseconds(100)))
      << m2.Cli({"service", "ps", "app"}).out << ReadAll(sim.log);
  std::cout << "[ metric ] leader killed -> new leader seen "
            << absl::FormatDuration(elected - killed) << ", -> 20/20 running through it "
            << absl::FormatDuration(absl::Now() - killed) << "\n";
  // The scheduler spread the 20 tasks over every node, so every node's session and assignments
  // stream moved to the new leader (a node still holding its session with the dead leader would
  // keep its new tasks unstarted).
  std::set<std::string> nodes_running;
  for (const nlohmann::json& t : Tasks(m2, "app")) {
    if (absl::StartsWith(t.value("CurrentState", ""), "Running")) {
      nodes_running.insert(t.value("Node", ""));
    }
  }
  EXPECT_EQ(nodes_running.size(), static_cast<size_t>(kNodes));
  EXPECT_EQ(ReadySims(m2, "simnode-"), kNodes);

  absl::StatusOr<int> st = sim.process->Signal(SIGTERM, absl::Seconds(15));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << ReadAll(sim.log);
}

}  // namespace
}  // namespace shoal::testing
