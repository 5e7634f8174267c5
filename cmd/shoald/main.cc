// shoald: the node daemon. Flag parsing, logging and signal wiring only; the daemon itself is
// node::Daemon.
#include <malloc.h>
#include <signal.h>

#include <cstring>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/synchronization/mutex.h"
#include "agent/exec/containerd/log_driver.h"
#include "common/logging.h"
#include "common/version.h"
#include "node/daemon.h"
#include "spdlog/spdlog.h"

namespace {

// Blocks SIGTERM/SIGINT in every thread (threads inherit the mask), so that only the waiter
// thread below receives them, synchronously.
sigset_t BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace

int main(int argc, char** argv) {
  // containerd's shim runs this binary as a task's log driver (agent/exec/containerd/log_driver.h).
  if (shoal::agent::exec::containerd::IsLogDriverInvocation(argc, argv)) {
    return shoal::agent::exec::containerd::RunLogDriver(argc, argv);
  }
  // Before any thread exists: glibc would otherwise give up to 8 arenas per core to a process
  // with thousands of gRPC threads, each holding on to what its threads freed
  // (docs/orchestration.md).
  mallopt(M_ARENA_MAX, 4);
  shoal::node::DaemonOptions options;
  std::string log_level = "info";
  std::string log_format = "text";

  CLI::App app("shoald: the Shoal node daemon (manager and/or worker of a swarm)", "shoald");
  // A repeated flag takes its last value (as dockerd does); list flags below opt out.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--state-dir", options.state_dir, "All persistent state (mode 0700)")
      ->capture_default_str();
  app.add_option("--socket", options.socket_path, "Control socket for the shoal CLI (mode 0660)")
      ->capture_default_str();
  app.add_option("--node-name", options.node_name, "Node name (default: the hostname)");
  app.add_option("--executor", options.executor, "Task executor: containerd or sim")
      ->capture_default_str();
  app.add_option("--containerd", options.containerd_address, "containerd's socket")
      ->capture_default_str();
  app.add_option("--containerd-namespace", options.containerd_namespace,
                 "containerd namespace for Shoal's containers")
      ->capture_default_str();
  app.add_option("--insecure-registry", options.insecure_registries,
                 "Registry HOST:PORT spoken to over plain HTTP (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--shim-group-size", options.shim_group_size,
                 "Replicated tasks of one service that share a runc shim (1 = a shim each)")
      ->capture_default_str();
  app.add_option("--metrics-addr", options.metrics_addr,
                 "Serve Prometheus /metrics on IP:PORT (off by default)");
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")->capture_default_str();
  app.set_version_flag("--version", std::string("shoald ") + shoal::kVersion);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  if (absl::Status s = shoal::InitLogging(log_level, log_format); !s.ok()) {
    std::cerr << "shoald: " << s.message() << "\n";
    return 2;
  }
  if (absl::Status s = shoal::node::ValidateOptions(options); !s.ok()) {
    std::cerr << "shoald: " << s.message() << "\n";
    return 2;
  }

  // Debian's abseil checks every Mutex acquisition for lock-order cycles, a debugging aid that
  // costs measurable CPU on hot paths; our lock order is fixed by design.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const sigset_t signals = BlockShutdownSignals();
  absl::StatusOr<std::unique_ptr<shoal::node::Daemon>> daemon =
      shoal::node::Daemon::Start(std::move(options));
  if (!daemon.ok()) {
    spdlog::error("cannot start: {}", std::string(daemon.status().message()));
    std::cerr << "shoald: " << daemon.status().message() << "\n";
    return 1;
  }

  std::thread signal_waiter([&signals, d = daemon->get()] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("received {}", strsignal(sig));
    d->Shutdown();
  });
  (*daemon)->Wait();
  signal_waiter.join();
  return 0;
}
