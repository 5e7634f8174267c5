// ContainerdClient against a real, private containerd (tools/lab/containerd) started once for the
// suite in a directory under /tmp. Every test works in a namespace of its own and must leave it
// empty: TearDown deletes the namespace, which containerd refuses while anything is left in it.
// Skipped (with the reason) unless running as root with containerd, runc and busybox-static.
#include "agent/containerd/client.h"

#include <openssl/sha.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/prerequisite.h"
#include "tests/harness/process.h"

namespace shoal::agent::containerd {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kLayerMediaType[] = "application/vnd.oci.image.layer.v1.tar";
constexpr absl::Duration kExitTimeout = absl::Seconds(30);

std::string Sha256Digest(absl::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  std::string out = "sha256:";
  for (unsigned char c : md) absl::StrAppendFormat(&out, "%02x", c);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// A minimal ustar archive writer (directories and regular files), enough for a rootfs layer.
class TarWriter {
 public:
  void AddDir(const std::string& name) { AddEntry(name + "/", '5', 0755, ""); }
  void AddFile(const std::string& name, const std::string& data, int mode) {
    AddEntry(name, '0', mode, data);
  }
  std::string Finish() {
    out_.append(1024, '\0');
    return std::move(out_);
  }

 private:
  void AddEntry(const std::string& name, char type, int mode, const std::string& data) {
    char h[512] = {};
    std::snprintf(h, 100, "%s", name.c_str());
    std::snprintf(h + 100, 8, "%07o", mode);
    std::snprintf(h + 108, 8, "%07o", 0);
    std::snprintf(h + 116, 8, "%07o", 0);
    std::snprintf(h + 124, 12, "%011lo", static_cast<unsigned long>(data.size()));
    std::snprintf(h + 136, 12, "%011lo", 1700000000ul);
    std::memset(h + 148, ' ', 8);
    h[156] = type;
    std::memcpy(h + 257, "ustar", 6);
    h[263] = '0';  // version "00", not NUL-terminated
    h[264] = '0';
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    out_.append(h, sizeof(h));
    out_.append(data);
    out_.append((512 - data.size() % 512) % 512, '\0');
  }
  std::string out_;
};

// Mount points at or under `dir` (from /proc/self/mountinfo, whose paths escape ' ' as \040).
std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string f, point;
    for (int i = 0; i < 5 && fields >> f; ++i) point = f;
    std::string decoded;
    for (size_t i = 0; i < point.size(); ++i) {
      if (point[i] == '\\' && i + 3 < point.size()) {
        decoded += static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        decoded += point[i];
      }
    }
    if (decoded == dir || absl::StartsWith(decoded, dir + "/")) out.push_back(decoded);
  }
  return out;
}

// tools/lab/containerd, a data dependency (SHOAL_LAB_CONTAINERD overrides it).
std::string LabScript() {
  if (const char* env = std::getenv("SHOAL_LAB_CONTAINERD")) return env;
  return shoal::testing::RunfilePath("tools/lab/containerd");
}

std::string RandomSuffix() {
  static int counter = 0;
  return absl::StrFormat("%d-%d-%d", getpid(), ++counter, absl::ToUnixNanos(absl::Now()) % 1000000);
}

// Collects task exit events; waits for one with a deadline.
class ExitRecorder {
 public:
  void Add(const TaskExitEvent& event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  std::optional<TaskExitEvent> WaitFor(const std::string& container_id, const std::string& exec_id,
                                       absl::Duration timeout) {
    std::optional<TaskExitEvent> found;
    auto match = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const auto& e : events_) {
        if (e.container_id == container_id && e.exec_id == exec_id) {
          found = e;
          return true;
        }
      }
      return false;
    };
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&match), timeout);
    return found;
  }

 private:
  absl::Mutex mu_;
  std::vector<TaskExitEvent> events_ ABSL_GUARDED_BY(mu_);
};

// A minimal OCI runtime spec running `args` in the bundle's "rootfs".
std::string MinimalSpec(const std::vector<std::string>& args) {
  nlohmann::json spec = {
      {"ociVersion", "1.0.2-dev"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", args},
        {"env", {"PATH=/bin"}},
        {"cwd", "/"},
        {"noNewPrivileges", true}}},
      {"root", {{"path", "rootfs"}, {"readonly", false}}},
      {"hostname", "shoal-test"},
      {"mounts",
       {{{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
        {{"destination", "/dev"},
         {"type", "tmpfs"},
         {"source", "tmpfs"},
         {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}}}},
      {"linux",
       {{"namespaces",
         {{{"type", "pid"}},
          {{"type", "ipc"}},
          {{"type", "uts"}},
          {{"type", "mount"}},
          {{"type", "network"}}}}}},
  };
  return spec.dump();
}

std::string ProcessSpec(const std::vector<std::string>& args) {
  nlohmann::json process = {{"terminal", false},
                            {"user", {{"uid", 0}, {"gid", 0}}},
                            {"args", args},
                            {"env", {"PATH=/bin"}},
                            {"cwd", "/"}};
  return process.dump();
}

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

// ------------------------------------------------------------------ without containerd

TEST(ContainerdConnectTest, MissingSocketNamesThePathAndTheFix) {
  auto client =
      ContainerdClient::Connect("/nonexistent/containerd.sock", "shoal", absl::Seconds(1));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client.status().message(),
            "containerd is not reachable at /nonexistent/containerd.sock: no such socket; start it "
            "or pass --containerd PATH");
}

TEST(ContainerdConnectTest, NothingListeningAndNotASocket) {
  shoal::testing::TempDir dir("shoal-ctrd-conn");
  // A bound socket nobody listens on: connect() is refused.
  std::string path = dir.path() + "/dead.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  auto client = ContainerdClient::Connect(path, "shoal", absl::Seconds(1));
  close(fd);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(client.status().message(), HasSubstr("nothing listens on the socket"));
  EXPECT_THAT(client.status().message(), HasSubstr("start it or pass --containerd PATH"));

  std::string file = dir.path() + "/file";
  std::ofstream(file) << "x";
  client = ContainerdClient::Connect(file, "shoal", absl::Seconds(1));
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(client.status().message(), HasSubstr("not a unix socket"));
}

TEST(ContainerdConnectTest, RejectsBadNamespaceAndLongPath) {
  auto client = ContainerdClient::Connect(kDefaultSocket, "bad namespace", absl::Seconds(1));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("invalid containerd namespace"));

  client = ContainerdClient::Connect("/" + std::string(120, 'x'), "shoal", absl::Seconds(1));
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("longer than 107 bytes"));
}

TEST(ContainerdHelpersTest, NamespacesAndAny) {
  EXPECT_TRUE(IsValidNamespace("shoal"));
  EXPECT_TRUE(IsValidNamespace("a.b-c_d9"));
  EXPECT_FALSE(IsValidNamespace(""));
  EXPECT_FALSE(IsValidNamespace("-a"));
  EXPECT_FALSE(IsValidNamespace("a-"));
  EXPECT_FALSE(IsValidNamespace("a--b"));
  EXPECT_FALSE(IsValidNamespace("a/b"));
  EXPECT_FALSE(IsValidNamespace(std::string(77, 'a')));

  event_types_pb::TaskExit exit;
  exit.set_container_id("c1");
  exit.set_exit_status(3);
  google::protobuf::Any any;
  any.set_type_url("containerd.events.TaskExit");  // as containerd writes it: no prefix
  any.set_value(exit.SerializeAsString());
  event_types_pb::TaskExit decoded;
  ASSERT_TRUE(UnpackAny(any, &decoded));
  EXPECT_EQ(decoded.container_id(), "c1");
  EXPECT_EQ(decoded.exit_status(), 3u);
  any.set_type_url("types.containerd.io/containerd.events.TaskExit");
  EXPECT_TRUE(UnpackAny(any, &decoded));
  any.set_type_url("containerd.events.TaskOOM");
  EXPECT_FALSE(UnpackAny(any, &decoded));
}

// ------------------------------------------------------------------ with a private containerd

class ContainerdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) {
      skip_reason_ = "needs root (containerd and runc run as root)";
      return;
    }
    for (const char* bin : {"containerd", "ctr", "runc", "containerd-shim-runc-v2"}) {
      if (!OnPath(bin)) {
        skip_reason_ = absl::StrCat(bin, " is not installed (Debian packages containerd, runc)");
        return;
      }
    }
    if (access("/bin/busybox", X_OK) != 0) {
      skip_reason_ = "/bin/busybox is missing (Debian package busybox-static)";
      return;
    }
    script_ = LabScript();
    if (script_.empty() || access(script_.c_str(), X_OK) != 0) {
      start_error_ = absl::StrCat("tools/lab/containerd not found (looked at \"", script_, "\")");
      return;
    }
    snapshotter_ = ReadFile("/proc/filesystems").find("\toverlay\n") != std::string::npos
                       ? "overlayfs"
                       : "native";
    char tmpl[] = "/tmp/shoal-ctrd-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      start_error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    absl::Time start = absl::Now();
    shoal::testing::CommandOptions options;
    options.timeout = absl::Seconds(30);
    auto result = shoal::testing::RunCommand({script_, "start", dir_}, options);
    if (result.exit_code != 0) {
      start_error_ = absl::StrCat("tools/lab/containerd start failed (exit ", result.exit_code,
                                  "): ", result.out, result.err);
      return;
    }
    socket_ = std::string(absl::StripAsciiWhitespace(result.out));
    std::cout << "timing: tools/lab/containerd start " << absl::Now() - start << "; snapshotter "
              << snapshotter_ << "\n";
  }

  static void TearDownTestSuite() {
    if (dir_.empty()) return;
    absl::Time start = absl::Now();
    shoal::testing::CommandOptions options;
    options.timeout = absl::Seconds(60);
    auto result = shoal::testing::RunCommand({script_, "stop", dir_}, options);
    std::cout << "timing: tools/lab/containerd stop " << absl::Now() - start << "\n";
    if (result.exit_code != 0) {
      ADD_FAILURE() << "tools/lab/containerd stop failed: " << result.out << result.err;
    }
    std::vector<std::string> left = MountsUnder(dir_);
    if (!left.empty()) {
      ADD_FAILURE() << "mounts left under " << dir_ << " (not removing it): " << left.front();
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }

  void SetUp() override {
    SHOAL_REQUIRE(skip_reason_.empty(), skip_reason_);
    ASSERT_TRUE(start_error_.empty()) << start_error_;
    ns_ = absl::StrCat("shoal-test-", RandomSuffix());
    absl::Time start = absl::Now();
    auto client = ContainerdClient::Connect(socket_, ns_, absl::Seconds(10));
    ASSERT_TRUE(client.ok()) << client.status();
    std::cout << "timing: Connect " << absl::Now() - start << "\n";
    client_ = std::move(*client);
  }

  void TearDown() override {
    if (client_ == nullptr) return;
    Sweep(*client_);
    absl::Status s = client_->DeleteNamespace(ns_);
    if (!absl::IsNotFound(s)) EXPECT_OK(s);
  }

  // Deletes whatever a failed test left in the client's namespace (nothing when it passed).
  static void Sweep(ContainerdClient& c) {
    if (auto tasks = c.ListTasks(); tasks.ok()) {
      for (const auto& t : *tasks) {
        c.KillTask(t.id(), SIGKILL, /*all=*/true).IgnoreError();
        c.WaitTask(t.id(), "", absl::Seconds(10)).IgnoreError();
        c.DeleteTask(t.id()).IgnoreError();
      }
    }
    if (auto containers = c.ListContainers(); containers.ok()) {
      for (const auto& ct : *containers) c.DeleteContainer(ct.id()).IgnoreError();
    }
    if (auto images = c.ListImages(); images.ok()) {
      for (const auto& image : *images) c.DeleteImage(image.name()).IgnoreError();
    }
    for (int round = 0; round < 10; ++round) {  // children before parents
      auto snapshots = c.ListSnapshots(snapshotter_);
      if (!snapshots.ok() || snapshots->empty()) break;
      for (const auto& info : *snapshots) c.RemoveSnapshot(snapshotter_, info.name()).IgnoreError();
    }
    if (auto leases = c.ListLeases(); leases.ok()) {
      for (const auto& lease : *leases) c.DeleteLease(lease.id(), /*sync=*/true).IgnoreError();
    }
  }

  // The busybox layer's tar: /bin/busybox and the directories runc mounts on.
  static const std::string& BusyboxLayer() {
    static const std::string* layer = [] {
      TarWriter tar;
      for (const char* d : {"bin", "dev", "proc", "sys", "tmp"}) tar.AddDir(d);
      tar.AddFile("bin/busybox", ReadFile("/bin/busybox"), 0755);
      return new std::string(tar.Finish());
    }();
    return *layer;
  }

  // Imports the busybox layer under `lease` (content → Prepare → Diff.Apply → Commit) and
  // returns the committed snapshot's name.
  std::string ImportBusybox(const std::string& lease) {
    auto leased = client_->WithLease(lease);
    const std::string& layer = BusyboxLayer();
    const std::string digest = Sha256Digest(layer);
    absl::Status s = leased->WriteBlob("layer-" + digest, layer, digest);
    EXPECT_OK(s);
    types_pb::Descriptor desc;
    desc.set_media_type(kLayerMediaType);
    desc.set_digest(digest);
    desc.set_size(static_cast<int64_t>(layer.size()));
    const std::string key = "extract-" + RandomSuffix();
    auto mounts = leased->PrepareSnapshot(snapshotter_, key, "");
    EXPECT_TRUE(mounts.ok()) << mounts.status();
    if (!mounts.ok()) return "";
    auto applied = leased->ApplyDiff(desc, *mounts);
    EXPECT_TRUE(applied.ok()) << applied.status();
    if (!applied.ok()) return "";
    // An uncompressed layer's diff ID is its digest.
    EXPECT_EQ(applied->digest(), digest);
    std::string name = "busybox-" + digest;
    EXPECT_OK(leased->CommitSnapshot(snapshotter_, name, key));
    return name;
  }

  // Snapshot + container + task for `args`, started. Returns the task's PID (0 on failure). The
  // snapshot is prepared and the container created under `lease`: an active snapshot that
  // nothing references yet is garbage to containerd's collector until the container record
  // refers to it.
  uint32_t StartContainer(const std::string& id, const std::string& parent,
                          const std::vector<std::string>& args, const std::string& stdout_uri,
                          const std::string& lease) {
    auto leased = client_->WithLease(lease);
    auto mounts = leased->PrepareSnapshot(snapshotter_, id, parent);
    EXPECT_TRUE(mounts.ok()) << mounts.status();
    if (!mounts.ok()) return 0;
    containers_pb::Container c;
    c.set_id(id);
    (*c.mutable_labels())["com.shoal.test"] = "yes";
    c.mutable_runtime()->set_name(kRuncRuntime);
    *c.mutable_spec() = OciSpecAny(MinimalSpec(args));
    c.set_snapshotter(snapshotter_);
    c.set_snapshot_key(id);
    auto created = leased->CreateContainer(c);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return 0;
    TaskCreateOptions options;
    options.container_id = id;
    options.rootfs = *mounts;
    options.stdout_path = stdout_uri;
    options.stderr_path = stdout_uri;
    runc_pb::Options runc;
    runc.set_root(dir_ + "/runc");  // runc's state stays in the test's directory
    options.options = RuncOptionsAny(runc);
    auto pid = client_->CreateTask(options);
    EXPECT_TRUE(pid.ok()) << pid.status();
    if (!pid.ok()) return 0;
    auto started = client_->StartTask(id);
    EXPECT_TRUE(started.ok()) << started.status();
    if (!started.ok()) return 0;
    EXPECT_EQ(*started, *pid);
    return *started;
  }

  // Tasks.Delete → Containers.Delete → Snapshots.Remove, each expected to succeed.
  void RemoveContainer(const std::string& id, uint32_t expected_exit) {
    auto deleted = client_->DeleteTask(id);
    ASSERT_TRUE(deleted.ok()) << deleted.status();
    EXPECT_EQ(deleted->exit_status, expected_exit);
    EXPECT_OK(client_->DeleteContainer(id));
    EXPECT_OK(client_->RemoveSnapshot(snapshotter_, id));
    // Idempotency: the second deletes say NOT_FOUND.
    EXPECT_TRUE(absl::IsNotFound(client_->DeleteTask(id).status()));
    EXPECT_TRUE(absl::IsNotFound(client_->DeleteContainer(id)));
  }

  // A container ID unique on this host (runc names the container's cgroup after its ID, whatever
  // the containerd namespace, when the spec sets no cgroupsPath).
  std::string UniqueId(const std::string& name) const {
    return absl::StrCat(name, "-", absl::StripPrefix(ns_, "shoal-test-"));
  }

  // Waits (bounded) until `path` contains `text`.
  static bool WaitForFileContent(const std::string& path, const std::string& text,
                                 absl::Duration timeout) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (ReadFile(path).find(text) != std::string::npos) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }

  static std::string skip_reason_;
  static std::string start_error_;
  static std::string script_;
  static std::string dir_;
  static std::string socket_;
  static std::string snapshotter_;

  std::string ns_;
  std::unique_ptr<ContainerdClient> client_;
};

std::string ContainerdClientTest::skip_reason_;
std::string ContainerdClientTest::start_error_;
std::string ContainerdClientTest::script_;
std::string ContainerdClientTest::dir_;
std::string ContainerdClientTest::socket_;
std::string ContainerdClientTest::snapshotter_;

TEST_F(ContainerdClientTest, Version) {
  auto version = client_->Version();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_TRUE(absl::StartsWith(version->version, "1.")) << version->version;
  std::cout << "containerd " << version->version << " (" << version->revision << ")\n";
  EXPECT_EQ(client_->ns(), ns_);
  EXPECT_EQ(client_->socket_path(), socket_);
}

TEST_F(ContainerdClientTest, NamespacesIsolateContainers) {
  auto other = client_->WithNamespace(ns_ + "-b");
  containers_pb::Container c;
  c.set_id("web.1");
  (*c.mutable_labels())["com.shoal.task"] = "t1";
  c.mutable_runtime()->set_name(kRuncRuntime);
  *c.mutable_spec() = OciSpecAny(MinimalSpec({"/bin/busybox", "true"}));
  auto created = client_->CreateContainer(c);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->labels().at("com.shoal.task"), "t1");

  auto again = client_->CreateContainer(c);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();

  auto listed = client_->ListContainers({"labels.\"com.shoal.task\"==t1"});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id(), "web.1");
  EXPECT_EQ((*listed)[0].spec().type_url(), kOciSpecTypeUrl);

  auto elsewhere = other->ListContainers();
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status();
  EXPECT_THAT(*elsewhere, IsEmpty());
  EXPECT_EQ(other->GetContainer("web.1").status().code(), absl::StatusCode::kNotFound);
  // The same ID is free in the other namespace.
  ASSERT_TRUE(other->CreateContainer(c).ok());
  EXPECT_OK(other->DeleteContainer("web.1"));

  c.mutable_labels()->clear();
  (*c.mutable_labels())["com.shoal.task"] = "t2";
  auto updated = client_->UpdateContainer(c, {"labels"});
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(client_->GetContainer("web.1")->labels().at("com.shoal.task"), "t2");

  auto namespaces = client_->ListNamespaces();
  ASSERT_TRUE(namespaces.ok()) << namespaces.status();
  EXPECT_THAT(*namespaces, ::testing::Contains(ns_));

  // containerd refuses to delete a namespace that still holds something.
  EXPECT_EQ(other->DeleteNamespace(ns_).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_OK(client_->DeleteContainer("web.1"));
  EXPECT_EQ(client_->DeleteContainer("web.1").code(), absl::StatusCode::kNotFound);
  absl::Status s = other->DeleteNamespace(ns_ + "-b");
  EXPECT_TRUE(s.ok() || absl::IsNotFound(s)) << s;
}

TEST_F(ContainerdClientTest, ContentWriteInfoReadAndDigestCheck) {
  auto lease = client_->CreateLease("", {{"purpose", "test"}}, absl::Hours(1));
  ASSERT_TRUE(lease.ok()) << lease.status();
  auto leased = client_->WithLease(*lease);

  // A blob of 1.5 MiB, written in two parts (the first spans a 1 MiB chunk boundary).
  std::string blob;
  for (int i = 0; blob.size() < (3u << 19); ++i) absl::StrAppend(&blob, "line ", i, "\n");
  blob.resize(3u << 19);
  const std::string digest = Sha256Digest(blob);
  {
    auto writer = leased->OpenWriter("blob-1", static_cast<int64_t>(blob.size()), digest);
    ASSERT_TRUE(writer.ok()) << writer.status();
    EXPECT_EQ((*writer)->offset(), 0);
    ASSERT_OK((*writer)->Write(absl::string_view(blob).substr(0, 1200000)));
    // The stream breaks here (e.g. the agent restarts): the ingest keeps what it got.
    ASSERT_OK((*writer)->Close());
  }
  {
    auto writer = leased->OpenWriter("blob-1", static_cast<int64_t>(blob.size()), digest);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_EQ((*writer)->offset(), 1200000);  // resumed
    ASSERT_OK((*writer)->Write(absl::string_view(blob).substr(1200000)));
    ASSERT_OK((*writer)->Commit(static_cast<int64_t>(blob.size()), digest, {{"k", "v"}}));
  }

  auto info = client_->ContentInfo(digest);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->digest(), digest);
  EXPECT_EQ(info->size(), static_cast<int64_t>(blob.size()));
  EXPECT_EQ(info->labels().at("k"), "v");

  auto read = client_->ReadContentAll(digest);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(*read == blob);
  std::string part;
  ASSERT_OK(client_->ReadContent(digest, 10, 20, [&](absl::string_view d) {
    part.append(d.data(), d.size());
    return absl::OkStatus();
  }));
  EXPECT_EQ(part, blob.substr(10, 20));
  EXPECT_EQ(client_->ReadContentAll(digest, 100).status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Writing it again is a no-op (the blob is there), and a writer for it says ALREADY_EXISTS.
  EXPECT_OK(leased->WriteBlob("blob-1-again", blob, digest));
  EXPECT_EQ(leased->OpenWriter("blob-1-again", 0, digest).status().code(),
            absl::StatusCode::kAlreadyExists);

  // Content whose digest does not match what the writer claims is refused.
  {
    const std::string other = "not what the digest says";
    auto writer = leased->OpenWriter("blob-bad", static_cast<int64_t>(other.size()), "");
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_OK((*writer)->Write(other));
    const std::string claimed = Sha256Digest("what the writer claims");
    absl::Status s = (*writer)->Commit(static_cast<int64_t>(other.size()), claimed);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("unexpected commit digest")) << s;
    EXPECT_EQ(client_->ContentInfo(claimed).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(client_->ContentInfo(Sha256Digest(other)).status().code(),
              absl::StatusCode::kNotFound);
    absl::Status aborted = leased->AbortIngest("blob-bad");
    EXPECT_TRUE(aborted.ok() || absl::IsNotFound(aborted)) << aborted;
    EXPECT_EQ(leased->AbortIngest("blob-bad").code(), absl::StatusCode::kNotFound);
  }
  // Claiming a digest the store already has is answered ALREADY_EXISTS without storing anything
  // (content is addressed by digest: the store's copy is the right one).
  {
    auto writer = leased->OpenWriter("blob-dup", 3, "");
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_OK((*writer)->Write("xyz"));
    EXPECT_EQ((*writer)->Commit(3, digest).code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(client_->ContentInfo(digest)->size(), static_cast<int64_t>(blob.size()));
  }
  // A wrong size is refused too.
  absl::Status short_write = leased->WriteBlob("blob-short", "abc", Sha256Digest("abcd"));
  EXPECT_EQ(short_write.code(), absl::StatusCode::kFailedPrecondition) << short_write;
  leased->AbortIngest("blob-short").IgnoreError();

  // Deleting the lease lets the garbage collector take the unreferenced blob.
  ASSERT_OK(client_->DeleteLease(*lease, /*sync=*/true));
  EXPECT_EQ(client_->ContentInfo(digest).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->DeleteContent(digest).code(), absl::StatusCode::kNotFound);
}

TEST_F(ContainerdClientTest, Images) {
  auto lease = client_->CreateLease("images-" + RandomSuffix());
  ASSERT_TRUE(lease.ok()) << lease.status();
  auto leased = client_->WithLease(*lease);
  const std::string manifest = R"({"schemaVersion":2})";
  ASSERT_OK(leased->WriteBlob("manifest", manifest, Sha256Digest(manifest)));

  images_pb::Image image;
  image.set_name("registry.test/app:1");
  (*image.mutable_labels())["com.shoal.pulled"] = "yes";
  image.mutable_target()->set_media_type("application/vnd.oci.image.manifest.v1+json");
  image.mutable_target()->set_digest(Sha256Digest(manifest));
  image.mutable_target()->set_size(static_cast<int64_t>(manifest.size()));
  auto created = client_->CreateImage(image);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(client_->CreateImage(image).status().code(), absl::StatusCode::kAlreadyExists);

  auto got = client_->GetImage("registry.test/app:1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->target().digest(), Sha256Digest(manifest));
  (*image.mutable_labels())["com.shoal.pulled"] = "again";
  auto updated = client_->UpdateImage(image, {"labels"});
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->labels().at("com.shoal.pulled"), "again");
  auto listed = client_->ListImages({"name==registry.test/app:1"});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);

  // The image holds its target: the blob survives the lease.
  ASSERT_OK(client_->DeleteLease(*lease, /*sync=*/true));
  EXPECT_TRUE(client_->ContentInfo(Sha256Digest(manifest)).ok());
  ASSERT_OK(client_->DeleteImage("registry.test/app:1", /*sync=*/true));
  EXPECT_EQ(client_->GetImage("registry.test/app:1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->ContentInfo(Sha256Digest(manifest)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ContainerdClientTest, RunsAContainerAndReportsItsExit) {
  ExitRecorder exits;
  absl::Time t0 = absl::Now();
  auto sub = client_->SubscribeTaskExits([&](const TaskExitEvent& e) { exits.Add(e); });
  ASSERT_TRUE(sub.ok()) << sub.status();
  std::cout << "timing: SubscribeTaskExits (live) " << absl::Now() - t0 << "\n";

  auto lease = client_->CreateLease("pull-" + RandomSuffix());
  ASSERT_TRUE(lease.ok()) << lease.status();
  t0 = absl::Now();
  const std::string layer = ImportBusybox(*lease);
  ASSERT_FALSE(layer.empty());
  std::cout << "timing: import busybox layer (" << BusyboxLayer().size() / 1024
            << " KiB: write, prepare, apply, commit) " << absl::Now() - t0 << "\n";

  auto stat = client_->StatSnapshot(snapshotter_, layer);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->kind(), snapshots_pb::COMMITTED);
  // A read-only view of the layer works too.
  auto view = client_->ViewSnapshot(snapshotter_, "view-1", layer);
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_FALSE(view->empty());
  EXPECT_OK(client_->RemoveSnapshot(snapshotter_, "view-1"));

  // Container IDs unique across namespaces: runc names each container's cgroup after its ID.
  const std::string exit3_id = UniqueId("exit3");
  const std::string out = dir_ + "/" + ns_ + "-exit3.out";
  t0 = absl::Now();
  uint32_t pid = StartContainer(
      exit3_id, layer,
      {"/bin/busybox", "sh", "-c", "echo hello from $(/bin/busybox hostname); exit 3"},
      "file://" + out, *lease);
  ASSERT_NE(pid, 0u);
  absl::Duration started = absl::Now() - t0;
  auto exit = exits.WaitFor(exit3_id, exit3_id, kExitTimeout);
  ASSERT_TRUE(exit.has_value()) << "no exit event within " << kExitTimeout;
  std::cout << "timing: snapshot+container+task create+start " << started
            << "; until the exit event " << absl::Now() - t0 << "\n";
  EXPECT_EQ(exit->ns, ns_);
  EXPECT_EQ(exit->exit.exit_status, 3u);
  EXPECT_EQ(exit->exit.pid, pid);
  EXPECT_GT(exit->exit.exited_at, t0);

  auto task = client_->GetTask(exit3_id);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->status(), task_types_pb::STOPPED);
  EXPECT_EQ(task->exit_status(), 3u);
  auto waited = client_->WaitTask(exit3_id, "", absl::Seconds(10));
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(waited->exit_status, 3u);
  EXPECT_EQ(ReadFile(out), "hello from shoal-test\n");
  // While the task exists the container can't go.
  EXPECT_EQ(client_->DeleteContainer(exit3_id).code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_NO_FATAL_FAILURE(RemoveContainer(exit3_id, 3));
  EXPECT_OK(client_->RemoveSnapshot(snapshotter_, layer));
  ASSERT_OK(client_->DeleteLease(*lease, /*sync=*/true));
  EXPECT_THAT(MountsUnder(dir_), IsEmpty());
}

TEST_F(ContainerdClientTest, KillExecAndStopSignals) {
  ExitRecorder exits;
  auto sub = client_->SubscribeTaskExits([&](const TaskExitEvent& e) { exits.Add(e); });
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto lease = client_->CreateLease("pull-" + RandomSuffix());
  ASSERT_TRUE(lease.ok()) << lease.status();
  const std::string layer = ImportBusybox(*lease);
  ASSERT_FALSE(layer.empty());

  const std::string term_id = UniqueId("term");
  const std::string sleep_id = UniqueId("sleep");
  // 1. A process that handles SIGTERM (as a server would): it exits 143 when told to stop.
  const std::string out = dir_ + "/" + ns_ + "-term.out";
  ASSERT_NE(StartContainer(term_id, layer,
                           {"/bin/busybox", "sh", "-c",
                            "trap 'exit 143' TERM; echo ready; /bin/busybox sleep 1000 & wait"},
                           "file://" + out, *lease),
            0u);
  ASSERT_TRUE(WaitForFileContent(out, "ready", absl::Seconds(20))) << ReadFile(out);

  // 2. Meanwhile a bare `sleep 1000` as PID 1: it ignores SIGTERM (PID 1 without a handler), so
  // only SIGKILL stops it — what the executor's grace period ends in.
  ASSERT_NE(StartContainer(sleep_id, layer, {"/bin/busybox", "sleep", "1000"}, "", *lease), 0u);
  auto running = client_->GetTask(sleep_id);
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->status(), task_types_pb::RUNNING);
  auto tasks = client_->ListTasks();
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  std::vector<std::string> ids;
  for (const auto& t : *tasks) ids.push_back(t.id());
  EXPECT_THAT(ids, UnorderedElementsAre(term_id, sleep_id));

  // An exec'd process in the running container; its exit is reported under its exec ID.
  ASSERT_OK(client_->ExecProcess(
      sleep_id, "probe", OciProcessAny(ProcessSpec({"/bin/busybox", "sh", "-c", "exit 7"}))));
  auto exec_pid = client_->StartTask(sleep_id, "probe");
  ASSERT_TRUE(exec_pid.ok()) << exec_pid.status();
  auto exec_exit = exits.WaitFor(sleep_id, "probe", kExitTimeout);
  ASSERT_TRUE(exec_exit.has_value());
  EXPECT_EQ(exec_exit->exit.exit_status, 7u);
  auto exec_deleted = client_->DeleteProcess(sleep_id, "probe");
  ASSERT_TRUE(exec_deleted.ok()) << exec_deleted.status();
  EXPECT_EQ(exec_deleted->exit_status, 7u);

  ASSERT_OK(client_->KillTask(term_id, SIGTERM));
  auto term_exit = exits.WaitFor(term_id, term_id, kExitTimeout);
  ASSERT_TRUE(term_exit.has_value());
  EXPECT_EQ(term_exit->exit.exit_status, 143u);

  ASSERT_OK(client_->KillTask(sleep_id, SIGKILL, /*all=*/true));
  auto kill_exit = exits.WaitFor(sleep_id, sleep_id, kExitTimeout);
  ASSERT_TRUE(kill_exit.has_value());
  EXPECT_EQ(kill_exit->exit.exit_status, 137u);  // 128 + SIGKILL
  // Killing what has exited: NOT_FOUND, so a stop can be retried safely.
  absl::Status again = client_->KillTask(sleep_id, SIGKILL);
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound) << again;

  ASSERT_NO_FATAL_FAILURE(RemoveContainer(term_id, 143));
  ASSERT_NO_FATAL_FAILURE(RemoveContainer(sleep_id, 137));
  EXPECT_OK(client_->RemoveSnapshot(snapshotter_, layer));
  ASSERT_OK(client_->DeleteLease(*lease, /*sync=*/true));
  EXPECT_THAT(MountsUnder(dir_), IsEmpty());
}

TEST_F(ContainerdClientTest, ExitEventsAreFilteredByNamespace) {
  ExitRecorder mine, all;
  auto other = client_->WithNamespace(ns_ + "-other");
  auto sub_mine = client_->SubscribeTaskExits([&](const TaskExitEvent& e) { mine.Add(e); });
  ASSERT_TRUE(sub_mine.ok()) << sub_mine.status();
  auto sub_other = other->SubscribeTaskExits([&](const TaskExitEvent& e) { all.Add(e); });
  ASSERT_TRUE(sub_other.ok()) << sub_other.status();

  auto lease = client_->CreateLease("pull-" + RandomSuffix());
  ASSERT_TRUE(lease.ok()) << lease.status();
  const std::string layer = ImportBusybox(*lease);
  ASSERT_FALSE(layer.empty());
  const std::string quick_id = UniqueId("quick");
  ASSERT_NE(StartContainer(quick_id, layer, {"/bin/busybox", "true"}, "", *lease), 0u);
  auto exit = mine.WaitFor(quick_id, quick_id, kExitTimeout);
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit.exit_status, 0u);
  // The other namespace's subscription saw nothing (it was live before the task started).
  EXPECT_FALSE(all.WaitFor(quick_id, quick_id, absl::ZeroDuration()).has_value());
  sub_other->reset();
  sub_mine->reset();

  ASSERT_NO_FATAL_FAILURE(RemoveContainer(quick_id, 0));
  EXPECT_OK(client_->RemoveSnapshot(snapshotter_, layer));
  ASSERT_OK(client_->DeleteLease(*lease, /*sync=*/true));
  absl::Status s = other->DeleteNamespace(ns_ + "-other");
  EXPECT_TRUE(s.ok() || absl::IsNotFound(s)) << s;
}

// A subscription whose containerd goes away tells its owner (on_end), so that it can resubscribe
// and reconcile. Uses a second private containerd, stopped mid-test.
TEST_F(ContainerdClientTest, SubscriptionReportsContainerdGoingAway) {
  char tmpl[] = "/tmp/shoal-ctrd2-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  shoal::testing::CommandOptions options;
  options.timeout = absl::Seconds(30);
  auto started = shoal::testing::RunCommand({script_, "start", dir}, options);
  ASSERT_EQ(started.exit_code, 0) << started.out << started.err;
  auto client = ContainerdClient::Connect(std::string(absl::StripAsciiWhitespace(started.out)), ns_,
                                          absl::Seconds(10));
  ASSERT_TRUE(client.ok()) << client.status();

  absl::Mutex mu;
  std::optional<absl::Status> ended;
  auto sub = (*client)->SubscribeTaskExits([](const TaskExitEvent&) {},
                                           [&](const absl::Status& s) {
                                             absl::MutexLock lock(&mu);
                                             ended = s;
                                           });
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto stopped = shoal::testing::RunCommand({script_, "stop", dir}, options);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.out << stopped.err;
  {
    absl::MutexLock lock(&mu);
    auto has_ended = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ended.has_value(); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&has_ended), absl::Seconds(30)));
    EXPECT_EQ(ended->code(), absl::StatusCode::kUnavailable) << *ended;
  }
  sub->reset();
  // Calls now fail with UNAVAILABLE and say where containerd was expected.
  absl::Status s = (*client)->Version().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("is containerd still running at"));
  EXPECT_THAT(MountsUnder(dir), IsEmpty());
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace shoal::agent::containerd
