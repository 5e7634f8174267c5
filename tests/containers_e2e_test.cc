// Real containers end to end: shoald processes with --executor containerd on a private containerd
// (tests/harness/lab.h), pulling the busybox test image from a registry on 127.0.0.1, driven
// through the shoal CLI.
//
// One swarm for the suite: a manager (drained, so that it runs nothing) and a worker, each with its
// own containerd namespace. Every task runs on the worker; what happens inside a container is read
// with `ctr tasks exec` in the worker's namespace (a container's ID is its task's ID). Each test
// removes its services and waits until their containers are gone.
//
// Needs root, containerd, runc, docker-registry, skopeo, umoci and busybox-static: skipped
// without them locally, a failure in CI (SHOAL_REQUIRE).
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/control.h"
#include "tests/harness/daemon.h"
#include "tests/harness/lab.h"
#include "tests/harness/prerequisite.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

constexpr absl::Duration kConverge = absl::Seconds(90);
constexpr long kTmpfsMagic = 0x01021994;

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

ContainerLabOptions LabOptions() {
  ContainerLabOptions options;
  options.registry = true;
  return options;
}

class ContainersE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = new std::string(ContainerLab::Missing(LabOptions()));
    if (!skip_reason_->empty()) return;
    error_ = new std::string();
    const absl::Time start = absl::Now();
    auto lab = ContainerLab::Start(LabOptions());
    if (!lab.ok()) {
      *error_ = lab.status().ToString();
      return;
    }
    lab_ = lab->release();
    auto v1 = lab_->Push(lab_->image_tar(), "busybox:1");
    auto v2_tar = lab_->BuildImage("busybox-v2", {"--env", "IMAGE_VERSION=2"});
    if (!v1.ok() || !v2_tar.ok()) {
      *error_ = absl::StrCat(v1.status().ToString(), " ", v2_tar.status().ToString());
      return;
    }
    auto v2 = lab_->Push(*v2_tar, "busybox:2");
    if (!v2.ok()) {
      *error_ = v2.status().ToString();
      return;
    }
    image_v1_ = new std::string(lab_->registry() + "/busybox:1");
    image_v2_ = new std::string(lab_->registry() + "/busybox:2");

    cluster_ = new TestCluster();
    const std::string ns_prefix = absl::StrFormat("e2e-%d", getpid());
    manager_ = &cluster_->Add(NodeOptions("manager1", ns_prefix + "-m"));
    worker_ = &cluster_->Add(NodeOptions("worker1", ns_prefix + "-w"));
    worker_ns_ = new std::string(ns_prefix + "-w");
    manager_ns_ = new std::string(ns_prefix + "-m");
    grouped_ns_ = new std::string(ns_prefix + "-g");
    ShoaldOptions grouped = NodeOptions("worker2", *grouped_ns_);
    grouped.extra_args.insert(grouped.extra_args.end(), {"--shim-group-size", "4"});
    grouped_ = &cluster_->Add(grouped);
    if (!manager_->running() || !worker_->running() || !grouped_->running()) {
      *error_ = "a shoald did not start";
      return;
    }
    CommandResult init = manager_->Cli({"swarm", "init", "--listen-addr", manager_->swarm_addr(),
                                        "--advertise-addr", manager_->swarm_addr()});
    CommandResult token = manager_->Cli({"swarm", "join-token", "-q", "worker"});
    CommandResult join = worker_->Cli({"swarm", "join", "--token", Trim(token.out), "--listen-addr",
                                       worker_->swarm_addr(), "--advertise-addr",
                                       worker_->swarm_addr(), manager_->swarm_addr()});
    // worker2 (shims shared by up to 4 tasks) runs only what a test puts there.
    CommandResult join2 =
        grouped_->Cli({"swarm", "join", "--token", Trim(token.out), "--availability", "drain",
                       "--listen-addr", grouped_->swarm_addr(), "--advertise-addr",
                       grouped_->swarm_addr(), manager_->swarm_addr()});
    CommandResult drain = manager_->Cli({"node", "update", "--availability", "drain", "manager1"});
    if (init.exit_code != 0 || join.exit_code != 0 || join2.exit_code != 0 ||
        drain.exit_code != 0) {
      *error_ = absl::StrCat("swarm setup failed: ", init.err, join.err, join2.err, drain.err);
      return;
    }
    for (const char* name : {"worker1", "worker2"}) {
      if (!WaitFor([&] { return NodeReady(name); }, kConverge, absl::Milliseconds(100))) {
        *error_ = absl::StrCat(name, " did not become Ready");
        return;
      }
    }
    std::cout << "timing: suite setup (lab, 2 images pushed, 2-node swarm) " << absl::Now() - start
              << "\n";
  }

  static void TearDownTestSuite() {
    if (cluster_ != nullptr) {
      for (size_t i = 0; i < cluster_->size(); ++i) {
        ShoaldProcess& d = (*cluster_)[i];
        if (d.running()) EXPECT_TRUE(d.Stop().ok()) << d.LogText();
      }
    }
    if (lab_ != nullptr) {
      // shoald leaves its containers running when it stops (a restart adopts them).
      for (const std::string* ns : {worker_ns_, manager_ns_, grouped_ns_}) {
        if (ns != nullptr) EXPECT_TRUE(lab_->EmptyNamespace(*ns).ok()) << *ns;
      }
    }
    delete cluster_;
    cluster_ = nullptr;
    delete lab_;
    lab_ = nullptr;
  }

  static ShoaldOptions NodeOptions(const std::string& name, const std::string& ns) {
    ShoaldOptions o;
    o.node_name = name;
    o.executor = "containerd";
    o.extra_args = {"--containerd",        lab_->containerd_socket(), "--containerd-namespace", ns,
                    "--insecure-registry", lab_->registry()};
    return o;
  }

  static bool WorkerReady() { return NodeReady("worker1"); }

  static bool NodeReady(const std::string& name) {
    CommandResult r = manager_->Cli({"node", "ls", "--format", "json"});
    if (r.exit_code != 0) return false;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.value("Hostname", "") == name &&
          j.value("Status", "") == "Ready") {
        return true;
      }
    }
    return false;
  }

  void SetUp() override {
    SHOAL_REQUIRE(skip_reason_->empty(), *skip_reason_);
    ASSERT_TRUE(error_->empty()) << *error_ << (manager_ != nullptr ? manager_->LogText() : "")
                                 << (worker_ != nullptr ? worker_->LogText() : "");
  }

  void TearDown() override {
    if (!skip_reason_->empty() || !error_->empty()) return;
    for (const std::string& name : services_) manager_->Cli({"service", "rm", name});
    // Every container of the removed services goes (the worker removes them).
    std::string left;
    bool gone = WaitFor(
        [&] {
          left.clear();
          for (const std::string* ns : {worker_ns_, grouped_ns_}) {
            auto listed = lab_->Ctr({"-n", *ns, "containers", "ls", "-q"});
            absl::StrAppend(&left, listed.ok() ? Trim(*listed) : listed.status().ToString());
          }
          return left.empty();
        },
        kConverge, absl::Milliseconds(200));
    EXPECT_TRUE(gone) << "containers left: " << left << worker_->LogText();
  }

  // `shoal service create -d --name NAME args...`; the service is removed after the test.
  void Create(const std::string& name, std::vector<std::string> args) {
    // `sleep` as PID 1 ignores SIGTERM: a short grace keeps removals quick.
    std::vector<std::string> argv = {
        "service", "create", "-d", "--name", name, "--stop-grace-period", "1s"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = manager_->Cli(argv);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    services_.push_back(name);
  }

  std::vector<api::Task> Tasks(const std::string& name) {
    return ControlClient(*manager_).TasksOf(name).value_or(std::vector<api::Task>{});
  }

  // Waits until `name` has `n` serving tasks; returns them (fails the test on timeout).
  std::vector<api::Task> WaitServing(const std::string& name, size_t n) {
    std::vector<api::Task> serving;
    bool ok = WaitFor(
        [&] {
          serving.clear();
          for (const api::Task& t : Tasks(name)) {
            if (Serving(t)) serving.push_back(t);
          }
          return serving.size() == n;
        },
        kConverge, absl::Milliseconds(100));
    EXPECT_TRUE(ok) << name << " has not " << n << " running tasks:\n"
                    << Dump(Tasks(name)) << worker_->LogText();
    return serving;
  }

  // Task ID -> the host PID of its container's init, for the worker's running containers.
  std::map<std::string, std::string> HostPids(const std::string* ns = worker_ns_) {
    std::map<std::string, std::string> out;
    auto listed = lab_->Ctr({"-n", *ns, "tasks", "ls"});
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (!listed.ok()) return out;
    for (absl::string_view line : absl::StrSplit(*listed, '\n', absl::SkipEmpty())) {
      std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() >= 3 && f[2] == "RUNNING") out[f[0]] = f[1];
    }
    return out;
  }

  // Runs `sh -c script` inside the task's container; returns its stdout.
  std::string Exec(const api::Task& task, const std::string& script) {
    static int counter = 0;
    auto out = lab_->Ctr({"-n", *worker_ns_, "tasks", "exec", "--exec-id",
                          absl::StrCat("e2e-", ++counter), task.id(), "sh", "-c", script});
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : "";
  }

  static std::string* skip_reason_;
  static std::string* error_;
  static ContainerLab* lab_;
  static TestCluster* cluster_;
  static ShoaldProcess* manager_;
  static ShoaldProcess* worker_;
  static std::string* worker_ns_;
  static std::string* manager_ns_;
  static ShoaldProcess* grouped_;
  static std::string* grouped_ns_;
  static std::string* image_v1_;
  static std::string* image_v2_;
  std::vector<std::string> services_;
};

std::string* ContainersE2eTest::skip_reason_ = nullptr;
std::string* ContainersE2eTest::error_ = nullptr;
ContainerLab* ContainersE2eTest::lab_ = nullptr;
TestCluster* ContainersE2eTest::cluster_ = nullptr;
ShoaldProcess* ContainersE2eTest::manager_ = nullptr;
ShoaldProcess* ContainersE2eTest::worker_ = nullptr;
std::string* ContainersE2eTest::worker_ns_ = nullptr;
std::string* ContainersE2eTest::manager_ns_ = nullptr;
ShoaldProcess* ContainersE2eTest::grouped_ = nullptr;
std::string* ContainersE2eTest::grouped_ns_ = nullptr;
std::string* ContainersE2eTest::image_v1_ = nullptr;
std::string* ContainersE2eTest::image_v2_ = nullptr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool IsTmpfs(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == kTmpfsMagic;
}

// Files under `root` (not crossing into tmpfs mounts) whose bytes contain `needle`.
std::vector<std::string> FilesContaining(const std::string& root, const std::string& needle) {
  std::vector<std::string> found;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           root, std::filesystem::directory_options::skip_permission_denied, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string path = it->path().string();
    if (it->is_directory(ec) && IsTmpfs(path)) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && ReadFile(path).find(needle) != std::string::npos) {
      found.push_back(path);
    }
  }
  return found;
}

TEST_F(ContainersE2eTest, ReplicasRunAndAFailingContainerIsRestartedPerPolicy) {
  Create("steady", {"--replicas", "2", *image_v1_, "sleep", "3600"});
  std::vector<api::Task> steady = WaitServing("steady", 2);
  ASSERT_EQ(steady.size(), 2u);
  // Real containers: containerd runs one task per replica, under the task's ID.
  auto listed = lab_->Ctr({"-n", *worker_ns_, "tasks", "ls"});
  ASSERT_TRUE(listed.ok()) << listed.status();
  for (const api::Task& t : steady) {
    EXPECT_TRUE(absl::StrContains(*listed, t.id())) << *listed;
    EXPECT_EQ(Trim(Exec(t, "cat /proc/1/cmdline | tr '\\0' ' '")), "sleep 3600");
  }

  // Exits 3 after a moment; on-failure with one restart: two tasks per slot, both FAILED with the
  // exit code, and no third.
  Create("crashy",
         {"--replicas", "1", "--restart-condition", "on-failure", "--restart-delay", "100ms",
          "--restart-max-attempts", "1", *image_v1_, "sh", "-c", "sleep 0.3; exit 3"});
  std::vector<api::Task> tasks;
  ASSERT_TRUE(WaitFor(
      [&] {
        tasks = Tasks("crashy");
        int failed = 0;
        for (const api::Task& t : tasks) {
          if (t.status().state() == api::TASK_STATE_FAILED) ++failed;
        }
        return failed == 2;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(Tasks("crashy")) << worker_->LogText();
  for (const api::Task& t : tasks) {
    EXPECT_EQ(t.status().err(), "task: non-zero exit (3)") << Dump(tasks);
    EXPECT_EQ(t.status().container_status().exit_code(), 3) << Dump(tasks);
  }
  // The restart policy is spent: the service's one slot is not refilled.
  EXPECT_EQ(tasks.size(), 2u) << Dump(tasks);
}

std::string LogMarker() { return absl::StrFormat("log-marker-%d", getpid()); }

TEST_F(ContainersE2eTest, SecretEnvCommandUserAndLimitsAreAppliedInsideTheContainer) {
  const std::string secret = absl::StrFormat("e2e-secret-%d-only-in-memory", getpid());
  CommandOptions with_stdin;
  with_stdin.stdin_data = secret;
  CommandResult created = manager_->Cli({"secret", "create", "e2e_key", "-"}, with_stdin);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  Create("inside", {"--replicas", "1", "--secret",
                    "source=e2e_key,target=app.key,uid=1000,gid=1000,mode=0400", "--env",
                    "GREETING=hello-e2e", "--user", "1000:1000", "--workdir", "/tmp",
                    "--limit-memory", "64M", "--limit-pids", "50", *image_v1_, "sh", "-c",
                    "echo " + LogMarker() + "; exec sleep 3600"});
  std::vector<api::Task> tasks = WaitServing("inside", 1);
  ASSERT_EQ(tasks.size(), 1u);
  const api::Task task = tasks[0];

  EXPECT_EQ(Exec(task, "cat /run/secrets/app.key"), secret);
  EXPECT_EQ(Trim(Exec(task, "stat -c '%a %u %g' /run/secrets/app.key")), "400 1000 1000");
  EXPECT_EQ(Trim(Exec(task, "echo $GREETING")), "hello-e2e");
  EXPECT_EQ(Trim(Exec(task, "id -u; id -g; pwd")), "1000\n1000\n/tmp");
  EXPECT_EQ(Trim(Exec(task, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")),
            std::to_string(64 << 20));
  EXPECT_EQ(Trim(Exec(task, "cat /sys/fs/cgroup/pids/pids.max")), "50");

  // On the worker the secret lives on a tmpfs private to the task, and in no file on disk on
  // either node (the managers' store is encrypted at rest).
  const std::string secrets_dir =
      absl::StrCat(worker_->state_dir(), "/containerd/secrets/", task.id());
  EXPECT_TRUE(IsTmpfs(secrets_dir)) << secrets_dir;
  EXPECT_EQ(FilesContaining(worker_->state_dir(), secret), std::vector<std::string>{});
  // The scan does find what is on disk: the container's log line.
  EXPECT_TRUE(WaitFor([&] { return !FilesContaining(worker_->state_dir(), LogMarker()).empty(); },
                      kConverge, absl::Milliseconds(100)));
  EXPECT_EQ(FilesContaining(manager_->state_dir(), secret), std::vector<std::string>{});

  CommandResult rm = manager_->Cli({"service", "rm", "inside"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_TRUE(WaitFor([&] { return !std::filesystem::exists(secrets_dir); }, kConverge,
                      absl::Milliseconds(100)))
      << secrets_dir << " outlived its task";
  // A removed service's secret can go too.
  EXPECT_TRUE(WaitFor(
      [&] {
        return manager_->Cli({"secret", "rm", "e2e_key"}).exit_code == 0;
      },
      kConverge, absl::Milliseconds(200)));
}

TEST_F(ContainersE2eTest, LogsStreamFromTheContainersThroughTheManager) {
  Create("chatty", {"--replicas", "1", *image_v1_, "sh", "-c",
                    "for i in 1 2 3; do echo out-$i; done; echo err-1 >&2; "
                    "while true; do sleep 0.2; echo tick; done"});
  std::vector<api::Task> tasks = WaitServing("chatty", 1);
  ASSERT_EQ(tasks.size(), 1u);
  const std::string prefix = absl::StrCat("chatty.1.", tasks[0].id().substr(0, 12), "@worker1");
  CommandResult logs;
  ASSERT_TRUE(WaitFor(
      [&] {
        logs = manager_->Cli({"service", "logs", "chatty"});
        return logs.exit_code == 0 && absl::StrContains(logs.out, "out-3") &&
               absl::StrContains(logs.out + logs.err, "err-1");
      },
      kConverge, absl::Milliseconds(200)))
      << logs.out << logs.err << worker_->LogText();
  for (const char* line : {"out-1", "out-2", "out-3"}) {
    EXPECT_TRUE(absl::StrContains(logs.out, absl::StrCat(prefix, " | ", line)))
        << "want \"" << prefix << " | " << line << "\" in:\n"
        << logs.out;
  }
  CommandResult tail = manager_->Cli({"service", "logs", "--tail", "1", "chatty"});
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  EXPECT_FALSE(absl::StrContains(tail.out, "out-1")) << tail.out;

  // -f --tail 0: only new lines, as the container writes them.
  TempDir dir("shoal-e2e-logs");
  const std::string followed = dir.path() + "/follow.out";
  auto follower = ChildProcess::Start(
      {ShoalBinary(), "-H", manager_->host(), "service", "logs", "-f", "--tail", "0", "chatty"},
      followed);
  ASSERT_TRUE(follower.ok()) << follower.status();
  EXPECT_TRUE(WaitFor(
      [&] { return absl::StrContains(ReadFile(followed), absl::StrCat(prefix, " | tick")); },
      kConverge, absl::Milliseconds(100)))
      << ReadFile(followed);
  EXPECT_FALSE(absl::StrContains(ReadFile(followed), "out-1")) << ReadFile(followed);
  EXPECT_TRUE(follower->running());
  EXPECT_TRUE(follower->Stop(absl::Seconds(10)).ok());
}

TEST_F(ContainersE2eTest, AnUnhealthyContainerIsReplaced) {
  // The check fails from the start: /tmp/healthy never exists.
  Create("sick", {"--replicas", "1", "--restart-delay", "100ms", "--health-cmd",
                  "test -f /tmp/healthy", "--health-interval", "200ms", "--health-timeout", "1s",
                  "--health-retries", "2", *image_v1_, "sleep", "3600"});
  std::vector<api::Task> tasks;
  ASSERT_TRUE(WaitFor(
      [&] {
        tasks = Tasks("sick");
        int failed = 0;
        for (const api::Task& t : tasks) {
          if (t.status().state() == api::TASK_STATE_FAILED) ++failed;
        }
        return failed >= 1 && tasks.size() >= 2;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(Tasks("sick")) << worker_->LogText();
  for (const api::Task& t : tasks) {
    if (t.status().state() != api::TASK_STATE_FAILED) continue;
    EXPECT_TRUE(absl::StartsWith(t.status().err(), "task: unhealthy container")) << Dump(tasks);
  }
}

TEST_F(ContainersE2eTest, ARollingImageUpdateChangesTheRunningImage) {
  Create("rolling", {"--replicas", "2", "--update-parallelism", "1", "--update-monitor", "200ms",
                     *image_v1_, "sleep", "3600"});
  for (const api::Task& t : WaitServing("rolling", 2)) {
    EXPECT_EQ(Trim(Exec(t, "echo v${IMAGE_VERSION:-1}")), "v1");
  }
  CommandResult update =
      manager_->Cli({"service", "update", "-d", "--image", *image_v2_, "rolling"});
  ASSERT_EQ(update.exit_code, 0) << update.err;
  std::vector<api::Task> serving;
  ASSERT_TRUE(WaitFor(
      [&] {
        serving.clear();
        for (const api::Task& t : Tasks("rolling")) {
          if (Serving(t) && ImageOf(t) == *image_v2_) serving.push_back(t);
        }
        return serving.size() == 2;
      },
      kConverge, absl::Milliseconds(100)))
      << Dump(Tasks("rolling")) << worker_->LogText();
  for (const api::Task& t : serving) {
    EXPECT_EQ(Trim(Exec(t, "echo v${IMAGE_VERSION:-1}")), "v2");
  }
  // The old containers are stopped; as in Docker they stay (stopped) until their tasks leave the
  // task history, and only the two new ones run.
  std::map<std::string, std::string> running;
  EXPECT_TRUE(WaitFor(
      [&] {
        running = HostPids();
        return running.size() == 2 && running.count(serving[0].id()) == 1 &&
               running.count(serving[1].id()) == 1;
      },
      kConverge, absl::Milliseconds(200)))
      << absl::StrJoin(running, " ", absl::PairFormatter("="));
}

TEST_F(ContainersE2eTest, ARestartedAgentAdoptsItsRunningContainers) {
  Create("durable", {"--replicas", "2", *image_v1_, "sleep", "3600"});
  std::vector<api::Task> before = WaitServing("durable", 2);
  ASSERT_EQ(before.size(), 2u);
  const std::map<std::string, std::string> pids = HostPids();  // task ID -> init's host PID
  ASSERT_EQ(pids.size(), 2u);

  // A crash of the worker's shoald: containerd keeps the containers running.
  worker_->Kill();
  ASSERT_TRUE(worker_->Start().ok()) << worker_->LogText();
  ASSERT_TRUE(WaitFor([] { return WorkerReady(); }, kConverge, absl::Milliseconds(100)));

  // The same tasks keep running, in the same containers: nothing was restarted or replaced.
  std::vector<api::Task> after = WaitServing("durable", 2);
  std::set<std::string> before_ids, after_ids;
  for (const api::Task& t : before) before_ids.insert(t.id());
  for (const api::Task& t : after) after_ids.insert(t.id());
  EXPECT_EQ(after_ids, before_ids) << Dump(Tasks("durable"));
  EXPECT_EQ(Tasks("durable").size(), 2u) << Dump(Tasks("durable"));
  EXPECT_EQ(HostPids(), pids);
  // And the adopted tasks are still managed: scaling down stops one.
  CommandResult scale = manager_->Cli({"service", "scale", "-d", "durable=1"});
  ASSERT_EQ(scale.exit_code, 0) << scale.err;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto listed = lab_->Ctr({"-n", *worker_ns_, "tasks", "ls", "-q"});
        return listed.ok() && !Trim(*listed).empty() &&
               Trim(*listed).find('\n') == std::string::npos;
      },
      kConverge, absl::Milliseconds(200)));
}

// The parent of a container's init: the runc shim that serves it.
std::string ShimOf(const std::string& pid) {
  std::vector<std::string> stat = absl::StrSplit(ReadFile("/proc/" + pid + "/stat"), ' ');
  return stat.size() > 3 ? stat[3] : "";
}

TEST_F(ContainersE2eTest, ReplicasShareARuncShimOnANodeThatAsksForIt) {
  ASSERT_EQ(manager_->Cli({"node", "update", "--availability", "active", "worker2"}).exit_code, 0);
  Create("grouped", {"--replicas", "5", "--constraint", "node.hostname==worker2", *image_v1_,
                     "sleep", "3600"});
  std::vector<api::Task> tasks = WaitServing("grouped", 5);
  std::map<std::string, std::string> pids;
  ASSERT_TRUE(WaitFor([&] { return (pids = HostPids(grouped_ns_)).size() == 5; }, kConverge,
                      absl::Milliseconds(100)));
  // --shim-group-size 4: slots 1-4 share a shim, slot 5 has its own.
  std::map<std::string, std::set<uint64_t>> slots_by_shim;
  for (const api::Task& t : tasks) {
    ASSERT_EQ(pids.count(t.id()), 1u) << t.id();
    const std::string shim = ShimOf(pids[t.id()]);
    EXPECT_TRUE(absl::StartsWith(ReadFile("/proc/" + shim + "/comm"), "containerd-shim"))
        << ReadFile("/proc/" + shim + "/comm");
    slots_by_shim[shim].insert(t.slot());
  }
  std::set<std::set<uint64_t>> groups;
  for (const auto& [shim, slots] : slots_by_shim) groups.insert(slots);
  EXPECT_EQ(groups, (std::set<std::set<uint64_t>>{{1, 2, 3, 4}, {5}}));
  // A task of a shared shim stops alone.
  CommandResult scale = manager_->Cli({"service", "scale", "-d", "grouped=3"});
  ASSERT_EQ(scale.exit_code, 0) << scale.err;
  EXPECT_TRUE(WaitFor([&] { return HostPids(grouped_ns_).size() == 3; }, kConverge,
                      absl::Milliseconds(100)));
  for (const auto& [id, pid] : HostPids(grouped_ns_)) EXPECT_EQ(pids[id], pid) << id;
  ASSERT_EQ(manager_->Cli({"node", "update", "--availability", "drain", "worker2"}).exit_code, 0);
}

TEST_F(ContainersE2eTest, AMissingImageOrRegistryIsRejectedWithTheReason) {
  Create("no-such-image", {"--replicas", "1", lab_->registry() + "/does-not-exist:1"});
  const std::string nowhere = absl::StrCat("127.0.0.1:", PickFreeLoopbackPort());
  Create("no-registry", {"--replicas", "1", nowhere + "/busybox:1"});
  for (const char* name : {"no-such-image", "no-registry"}) {
    std::vector<api::Task> tasks;
    ASSERT_TRUE(WaitFor(
        [&] {
          tasks = Tasks(name);
          for (const api::Task& t : tasks) {
            if (t.status().state() == api::TASK_STATE_REJECTED) return true;
          }
          return false;
        },
        kConverge, absl::Milliseconds(100)))
        << name << "\n"
        << Dump(Tasks(name)) << worker_->LogText();
    for (const api::Task& t : tasks) {
      if (t.status().state() != api::TASK_STATE_REJECTED) continue;
      const std::string& err = t.status().err();
      EXPECT_FALSE(err.empty()) << Dump(tasks);
      if (std::string(name) == "no-such-image") {
        EXPECT_TRUE(absl::StrContains(err, "does-not-exist")) << err;
      } else {
        EXPECT_TRUE(absl::StrContains(err, nowhere)) << err;
      }
    }
  }
  // `service ps` tells the user too.
  CommandResult ps = manager_->Cli({"service", "ps", "--no-trunc", "no-registry"});
  EXPECT_TRUE(absl::StrContains(ps.out, "Rejected")) << ps.out << ps.err;
}

}  // namespace
}  // namespace shoal::testing
