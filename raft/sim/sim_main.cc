// sim_main: runs many simulation seeds fast, outside the test runner.
//
//   sim_main [--seeds=N] [--base=S] [--trace] [--reports=K] [--no-liveness] [--inject=BUG]
//            [--no-fork] [--set=FIELD=VALUE ...]
//
// --set overrides a field of every seed's scenario (see SetScenarioField), e.g.
// --set=lease_reads=1 --set=skew=0.5 --set=read_index=1.
// --inject=local_reads|unsynced_hard_state|send_before_persist|no_dedupe runs with a deliberate
// driver bug, to see how quickly the simulation catches it.
// Seeds S, S+1, ..., S+N-1 (defaults: SHOAL_SIM_SEEDS / SHOAL_SIM_SEED_BASE, else 1000 and 1).
// Prints progress with seeds/s, then totals and every failing seed. Each seed runs in a forked
// child (so a core abort is one failing seed, not the end of the run) which prints its own
// failure report; --no-fork runs in-process and prints the first K reports (--reports=K).
// --trace prints every event of every seed (use with --seeds=1 to replay one).
// Exit status: 0 if every seed passed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "raft/sim/cluster_sim.h"
#include "raft/sim/isolated_run.h"

namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

bool FlagValue(const char* arg, const char* name, uint64_t* out) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *out = std::strtoull(arg + n + 1, nullptr, 10);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using shoal::raft::sim::RunSimulation;
  using shoal::raft::sim::SimOptions;
  using shoal::raft::sim::SimResult;
  uint64_t seeds = EnvOr("SHOAL_SIM_SEEDS", 1000);
  uint64_t base = EnvOr("SHOAL_SIM_SEED_BASE", 1);
  uint64_t reports = 3;
  bool trace = false, liveness = true, isolate = true;
  shoal::raft::sim::InjectedBug inject = shoal::raft::sim::InjectedBug::kNone;
  std::vector<std::pair<std::string, std::string>> overrides;
  for (int i = 1; i < argc; ++i) {
    if (FlagValue(argv[i], "--seeds", &seeds) || FlagValue(argv[i], "--base", &base) ||
        FlagValue(argv[i], "--reports", &reports)) {
      continue;
    }
    if (std::strncmp(argv[i], "--inject=", 9) == 0) {
      const std::string bug = argv[i] + 9;
      using shoal::raft::sim::InjectedBug;
      inject = bug == "local_reads"           ? InjectedBug::kLocalReads
               : bug == "unsynced_hard_state" ? InjectedBug::kUnsyncedHardState
               : bug == "send_before_persist" ? InjectedBug::kSendBeforePersist
               : bug == "no_dedupe"           ? InjectedBug::kNoDedupe
                                              : InjectedBug::kNone;
      if (inject == InjectedBug::kNone) {
        std::fprintf(stderr, "unknown bug %s\n", bug.c_str());
        return 2;
      }
    } else if (std::strncmp(argv[i], "--set=", 6) == 0) {
      const std::string kv = argv[i] + 6;
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) {
        std::fprintf(stderr, "--set wants FIELD=VALUE\n");
        return 2;
      }
      shoal::raft::sim::SimScenario probe;
      const absl::Status st =
          shoal::raft::sim::SetScenarioField(probe, kv.substr(0, eq), kv.substr(eq + 1));
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
        return 2;
      }
      overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (std::strcmp(argv[i], "--trace") == 0) {
      trace = true;
    } else if (std::strcmp(argv[i], "--no-fork") == 0) {
      isolate = false;
    } else if (std::strcmp(argv[i], "--no-liveness") == 0) {
      liveness = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seeds=N] [--base=S] [--trace] [--reports=K] "
                   "[--no-liveness] [--inject=BUG] [--no-fork] [--set=FIELD=VALUE]\n",
                   argv[0]);
      return 2;
    }
  }
  shoal::raft::sim::InstallAbortReporter();
  // Single-threaded: MemoryStorage's mutex needs no deadlock detection (a tenth of the run time).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::map<std::string, std::vector<uint64_t>> failures;
  uint64_t printed = 0, events = 0, ops = 0, ops_done = 0, crashes = 0, mid_ready = 0,
           partitions = 0, snaps = 0, installs = 0, confs = 0, reads = 0, committed = 0,
           leaders = 0, transfers = 0;
  double sim_seconds = 0;
  for (uint64_t i = 0; i < seeds; ++i) {
    SimOptions o;
    o.seed = base + i;
    o.print_trace = trace;
    o.check_liveness = liveness;
    o.inject = inject;
    if (!overrides.empty()) {
      o.adjust = [&overrides](shoal::raft::sim::SimScenario& s) {
        for (const auto& [k, v] : overrides) (void)shoal::raft::sim::SetScenarioField(s, k, v);
      };
    }
    const SimResult r = isolate ? shoal::raft::sim::RunSimulationInChild(o) : RunSimulation(o);
    events += r.stats.events;
    ops += r.stats.client_ops;
    ops_done += r.stats.client_ops_completed;
    crashes += r.stats.crashes;
    mid_ready += r.stats.crashes_mid_ready;
    partitions += r.stats.partitions;
    snaps += r.stats.snapshots_taken;
    installs += r.stats.snapshots_installed;
    confs += r.stats.conf_changes;
    reads += r.stats.read_index_reads;
    committed += r.stats.committed;
    leaders += r.stats.leaders;
    transfers += r.stats.transfers;
    sim_seconds += static_cast<double>(r.scenario.duration + r.scenario.settle) / 1e6;
    if (!r.ok) {
      failures[r.failure].push_back(r.seed);
      if (printed++ < reports && !isolate) std::printf("%s\n", r.report.c_str());
      std::printf("seed %llu FAILED: %s\n", static_cast<unsigned long long>(r.seed),
                  r.failure.c_str());
    }
    if ((i + 1) % 500 == 0 || i + 1 == seeds) {
      std::printf("[%.0fs] %llu/%llu seeds, %.1f seeds/s, %llu failed\n", elapsed(),
                  static_cast<unsigned long long>(i + 1), static_cast<unsigned long long>(seeds),
                  (i + 1) / elapsed(), static_cast<unsigned long long>(printed));
      std::fflush(stdout);
    }
  }
  std::printf(
      "\nseeds %llu..%llu: %llu run in %.1fs (%.1f seeds/s), %.0f simulated seconds\n"
      "events %llu, client ops %llu (%llu completed), committed entries %llu, leaders %llu\n"
      "crashes %llu (%llu mid-Ready), partitions %llu, snapshots taken %llu / installed %llu, "
      "conf changes %llu, leader transfers %llu, ReadIndex reads %llu\n",
      static_cast<unsigned long long>(base), static_cast<unsigned long long>(base + seeds - 1),
      static_cast<unsigned long long>(seeds), elapsed(), seeds / elapsed(), sim_seconds,
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(ops),
      static_cast<unsigned long long>(ops_done), static_cast<unsigned long long>(committed),
      static_cast<unsigned long long>(leaders), static_cast<unsigned long long>(crashes),
      static_cast<unsigned long long>(mid_ready), static_cast<unsigned long long>(partitions),
      static_cast<unsigned long long>(snaps), static_cast<unsigned long long>(installs),
      static_cast<unsigned long long>(confs), static_cast<unsigned long long>(transfers),
      static_cast<unsigned long long>(reads));
  if (failures.empty()) {
    std::printf("all seeds passed\n");
    return 0;
  }
  for (const auto& [kind, list] : failures) {
    std::printf("%s: %zu seeds:", kind.c_str(), list.size());
    for (size_t i = 0; i < list.size() && i < 50; ++i) {
      std::printf(" %llu", static_cast<unsigned long long>(list[i]));
    }
    std::printf("%s\n", list.size() > 50 ? " ..." : "");
  }
  return 1;
}
