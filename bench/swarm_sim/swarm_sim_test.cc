// swarm_sim against a real 1-manager swarm: 5 simulated nodes join, show as Ready workers, run a
// service's tasks (reported RUNNING through their workers), and swarm_sim exits 0 on SIGTERM.
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/daemon.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

std::string SwarmSimBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return std::string(srcdir != nullptr ? srcdir : ".") + "/" + (ws != nullptr ? ws : "shoal") +
         "/bench/swarm_sim/swarm_sim";
}

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

TEST(SwarmSimTest, FiveSimulatedNodesJoinAndRunTasks) {
  TestCluster cluster;
  ShoaldProcess& m = cluster.Add({.node_name = "manager"});
  ASSERT_EQ(
      m.Cli({"swarm", "init", "--listen-addr", m.swarm_addr(), "--advertise-addr", m.swarm_addr()})
          .exit_code,
      0)
      << m.LogText();
  ASSERT_EQ(m.Cli({"node", "update", "--availability", "drain", "manager"}).exit_code, 0);
  const std::string token = Trim(m.Cli({"swarm", "join-token", "-q", "worker"}).out);
  ASSERT_TRUE(absl::StartsWith(token, "SWMTKN-")) << token;

  const std::string log = cluster.root() + "/swarm_sim.log";
  absl::StatusOr<ChildProcess> sim =
      ChildProcess::Start({SwarmSimBinary(), "--manager", m.swarm_addr(), "--token", token,
                           "--nodes", "5", "--name-prefix", "simnode", "--state-dir",
                           cluster.root() + "/sim-state", "--join-timeout", "20s"},
                          log);
  ASSERT_TRUE(sim.ok()) << sim.status();

  // All 5 simulated nodes are Ready, Active workers named after the prefix.
  auto ready_sims = [&] {
    int n = 0;
    for (const nlohmann::json& o : JsonLines(m.Cli({"node", "ls", "--format", "json"}).out)) {
      if (absl::StartsWith(o.value("Hostname", ""), "simnode-") &&
          o.value("Status", "") == "Ready" && o.value("Availability", "") == "Active") {
        ++n;
      }
    }
    return n == 5;
  };
  ASSERT_TRUE(WaitFor(ready_sims, absl::Seconds(20))) << ReadAll(log) << m.LogText();
  EXPECT_TRUE(
      WaitFor([&] { return absl::StrContains(ReadAll(log), "all 5 simulated nodes joined"); },
              absl::Seconds(10)))
      << ReadAll(log);

  // A service's tasks run on them (the manager is drained), reported RUNNING by their workers.
  ASSERT_EQ(
      m.Cli({"service", "create", "-d", "--name", "app", "--replicas", "10", "sim/app"}).exit_code,
      0);
  auto all_running = [&] {
    for (const nlohmann::json& o : JsonLines(m.Cli({"service", "ls", "--format", "json"}).out)) {
      if (o.value("Name", "") == "app") return o.value("Replicas", "") == "10/10";
    }
    return false;
  };
  EXPECT_TRUE(WaitFor(all_running, absl::Seconds(20)))
      << m.Cli({"service", "ps", "app"}).out << m.LogText();

  absl::StatusOr<int> st = sim->Signal(SIGTERM, absl::Seconds(15));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st << ReadAll(log);
}

}  // namespace
}  // namespace shoal::testing
