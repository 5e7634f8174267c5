#include "tests/harness/lab.h"

#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/containerd/client.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

constexpr absl::Duration kScriptTimeout = absl::Seconds(120);

std::string FindOnPath(const std::string& tool) {
  const char* path = getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  // Debian keeps sbin tools off a plain user's PATH.
  absl::StrAppend(&dirs, ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  for (absl::string_view dir : absl::StrSplit(dirs, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", tool);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string LabScriptPath(const std::string& name) {
  std::string path = RunfilePath("tools/lab/" + name);
  return ::access(path.c_str(), X_OK) == 0 ? path : "";
}

}  // namespace

std::string ContainerLab::Missing(const ContainerLabOptions& options) {
  if (geteuid() != 0) return "needs root (containerd, runc and overlay mounts run as root)";
  std::vector<std::string> tools = {"ctr", "umoci"};
  std::string packages = "umoci busybox-static";
  if (options.containerd) {
    for (const char* t : {"containerd", "runc", "containerd-shim-runc-v2"}) tools.push_back(t);
    absl::StrAppend(&packages, " containerd runc");
  }
  if (options.registry) {
    for (const char* t : {"docker-registry", "skopeo", "curl"}) tools.push_back(t);
    absl::StrAppend(&packages, " docker-registry skopeo curl");
  }
  for (const std::string& tool : tools) {
    if (FindOnPath(tool).empty()) {
      return absl::StrCat(tool, " is not installed (Debian packages: ", packages,
                          "; tools/setup installs them)");
    }
  }
  if (::access("/bin/busybox", X_OK) != 0) return "/bin/busybox is missing (busybox-static)";
  for (const char* script : {"containerd", "image", "registry"}) {
    if (LabScriptPath(script).empty()) {
      return absl::StrCat("tools/lab/", script,
                          " is not in the test's runfiles (depend on //tests/harness:lab)");
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ContainerLab>> ContainerLab::Start(
    const ContainerLabOptions& options) {
  if (std::string missing = Missing(options); !missing.empty()) {
    return absl::FailedPreconditionError(missing);
  }
  std::unique_ptr<ContainerLab> lab(new ContainerLab());
  // Short: containerd's socket paths must fit in 108 bytes.
  char tmpl[] = "/tmp/shoal-lab-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp under /tmp failed");
  lab->dir_ = tmpl;
  lab->snapshotter_ = ReadWholeFile("/proc/filesystems").find("\toverlay\n") != std::string::npos
                          ? "overlayfs"
                          : "native";
  lab->image_tar_ = lab->dir_ + "/busybox.tar";
  std::vector<std::string> build = {"build", lab->image_tar_};
  build.insert(build.end(), options.image_args.begin(), options.image_args.end());
  if (auto built = lab->Script("image", build); !built.ok()) return built.status();
  if (options.containerd) {
    auto socket = lab->Script("containerd", {"start", lab->dir_ + "/ctrd"});
    if (!socket.ok()) return socket.status();
    lab->socket_ = std::string(absl::StripAsciiWhitespace(*socket));
    lab->containerd_running_ = true;
  }
  if (options.registry) {
    absl::Status last;
    // The port is free when picked; another process may take it before the registry binds.
    for (int attempt = 0; attempt < 3 && lab->registry_.empty(); ++attempt) {
      auto address = lab->Script("registry", {"start", lab->dir_ + "/registry", "--port",
                                              std::to_string(PickFreeLoopbackPort())});
      if (address.ok()) {
        lab->registry_ = std::string(absl::StripAsciiWhitespace(*address));
      } else {
        last = address.status();
      }
    }
    if (lab->registry_.empty()) return last;
    lab->registry_running_ = true;
  }
  return lab;
}

ContainerLab::~ContainerLab() {
  absl::Status stopped = Stop();
  if (!stopped.ok()) fprintf(stderr, "ContainerLab: %s\n", stopped.ToString().c_str());
  if (dir_.empty()) return;
  // Overlay and tmpfs mounts a crashed test left behind would make remove_all fail.
  std::string mounts = ReadWholeFile("/proc/self/mounts");
  std::vector<std::string> under;
  for (absl::string_view line : absl::StrSplit(mounts, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    if (fields.size() > 1 && absl::StartsWith(fields[1], dir_ + "/")) {
      under.emplace_back(fields[1]);
    }
  }
  for (auto it = under.rbegin(); it != under.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::Status ContainerLab::Stop() {
  absl::Status result;
  if (registry_running_) {
    auto stopped = Script("registry", {"stop", dir_ + "/registry"});
    if (!stopped.ok()) result.Update(stopped.status());
    registry_running_ = false;
  }
  if (containerd_running_) {
    auto stopped = Script("containerd", {"stop", dir_ + "/ctrd"});
    if (!stopped.ok()) result.Update(stopped.status());
    containerd_running_ = false;
  }
  return result;
}

absl::Status ContainerLab::RestartContainerd() {
  if (containerd_running_) {
    auto stopped = Script("containerd", {"stop", dir_ + "/ctrd"});
    if (!stopped.ok()) return stopped.status();
    containerd_running_ = false;
  }
  auto socket = Script("containerd", {"start", dir_ + "/ctrd"});
  if (!socket.ok()) return socket.status();
  socket_ = std::string(absl::StripAsciiWhitespace(*socket));
  containerd_running_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ContainerLab::BuildImage(const std::string& name,
                                                     const std::vector<std::string>& args) {
  std::string out = absl::StrCat(dir_, "/", name, ".tar");
  std::vector<std::string> build = {"build", out};
  build.insert(build.end(), args.begin(), args.end());
  if (auto built = Script("image", build); !built.ok()) return built.status();
  return out;
}

absl::StatusOr<std::string> ContainerLab::Push(const std::string& archive,
                                               const std::string& name_tag) {
  if (!registry_running_) {
    return absl::FailedPreconditionError("the lab has no registry (ContainerLabOptions.registry)");
  }
  auto pushed = Script("registry", {"push", dir_ + "/registry", archive, name_tag});
  if (!pushed.ok()) return pushed.status();
  return std::string(absl::StripAsciiWhitespace(*pushed));
}

absl::Status ContainerLab::Import(const std::string& ns, const std::string& archive,
                                  const std::string& base_name) {
  return Ctr({"-n", ns, "images", "import", "--snapshotter", snapshotter_, "--base-name", base_name,
              archive})
      .status();
}

absl::StatusOr<std::string> ContainerLab::Ctr(const std::vector<std::string>& args) {
  if (!containerd_running_) return absl::FailedPreconditionError("the lab's containerd is down");
  std::vector<std::string> argv = {FindOnPath("ctr"), "-a", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions options;
  options.timeout = kScriptTimeout;
  CommandResult r = RunCommand(argv, options);
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("ctr ", absl::StrJoin(args, " "), " failed (exit ",
                                            r.exit_code, "): ", r.err));
  }
  return r.out;
}

absl::Status ContainerLab::EmptyNamespace(const std::string& ns) {
  auto connected =
      ::shoal::agent::containerd::ContainerdClient::Connect(socket_, ns, absl::Seconds(10));
  if (!connected.ok()) return connected.status();
  ::shoal::agent::containerd::ContainerdClient& c = **connected;
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
  absl::Status last;
  // Content is collected asynchronously once nothing references it: bounded retries.
  for (int i = 0; i < 50; ++i) {
    last = c.DeleteNamespace(ns);
    if (last.ok() || absl::IsNotFound(last)) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::InternalError(
      absl::StrCat("containerd namespace ", ns, " left non-empty: ", last.ToString()));
}

absl::StatusOr<std::string> ContainerLab::Script(const std::string& name,
                                                 const std::vector<std::string>& args) {
  std::vector<std::string> argv = {LabScriptPath(name)};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions options;
  options.timeout = kScriptTimeout;
  CommandResult r = RunCommand(argv, options);
  if (r.exit_code != 0) {
    return absl::InternalError(absl::StrCat("tools/lab/", name, " ", absl::StrJoin(args, " "),
                                            " failed (exit ", r.exit_code, "): ", r.out, r.err));
  }
  return r.out;
}

}  // namespace shoal::testing
