// loadgen: drives etcd's gRPC KV API (etcd itself, or Shoal's benchmark KV server) with unary
// Puts and prints one JSON object. Loopback benchmarking tool; every mode is bounded in time.
//
//   loadgen --endpoints A,B,C --clients 256 --duration 5s         closed-loop load on the leader
//   loadgen --endpoints A,B,C --clients 16 --total 100000         ... for a number of Puts
//   loadgen --endpoints A,B,C --status                             each member's view (leader,
//   index) loadgen --endpoints B,C --until-write-succeeds [--kill-pid P]  failover probe: SIGKILLs
//   P (if
//                                    given), then times the first committed Put on B or C
#include <signal.h>

#include <iostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench/raft/kv_client.h"
#include "bench/raft/load.h"
#include "bench/raft/report.h"

namespace {

using shoal::bench::LoadOptions;
using shoal::bench::ProbeOptions;

bool ParseDurationFlag(const std::string& text, absl::Duration* out, const char* name) {
  if (!absl::ParseDuration(text, out)) {
    std::cerr << "loadgen: " << name << ": not a duration: " << text << " (e.g. 5s, 100ms)\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoints_flag;
  LoadOptions load;
  std::string warmup = "1s", duration = "5s", request_timeout = "10s";
  bool status_mode = false;
  bool probe_mode = false;
  bool to_first = false;
  ProbeOptions probe;
  std::string timeout = "10s", attempt_deadline = "100ms", attempt_interval = "20ms";
  int kill_pid = 0;

  CLI::App app("loadgen: etcd-API write load and failover probe (prints JSON)", "loadgen");
  app.add_option("--endpoints", endpoints_flag, "HOST:PORT,... of the members")->required();
  app.add_option("--clients", load.clients, "Puts kept outstanding")->capture_default_str();
  app.add_option("--conns", load.connections, "TCP connections (0: min(clients, 16))")
      ->capture_default_str();
  app.add_option("--threads", load.threads, "Threads, each with a CompletionQueue")
      ->capture_default_str();
  app.add_option("--warmup", warmup, "Load before measuring")->capture_default_str();
  app.add_option("--duration", duration, "Measured time")->capture_default_str();
  app.add_option("--total", load.total, "Measure this many Puts instead of a duration");
  app.add_option("--value-size", load.value_size, "Bytes per value")->capture_default_str();
  app.add_option("--key-space", load.key_space, "Distinct keys, written round-robin")
      ->capture_default_str();
  app.add_option("--request-timeout", request_timeout, "Deadline of each Put")
      ->capture_default_str();
  app.add_flag("--to-first", to_first,
               "Send to the first endpoint instead of discovering the leader");
  app.add_flag("--status", status_mode, "Print each member's Maintenance.Status and exit");
  app.add_flag("--until-write-succeeds", probe_mode,
               "Time until a Put first commits on any endpoint");
  app.add_option("--timeout", timeout, "Probe: give up after this long")->capture_default_str();
  app.add_option("--attempt-deadline", attempt_deadline, "Probe: deadline of each attempt")
      ->capture_default_str();
  app.add_option("--attempt-interval", attempt_interval,
                 "Probe: a new attempt to every endpoint this often")
      ->capture_default_str();
  app.add_option("--kill-pid", kill_pid, "Probe: SIGKILL this PID just before timing starts");
  CLI11_PARSE(app, argc, argv);

  const std::vector<std::string> endpoints =
      absl::StrSplit(endpoints_flag, ',', absl::SkipWhitespace());
  if (endpoints.empty()) {
    std::cerr << "loadgen: --endpoints is empty\n";
    return 2;
  }

  if (status_mode) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& s : shoal::bench::QueryStatuses(endpoints, absl::Seconds(1))) {
      out.push_back(shoal::bench::StatusJson(s));
    }
    std::cout << out.dump() << "\n";
    return 0;
  }

  if (probe_mode) {
    probe.endpoints = endpoints;
    probe.value_size = load.value_size;
    if (!ParseDurationFlag(timeout, &probe.timeout, "--timeout") ||
        !ParseDurationFlag(attempt_deadline, &probe.attempt_deadline, "--attempt-deadline") ||
        !ParseDurationFlag(attempt_interval, &probe.attempt_interval, "--attempt-interval")) {
      return 2;
    }
    std::function<absl::Status()> start;
    if (kill_pid > 0) {
      start = [kill_pid] {
        if (::kill(kill_pid, SIGKILL) != 0) {
          return absl::FailedPreconditionError("cannot SIGKILL pid " + std::to_string(kill_pid));
        }
        return absl::OkStatus();
      };
    }
    absl::StatusOr<shoal::bench::ProbeResult> r = shoal::bench::TimeUntilWriteCommits(probe, start);
    if (!r.ok()) {
      std::cerr << "loadgen: " << r.status() << "\n";
      std::cout << nlohmann::ordered_json{{"ok", false}, {"error", r.status().ToString()}}.dump()
                << "\n";
      return 1;
    }
    nlohmann::ordered_json j = shoal::bench::ProbeJson(*r);
    j["ok"] = true;
    std::cout << j.dump() << "\n";
    return 0;
  }

  if (!ParseDurationFlag(warmup, &load.warmup, "--warmup") ||
      !ParseDurationFlag(duration, &load.duration, "--duration") ||
      !ParseDurationFlag(request_timeout, &load.request_timeout, "--request-timeout")) {
    return 2;
  }
  if (to_first) {
    load.endpoint = endpoints.front();
  } else {
    absl::StatusOr<std::vector<shoal::bench::MemberStatus>> statuses =
        shoal::bench::WaitHealthy(endpoints, absl::Seconds(10));
    if (!statuses.ok()) {
      std::cerr << "loadgen: " << statuses.status() << "\n";
      return 1;
    }
    load.endpoint = (*statuses)[*shoal::bench::AgreedLeader(*statuses)].endpoint;
  }
  absl::StatusOr<shoal::bench::LoadResult> r = shoal::bench::RunLoad(load);
  if (!r.ok()) {
    std::cerr << "loadgen: " << r.status() << "\n";
    return 1;
  }
  nlohmann::ordered_json j = shoal::bench::LoadJson(*r);
  j["endpoint"] = load.endpoint;
  j["value_size"] = load.value_size;
  std::cout << j.dump() << "\n";
  return r->errors > 0 && r->writes == 0 ? 1 : 0;
}
