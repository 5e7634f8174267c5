// ContainerdImageStore against a real, private containerd (tools/lab/containerd) and a real
// docker-registry on 127.0.0.1 (tools/lab/registry) holding the busybox test image
// (tools/lab/image), all started once for the suite in a directory under /tmp. Every test works
// in a containerd namespace of its own and must leave it empty: TearDown deletes the namespace,
// which containerd refuses while anything (an image, a blob, a snapshot, a lease) is left in it.
// Skipped (with the reason) unless running as root with containerd, runc, docker-registry,
// skopeo, umoci, curl and busybox-static.
#include "agent/image/containerd_image_store.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/containerd/client.h"
#include "agent/image/digest.h"
#include "agent/image/reference.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/harness/prerequisite.h"
#include "tests/harness/process.h"

namespace shoal::agent::image {
namespace {

namespace ctrd = ::shoal::agent::containerd;
namespace fs = std::filesystem;
using ::shoal::testing::CommandOptions;
using ::shoal::testing::CommandResult;
using ::shoal::testing::PickFreeLoopbackPort;
using ::shoal::testing::RunCommand;
using ::shoal::testing::RunfilePath;
using ::shoal::testing::WaitFor;
using ::testing::HasSubstr;
using ::testing::StartsWith;

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

std::string FindTool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  absl::StrAppend(&dirs, ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  for (absl::string_view dir : absl::StrSplit(dirs, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string LabScript(const std::string& name) {
  std::string path = RunfilePath("tools/lab/" + name);
  return ::access(path.c_str(), X_OK) == 0 ? path : "";
}

// Mount points at or under `dir` (from /proc/self/mountinfo; paths escape ' ' as \040).
std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string f, point;
    for (int i = 0; i < 5 && fields >> f; ++i) point = f;
    if (point == dir || absl::StartsWith(point, dir + "/")) out.push_back(point);
  }
  return out;
}

std::string RandomSuffix() {
  static std::atomic<int> counter{0};
  return absl::StrFormat("%d-%d-%d", getpid(), ++counter, absl::ToUnixNanos(absl::Now()) % 1000000);
}

// Runs a lab script; returns its stdout's last line (empty, with a test failure, on error).
std::string RunLab(const std::vector<std::string>& argv, std::string* error = nullptr) {
  CommandOptions options;
  options.timeout = absl::Seconds(120);
  CommandResult r = RunCommand(argv, options);
  if (r.exit_code != 0) {
    std::string message =
        absl::StrCat(absl::StrJoin(argv, " "), " failed (exit ", r.exit_code, "):\n", r.out, r.err);
    if (error != nullptr) {
      *error = message;
    } else {
      ADD_FAILURE() << message;
    }
    return "";
  }
  std::string out(absl::StripTrailingAsciiWhitespace(r.out));
  size_t nl = out.rfind('\n');
  return nl == std::string::npos ? out : out.substr(nl + 1);
}

// "ADDRESS/NAME:TAG@DIGEST" (tools/lab/registry push) → DIGEST.
std::string DigestOf(const std::string& pushed) { return pushed.substr(pushed.rfind('@') + 1); }

// ------------------------------------------------------------------ without containerd

TEST(ChainIdsTest, FollowsTheOciDefinition) {
  const std::string a = Sha256Digest("a"), b = Sha256Digest("b"), c = Sha256Digest("c");
  EXPECT_TRUE(ChainIds({}).empty());
  EXPECT_EQ(ChainIds({a}), std::vector<std::string>{a});
  const std::string ab = Sha256Digest(a + " " + b);
  EXPECT_EQ(ChainIds({a, b}), (std::vector<std::string>{a, ab}));
  EXPECT_EQ(ChainIds({a, b, c}), (std::vector<std::string>{a, ab, Sha256Digest(ab + " " + c)}));
}

TEST(ImageRecordNameTest, NormalisesAsDocker) {
  auto name = [](const std::string& s) {
    absl::StatusOr<Reference> ref = Reference::ParseNormalizedNamed(s);
    EXPECT_TRUE(ref.ok()) << ref.status();
    return ref.ok() ? ImageRecordName(*ref) : "";
  };
  const std::string digest = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(name("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(name("user/app:2"), "docker.io/user/app:2");
  EXPECT_EQ(name("127.0.0.1:5000/app:1"), "127.0.0.1:5000/app:1");
  EXPECT_EQ(name("busybox@" + digest), "docker.io/library/busybox@" + digest);
  EXPECT_EQ(name("busybox:1@" + digest), "docker.io/library/busybox@" + digest);
}

TEST(ContainerdImageStoreCreateTest, RejectsMissingClientAndSnapshotter) {
  ContainerdImageStoreOptions options;
  auto store = ContainerdImageStore::Create(options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("needs a containerd client"));
}

// ------------------------------------------------------------------ with containerd + registry

class ContainerdImageStoreTest : public ::testing::Test {
 protected:
  struct Lab {
    std::string skip_reason;
    std::string error;  // setup failed: every test fails with it
    std::string dir;
    std::string containerd_script, registry_script, image_script;
    std::string socket;
    std::string snapshotter;
    std::string image_tar;
    std::string registry_dir;
    std::string domain;
    std::string busybox_digest;  // busybox:1's manifest
  };
  static Lab* lab_;

  static std::string Missing() {
    if (geteuid() != 0) return "needs root (containerd and its snapshotters run as root)";
    for (const char* tool : {"containerd", "ctr", "runc", "containerd-shim-runc-v2",
                             "docker-registry", "skopeo", "umoci", "curl"}) {
      if (FindTool(tool).empty()) {
        return absl::StrCat(tool,
                            " is not installed (Debian packages containerd runc docker-registry "
                            "skopeo umoci curl)");
      }
    }
    if (::access("/bin/busybox", X_OK) != 0) return "/bin/busybox is missing (busybox-static)";
    if (LabScript("containerd").empty() || LabScript("registry").empty() ||
        LabScript("image").empty()) {
      return "tools/lab/{containerd,registry,image} not found in the test's runfiles";
    }
    return "";
  }

  static void SetUpTestSuite() {
    lab_ = new Lab();
    lab_->skip_reason = Missing();
    if (!lab_->skip_reason.empty()) return;
    const absl::Time start = absl::Now();
    lab_->containerd_script = LabScript("containerd");
    lab_->registry_script = LabScript("registry");
    lab_->image_script = LabScript("image");
    char tmpl[] = "/tmp/shoal-cis-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      lab_->error = "mkdtemp failed";
      return;
    }
    lab_->dir = tmpl;
    lab_->snapshotter = ReadFile("/proc/filesystems").find("\toverlay\n") != std::string::npos
                            ? "overlayfs"
                            : "native";
    lab_->socket = RunLab({lab_->containerd_script, "start", lab_->dir + "/ctrd"}, &lab_->error);
    if (lab_->socket.empty()) return;
    lab_->image_tar = lab_->dir + "/busybox.tar";
    if (RunLab({lab_->image_script, "build", lab_->image_tar}, &lab_->error).empty()) return;
    lab_->registry_dir = lab_->dir + "/registry";
    lab_->domain = StartRegistry(lab_->registry_dir, &lab_->error);
    if (lab_->domain.empty()) return;
    std::string pushed =
        RunLab({lab_->registry_script, "push", lab_->registry_dir, lab_->image_tar, "busybox:1"},
               &lab_->error);
    if (pushed.empty()) return;
    lab_->busybox_digest = DigestOf(pushed);
    std::cout << "timing: suite setup (containerd, image build, registry, push) "
              << absl::Now() - start << "; snapshotter " << lab_->snapshotter << "\n";
  }

  // Starts a registry in `dir` on a free port (retried once should the port be taken).
  static std::string StartRegistry(const std::string& dir, std::string* error) {
    std::string domain;
    for (int attempt = 0; attempt < 2 && domain.empty(); ++attempt) {
      domain = RunLab(
          {lab_->registry_script, "start", dir, "--port", std::to_string(PickFreeLoopbackPort())},
          error);
    }
    return domain;
  }

  static void TearDownTestSuite() {
    if (lab_ == nullptr) return;
    if (!lab_->registry_dir.empty()) {
      RunCommand({lab_->registry_script, "stop", lab_->registry_dir});
    }
    if (!lab_->socket.empty()) {
      CommandOptions options;
      options.timeout = absl::Seconds(60);
      CommandResult r = RunCommand({lab_->containerd_script, "stop", lab_->dir + "/ctrd"}, options);
      if (r.exit_code != 0) ADD_FAILURE() << "tools/lab/containerd stop failed: " << r.out << r.err;
    }
    if (!lab_->dir.empty()) {
      std::vector<std::string> left = MountsUnder(lab_->dir);
      if (left.empty()) {
        std::error_code ec;
        fs::remove_all(lab_->dir, ec);
      } else {
        ADD_FAILURE() << "mounts left under " << lab_->dir
                      << " (not removing it): " << left.front();
      }
    }
    delete lab_;
    lab_ = nullptr;
  }

  void SetUp() override {
    SHOAL_REQUIRE(lab_->skip_reason.empty(), lab_->skip_reason);
    ASSERT_TRUE(lab_->error.empty()) << lab_->error;
    ns_ = absl::StrCat("cis-", RandomSuffix());
    auto client = ctrd::ContainerdClient::Connect(lab_->socket, ns_, absl::Seconds(10));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::shared_ptr<ctrd::ContainerdClient>(std::move(*client));
    store_ = NewStore();
    ASSERT_NE(store_, nullptr);
  }

  void TearDown() override {
    store_.reset();  // joins pulls still running
    if (client_ == nullptr) return;
    Sweep(*client_);
    EXPECT_OK(client_->DeleteNamespace(ns_));
  }

  std::unique_ptr<ContainerdImageStore> NewStore() {
    ContainerdImageStoreOptions options;
    options.client = client_;
    options.snapshotter = lab_->snapshotter;
    options.registry.connect_timeout = absl::Seconds(2);
    options.registry.stall_timeout = absl::Seconds(5);
    options.registry.request_timeout = absl::Seconds(10);
    auto store = ContainerdImageStore::Create(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Empties the namespace: images, then a garbage collection (which takes content and committed
  // snapshots nothing references), then whatever is left.
  void Sweep(ctrd::ContainerdClient& c) {
    if (auto images = c.ListImages(); images.ok()) {
      for (const auto& image : *images) c.DeleteImage(image.name()).IgnoreError();
    }
    if (auto leases = c.ListLeases(); leases.ok()) {
      for (const auto& lease : *leases) c.DeleteLease(lease.id()).IgnoreError();
    }
    for (int round = 0; round < 10; ++round) {  // children before parents
      auto snapshots = c.ListSnapshots(lab_->snapshotter);
      if (!snapshots.ok() || snapshots->empty()) break;
      for (const auto& info : *snapshots) {
        c.RemoveSnapshot(lab_->snapshotter, info.name()).IgnoreError();
      }
    }
    // Deleting a lease with sync runs a garbage collection and waits for it.
    absl::StatusOr<std::string> gc = c.CreateLease("");
    if (gc.ok()) c.DeleteLease(*gc, /*sync=*/true).IgnoreError();
  }

  std::string Ref(const std::string& rest) const { return lab_->domain + "/" + rest; }

  // `ctr images import` of the busybox archive as BASE_NAME:latest (unpacked unless told not).
  void CtrImport(const std::string& base_name, bool unpack = true) {
    std::vector<std::string> argv = {
        FindTool("ctr"),  "-a",     lab_->socket,  "-n",      ns_,
        "images",         "import", "--base-name", base_name, "--snapshotter",
        lab_->snapshotter};
    if (!unpack) argv.push_back("--no-unpack");
    argv.push_back(lab_->image_tar);
    CommandResult r = RunCommand(argv);
    ASSERT_EQ(r.exit_code, 0) << absl::StrJoin(argv, " ") << "\n" << r.out << r.err;
  }

  // Checks that `image` can be a container's parent: a view of its chain ID (made under a lease,
  // as an executor would, else a concurrent garbage collection may take it) has mounts, and the
  // directories they show hold /bin/busybox.
  void ExpectUsableSnapshot(const LocalImage& image) {
    absl::StatusOr<std::string> lease = client_->CreateLease("");
    ASSERT_TRUE(lease.ok()) << lease.status();
    std::unique_ptr<ctrd::ContainerdClient> leased = client_->WithLease(*lease);
    const std::string key = "view-" + RandomSuffix();
    absl::StatusOr<ctrd::Mounts> mounts =
        leased->ViewSnapshot(image.snapshotter, key, image.chain_id);
    ASSERT_TRUE(mounts.ok()) << mounts.status();
    ASSERT_FALSE(mounts->empty());
    // A view of one layer is a read-only bind mount of its directory; of several, an overlay
    // whose lowerdirs are the layers' directories.
    std::vector<std::string> dirs;
    for (const auto& mount : *mounts) {
      if (mount.type() == "bind") dirs.push_back(mount.source());
      for (const std::string& option : mount.options()) {
        absl::string_view o = option;
        if (absl::ConsumePrefix(&o, "lowerdir=")) {
          for (absl::string_view d : absl::StrSplit(o, ':')) dirs.emplace_back(d);
        }
      }
    }
    bool found = false;
    for (const std::string& dir : dirs) {
      found = found || ::access((dir + "/bin/busybox").c_str(), F_OK) == 0;
    }
    EXPECT_TRUE(found) << "no bin/busybox in " << absl::StrJoin(dirs, ", ");
    EXPECT_OK(leased->RemoveSnapshot(image.snapshotter, key));
    EXPECT_OK(client_->DeleteLease(*lease));
  }

  std::string ns_;
  std::shared_ptr<ctrd::ContainerdClient> client_;
  std::unique_ptr<ContainerdImageStore> store_;
};

ContainerdImageStoreTest::Lab* ContainerdImageStoreTest::lab_ = nullptr;

TEST_F(ContainerdImageStoreTest, LookupFindsAnImageImportedWithCtr) {
  ASSERT_NO_FATAL_FAILURE(CtrImport("docker.io/library/imported"));
  absl::StatusOr<LocalImage> image = store_->Lookup("imported");
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->name, "docker.io/library/imported:latest");
  EXPECT_EQ(image->snapshotter, lab_->snapshotter);
  EXPECT_TRUE(image->pull_error.empty());
  EXPECT_EQ(Sha256Digest(image->config_json), image->config_digest);
  absl::StatusOr<ImageConfig> config = ParseImageConfig(image->config_json);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_FALSE(config->diff_ids.empty());
  EXPECT_EQ(image->chain_id, ChainIds(config->diff_ids).back());
  // The archive's image is the one pushed to the registry: same manifest.
  EXPECT_EQ(image->manifest_digest, lab_->busybox_digest);
  ExpectUsableSnapshot(*image);
  // The same image under its full name, and not under another tag.
  absl::StatusOr<LocalImage> again = store_->Lookup("docker.io/library/imported:latest");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->chain_id, image->chain_id);
  EXPECT_EQ(store_->Lookup("imported:2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->stats().pulls, 0);
}

TEST_F(ContainerdImageStoreTest, LookupNotFoundAndNotUnpacked) {
  absl::StatusOr<LocalImage> missing = store_->Lookup("nosuch");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "image docker.io/library/nosuch:latest is not present");

  ASSERT_NO_FATAL_FAILURE(CtrImport("docker.io/library/packed", /*unpack=*/false));
  absl::StatusOr<LocalImage> packed = store_->Lookup("packed:latest");
  ASSERT_FALSE(packed.ok());
  EXPECT_EQ(packed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(packed.status().message()),
              StartsWith("image docker.io/library/packed:latest is present but not unpacked"));

  EXPECT_EQ(store_->Lookup("Bad/Name").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ContainerdImageStoreTest, EnsurePullsUnpacksAndLabelsThenReusesWhatIsPresent) {
  std::vector<PullProgress> progress;
  EnsureOptions options;
  options.progress = [&](const PullProgress& p) { progress.push_back(p); };
  const absl::Time cold_start = absl::Now();
  absl::StatusOr<LocalImage> image = store_->Ensure(Ref("busybox:1"), options);
  const absl::Duration cold = absl::Now() - cold_start;
  ASSERT_TRUE(image.ok()) << image.status();
  std::cout << "timing: cold Ensure (pull + unpack) " << cold << "\n";

  EXPECT_EQ(image->name, Ref("busybox:1"));
  EXPECT_EQ(image->target_digest, lab_->busybox_digest);
  EXPECT_EQ(image->manifest_digest, lab_->busybox_digest);
  EXPECT_TRUE(image->pull_error.empty());
  EXPECT_EQ(Sha256Digest(image->config_json), image->config_digest);
  ContainerdImageStore::Stats stats = store_->stats();
  EXPECT_EQ(stats.pulls, 1);
  EXPECT_EQ(stats.blobs_fetched, 2);  // config + the one layer
  EXPECT_EQ(stats.layers_unpacked, 1);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().digest, lab_->busybox_digest);
  EXPECT_EQ(progress.back().done, progress.back().total);
  EXPECT_EQ(progress.back().total, stats.bytes_fetched);
  std::cout << "pulled " << FormatPullProgress(progress.back().done, progress.back().total)
            << " in " << progress.size() << " progress reports\n";

  // The record, the GC labels, the snapshot, and no lease left behind.
  absl::StatusOr<ctrd::images_pb::Image> record = client_->GetImage(image->name);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->target().digest(), lab_->busybox_digest);
  EXPECT_EQ(record->target().media_type(), media_type::kOciManifest);
  absl::StatusOr<ctrd::content_pb::Info> manifest_info =
      client_->ContentInfo(image->manifest_digest);
  ASSERT_TRUE(manifest_info.ok()) << manifest_info.status();
  EXPECT_EQ(manifest_info->labels().at("containerd.io/gc.ref.content.config"),
            image->config_digest);
  ASSERT_EQ(manifest_info->labels().count("containerd.io/gc.ref.content.l.0"), 1u);
  absl::StatusOr<ctrd::content_pb::Info> config_info = client_->ContentInfo(image->config_digest);
  ASSERT_TRUE(config_info.ok()) << config_info.status();
  EXPECT_EQ(config_info->labels().at("containerd.io/gc.ref.snapshot." + lab_->snapshotter),
            image->chain_id);
  absl::StatusOr<std::vector<ctrd::leases_pb::Lease>> leases = client_->ListLeases();
  ASSERT_TRUE(leases.ok()) << leases.status();
  EXPECT_TRUE(leases->empty());
  ExpectUsableSnapshot(*image);
  // Only committed snapshots: no unpack key left.
  absl::StatusOr<std::vector<ctrd::snapshots_pb::Info>> snapshots =
      client_->ListSnapshots(lab_->snapshotter);
  ASSERT_TRUE(snapshots.ok()) << snapshots.status();
  ASSERT_EQ(snapshots->size(), 1u);
  EXPECT_EQ(snapshots->front().name(), image->chain_id);

  absl::StatusOr<LocalImage> looked_up = store_->Lookup(Ref("busybox:1"));
  ASSERT_TRUE(looked_up.ok()) << looked_up.status();
  EXPECT_EQ(looked_up->chain_id, image->chain_id);
  EXPECT_EQ(looked_up->config_json, image->config_json);

  // A tag is asked again (it may have moved), but nothing is transferred or unpacked again.
  progress.clear();
  const absl::Time warm_start = absl::Now();
  absl::StatusOr<LocalImage> again = store_->Ensure(Ref("busybox:1"), options);
  const absl::Duration warm = absl::Now() - warm_start;
  ASSERT_TRUE(again.ok()) << again.status();
  std::cout << "timing: warm Ensure " << warm << "\n";
  EXPECT_EQ(again->chain_id, image->chain_id);
  EXPECT_TRUE(again->pull_error.empty());
  stats = store_->stats();
  EXPECT_EQ(stats.pulls, 2);
  EXPECT_EQ(stats.blobs_fetched, 2);
  EXPECT_EQ(stats.layers_unpacked, 1);
}

TEST_F(ContainerdImageStoreTest, UsesThePresentImageWhenTheRegistryIsGone) {
  // A registry of this test's own, stopped half-way.
  const std::string dir = lab_->dir + "/registry-" + RandomSuffix();
  std::string error;
  const std::string domain = StartRegistry(dir, &error);
  ASSERT_FALSE(domain.empty()) << error;
  struct Stop {
    std::string script, dir;
    ~Stop() { RunCommand({script, "stop", dir}); }
  } stop{lab_->registry_script, dir};
  const std::string pushed =
      RunLab({lab_->registry_script, "push", dir, lab_->image_tar, "app:1"}, &error);
  ASSERT_FALSE(pushed.empty()) << error;
  const std::string digest = DigestOf(pushed);
  const std::string tag_ref = domain + "/app:1";
  absl::StatusOr<LocalImage> pulled = store_->Ensure(tag_ref, {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  CommandResult r = RunCommand({lab_->registry_script, "stop", dir});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  // By tag: the pull fails, the present image is used and the failure said.
  absl::StatusOr<LocalImage> by_tag = store_->Ensure(tag_ref, {});
  ASSERT_TRUE(by_tag.ok()) << by_tag.status();
  EXPECT_EQ(by_tag->chain_id, pulled->chain_id);
  EXPECT_THAT(by_tag->pull_error,
              StartsWith("pull " + tag_ref + ": registry " + domain + " is not reachable ("));
  EXPECT_EQ(store_->stats().pulls, 2);

  // By digest: present (its content came with the tag's pull), so the registry is not asked.
  for (const std::string& ref : {domain + "/app@" + digest, domain + "/app:1@" + digest}) {
    absl::StatusOr<LocalImage> by_digest = store_->Ensure(ref, {});
    ASSERT_TRUE(by_digest.ok()) << ref << ": " << by_digest.status();
    EXPECT_EQ(by_digest->name, domain + "/app@" + digest);
    EXPECT_EQ(by_digest->chain_id, pulled->chain_id);
    EXPECT_TRUE(by_digest->pull_error.empty());
  }
  EXPECT_EQ(store_->stats().pulls, 2);
  // The digest's own record now exists.
  absl::StatusOr<LocalImage> looked_up = store_->Lookup(domain + "/app@" + digest);
  ASSERT_TRUE(looked_up.ok()) << looked_up.status();
}

TEST_F(ContainerdImageStoreTest, NothingPresentAndTheRegistryDownIsUnavailable) {
  const std::string domain = absl::StrCat("127.0.0.1:", PickFreeLoopbackPort());
  absl::StatusOr<LocalImage> image = store_->Ensure(domain + "/x:1", {});
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(image.status().message()),
              StartsWith("pull " + domain + "/x:1: registry " + domain + " is not reachable ("));
  EXPECT_THAT(std::string(image.status().message()), HasSubstr("check that it runs"));
}

TEST_F(ContainerdImageStoreTest, UnknownTagAndRepositoryNameTheReferenceAndTheFix) {
  absl::StatusOr<LocalImage> image = store_->Ensure(Ref("busybox:nope"), {});
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(image.status().message()),
              StartsWith("pull " + Ref("busybox:nope") + ": "));
  EXPECT_THAT(std::string(image.status().message()),
              HasSubstr("(is the name right? does the registry need credentials?)"));
  image = store_->Ensure(Ref("nosuch:1"), {});
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(image.status().message()), StartsWith("pull " + Ref("nosuch:1") + ": "));
  image = store_->Ensure("Bad:Ref:", {});
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ContainerdImageStoreTest, ConcurrentEnsureCallsShareOnePull) {
  // The first caller's first progress report holds the pull until three more callers joined it.
  absl::Notification reported, release;
  std::atomic<bool> first{true};
  EnsureOptions leader;
  leader.progress = [&](const PullProgress&) {
    if (first.exchange(false)) {
      reported.Notify();
      release.WaitForNotificationWithTimeout(absl::Seconds(30));
    }
  };
  std::vector<absl::StatusOr<LocalImage>> results(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  threads.emplace_back([&] { results[0] = store_->Ensure(Ref("busybox:1"), leader); });
  ASSERT_TRUE(reported.WaitForNotificationWithTimeout(absl::Seconds(30)));
  for (int i = 1; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = store_->Ensure(Ref("busybox:1"), {}); });
  }
  const bool joined = WaitFor([&] { return store_->stats().joined == 3; }, absl::Seconds(30));
  release.Notify();
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(joined) << "joined: " << store_->stats().joined;
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->chain_id, results[0]->chain_id);
  }
  ContainerdImageStore::Stats stats = store_->stats();
  EXPECT_EQ(stats.pulls, 1);
  EXPECT_EQ(stats.blobs_fetched, 2);
  EXPECT_EQ(stats.layers_unpacked, 1);
}

TEST_F(ContainerdImageStoreTest, GarbageCollectionKeepsThePulledImage) {
  absl::StatusOr<LocalImage> image = store_->Ensure(Ref("busybox:1"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  absl::StatusOr<ctrd::content_pb::Info> manifest_info =
      client_->ContentInfo(image->manifest_digest);
  ASSERT_TRUE(manifest_info.ok()) << manifest_info.status();
  const std::string layer = manifest_info->labels().at("containerd.io/gc.ref.content.l.0");

  // An unrelated image whose deletion runs a garbage collection (and is itself collected).
  const std::string blob = "unrelated " + RandomSuffix();
  const std::string blob_digest = Sha256Digest(blob);
  {
    absl::StatusOr<std::string> lease = client_->CreateLease("");
    ASSERT_TRUE(lease.ok()) << lease.status();
    auto leased = client_->WithLease(*lease);
    ASSERT_OK(leased->WriteBlob("unrelated", blob, blob_digest));
    ctrd::images_pb::Image record;
    record.set_name("docker.io/library/unrelated:latest");
    record.mutable_target()->set_media_type("application/octet-stream");
    record.mutable_target()->set_digest(blob_digest);
    record.mutable_target()->set_size(static_cast<int64_t>(blob.size()));
    ASSERT_TRUE(client_->CreateImage(record).ok());
    ASSERT_OK(client_->DeleteLease(*lease, /*sync=*/true));
  }
  ASSERT_OK(client_->DeleteImage("docker.io/library/unrelated:latest", /*sync=*/true));
  EXPECT_EQ(client_->ContentInfo(blob_digest).status().code(), absl::StatusCode::kNotFound)
      << "the garbage collection did not run";

  for (const std::string& digest :
       {image->target_digest, image->manifest_digest, image->config_digest, layer}) {
    EXPECT_OK(client_->ContentInfo(digest).status());
  }
  EXPECT_OK(client_->StatSnapshot(image->snapshotter, image->chain_id).status());
  absl::StatusOr<LocalImage> looked_up = store_->Lookup(Ref("busybox:1"));
  ASSERT_TRUE(looked_up.ok()) << looked_up.status();
  ExpectUsableSnapshot(*looked_up);

  // And once the image is deleted, the collector takes its content and snapshots.
  ASSERT_OK(client_->DeleteImage(image->name, /*sync=*/true));
  EXPECT_EQ(client_->ContentInfo(image->config_digest).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->StatSnapshot(image->snapshotter, image->chain_id).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ContainerdImageStoreTest, UnpackOverContentPresentWithoutLabelsSurvivesGc) {
  // `ctr images import --no-unpack` leaves the blobs without a snapshot reference on the config.
  // Ensure transfers nothing (the registry serves the same digests) and unpacks; the snapshots
  // must survive a collection once the other record is gone (the image record references them).
  ASSERT_NO_FATAL_FAILURE(CtrImport("docker.io/library/packed", /*unpack=*/false));
  absl::StatusOr<LocalImage> image = store_->Ensure(Ref("busybox:1"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  ContainerdImageStore::Stats stats = store_->stats();
  EXPECT_EQ(stats.blobs_fetched, 0);
  EXPECT_EQ(stats.layers_unpacked, 1);
  absl::StatusOr<ctrd::images_pb::Image> record = client_->GetImage(image->name);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->labels().at("containerd.io/gc.ref.snapshot." + lab_->snapshotter),
            image->chain_id);
  EXPECT_EQ(record->labels().at("containerd.io/gc.ref.content.config"), image->config_digest);

  ASSERT_OK(client_->DeleteImage("docker.io/library/packed:latest", /*sync=*/true));
  EXPECT_OK(client_->StatSnapshot(image->snapshotter, image->chain_id).status());
  absl::StatusOr<LocalImage> looked_up = store_->Lookup(Ref("busybox:1"));
  ASSERT_TRUE(looked_up.ok()) << looked_up.status();
  ExpectUsableSnapshot(*looked_up);
}

TEST_F(ContainerdImageStoreTest, ManifestListSelectsTheHostPlatform) {
  // An index of busybox:1 (the host's platform) and an image labelled with another architecture.
  const Platform host = HostPlatform();
  const std::string other_arch = host.architecture == "riscv64" ? "s390x" : "riscv64";
  const std::string other_tar = lab_->dir + "/other.tar";
  ASSERT_FALSE(
      RunLab({lab_->image_script, "build", other_tar, "--arch", other_arch, "--cmd", "true"})
          .empty());
  const std::string other_digest = DigestOf(
      RunLab({lab_->registry_script, "push", lab_->registry_dir, other_tar, "busybox:other"}));
  const std::string index_digest =
      DigestOf(RunLab({lab_->registry_script, "index", lab_->registry_dir, "busybox:multi",
                       "1=" + host.String(), "other=linux/" + other_arch}));
  ASSERT_FALSE(index_digest.empty());

  absl::StatusOr<LocalImage> image = store_->Ensure(Ref("busybox:multi"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->target_digest, index_digest);
  EXPECT_EQ(image->manifest_digest, lab_->busybox_digest);
  absl::StatusOr<ImageConfig> config = ParseImageConfig(image->config_json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->platform.architecture, host.architecture);
  ExpectUsableSnapshot(*image);
  // Only the host's manifest was fetched; the index references every entry for the GC.
  EXPECT_EQ(client_->ContentInfo(other_digest).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<ctrd::content_pb::Info> index_info = client_->ContentInfo(index_digest);
  ASSERT_TRUE(index_info.ok()) << index_info.status();
  EXPECT_EQ(index_info->labels().count("containerd.io/gc.ref.content.m.0"), 1u);
  EXPECT_EQ(index_info->labels().count("containerd.io/gc.ref.content.m.1"), 1u);
  absl::StatusOr<ctrd::images_pb::Image> record = client_->GetImage(image->name);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->target().digest(), index_digest);
  EXPECT_EQ(record->target().media_type(), media_type::kOciIndex);

  absl::StatusOr<LocalImage> looked_up = store_->Lookup(Ref("busybox:multi"));
  ASSERT_TRUE(looked_up.ok()) << looked_up.status();
  EXPECT_EQ(looked_up->manifest_digest, lab_->busybox_digest);
  EXPECT_EQ(looked_up->chain_id, image->chain_id);

  // A store for the other platform: its manifest is not present until it pulls it.
  ContainerdImageStoreOptions options;
  options.client = client_;
  options.snapshotter = lab_->snapshotter;
  options.platform = Platform{"linux", other_arch, ""};
  auto other_store = ContainerdImageStore::Create(options);
  ASSERT_TRUE(other_store.ok()) << other_store.status();
  absl::StatusOr<LocalImage> other = (*other_store)->Lookup(Ref("busybox:multi"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kNotFound) << other.status();
  other = (*other_store)->Ensure(Ref("busybox:multi"), {});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->manifest_digest, other_digest);
  config = ParseImageConfig(other->config_json);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->platform.architecture, other_arch);
}

TEST_F(ContainerdImageStoreTest, CancelledEnsureReturnsCancelled) {
  // Cancelled before it starts: no pull at all.
  EnsureOptions options;
  options.cancelled = [] { return true; };
  absl::StatusOr<LocalImage> image = store_->Ensure(Ref("busybox:1"), options);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(image.status().message(), "pull " + Ref("busybox:1") + ": cancelled");
  EXPECT_EQ(store_->stats().pulls, 0);

  // Cancelled during the pull: the caller returns at once; the abandoned pull stops (or ends)
  // by itself and leaves no lease and no unpack snapshot behind.
  // The first progress report cancels, and holds the pull until the caller has seen it, so that
  // a fast pull cannot finish first.
  std::atomic<bool> cancel{false};
  absl::Notification seen;
  options.cancelled = [&] {
    bool now = cancel.load();
    if (now && !seen.HasBeenNotified()) seen.Notify();
    return now;
  };
  options.progress = [&](const PullProgress&) {
    if (cancel.exchange(true)) return;
    seen.WaitForNotificationWithTimeout(absl::Seconds(30));
  };
  image = store_->Ensure(Ref("busybox:1"), options);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kCancelled);
  store_.reset();  // waits for the pull's thread
  absl::StatusOr<std::vector<ctrd::leases_pb::Lease>> leases = client_->ListLeases();
  ASSERT_TRUE(leases.ok()) << leases.status();
  EXPECT_TRUE(leases->empty());
  absl::StatusOr<std::vector<ctrd::snapshots_pb::Info>> snapshots =
      client_->ListSnapshots(lab_->snapshotter);
  ASSERT_TRUE(snapshots.ok()) << snapshots.status();
  for (const auto& info : *snapshots) {
    EXPECT_FALSE(absl::StartsWith(info.name(), "shoal-unpack-")) << info.name();
  }
}

}  // namespace
}  // namespace shoal::agent::image
