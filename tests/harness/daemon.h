// ShoaldProcess and TestCluster: real `shoald` processes for integration tests.
//
// Each daemon gets its own state dir, control socket, node name and loopback port under one
// TempDir; its output goes to <root>/<node-name>.log (printed when a check fails via LogText()).
// Daemons are stopped by PID when the handle goes away.
//
//   TestCluster cluster;
//   ShoaldProcess& a = cluster.Add();            // started and accepting on its socket
//   CommandResult r = a.Cli({"info", "--format", "json"});
#ifndef SHOAL_TESTS_HARNESS_DAEMON_H_
#define SHOAL_TESTS_HARNESS_DAEMON_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tests/harness/process.h"

namespace shoal::testing {

// Paths of the binaries under test, from the test's runfiles (the test must list
// //cmd/shoald and //cmd/shoal in its data).
std::string ShoaldBinary();
std::string ShoalBinary();

struct ShoaldOptions {
  std::string node_name;  // default node-<index>
  std::string executor =
      "sim";  // tests use the simulated executor unless they need real containers
  std::string log_level = "debug";
  std::vector<std::string> extra_args;  // appended to the command line
};

class ShoaldProcess {
 public:
  // Prepares (does not start) a daemon whose files live under `root`.
  ShoaldProcess(const std::string& root, ShoaldOptions options);
  ~ShoaldProcess();

  // Starts the process and waits until its control socket accepts connections.
  absl::Status Start(absl::Duration timeout = absl::Seconds(30));
  // SIGTERM, then waits for a clean exit (status 0). Fails if it did not exit cleanly in time.
  absl::Status Stop(absl::Duration timeout = absl::Seconds(30));
  // SIGKILL: a crash.
  void Kill();
  bool running() const { return process_.running(); }
  pid_t pid() const { return process_.pid(); }

  // Runs `shoal -H unix://<socket> args...`.
  CommandResult Cli(const std::vector<std::string>& args, const CommandOptions& options = {}) const;

  const std::string& node_name() const { return options_.node_name; }
  const std::string& state_dir() const { return state_dir_; }
  const std::string& socket_path() const { return socket_path_; }
  std::string host() const { return "unix://" + socket_path_; }
  // A loopback port reserved for this node's swarm listener (--listen-addr 127.0.0.1:<port>).
  int swarm_port() const { return swarm_port_; }
  std::string swarm_addr() const { return "127.0.0.1:" + std::to_string(swarm_port_); }
  std::string log_path() const { return log_path_; }
  std::string LogText() const;

 private:
  ShoaldOptions options_;
  std::string state_dir_;
  std::string socket_path_;
  std::string log_path_;
  int swarm_port_;
  ChildProcess process_;
};

// A set of daemons sharing one temporary root.
class TestCluster {
 public:
  TestCluster() : root_("shoal-cluster") {}

  // Creates and starts a daemon; aborts the test (ADD_FAILURE + nullptr-safe) on failure.
  ShoaldProcess& Add(ShoaldOptions options = {});
  ShoaldProcess& operator[](size_t i) { return *daemons_[i]; }
  size_t size() const { return daemons_.size(); }
  const std::string& root() const { return root_.path(); }

 private:
  TempDir root_;  // destroyed last: daemons stop before their files go
  std::vector<std::unique_ptr<ShoaldProcess>> daemons_;
};

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_HARNESS_DAEMON_H_
