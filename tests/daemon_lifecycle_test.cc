// A real shoald on a temporary state dir and socket, driven through the shoal CLI binary.
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/daemon.h"

namespace shoal::testing {
namespace {

unsigned ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 0777;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

TEST(DaemonLifecycleTest, InfoReportsInactiveNodeAsJson) {
  TestCluster cluster;
  ShoaldProcess& d = cluster.Add({.node_name = "alpha"});
  CommandResult r = d.Cli({"info", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json info = nlohmann::json::parse(r.out);  // throws (fails the test) if not JSON
  EXPECT_EQ(info["Name"], "alpha");
  EXPECT_EQ(info["Executor"], "sim");
  EXPECT_EQ(info["Swarm"]["LocalNodeState"], "inactive");
  EXPECT_EQ(info["Swarm"]["NodeID"], "");
  EXPECT_EQ(info["Swarm"]["ControlAvailable"], false);
  EXPECT_EQ(info["Swarm"]["Managers"], 0);
  EXPECT_TRUE(info["Swarm"]["RemoteManagers"].is_array());
}

TEST(DaemonLifecycleTest, InfoTableAndVersion) {
  TestCluster cluster;
  ShoaldProcess& d = cluster.Add({.node_name = "beta"});
  CommandResult info = d.Cli({"info"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("Swarm: inactive"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("Name:            beta"), std::string::npos) << info.out;
  CommandResult version = d.Cli({"version"});
  ASSERT_EQ(version.exit_code, 0) << version.err;
  EXPECT_NE(version.out.find("Client:"), std::string::npos);
  EXPECT_NE(version.out.find("Server:"), std::string::npos);
}

TEST(DaemonLifecycleTest, ShoalHostEnvironmentVariableIsHonoured) {
  TestCluster cluster;
  ShoaldProcess& d = cluster.Add();
  CommandResult r =
      RunCommand({ShoalBinary(), "info", "--format", "json"}, {.env = {{"SHOAL_HOST", d.host()}}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["Name"], d.node_name());
}

TEST(DaemonLifecycleTest, StateDirAndSocketModes) {
  TestCluster cluster;
  ShoaldProcess& d = cluster.Add();
  EXPECT_EQ(ModeOf(d.state_dir()), 0700u);
  EXPECT_EQ(ModeOf(d.socket_path()), 0660u);
  std::ifstream lock(d.state_dir() + "/shoald.lock");
  pid_t pid = 0;
  lock >> pid;
  EXPECT_EQ(pid, d.pid());
}

TEST(DaemonLifecycleTest, SecondDaemonOnSameStateDirIsRefused) {
  TestCluster cluster;
  ShoaldProcess& first = cluster.Add({.node_name = "first"});
  CommandResult second = RunCommand({ShoaldBinary(), "--state-dir", first.state_dir(), "--socket",
                                     cluster.root() + "/other.sock", "--executor", "sim"},
                                    {.timeout = absl::Seconds(30)});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("in use by another shoald (pid " + std::to_string(first.pid()) + ")"),
            std::string::npos)
      << second.err;
  EXPECT_NE(second.err.find("--state-dir"), std::string::npos) << second.err;
  // The first daemon is unaffected.
  EXPECT_EQ(first.Cli({"info"}).exit_code, 0);
}

TEST(DaemonLifecycleTest, WithoutContainerdTheDaemonRefusesToStartAndSaysWhy) {
  TestCluster cluster;
  const std::string missing = cluster.root() + "/no-containerd.sock";
  CommandResult r = RunCommand({ShoaldBinary(), "--state-dir", cluster.root() + "/state",
                                "--socket", cluster.root() + "/d.sock", "--executor", "containerd",
                                "--containerd", missing},
                               {.timeout = absl::Seconds(30)});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("containerd is not reachable at " + missing), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--containerd"), std::string::npos) << r.err;
  // Nothing left listening.
  EXPECT_FALSE(std::filesystem::exists(cluster.root() + "/d.sock"));
}

TEST(DaemonLifecycleTest, SecondDaemonOnSameSocketIsRefused) {
  TestCluster cluster;
  ShoaldProcess& first = cluster.Add({.node_name = "first"});
  CommandResult second = RunCommand({ShoaldBinary(), "--state-dir", cluster.root() + "/other-state",
                                     "--socket", first.socket_path(), "--executor", "sim"});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("is served by another process"), std::string::npos) << second.err;
  EXPECT_EQ(first.Cli({"info"}).exit_code, 0);
}

TEST(DaemonLifecycleTest, SigtermShutsDownCleanlyAndReleasesEverything) {
  TestCluster cluster;
  ShoaldProcess& d = cluster.Add();
  ASSERT_TRUE(d.Stop().ok());  // exit status 0 within the deadline
  EXPECT_FALSE(Exists(d.socket_path()));
  EXPECT_NE(d.LogText().find("stopped"), std::string::npos) << d.LogText();
  // The lock is free again: the same state dir starts.
  ASSERT_TRUE(d.Start().ok());
  EXPECT_EQ(d.Cli({"info"}).exit_code, 0);
}

TEST(DaemonLifecycleTest, RestartAfterCrashReplacesStaleSocket) {
  TestCluster cluster;
  ShoaldProcess& d = cluster.Add();
  d.Kill();
  EXPECT_TRUE(Exists(d.socket_path()));  // a crash leaves the socket file behind
  ASSERT_TRUE(d.Start().ok()) << d.LogText();
  EXPECT_EQ(d.Cli({"info"}).exit_code, 0);
}

TEST(DaemonLifecycleTest, CliWithoutDaemonExplainsTheProblem) {
  TempDir dir;
  CommandResult r =
      RunCommand({ShoalBinary(), "-H", "unix://" + dir.path() + "/none.sock", "info"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot reach shoald"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(DaemonLifecycleTest, BadFlagsFailWithTheFlagNamed) {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"--executor", "docker"}, "--executor must be containerd or sim"},
      {{"--log-level", "loud"}, "debug, info, warn or error"},
      {{"--log-format", "xml"}, "text or json"},
      {{"--metrics-addr", "nonsense"}, "--metrics-addr must be IP:PORT"},
      {{"--shim-group-size", "0"}, "--shim-group-size must be 1 (a shim per container) to 64"},
      {{"--insecure-registry", "http://x"}, "--insecure-registry must be HOST:PORT"},
      {{"--state-dir", "relative"}, "--state-dir must be an absolute path"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {ShoaldBinary(), "--state-dir", dir.path() + "/s", "--socket",
                                     dir.path() + "/s.sock"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    CommandResult r = RunCommand(argv);
    EXPECT_EQ(r.exit_code, 2) << c.expect;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << r.err;
  }
}

TEST(DaemonLifecycleTest, JsonLogFormatWritesOneObjectPerLine) {
  TestCluster cluster;
  ShoaldProcess& d = cluster.Add({.extra_args = {"--log-format", "json"}});
  ASSERT_TRUE(d.Stop().ok());
  std::istringstream lines(d.LogText());
  std::string line;
  int parsed = 0;
  while (std::getline(lines, line)) {
    nlohmann::json entry = nlohmann::json::parse(line);
    EXPECT_TRUE(entry.contains("time") && entry.contains("level") && entry.contains("msg"));
    ++parsed;
  }
  EXPECT_GE(parsed, 2);  // at least "started" and "stopped"
}

TEST(DaemonLifecycleTest, MetricsEndpointServesPrometheusText) {
  TestCluster cluster;
  const int port = PickFreeLoopbackPort();
  const std::string addr = "127.0.0.1:" + std::to_string(port);
  ShoaldProcess& d = cluster.Add({.extra_args = {"--metrics-addr", addr}});
  ASSERT_TRUE(d.running());
  CommandResult r =
      RunCommand({"/bin/bash", "-c",
                  "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) +
                      " && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"},
                 {.timeout = absl::Seconds(10)});
  EXPECT_NE(r.out.find("shoal_build_info{"), std::string::npos) << r.out << r.err;
}

}  // namespace
}  // namespace shoal::testing
