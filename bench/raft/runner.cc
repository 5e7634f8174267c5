#include "bench/raft/runner.h"

#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/raft/kv_client.h"
#include "bench/raft/process.h"
#include "bench/raft/report.h"

namespace shoal::bench {
namespace {

// Generous bounds: a healthy 3-member cluster forms in about a second.
constexpr absl::Duration kFormTimeout = absl::Seconds(30);
// How far (in log entries) a member may trail the leader and still count as caught up.
constexpr uint64_t kCaughtUpLag = 10;

bool Cancelled(const SideOptions& o) {
  return o.cancel != nullptr && o.cancel->load(std::memory_order_relaxed);
}

void Say(const SideOptions& o, const std::string& line) {
  if (o.progress) o.progress(line);
}

absl::StatusOr<TierResult> RunTier(const SideOptions& o, Cluster& cluster, int clients) {
  absl::StatusOr<std::vector<MemberStatus>> healthy = cluster.WaitHealthy(kFormTimeout);
  if (!healthy.ok()) return healthy.status();
  absl::StatusOr<size_t> leader = cluster.Leader();
  if (!leader.ok()) return leader.status();

  LoadOptions load;
  load.endpoint = cluster.member(*leader).client_endpoint();
  load.clients = clients;
  load.connections = o.connections;
  load.warmup = o.warmup;
  load.duration = o.duration;
  load.value_size = o.value_size;
  load.key_space = o.key_space;
  load.cancel = o.cancel;

  const double server_cpu0 = cluster.CpuSeconds();
  const double self_cpu0 = ProcessCpuSeconds(::getpid());
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<LoadResult> result = RunLoad(load);
  if (!result.ok()) return result.status();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  TierResult tier;
  tier.load = *std::move(result);
  if (wall > 0) {
    tier.server_cpu_cores = (cluster.CpuSeconds() - server_cpu0) / wall;
    tier.loadgen_cpu_cores = (ProcessCpuSeconds(::getpid()) - self_cpu0) / wall;
  }
  return tier;
}

// One failover trial. A probe that finds no committed write is a failed trial, not an error;
// errors are what leaves the cluster unusable for further trials.
absl::Status RunTrial(const SideOptions& o, Cluster& cluster, FailoverResult& out) {
  absl::StatusOr<std::vector<MemberStatus>> healthy =
      cluster.WaitHealthy(kFormTimeout, kCaughtUpLag);
  if (!healthy.ok()) return healthy.status();
  absl::StatusOr<size_t> leader = cluster.Leader();
  if (!leader.ok()) return leader.status();
  // The cluster commits before the kill, so the probe times recovery and nothing else.
  absl::Status put = PutOnce(cluster.member(*leader).client_endpoint(), "bench/before-failover",
                             "x", absl::Seconds(5));
  if (!put.ok()) return put;

  ProbeOptions probe;
  probe.value_size = o.value_size;
  for (size_t i = 0; i < cluster.size(); ++i) {
    if (i != *leader) probe.endpoints.push_back(cluster.member(i).client_endpoint());
  }
  const size_t victim = *leader;
  absl::StatusOr<ProbeResult> r =
      TimeUntilWriteCommits(probe, [&cluster, victim] { return cluster.Kill(victim); });
  absl::Status reaped = cluster.Reap(victim);
  if (!reaped.ok()) return reaped;
  ++out.trials;
  if (r.ok()) {
    out.seconds.push_back(absl::ToDoubleSeconds(r->elapsed));
  } else if (absl::IsDeadlineExceeded(r.status())) {
    ++out.failed;
    out.errors.push_back(r.status().ToString());
  } else {
    return r.status();
  }

  const absl::Time restart = absl::Now();
  absl::Status restarted = cluster.Restart(victim);
  if (!restarted.ok()) return restarted;
  healthy = cluster.WaitHealthy(kFormTimeout, kCaughtUpLag);
  if (!healthy.ok()) return healthy.status();
  out.restart_s.push_back(absl::ToDoubleSeconds(absl::Now() - restart));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SideResult> RunSide(const SideOptions& o) {
  absl::StatusOr<TempDir> dir = TempDir::Make(o.work_dir, "shoal-bench-raft");
  if (!dir.ok()) return dir.status();
  ClusterOptions co;
  co.kind = o.kind;
  co.binary = o.binary;
  co.dir = dir->path();
  absl::StatusOr<std::unique_ptr<Cluster>> cluster = Cluster::Start(co);
  if (!cluster.ok()) return cluster.status();
  Say(o, absl::StrCat(o.name, ": 3 members starting in ", dir->path()));
  absl::StatusOr<std::vector<MemberStatus>> healthy = (*cluster)->WaitHealthy(kFormTimeout);
  if (!healthy.ok()) return healthy.status();

  SideResult side;
  side.name = o.name;
  for (int clients : o.clients) {
    if (Cancelled(o)) return absl::CancelledError("interrupted");
    absl::StatusOr<TierResult> tier = RunTier(o, **cluster, clients);
    if (!tier.ok()) return tier.status();
    Say(o, absl::StrFormat("%s: %d clients: %.0f writes/s, p50 %.2f ms, p99 %.2f ms, %d errors",
                           o.name, clients, tier->load.writes_per_s, tier->load.latency_ms.p50,
                           tier->load.latency_ms.p99, tier->load.errors));
    side.tiers.push_back(*std::move(tier));
  }

  FailoverResult& f = side.failover;
  for (int t = 0; t < o.failover_trials; ++t) {
    if (Cancelled(o)) return absl::CancelledError("interrupted");
    const size_t succeeded_before = f.seconds.size();
    absl::Status trial = RunTrial(o, **cluster, f);
    if (!trial.ok()) {
      return absl::Status(trial.code(),
                          absl::StrCat("failover trial ", t + 1, ": ", trial.message()));
    }
    const std::string outcome =
        f.seconds.size() > succeeded_before
            ? absl::StrFormat("write committed after %.3f s", f.seconds.back())
            : std::string("FAILED (no write committed)");
    Say(o, absl::StrFormat("%s: failover trial %d/%d: %s; member healthy again after %.2f s",
                           o.name, t + 1, o.failover_trials, outcome, f.restart_s.back()));
  }
  f.failover_s = Summarize(f.seconds);
  f.restart_healthy_s = Summarize(f.restart_s);
  (*cluster)->Stop(absl::Seconds(3));
  return side;
}

nlohmann::ordered_json SideJson(const SideResult& side) {
  nlohmann::ordered_json clients = nlohmann::ordered_json::object();
  for (const TierResult& t : side.tiers) {
    nlohmann::ordered_json j = LoadJson(t.load);
    j["server_cpu_cores"] = Round(t.server_cpu_cores, 2);
    j["loadgen_cpu_cores"] = Round(t.loadgen_cpu_cores, 2);
    clients[std::to_string(t.load.clients)] = j;
  }
  const FailoverResult& f = side.failover;
  nlohmann::ordered_json failover = {
      {"trials", f.trials},
      {"failed", f.failed},
      {"p50_s", Round(f.failover_s.p50, 3)},
      {"p99_s", Round(f.failover_s.p99, 3)},
      {"min_s", Round(f.failover_s.min, 3)},
      {"max_s", Round(f.failover_s.max, 3)},
      {"restart_healthy_p50_s", Round(f.restart_healthy_s.p50, 3)},
  };
  nlohmann::ordered_json each = nlohmann::ordered_json::array();
  for (double s : f.seconds) each.push_back(Round(s, 3));
  failover["each_s"] = each;
  if (!f.errors.empty()) failover["errors"] = f.errors;
  return {{"name", side.name}, {"clients", clients}, {"failover", failover}};
}

}  // namespace shoal::bench
