// The acceptance scenario of the secure-cluster capability, as the Docker book's Swarm chapter
// walks through it: 3 managers and 3 workers built with `shoal swarm` commands alone, locked,
// a manager restarted and unlocked, tokens and the root CA rotated, and a manager lost without
// losing the swarm. It prints how long init, join and failover took ([ metric ] lines).
#include <algorithm>
#include <fstream>
#include <sstream>

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

constexpr absl::Duration kConverge = absl::Seconds(90);

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::vector<nlohmann::json> NodeList(const ShoaldProcess& d) {
  CommandResult r = d.Cli({"node", "ls", "--format", "json"});
  std::vector<nlohmann::json> out;
  if (r.exit_code != 0) return out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(j);
  }
  return out;
}

// Counts of nodes Ready, managers Leader, managers Reachable, as `manager` lists them.
struct Tally {
  int ready = 0, leaders = 0, reachable = 0, total = 0;
};
Tally Count(const ShoaldProcess& manager) {
  Tally t;
  for (const nlohmann::json& n : NodeList(manager)) {
    ++t.total;
    if (n.value("Status", "") == "Ready") ++t.ready;
    if (n.value("ManagerStatus", "") == "Leader") ++t.leaders;
    if (n.value("ManagerStatus", "") == "Reachable") ++t.reachable;
  }
  return t;
}

std::string Describe(const ShoaldProcess& manager) {
  CommandResult r = manager.Cli({"node", "ls"});
  return r.out + r.err;
}

void Metric(const std::string& what, absl::Duration d) {
  std::cout << "[ metric ] " << what << ": " << absl::FormatDuration(d) << "\n";
}

TEST(SwarmBookTest, BuildLockRestartUnlockRotateAndLoseAManager) {
  TestCluster cluster;
  std::vector<ShoaldProcess*> managers, workers;
  for (const char* name : {"mgr1", "mgr2", "mgr3"}) {
    managers.push_back(&cluster.Add(ShoaldOptions{.node_name = name}));
  }
  for (const char* name : {"wrk1", "wrk2", "wrk3"}) {
    workers.push_back(&cluster.Add(ShoaldOptions{.node_name = name}));
  }
  ShoaldProcess& mgr1 = *managers[0];

  // docker swarm init --autolock
  absl::Time t = absl::Now();
  CommandResult init = mgr1.Cli({"swarm", "init", "--autolock", "--listen-addr", mgr1.swarm_addr(),
                                 "--advertise-addr", mgr1.swarm_addr()});
  ASSERT_EQ(init.exit_code, 0) << init.err << mgr1.LogText();
  Metric("swarm init (autolock)", absl::Now() - t);
  const size_t at = init.out.find("SWMKEY-1-");
  ASSERT_NE(at, std::string::npos) << init.out;
  const std::string unlock_key = init.out.substr(at, init.out.find_first_of(" \n", at) - at);

  CommandResult mt = mgr1.Cli({"swarm", "join-token", "-q", "manager"});
  CommandResult wt = mgr1.Cli({"swarm", "join-token", "-q", "worker"});
  ASSERT_EQ(mt.exit_code, 0);
  ASSERT_EQ(wt.exit_code, 0);
  for (size_t i = 1; i < managers.size(); ++i) {
    ShoaldProcess& m = *managers[i];
    t = absl::Now();
    CommandResult r =
        m.Cli({"swarm", "join", "--token", Trim(mt.out), "--listen-addr", m.swarm_addr(),
               "--advertise-addr", m.swarm_addr(), mgr1.swarm_addr()});
    ASSERT_EQ(r.exit_code, 0) << r.err << m.LogText();
    Metric(absl::StrCat("swarm join as manager (", m.node_name(), ")"), absl::Now() - t);
  }
  for (ShoaldProcess* w : workers) {
    t = absl::Now();
    CommandResult r = w->Cli({"swarm", "join", "--token", Trim(wt.out), mgr1.swarm_addr()});
    ASSERT_EQ(r.exit_code, 0) << r.err << w->LogText();
    Metric(absl::StrCat("swarm join as worker (", w->node_name(), ")"), absl::Now() - t);
  }
  t = absl::Now();
  ASSERT_TRUE(WaitFor(
      [&] {
        Tally c = Count(mgr1);
        return c.total == 6 && c.ready == 6 && c.leaders == 1 && c.reachable == 2;
      },
      kConverge, absl::Milliseconds(100)))
      << Describe(mgr1);
  Metric("all 6 nodes Ready with 3 managers reachable, after the last join", absl::Now() - t);

  // Restart a manager: it comes back locked, and only the right key unlocks it.
  ShoaldProcess& mgr2 = *managers[1];
  ASSERT_TRUE(mgr2.Stop().ok());
  ASSERT_TRUE(mgr2.Start().ok());
  CommandResult info = mgr2.Cli({"info", "--format", "json"});
  ASSERT_EQ(info.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(info.out)["Swarm"]["LocalNodeState"], "locked");
  CommandResult bad = mgr2.Cli({"swarm", "unlock"}, {.stdin_data = "SWMKEY-1-wrong\n"});
  EXPECT_NE(bad.exit_code, 0);
  CommandResult unlock = mgr2.Cli({"swarm", "unlock"}, {.stdin_data = unlock_key + "\n"});
  ASSERT_EQ(unlock.exit_code, 0) << unlock.err << mgr2.LogText();
  ASSERT_TRUE(WaitFor(
      [&] {
        Tally c = Count(mgr2);
        return c.total == 6 && c.ready == 6 && c.leaders == 1 && c.reachable == 2;
      },
      kConverge, absl::Milliseconds(100)))
      << Describe(mgr2);

  // Rotate both join tokens; a node joining with the old worker token is refused.
  CommandResult rw = mgr1.Cli({"swarm", "join-token", "--rotate", "-q", "worker"});
  CommandResult rm = mgr1.Cli({"swarm", "join-token", "--rotate", "-q", "manager"});
  ASSERT_EQ(rw.exit_code, 0) << rw.err;
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_NE(Trim(rw.out), Trim(wt.out));
  EXPECT_NE(Trim(rm.out), Trim(mt.out));
  ShoaldProcess& late = cluster.Add(ShoaldOptions{.node_name = "late"});
  CommandResult refused = late.Cli({"swarm", "join", "--token", Trim(wt.out), mgr1.swarm_addr()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("invalid join token"), std::string::npos) << refused.err;

  // Rotate the root CA; every node ends up on the new root.
  t = absl::Now();
  CommandResult ca = mgr1.Cli({"swarm", "ca", "--rotate"}, {.timeout = absl::Seconds(180)});
  ASSERT_EQ(ca.exit_code, 0) << ca.err << ca.out << mgr1.LogText();
  Metric("root CA rotation across 6 nodes", absl::Now() - t);
  ASSERT_TRUE(WaitFor(
      [&] {
        Tally c = Count(mgr1);
        return c.total == 6 && c.ready == 6 && c.leaders == 1 && c.reachable == 2;
      },
      kConverge, absl::Milliseconds(100)))
      << Describe(mgr1);

  // Lose the leader for good: the swarm elects another and keeps serving.
  ShoaldProcess* leader = nullptr;
  for (const nlohmann::json& n : NodeList(mgr1)) {
    if (n.value("ManagerStatus", "") != "Leader") continue;
    for (ShoaldProcess* m : managers) {
      if (m->node_name() == n.value("Hostname", "")) leader = m;
    }
  }
  ASSERT_NE(leader, nullptr);
  ShoaldProcess* survivor = leader == managers[0] ? managers[1] : managers[0];
  t = absl::Now();
  leader->Kill();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const nlohmann::json& n : NodeList(*survivor)) {
          if (n.value("ManagerStatus", "") == "Leader" &&
              n.value("Hostname", "") != leader->node_name()) {
            return true;
          }
        }
        return false;
      },
      kConverge, absl::Milliseconds(50)))
      << Describe(*survivor);
  Metric("failover: leader SIGKILLed until a new leader is listed", absl::Now() - t);
  CommandResult update =
      survivor->Cli({"node", "update", "--label-add", "after-failover=yes", "wrk1"});
  ASSERT_EQ(update.exit_code, 0) << update.err << survivor->LogText();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const nlohmann::json& n : NodeList(*survivor)) {
          if (n.value("Hostname", "") == leader->node_name()) {
            return n.value("Status", "") == "Down" && n.value("ManagerStatus", "") == "Unreachable";
          }
        }
        return false;
      },
      kConverge, absl::Milliseconds(200)))
      << Describe(*survivor);
}

}  // namespace
}  // namespace shoal::testing
