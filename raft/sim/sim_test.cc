// The deterministic simulation as a test: a fixed set of seeds in CI, any other set on demand:
//
//   bazel test //raft/sim:sim_test --test_env=SHOAL_SIM_SEEDS=1 --test_env=SHOAL_SIM_SEED_BASE=42
//
// A failing seed prints its report (invariant or linearizability verdict, scenario, last events)
// and the line to replay it.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "raft/sim/cluster_sim.h"
#include "raft/sim/isolated_run.h"

namespace shoal::raft::sim {
namespace {

// Sized for the 2-core CI machine: about a minute in a fastbuild test binary.
constexpr uint64_t kDefaultSeeds = 200;
constexpr uint64_t kDefaultSeedBase = 1;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

class SimTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The simulation is single-threaded; MemoryStorage's mutex needs no deadlock detection.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    InstallAbortReporter();
  }
};

TEST_F(SimTest, Seeds) {
  const uint64_t seeds = EnvOr("SHOAL_SIM_SEEDS", kDefaultSeeds);
  const uint64_t base = EnvOr("SHOAL_SIM_SEED_BASE", kDefaultSeedBase);
  SimStats total;
  uint64_t failed = 0;
  for (uint64_t seed = base; seed < base + seeds; ++seed) {
    SimOptions o;
    o.seed = seed;
    const SimResult r = RunSimulation(o);
    const SimStats& s = r.stats;
    total.events += s.events;
    total.client_ops += s.client_ops;
    total.client_ops_completed += s.client_ops_completed;
    total.client_ops_timed_out += s.client_ops_timed_out;
    total.committed += s.committed;
    total.leaders += s.leaders;
    total.crashes += s.crashes;
    total.crashes_mid_ready += s.crashes_mid_ready;
    total.partitions += s.partitions;
    total.snapshots_taken += s.snapshots_taken;
    total.snapshots_installed += s.snapshots_installed;
    total.conf_changes += s.conf_changes;
    total.transfers += s.transfers;
    total.read_index_reads += s.read_index_reads;
    if (!r.ok) {
      ++failed;
      ADD_FAILURE() << r.report;
    }
  }
  std::printf(
      "seeds %llu..%llu: %llu failed; %llu events, %llu client ops (%llu completed, %llu never "
      "returned), %llu committed, %llu leaders, %llu crashes (%llu mid-Ready), %llu partitions, "
      "%llu snapshots taken / %llu installed, %llu conf changes, %llu transfers, %llu ReadIndex "
      "reads\n",
      (unsigned long long)base, (unsigned long long)(base + seeds - 1), (unsigned long long)failed,
      (unsigned long long)total.events, (unsigned long long)total.client_ops,
      (unsigned long long)total.client_ops_completed,
      (unsigned long long)total.client_ops_timed_out, (unsigned long long)total.committed,
      (unsigned long long)total.leaders, (unsigned long long)total.crashes,
      (unsigned long long)total.crashes_mid_ready, (unsigned long long)total.partitions,
      (unsigned long long)total.snapshots_taken, (unsigned long long)total.snapshots_installed,
      (unsigned long long)total.conf_changes, (unsigned long long)total.transfers,
      (unsigned long long)total.read_index_reads);
  if (seeds >= kDefaultSeeds) {
    // The fixed set must actually exercise what the simulation claims to test.
    EXPECT_GT(total.crashes_mid_ready, 0u);
    EXPECT_GT(total.partitions, 0u);
    EXPECT_GT(total.snapshots_installed, 0u);
    EXPECT_GT(total.conf_changes, 0u);
    EXPECT_GT(total.transfers, 0u);
    EXPECT_GT(total.read_index_reads, 0u);
    EXPECT_GT(total.client_ops_timed_out, 0u);
    EXPECT_GT(total.committed, 50 * seeds);
  }
}

bool SameStats(const SimStats& a, const SimStats& b) {
  return a.events == b.events && a.client_ops == b.client_ops &&
         a.client_ops_completed == b.client_ops_completed && a.committed == b.committed &&
         a.leaders == b.leaders && a.crashes == b.crashes && a.partitions == b.partitions &&
         a.snapshots_taken == b.snapshots_taken && a.lin_steps == b.lin_steps &&
         a.network.sent == b.network.sent && a.network.delivered == b.network.delivered &&
         a.network.dropped == b.network.dropped;
}

TEST_F(SimTest, SameSeedSameRun) {
  for (uint64_t seed : {3, 77, 1234}) {
    SimOptions o;
    o.seed = seed;
    const SimResult a = RunSimulation(o);
    const SimResult b = RunSimulation(o);
    EXPECT_TRUE(SameStats(a.stats, b.stats)) << "seed " << seed << " is not deterministic";
    EXPECT_EQ(a.ok, b.ok);
    EXPECT_GT(a.stats.events, 1000u);
  }
}

TEST_F(SimTest, QuietClusterServesEveryClient) {
  // No faults at all: one leader for the whole run, every operation completes.
  for (uint64_t seed : {5, 6, 7}) {
    SimOptions o;
    o.seed = seed;
    o.adjust = [](SimScenario& s) {
      s.crash_interval = 0;
      s.partition_interval = 0;
      s.network.drop_probability = 0;
      s.network.duplicate_probability = 0;
      s.network.slow_probability = 0;
      s.membership_changes = false;
      s.leader_transfers = false;
      s.client_max_timeouts = 0;
      s.voters = 3;
    };
    const SimResult r = RunSimulation(o);
    ASSERT_TRUE(r.ok) << r.report;
    EXPECT_EQ(r.stats.leaders, 1u) << "seed " << seed;
    EXPECT_EQ(r.stats.client_ops_completed, r.stats.client_ops);
    EXPECT_GT(r.stats.client_ops, 50u);
    EXPECT_GT(r.stats.committed, 50u);
  }
}

// The simulation must catch real mistakes. Each case plants one driver bug and expects the
// matching check to fire within a few seeds (in a child process: some of these bugs make the
// core stop the process, which is not what this test is looking for).
TEST_F(SimTest, CatchesInjectedBugs) {
  struct Case {
    InjectedBug bug;
    const char* name;
    const char* expected;  // Prefix of SimResult::failure.
    bool contention;       // One key, lossy network: many retries and overlapping operations.
  };
  const Case cases[] = {
      {InjectedBug::kLocalReads, "local reads", "linearizability", true},
      {InjectedBug::kNoDedupe, "no dedupe", "linearizability", true},
      {InjectedBug::kUnsyncedHardState, "unsynced term/vote", "invariant: election safety", true},
      {InjectedBug::kSendBeforePersist, "send before persist", "invariant: no committed entry lost",
       false},
  };
  constexpr uint64_t kMaxSeeds = 60;
  for (const Case& c : cases) {
    uint64_t found = 0;
    std::string kinds;
    for (uint64_t seed = 1; seed <= kMaxSeeds && found == 0; ++seed) {
      SimOptions o;
      o.seed = seed;
      o.inject = c.bug;
      o.check_liveness = false;
      const bool contention = c.contention;
      o.adjust = [contention](SimScenario& s) {
        // Faults that make each bug bite: frequent crashes and partitions.
        s.crash_interval = 300 * kMillisecond;
        s.partition_interval = 300 * kMillisecond;
        s.voters = s.voters < 3 ? 3 : s.voters;
        if (contention) {
          s.network.drop_probability = 0.05;
          s.membership_changes = false;
          s.bootstrap_via_log = false;
          s.client_max_timeouts = 0;
          s.keys = 1;
        }
      };
      const SimResult r = RunSimulationInChild(o);
      if (!r.ok && absl::StartsWith(r.failure, c.expected)) found = seed;
      if (!r.ok) kinds += " " + std::to_string(seed) + ":" + r.failure;
    }
    EXPECT_NE(found, 0u) << c.name << " went unnoticed in " << kMaxSeeds
                         << " seeds; failures seen:" << kinds;
    std::printf("injected bug '%s' caught at seed %llu\n", c.name, (unsigned long long)found);
  }
}

}  // namespace
}  // namespace shoal::raft::sim
