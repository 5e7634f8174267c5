// ContainerdExecutor against a real, private containerd (tools/lab/containerd) started once for
// the suite, with the busybox test image (tools/lab/image) imported into each test's namespace by
// `ctr images import`. Every test works in a namespace of its own and leaves it empty. Skipped
// (with the reason) unless running as root with containerd, runc, umoci and busybox-static.
#include "agent/exec/containerd/containerd_executor.h"

#include <openssl/sha.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/exec/containerd/log_driver.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/prerequisite.h"
#include "tests/harness/process.h"

namespace shoal::agent::exec::containerd {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(20);
constexpr uint32_t kTmpfsMagic = 0x01021994;
constexpr char kImage[] = "docker.io/library/busybox:latest";

#define ASSERT_OK(expr)                          \
  do {                                           \
    const absl::Status& _s = (expr);             \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s; \
  } while (0)
#define EXPECT_OK(expr)                          \
  do {                                           \
    const absl::Status& _s = (expr);             \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s; \
  } while (0)

std::string Sha256Digest(absl::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  std::string out = "sha256:";
  for (unsigned char c : md) absl::StrAppendFormat(&out, "%02x", c);
  return out;
}

// The absolute path of `name` on PATH; empty when absent.
std::string Which(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  }
  return "";
}

bool OnPath(const std::string& name) { return !Which(name).empty(); }

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsMountPoint(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string f, point;
    for (int i = 0; i < 5 && fields >> f; ++i) point = f;
    if (point == dir) return true;
  }
  return false;
}

// A test-only ImageStore over images already imported into containerd: resolves the image record
// to its manifest and config, and computes the top layer's chain ID from the diff IDs.
class ImportedImageStore : public image::ImageStore {
 public:
  ImportedImageStore(ctrd::ContainerdClient* client, std::string snapshotter)
      : client_(client), snapshotter_(std::move(snapshotter)) {}

  absl::StatusOr<image::LocalImage> Ensure(const std::string& reference,
                                           const image::EnsureOptions& options) override {
    if (options.progress) options.progress(image::PullProgress{"sha256:test", 1, 2});
    return Lookup(reference);
  }

  absl::StatusOr<image::LocalImage> Lookup(const std::string& reference) override {
    std::string name = reference;
    if (name.find('/') == std::string::npos) name = "docker.io/library/" + name;
    if (name.find(':', name.rfind('/')) == std::string::npos) name += ":latest";
    absl::StatusOr<ctrd::images_pb::Image> record = client_->GetImage(name);
    if (!record.ok()) return record.status();
    image::LocalImage out;
    out.name = name;
    out.target_digest = record->target().digest();
    std::string manifest_digest = out.target_digest;
    absl::StatusOr<std::string> doc = client_->ReadContentAll(manifest_digest);
    if (!doc.ok()) return doc.status();
    nlohmann::json j = nlohmann::json::parse(*doc);
    if (j.contains("manifests")) {
      manifest_digest = j["manifests"][0]["digest"].get<std::string>();
      doc = client_->ReadContentAll(manifest_digest);
      if (!doc.ok()) return doc.status();
      j = nlohmann::json::parse(*doc);
    }
    out.manifest_digest = manifest_digest;
    out.config_digest = j["config"]["digest"].get<std::string>();
    absl::StatusOr<std::string> config = client_->ReadContentAll(out.config_digest);
    if (!config.ok()) return config.status();
    out.config_json = *config;
    std::string chain;
    const nlohmann::json config_doc = nlohmann::json::parse(*config);
    for (const auto& diff : config_doc.at("rootfs").at("diff_ids")) {
      chain = chain.empty() ? diff.get<std::string>()
                            : Sha256Digest(absl::StrCat(chain, " ", diff.get<std::string>()));
    }
    out.chain_id = chain;
    out.snapshotter = snapshotter_;
    return out;
  }

 private:
  ctrd::ContainerdClient* const client_;
  const std::string snapshotter_;
};

// Collects a controller's exit; waits for it with a deadline.
class ExitWaiter {
 public:
  explicit ExitWaiter(Controller& c) {
    c.NotifyExit([this](const ExitStatus& e) {
      absl::MutexLock lock(&mu_);
      exit_ = e;
      ++calls_;
    });
  }
  std::optional<ExitStatus> Wait(absl::Duration timeout = kTimeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return exit_.has_value(); };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return exit_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  absl::Mutex mu_;
  std::optional<ExitStatus> exit_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// Status reports of a controller.
class StatusRecorder {
 public:
  void Add(const ControllerStatus& s) {
    absl::MutexLock lock(&mu_);
    all_.push_back(s);
  }
  bool WaitHealth(api::TaskStatus::Health h, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& s : all_) {
        if (s.health == h) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
  }
  std::vector<ControllerStatus> all() {
    absl::MutexLock lock(&mu_);
    return all_;
  }

 private:
  absl::Mutex mu_;
  std::vector<ControllerStatus> all_ ABSL_GUARDED_BY(mu_);
};

class ContainerdExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) {
      skip_reason_ = "needs root (containerd and runc run as root)";
      return;
    }
    for (const char* bin : {"containerd", "ctr", "runc", "containerd-shim-runc-v2", "umoci"}) {
      if (!OnPath(bin)) {
        skip_reason_ =
            absl::StrCat(bin, " is not installed (Debian packages containerd, runc, umoci)");
        return;
      }
    }
    if (access("/bin/busybox", X_OK) != 0) {
      skip_reason_ = "/bin/busybox is missing (Debian package busybox-static)";
      return;
    }
    char tmpl[] = "/tmp/shoal-cdx-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      start_error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    snapshotter_ = Slurp("/proc/filesystems").find("\toverlay\n") != std::string::npos ? "overlayfs"
                                                                                       : "native";
    shoal::testing::CommandOptions options;
    options.timeout = absl::Seconds(60);
    auto image = shoal::testing::RunCommand(
        {shoal::testing::RunfilePath("tools/lab/image"), "build", dir_ + "/busybox.tar"}, options);
    if (image.exit_code != 0) {
      start_error_ = absl::StrCat("tools/lab/image build failed: ", image.out, image.err);
      return;
    }
    absl::Time start = absl::Now();
    auto result = shoal::testing::RunCommand(
        {shoal::testing::RunfilePath("tools/lab/containerd"), "start", dir_ + "/ctrd"}, options);
    if (result.exit_code != 0) {
      start_error_ = absl::StrCat("tools/lab/containerd start failed: ", result.out, result.err);
      return;
    }
    socket_ = std::string(absl::StripAsciiWhitespace(result.out));
    std::cout << "timing: containerd start " << absl::Now() - start << "\n";
  }

  static void TearDownTestSuite() {
    if (dir_.empty()) return;
    shoal::testing::CommandOptions options;
    options.timeout = absl::Seconds(60);
    auto result = shoal::testing::RunCommand(
        {shoal::testing::RunfilePath("tools/lab/containerd"), "stop", dir_ + "/ctrd"}, options);
    if (result.exit_code != 0) ADD_FAILURE() << "containerd stop: " << result.out << result.err;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }

  void SetUp() override {
    SHOAL_REQUIRE(skip_reason_.empty(), skip_reason_);
    ASSERT_TRUE(start_error_.empty()) << start_error_;
    static int counter = 0;
    ns_ = absl::StrFormat("cdx-%d-%d", getpid(), ++counter);
    state_dir_ = absl::StrCat(dir_, "/", ns_);
    auto client = ctrd::ContainerdClient::Connect(socket_, ns_, absl::Seconds(10));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
    shoal::testing::CommandOptions options;
    auto import = shoal::testing::RunCommand(
        {Which("ctr"), "-a", socket_, "-n", ns_, "images", "import", "--snapshotter", snapshotter_,
         "--base-name", "docker.io/library/busybox", dir_ + "/busybox.tar"},
        options);
    ASSERT_EQ(import.exit_code, 0) << import.out << import.err;
    images_ = std::make_unique<ImportedImageStore>(client_.get(), snapshotter_);
    secrets_["sec1"] = "s3cret-value";
    NewExecutor();
  }

  void TearDown() override {
    executor_.reset();
    if (client_ == nullptr) return;
    auto& c = *client_;
    if (auto tasks = c.ListTasks(); tasks.ok()) {
      for (const auto& t : *tasks) {
        c.KillTask(t.id(), SIGKILL, true).IgnoreError();
        c.WaitTask(t.id(), "", absl::Seconds(10)).IgnoreError();
        c.DeleteTask(t.id()).IgnoreError();
      }
    }
    if (auto containers = c.ListContainers(); containers.ok()) {
      for (const auto& ct : *containers) c.DeleteContainer(ct.id()).IgnoreError();
    }
    if (auto images = c.ListImages(); images.ok()) {
      for (const auto& image : *images) c.DeleteImage(image.name(), true).IgnoreError();
    }
    for (int round = 0; round < 10; ++round) {
      auto snapshots = c.ListSnapshots(snapshotter_);
      if (!snapshots.ok() || snapshots->empty()) break;
      for (const auto& info : *snapshots) c.RemoveSnapshot(snapshotter_, info.name()).IgnoreError();
    }
    if (auto leases = c.ListLeases(); leases.ok()) {
      for (const auto& lease : *leases) c.DeleteLease(lease.id(), true).IgnoreError();
    }
    // Content is collected once nothing references it.
    for (int i = 0; i < 50; ++i) {
      absl::Status s = c.DeleteNamespace(ns_);
      if (s.ok() || absl::IsNotFound(s)) break;
      if (i == 49) ADD_FAILURE() << "namespace " << ns_ << " left non-empty: " << s;
      absl::SleepFor(absl::Milliseconds(100));  // GC is asynchronous; bounded retries.
    }
    // The namespace's cgroup parent went with its last task.
    EXPECT_FALSE(std::filesystem::exists(absl::StrCat("/sys/fs/cgroup/memory/shoal/", ns_)));
    // Secrets mounts must be gone.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(state_dir_ + "/secrets", ec)) {
      EXPECT_FALSE(IsMountPoint(entry.path().string())) << entry.path();
      umount2(entry.path().c_str(), MNT_DETACH);
    }
  }

  void NewExecutor() {
    executor_.reset();
    ContainerdExecutorOptions options;
    options.client = std::shared_ptr<ctrd::ContainerdClient>(client_->WithNamespace(ns_));
    options.images = images_.get();
    options.state_dir = state_dir_;
    options.snapshotter = snapshotter_;
    options.runc_root = absl::StrCat(dir_, "/runc");
    options.log_driver_path = shoal::testing::RunfilePath("cmd/shoald/shoal-log-driver");
    options.secret_getter = [this](const std::string& id) -> absl::StatusOr<api::Secret> {
      auto it = secrets_.find(id);
      if (it == secrets_.end()) return absl::NotFoundError("no such secret");
      api::Secret s;
      s.set_id(id);
      s.mutable_spec()->set_data(it->second);
      return s;
    };
    options.config_getter = [](const std::string& id) -> absl::StatusOr<api::Config> {
      api::Config c;
      c.set_id(id);
      c.mutable_spec()->set_data("config-data\n");
      return c;
    };
    options.node = [] {
      api::Node node;
      node.set_id("node1");
      return node;
    };
    auto executor = ContainerdExecutor::Create(std::move(options));
    ASSERT_TRUE(executor.ok()) << executor.status();
    executor_ = std::move(*executor);
  }

  api::Task Task(const std::string& id, const std::vector<std::string>& command) {
    api::Task t;
    t.set_id(id);
    t.set_service_id("svc1");
    t.set_node_id("node1");
    t.set_slot(1);
    auto* spec = t.mutable_spec()->mutable_container_spec();
    spec->set_image("busybox");
    for (const auto& c : command) spec->add_command(c);
    return t;
  }

  std::unique_ptr<Controller> MustController(const api::Task& t) {
    auto c = executor_->NewController(t);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  // Lines of the task's log (follow until `want` lines came, or the deadline).
  std::vector<api::LogMessage> Logs(const std::string& id, size_t want,
                                    absl::Duration timeout = kTimeout) {
    std::vector<api::LogMessage> out;
    logs::LogReadOptions options;
    options.follow = true;
    Cancellation cancel;
    absl::Notification done;
    std::thread timer([&cancel, &done, timeout] {
      done.WaitForNotificationWithTimeout(timeout);  // Bounds the follow.
      cancel.Cancel();
    });
    absl::Status s = ReadTaskLogs(
        executor_->TaskDir(id), options,
        [&](const api::LogMessage& m) {
          out.push_back(m);
          return out.size() < want;
        },
        cancel, id);
    done.Notify();
    timer.join();
    EXPECT_OK(s);
    return out;
  }

  // Prepare + Start, timing both.
  void Run(Controller& c) {
    absl::Time t0 = absl::Now();
    ASSERT_OK(c.Prepare());
    absl::Time t1 = absl::Now();
    ASSERT_OK(c.Start());
    std::cout << "timing: Prepare " << t1 - t0 << ", Start " << absl::Now() - t1 << "\n";
  }

  static inline std::string skip_reason_;
  static inline std::string start_error_;
  static inline std::string dir_;
  static inline std::string socket_;
  static inline std::string snapshotter_;

  std::string ns_;
  std::string state_dir_;
  std::unique_ptr<ctrd::ContainerdClient> client_;
  std::unique_ptr<ImportedImageStore> images_;
  std::map<std::string, std::string> secrets_;
  std::unique_ptr<ContainerdExecutor> executor_;
};

TEST_F(ContainerdExecutorTest, EchoExitsZeroAndLogsBothStreams) {
  auto c = MustController(Task("echo1", {"sh", "-c", "echo hi; echo oops >&2"}));
  ASSERT_NE(c, nullptr);
  StatusRecorder statuses;
  c->SetStatusListener([&](const ControllerStatus& s) { statuses.Add(s); });
  Run(*c);
  ExitWaiter waiter(*c);
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_FALSE(exit->stopped);
  EXPECT_EQ(exit->error, "");
  auto lines = Logs("echo1", 2);
  ASSERT_EQ(lines.size(), 2u);
  std::map<std::string, api::LogStream> by_data;
  for (const auto& l : lines) by_data[l.data()] = l.stream();
  EXPECT_EQ(by_data["hi\n"], api::LOG_STREAM_STDOUT);
  EXPECT_EQ(by_data["oops\n"], api::LOG_STREAM_STDERR);
  EXPECT_EQ(lines[0].context().task_id(), "echo1");
  EXPECT_GT(lines[0].timestamp().seconds(), 1600000000);
  // The pull progress went to the listener.
  bool pulled = false;
  for (const auto& s : statuses.all()) pulled |= absl::StrContains(s.message, "pulling busybox");
  EXPECT_TRUE(pulled);

  auto state = c->Inspect();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->phase, RuntimeState::Phase::kExited);
  EXPECT_EQ(state->exit.exit_code, 0);
  // Start again: refused, never twice.
  EXPECT_EQ(c->Start().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_OK(c->Remove());
}

TEST_F(ContainerdExecutorTest, ExitCodeAndIdempotentPrepareStart) {
  auto c = MustController(Task("exit3", {"sh", "-c", "exit 3"}));
  ASSERT_NE(c, nullptr);
  ASSERT_OK(c->Prepare());
  ASSERT_OK(c->Prepare());  // Adopts the container.
  auto state = c->Inspect();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->phase, RuntimeState::Phase::kCreated);
  ExitWaiter waiter(*c);
  ASSERT_OK(c->Start());
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_FALSE(exit->stopped);
  // A late registration is answered at once.
  ExitWaiter late(*c);
  ASSERT_TRUE(late.Wait(absl::ZeroDuration()).has_value());
  EXPECT_EQ(waiter.calls(), 1);
  ASSERT_OK(c->Remove());
}

TEST_F(ContainerdExecutorTest, ShutdownKillsAfterGraceWhenTermIsIgnored) {
  auto c = MustController(Task("sleep1", {"sleep", "1000"}));
  ASSERT_NE(c, nullptr);
  Run(*c);
  auto state = c->Inspect();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->phase, RuntimeState::Phase::kRunning);
  EXPECT_GT(state->pid, 0);
  ExitWaiter waiter(*c);
  ASSERT_OK(c->Start());  // Idempotent while it runs.
  const absl::Time t0 = absl::Now();
  ASSERT_OK(c->Shutdown(absl::Milliseconds(500)));
  const absl::Duration took = absl::Now() - t0;
  EXPECT_GE(took, absl::Milliseconds(500));
  EXPECT_LT(took, absl::Seconds(10));
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_TRUE(exit->stopped);
  ASSERT_OK(c->Shutdown(absl::Seconds(1)));  // Not running: OK.
  ASSERT_OK(c->Terminate());
  ASSERT_OK(c->Remove());
}

TEST_F(ContainerdExecutorTest, ShutdownHonoursATermTrap) {
  auto c = MustController(
      Task("trap1",
           {"sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done"}));
  ASSERT_NE(c, nullptr);
  Run(*c);
  ASSERT_EQ(Logs("trap1", 1).size(), 1u);  // The trap is set.
  ExitWaiter waiter(*c);
  const absl::Time t0 = absl::Now();
  ASSERT_OK(c->Shutdown(absl::Seconds(10)));
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_TRUE(exit->stopped);
  ASSERT_OK(c->Remove());
}

TEST_F(ContainerdExecutorTest, EnvUserWorkdirAndLimitsInside) {
  api::Task t =
      Task("env1", {"sh", "-c",
                    "echo \"$FOO $(id -u):$(id -g) $(pwd)\"; "
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                    "cat /sys/fs/cgroup/pids/pids.max; hostname; grep db.internal /etc/hosts"});
  auto* spec = t.mutable_spec()->mutable_container_spec();
  spec->add_env("FOO=bar");
  spec->set_user("1000:1001");
  spec->set_dir("/tmp");
  spec->set_hostname("web-{{.Task.Slot}}");
  spec->add_hosts("192.0.2.7 db.internal db");
  t.mutable_spec()->mutable_resources()->mutable_limits()->set_memory_bytes(64 << 20);
  t.mutable_spec()->mutable_resources()->set_pids_limit(50);
  auto c = MustController(t);
  ASSERT_NE(c, nullptr);
  ExitWaiter waiter(*c);
  Run(*c);
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);
  auto lines = Logs("env1", 5);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].data(), "bar 1000:1001 /tmp\n");
  EXPECT_EQ(lines[1].data(), absl::StrCat(64 << 20, "\n"));
  EXPECT_EQ(lines[2].data(), "50\n");
  EXPECT_EQ(lines[3].data(), "web-1\n");
  EXPECT_EQ(lines[4].data(), "192.0.2.7 db.internal db\n");
  ASSERT_OK(c->Remove());
}

TEST_F(ContainerdExecutorTest, SecretsLiveOnATmpfsAndGoWithRemove) {
  api::Task t =
      Task("sec1",
           {"sh", "-c",
            "stat -c '%a %u %g' /run/secrets/db_pass; cat /run/secrets/db_pass; "
            "echo; cat /etc/app.conf; { echo x > /run/secrets/db_pass; } 2>/dev/null || echo ro"});
  auto* ref = t.mutable_spec()->mutable_container_spec()->add_secrets();
  ref->set_secret_id("sec1");
  ref->set_secret_name("db_pass");
  ref->mutable_file()->set_name("db_pass");
  ref->mutable_file()->set_uid("1000");
  ref->mutable_file()->set_gid("1000");
  ref->mutable_file()->set_mode(0400);
  auto* cref = t.mutable_spec()->mutable_container_spec()->add_configs();
  cref->set_config_id("cfg1");
  cref->set_config_name("app");
  cref->mutable_file()->set_name("/etc/app.conf");
  auto c = MustController(t);
  ASSERT_NE(c, nullptr);
  ExitWaiter waiter(*c);
  Run(*c);
  const std::string dir = executor_->SecretsDir("sec1");
  struct statfs fs;
  ASSERT_EQ(statfs(dir.c_str(), &fs), 0);
  EXPECT_EQ(static_cast<uint32_t>(fs.f_type), kTmpfsMagic);
  EXPECT_TRUE(IsMountPoint(dir));
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 0);
  auto lines = Logs("sec1", 4);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].data(), "400 1000 1000\n");
  EXPECT_EQ(lines[1].data(), "s3cret-value\n");
  EXPECT_EQ(lines[2].data(), "config-data\n");
  EXPECT_EQ(lines[3].data(), "ro\n");
  ASSERT_OK(c->Remove());
  EXPECT_FALSE(IsMountPoint(dir));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST_F(ContainerdExecutorTest, MissingSecretRejectsAtPrepare) {
  api::Task t = Task("nosec", {"true"});
  auto* ref = t.mutable_spec()->mutable_container_spec()->add_secrets();
  ref->set_secret_id("nope");
  ref->set_secret_name("nope");
  auto c = MustController(t);
  ASSERT_NE(c, nullptr);
  absl::Status s = c->Prepare();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("secret nope"));
  ASSERT_OK(c->Remove());
}

TEST_F(ContainerdExecutorTest, AdoptionAfterExecutorRestart) {
  auto c = MustController(Task("adopt1", {"sleep", "1000"}));
  ASSERT_NE(c, nullptr);
  Run(*c);
  c.reset();
  NewExecutor();  // A restarted agent.
  auto adoptable = executor_->ListAdoptable();
  ASSERT_TRUE(adoptable.ok());
  EXPECT_EQ(*adoptable, std::vector<std::string>{"adopt1"});
  api::Task bare;
  bare.set_id("adopt1");  // A leftover: only its ID.
  auto c2 = MustController(bare);
  ASSERT_NE(c2, nullptr);
  auto state = c2->Inspect();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->phase, RuntimeState::Phase::kRunning);
  ExitWaiter waiter(*c2);
  // Something else kills it: the new executor's subscription delivers the exit.
  ASSERT_OK(client_->KillTask("adopt1", SIGKILL, true));
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_FALSE(exit->stopped);
  ASSERT_OK(c2->Remove());
}

TEST_F(ContainerdExecutorTest, StoppedSurvivesRestart) {
  auto c = MustController(Task("stop2", {"sleep", "1000"}));
  ASSERT_NE(c, nullptr);
  Run(*c);
  ASSERT_OK(c->Terminate());
  c.reset();
  NewExecutor();
  auto c2 = MustController(Task("stop2", {"sleep", "1000"}));
  ASSERT_NE(c2, nullptr);
  auto state = c2->Inspect();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->phase, RuntimeState::Phase::kExited);
  EXPECT_EQ(state->exit.exit_code, 137);
  EXPECT_TRUE(state->exit.stopped);
  ExitWaiter waiter(*c2);
  ASSERT_TRUE(waiter.Wait(absl::ZeroDuration()).has_value());
  ASSERT_OK(c2->Remove());
}

TEST_F(ContainerdExecutorTest, RemoveCleansEverything) {
  auto c = MustController(Task("rm1", {"sleep", "1000"}));
  ASSERT_NE(c, nullptr);
  Run(*c);
  ExitWaiter waiter(*c);
  ASSERT_OK(c->Remove());  // Running: killed first.
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->stopped);
  EXPECT_TRUE(absl::IsNotFound(client_->GetContainer("rm1").status()));
  EXPECT_TRUE(absl::IsNotFound(client_->GetTask("rm1").status()));
  EXPECT_TRUE(absl::IsNotFound(client_->StatSnapshot(snapshotter_, "rm1").status()));
  EXPECT_FALSE(std::filesystem::exists(executor_->TaskDir("rm1")));
  auto state = c->Inspect();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->phase, RuntimeState::Phase::kAbsent);
  auto adoptable = executor_->ListAdoptable();
  ASSERT_TRUE(adoptable.ok());
  EXPECT_TRUE(adoptable->empty());
  ASSERT_OK(c->Remove());  // Nothing: OK.

  // Removed before it started: no exit callback.
  auto c2 = MustController(Task("rm2", {"true"}));
  ASSERT_NE(c2, nullptr);
  ASSERT_OK(c2->Prepare());
  ExitWaiter never(*c2);
  ASSERT_OK(c2->Remove());
  EXPECT_EQ(never.calls(), 0);
}

TEST_F(ContainerdExecutorTest, HealthCheckMarksHealthyThenKillsWhenUnhealthy) {
  api::Task t = Task("health1", {"sh", "-c", "touch /tmp/ok; sleep 1000"});
  auto* hc = t.mutable_spec()->mutable_container_spec()->mutable_healthcheck();
  hc->add_test("CMD-SHELL");
  hc->add_test("test -f /tmp/ok");
  hc->mutable_interval()->set_nanos(200000000);
  hc->mutable_timeout()->set_seconds(2);
  hc->set_retries(2);
  auto c = MustController(t);
  ASSERT_NE(c, nullptr);
  StatusRecorder statuses;
  c->SetStatusListener([&](const ControllerStatus& s) { statuses.Add(s); });
  ExitWaiter waiter(*c);
  Run(*c);
  ASSERT_TRUE(statuses.WaitHealth(api::TaskStatus::HEALTHY, kTimeout));
  // Break it from outside (an exec, as an operator would).
  {
    auto rm = shoal::testing::RunCommand({Which("ctr"), "-a", socket_, "-n", ns_, "tasks", "exec",
                                          "--exec-id", "break", "health1", "rm", "/tmp/ok"});
    ASSERT_EQ(rm.exit_code, 0) << rm.out << rm.err;
  }
  ASSERT_TRUE(statuses.WaitHealth(api::TaskStatus::UNHEALTHY, kTimeout));
  auto exit = waiter.Wait();
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code, 137);
  EXPECT_FALSE(exit->stopped);
  EXPECT_EQ(exit->error, "task: unhealthy container (exit code 1)");
  ASSERT_OK(c->Remove());
}

// Runs last: restarts the suite's containerd. An exit that happens while containerd is down is
// found by the reconciliation after the executor resubscribes; a later one arrives as an event.
TEST_F(ContainerdExecutorTest, ExitsSurviveAContainerdRestart) {
  auto c1 = MustController(Task("down1", {"sleep", "1000"}));
  auto c2 = MustController(Task("down2", {"sleep", "1000"}));
  ASSERT_NE(c1, nullptr);
  ASSERT_NE(c2, nullptr);
  Run(*c1);
  Run(*c2);
  auto state = c1->Inspect();
  ASSERT_TRUE(state.ok());
  ASSERT_GT(state->pid, 0);
  ExitWaiter w1(*c1);
  ExitWaiter w2(*c2);
  shoal::testing::CommandOptions options;
  options.timeout = absl::Seconds(60);
  const std::string script = shoal::testing::RunfilePath("tools/lab/containerd");
  auto stop = shoal::testing::RunCommand({script, "stop", dir_ + "/ctrd"}, options);
  ASSERT_EQ(stop.exit_code, 0) << stop.out << stop.err;
  ASSERT_EQ(kill(state->pid, SIGKILL), 0);  // The shim's child; containerd cannot tell anyone.
  auto start = shoal::testing::RunCommand({script, "start", dir_ + "/ctrd"}, options);
  ASSERT_EQ(start.exit_code, 0) << start.out << start.err;
  auto exit1 = w1.Wait();
  ASSERT_TRUE(exit1.has_value());
  EXPECT_EQ(exit1->exit_code, 137);
  EXPECT_FALSE(exit1->stopped);
  // The new subscription is live once the executor reconciled; a stop now is an ordinary event.
  ASSERT_OK(c2->Terminate());
  auto exit2 = w2.Wait();
  ASSERT_TRUE(exit2.has_value());
  EXPECT_TRUE(exit2->stopped);
  ASSERT_OK(c1->Remove());
  ASSERT_OK(c2->Remove());
}

// --- The log driver's files, without containerd ----------------------------------------------

TEST(LogDriverTest, RotatesAndReadsAcrossFilesWithTailAndStreams) {
  shoal::testing::TempDir dir("shoal-logs");
  LogDriverConfig config;
  config.dir = dir.path();
  config.max_bytes = 200;
  config.max_files = 3;
  JsonLogWriter writer(config);
  ASSERT_OK(writer.Open());
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(writer.Write(i % 2 == 0 ? api::LOG_STREAM_STDOUT : api::LOG_STREAM_STDERR,
                           absl::StrCat("line ", i, "\n"), t0 + absl::Seconds(i)));
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/container.log.2"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/container.log.3"));
  std::vector<std::string> got;
  Cancellation cancel;
  const logs::LogSink collect = [&](const api::LogMessage& m) {
    got.push_back(m.data());
    return true;
  };
  logs::LogReadOptions all;
  ASSERT_OK(ReadTaskLogs(dir.path(), all, collect, cancel));
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), "line 9\n");
  const size_t kept = got.size();
  EXPECT_LT(kept, 10u);  // The oldest were rotated away.
  // tail 2 of stdout only.
  got.clear();
  logs::LogReadOptions tail;
  tail.tail = 2;
  tail.want_stderr = false;
  ASSERT_OK(ReadTaskLogs(dir.path(), tail, collect, cancel));
  EXPECT_EQ(got, (std::vector<std::string>{"line 6\n", "line 8\n"}));
  // since.
  got.clear();
  logs::LogReadOptions since;
  since.since = t0 + absl::Seconds(8);
  ASSERT_OK(ReadTaskLogs(dir.path(), since, collect, cancel));
  EXPECT_EQ(got, (std::vector<std::string>{"line 8\n", "line 9\n"}));
}

TEST(LogDriverTest, FollowSeesAppendsAcrossARotation) {
  shoal::testing::TempDir dir("shoal-logs");
  const std::string task_dir = dir.path() + "/containers/t1";
  LogDriverConfig config;
  config.dir = task_dir;
  config.max_bytes = 200;  // About two records per file.
  JsonLogWriter writer(config);
  ASSERT_OK(writer.Open());
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  ASSERT_OK(writer.Write(api::LOG_STREAM_STDOUT, "line 0\n", t0));

  absl::Mutex mu;
  std::vector<api::LogMessage> got;
  Cancellation cancel;
  ContainerdLogSource source(dir.path());
  absl::Status result;
  std::thread reader([&] {
    logs::LogReadOptions options;
    options.follow = true;
    result = source.ReadLogs(
        "t1", options,
        [&](const api::LogMessage& m) {
          absl::MutexLock lock(&mu);
          got.push_back(m);
          return true;
        },
        cancel);
  });
  auto have = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return got.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), kTimeout);
  };
  ASSERT_TRUE(have(1));
  for (int i = 1; i <= 3; ++i) {  // One rotation: line 2 starts a new file.
    ASSERT_OK(writer.Write(api::LOG_STREAM_STDERR, absl::StrCat("line ", i, "\n"),
                           t0 + absl::Seconds(i)));
  }
  EXPECT_TRUE(have(4));
  cancel.Cancel();
  reader.join();
  EXPECT_OK(result);
  absl::MutexLock lock(&mu);
  ASSERT_EQ(got.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(got[i].data(), absl::StrCat("line ", i, "\n"));
    EXPECT_EQ(got[i].context().task_id(), "t1");
  }
  EXPECT_EQ(got[3].stream(), api::LOG_STREAM_STDERR);
  EXPECT_EQ(got[3].timestamp().seconds(), 1700000003);
}

TEST(LogDriverTest, UriAndInvocation) {
  LogDriverConfig config;
  config.dir = "/var/lib/shoal/containers/a b";
  EXPECT_EQ(LogDriverUri("/usr/bin/shoald", config),
            "binary:///usr/bin/shoald?log-driver=/var/lib/shoal/containers/a%20b&max-size=10485760"
            "&max-files=3");
  const char* args[] = {"shoald", "max-size", "5", "log-driver", "/x"};
  EXPECT_TRUE(IsLogDriverInvocation(5, const_cast<char**>(args)));
  const char* other[] = {"shoald", "--state-dir", "/x"};
  EXPECT_FALSE(IsLogDriverInvocation(3, const_cast<char**>(other)));
}

}  // namespace
}  // namespace shoal::agent::exec::containerd
