// raft_bench: the `tools/bench raft` benchmark. Measures etcd 3.4 (the anchor) and, when given,
// Shoal's benchmark KV server with the same procedure and load generator (see runner.h), plus a
// disk reference (4 KiB O_DSYNC writes with dd) in the same run. Progress goes to stderr; the
// table and, as the last line, one JSON object go to stdout (the contract in INTERFACE.md).
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bench/raft/process.h"
#include "bench/raft/report.h"
#include "bench/raft/runner.h"
#include "bench/raft/stats.h"

namespace {

using shoal::bench::Round;
using shoal::bench::SideResult;
using shoal::bench::TierResult;

std::atomic<bool> g_cancel{false};

void OnSignal(int) { g_cancel.store(true); }

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string LoadAverage() {
  std::vector<std::string> f = absl::StrSplit(ReadFirstLine("/proc/loadavg"), ' ');
  return f.size() >= 3 ? absl::StrCat(f[0], " ", f[1], " ", f[2]) : "?";
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "model name")) {
      return std::string(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)));
    }
  }
  return "unknown CPU";
}

// "ext4 on /dev/vda" for the filesystem holding `dir`.
std::string Filesystem(const std::string& dir) {
  absl::StatusOr<std::string> out =
      shoal::bench::RunAndCapture({"/bin/df", "--output=fstype,source", dir}, absl::Seconds(10));
  if (!out.ok()) return "unknown filesystem";
  std::vector<std::string> lines = absl::StrSplit(*out, '\n', absl::SkipWhitespace());
  if (lines.size() < 2) return "unknown filesystem";
  std::vector<std::string> f = absl::StrSplit(lines[1], ' ', absl::SkipWhitespace());
  return f.size() >= 2 ? absl::StrCat(f[0], " on ", f[1]) : lines[1];
}

// Mean time of one 4 KiB O_DSYNC write, in microseconds: dd appends `count` blocks to a new file
// in `dir` and reports the elapsed time.
absl::StatusOr<double> DsyncWriteMicros(const std::string& dir, int count) {
  const std::string file = dir + "/dsync-reference.bin";
  absl::StatusOr<std::string> out =
      shoal::bench::RunAndCapture({"/usr/bin/env", "LC_ALL=C", "dd", "if=/dev/zero", "of=" + file,
                                   "bs=4k", absl::StrCat("count=", count), "oflag=dsync"},
                                  absl::Seconds(120));
  ::unlink(file.c_str());
  if (!out.ok()) return out.status();
  // "... copied, 0.163 s, 25.1 MB/s"
  const size_t at = out->find("copied, ");
  if (at == std::string::npos) return absl::InternalError("unexpected dd output: " + *out);
  double seconds = 0;
  std::vector<std::string> words = absl::StrSplit(out->substr(at + 8), ' ', absl::SkipWhitespace());
  if (words.empty() || !absl::SimpleAtod(words[0], &seconds)) {
    return absl::InternalError("unexpected dd output: " + *out);
  }
  return seconds / count * 1e6;
}

std::string EtcdName(const std::string& etcd) {
  absl::StatusOr<std::string> out =
      shoal::bench::RunAndCapture({etcd, "--version"}, absl::Seconds(10));
  if (out.ok()) {
    for (absl::string_view line : absl::StrSplit(*out, '\n')) {
      if (absl::ConsumePrefix(&line, "etcd Version: ")) return absl::StrCat("etcd ", line);
    }
  }
  return "etcd";
}

const TierResult* Tier(const SideResult& side, int clients) {
  for (const TierResult& t : side.tiers) {
    if (t.load.clients == clients) return &t;
  }
  return nullptr;
}

std::string Cell(const SideResult* side, int clients) {
  if (side == nullptr) return "-";
  const TierResult* t = Tier(*side, clients);
  if (t == nullptr) return "-";
  return absl::StrFormat("%8.0f %7.2f %7.2f %5.2f", t->load.writes_per_s, t->load.latency_ms.p50,
                         t->load.latency_ms.p99, t->server_cpu_cores);
}

void PrintTable(const std::vector<int>& clients, const SideResult* anchor, const SideResult* ours,
                double dsync_us, const std::string& machine) {
  std::printf("\nRaft benchmark: 3 members on 127.0.0.1, fsync on, 256-byte values\n");
  std::printf("machine: %s\n\n", machine.c_str());
  const std::string a_name = anchor ? anchor->name : "anchor (not run)";
  const std::string o_name = ours ? ours->name : "shoal_kv (not run)";
  std::printf("%-8s | %-37s | %-37s\n", "", a_name.c_str(), o_name.c_str());
  std::printf("%-8s | %8s %7s %7s %5s         | %8s %7s %7s %5s\n", "clients", "writes/s", "p50 ms",
              "p99 ms", "cpu", "writes/s", "p50 ms", "p99 ms", "cpu");
  for (int c : clients) {
    std::printf("%-8d | %-37s | %-37s\n", c, Cell(anchor, c).c_str(), Cell(ours, c).c_str());
  }
  auto failover = [](const SideResult* s) {
    if (s == nullptr) return std::string("-");
    const auto& f = s->failover;
    return absl::StrFormat("p50 %.3f s, p99 %.3f s (%d/%d ok)", f.failover_s.p50, f.failover_s.p99,
                           f.trials - f.failed, f.trials);
  };
  auto vs_fsync = [dsync_us](const SideResult* s) {
    const TierResult* t = s ? Tier(*s, 1) : nullptr;
    if (t == nullptr || dsync_us <= 0) return std::string("-");
    return absl::StrFormat("%.2fx (p50 %.0f us)", t->load.latency_ms.p50 * 1000 / dsync_us,
                           t->load.latency_ms.p50 * 1000);
  };
  std::printf("%-8s | %-37s | %-37s\n", "failover", failover(anchor).c_str(),
              failover(ours).c_str());
  std::printf("%-8s | %-37s | %-37s\n", "1c/fsync", vs_fsync(anchor).c_str(),
              vs_fsync(ours).c_str());
  std::printf(
      "(cpu: cores used by the 3 members; failover: SIGKILL leader -> next committed write;\n"
      " 1c/fsync: 1-client p50 latency / one 4 KiB dsync write of %.0f us)\n\n",
      dsync_us);
}

double Ratio(double ours, double anchor) { return anchor > 0 ? Round(ours / anchor, 3) : 0; }

}  // namespace

int main(int argc, char** argv) {
  std::string etcd = "/usr/bin/etcd";
  std::string shoal_kv;
  std::string clients_flag = "1,16,256";
  std::string warmup = "2s", duration = "5s";
  std::string work_dir = "/var/tmp";
  int trials = 20;
  int connections = 0;
  bool skip_anchor = false;
  size_t value_size = 256;
  int64_t key_space = 100000;

  CLI::App app("raft_bench: Shoal's Raft KV vs etcd 3.4, 3 members on loopback", "raft_bench");
  app.add_option("--etcd", etcd, "etcd binary (the anchor)")->capture_default_str();
  app.add_option("--shoal-kv", shoal_kv, "shoal_kv binary (omit: anchor only)");
  app.add_option("--clients", clients_flag, "Client counts, comma-separated")
      ->capture_default_str();
  app.add_option("--conns", connections, "TCP connections (0: min(clients, 16))")
      ->capture_default_str();
  app.add_option("--warmup", warmup, "Load before each measurement")->capture_default_str();
  app.add_option("--duration", duration, "Measured time per client count")->capture_default_str();
  app.add_option("--failover-trials", trials, "Leader kills per server")->capture_default_str();
  app.add_option("--value-size", value_size, "Bytes per value")->capture_default_str();
  app.add_option("--key-space", key_space, "Distinct keys")->capture_default_str();
  app.add_option("--work-dir", work_dir, "Data dirs go under here (must be on the disk)")
      ->capture_default_str();
  app.add_flag("--skip-anchor", skip_anchor, "Do not run etcd");
  CLI11_PARSE(app, argc, argv);

  shoal::bench::SideOptions base;
  if (!absl::ParseDuration(warmup, &base.warmup) ||
      !absl::ParseDuration(duration, &base.duration)) {
    std::cerr << "raft_bench: --warmup/--duration take durations like 2s\n";
    return 2;
  }
  base.clients.clear();
  for (absl::string_view c : absl::StrSplit(clients_flag, ',', absl::SkipWhitespace())) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n < 1) {
      std::cerr << "raft_bench: bad --clients entry: " << c << "\n";
      return 2;
    }
    base.clients.push_back(n);
  }
  if (base.clients.empty()) {
    std::cerr << "raft_bench: --clients is empty\n";
    return 2;
  }
  base.work_dir = work_dir;
  base.connections = connections;
  base.value_size = value_size;
  base.key_space = key_space;
  base.failover_trials = trials;
  base.cancel = &g_cancel;
  base.progress = [](const std::string& line) { std::cerr << "raft_bench: " << line << std::endl; };

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  const std::string load_before = LoadAverage();
  std::vector<double> dsync;
  auto measure_disk = [&] {
    absl::StatusOr<double> us = DsyncWriteMicros(work_dir, 1000);
    if (us.ok()) {
      dsync.push_back(*us);
      base.progress(absl::StrFormat("dd 4 KiB oflag=dsync: %.0f us per write (mean of 1000)", *us));
    } else {
      base.progress("dd reference failed: " + us.status().ToString());
    }
  };

  int rc = 0;
  std::optional<SideResult> anchor, ours;
  measure_disk();
  if (!skip_anchor) {
    shoal::bench::SideOptions o = base;
    o.name = EtcdName(etcd);
    o.kind = shoal::bench::ServerKind::kEtcd;
    o.binary = etcd;
    absl::StatusOr<SideResult> r = shoal::bench::RunSide(o);
    if (r.ok()) {
      anchor = *std::move(r);
    } else {
      base.progress(o.name + " failed: " + r.status().ToString());
      rc = 1;
    }
    measure_disk();
  }
  if (!shoal_kv.empty() && !g_cancel.load()) {
    shoal::bench::SideOptions o = base;
    o.name = "shoal_kv";
    o.kind = shoal::bench::ServerKind::kShoalKv;
    o.binary = shoal_kv;
    absl::StatusOr<SideResult> r = shoal::bench::RunSide(o);
    if (r.ok()) {
      ours = *std::move(r);
    } else {
      base.progress("shoal_kv failed: " + r.status().ToString());
      rc = 1;
    }
    measure_disk();
  }

  const double dsync_us = shoal::bench::Summarize(dsync).p50;
  struct utsname uts {};
  ::uname(&uts);
  const std::string machine = absl::StrFormat(
      "%d vCPU %s, %s (%s), dd 4 KiB dsync write %.0f us, Linux %s, load avg %s -> %s",
      static_cast<int>(std::thread::hardware_concurrency()), CpuModel(), Filesystem(work_dir),
      work_dir, dsync_us, uts.release, load_before, LoadAverage());

  PrintTable(base.clients, anchor ? &*anchor : nullptr, ours ? &*ours : nullptr, dsync_us, machine);

  nlohmann::ordered_json out = {{"bench", "raft"}};
  auto side_json = [&](const std::optional<SideResult>& s) -> nlohmann::ordered_json {
    if (!s.has_value()) return nullptr;
    nlohmann::ordered_json j = shoal::bench::SideJson(*s);
    if (const TierResult* t = Tier(*s, 1); t != nullptr && dsync_us > 0) {
      j["latency_1client_p50_vs_fsync"] = Round(t->load.latency_ms.p50 * 1000 / dsync_us, 3);
    }
    return j;
  };
  out["ours"] = side_json(ours);
  if (!ours.has_value()) {
    out["ours"] = {{"name", "shoal_kv"},
                   {"error", shoal_kv.empty() ? "not run: no --shoal-kv binary (not built yet)"
                                              : "failed; see the messages above"}};
  }
  out["anchor"] = side_json(anchor);
  if (!anchor.has_value()) {
    out["anchor"] = {{"name", EtcdName(etcd)},
                     {"error", skip_anchor ? "not run (--skip-anchor)" : "failed"}};
  }
  nlohmann::ordered_json ratio = nlohmann::ordered_json::object();
  nlohmann::ordered_json targets = nlohmann::ordered_json::object();
  if (ours.has_value() && anchor.has_value()) {
    const int top = *std::max_element(base.clients.begin(), base.clients.end());
    const TierResult* o = Tier(*ours, top);
    const TierResult* a = Tier(*anchor, top);
    if (o != nullptr && a != nullptr) {
      const double tput = Ratio(o->load.writes_per_s, a->load.writes_per_s);
      const double p99 = Ratio(o->load.latency_ms.p99, a->load.latency_ms.p99);
      ratio[absl::StrCat("writes_per_s_", top)] = tput;
      ratio[absl::StrCat("p99_ms_", top)] = p99;
      targets[absl::StrCat("writes_per_s_", top, "_ge_1.5x")] = tput >= 1.5;
      targets[absl::StrCat("p99_ms_", top, "_no_worse")] = p99 <= 1.0;
    }
    ratio["failover_p50_s"] = Ratio(ours->failover.failover_s.p50, anchor->failover.failover_s.p50);
    ratio["failover_p99_s"] = Ratio(ours->failover.failover_s.p99, anchor->failover.failover_s.p99);
  }
  if (ours.has_value()) {
    const auto& f = ours->failover;
    targets["failover_p50_lt_1s"] = f.failed == 0 && f.failover_s.p50 < 1.0;
    targets["failover_p99_lt_2s"] = f.failed == 0 && f.failover_s.p99 < 2.0;
    if (const TierResult* t = Tier(*ours, 1); t != nullptr && dsync_us > 0) {
      const double r = t->load.latency_ms.p50 * 1000 / dsync_us;
      ratio["latency_1client_p50_vs_fsync"] = Round(r, 3);
      targets["latency_1client_within_1.2x_fsync"] = r <= 1.2;
    }
  }
  out["ratio"] = ratio;
  if (!targets.empty()) out["targets"] = targets;
  nlohmann::ordered_json disk = nlohmann::ordered_json::array();
  for (double us : dsync) disk.push_back(Round(us, 1));
  out["fsync_reference"] = {{"dd_4k_dsync_write_us", Round(dsync_us, 1)}, {"runs_us", disk}};
  out["machine"] = machine;
  std::cout << out.dump() << std::endl;
  if (g_cancel.load()) return 130;
  return rc;
}
