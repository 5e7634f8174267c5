// ContainerLab: the real-container lab of tests/tools/lab, started from a test.
//
// One object owns one directory under /tmp holding a private containerd (tools/lab/containerd),
// the busybox test image as an OCI archive (tools/lab/image) and, when asked, a plain-HTTP
// registry on 127.0.0.1 (tools/lab/registry). Everything it starts is stopped by PID (through the
// scripts, which only signal the PIDs they recorded) when the object goes away; tests delete
// their containerd namespaces with EmptyNamespace first, so no shim outlives the lab.
//
//   static ContainerLab* lab;                       // in SetUpTestSuite
//   lab = ContainerLab::Start({.registry = true}).value();
//   SHOAL_REQUIRE(ContainerLab::Missing().empty(), ContainerLab::Missing());
//
// Tests that use it list //tests/harness:lab in deps (it brings the scripts as data) and are
// tagged "local": containerd needs root, the real /sys/fs/cgroup and /run/containerd.
#ifndef SHOAL_TESTS_HARNESS_LAB_H_
#define SHOAL_TESTS_HARNESS_LAB_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shoal::testing {

struct ContainerLabOptions {
  bool containerd = true;
  bool registry = false;
  // Extra arguments of `tools/lab/image build` for the default image (e.g. {"--cmd", "top"}).
  std::vector<std::string> image_args;
};

class ContainerLab {
 public:
  // Why this machine cannot run the lab, or "" when it can: root, the Debian packages
  // (containerd, runc, umoci, busybox-static; docker-registry and skopeo with a registry).
  static std::string Missing(const ContainerLabOptions& options = {});

  // Makes the directory, builds the image and starts what `options` asks for.
  static absl::StatusOr<std::unique_ptr<ContainerLab>> Start(const ContainerLabOptions& options);

  ~ContainerLab();  // Stop(), then removes the directory
  ContainerLab(const ContainerLab&) = delete;
  ContainerLab& operator=(const ContainerLab&) = delete;

  // Stops the registry and containerd (idempotent).
  absl::Status Stop();
  // Stops and starts containerd again on the same root and socket (what a host reboot of
  // containerd looks like to its clients; running shims survive).
  absl::Status RestartContainerd();

  const std::string& dir() const { return dir_; }
  const std::string& containerd_socket() const { return socket_; }
  // "overlayfs" when the kernel has overlay, else "native".
  const std::string& snapshotter() const { return snapshotter_; }
  // The busybox OCI archive.
  const std::string& image_tar() const { return image_tar_; }
  // The registry's HOST:PORT (empty without a registry).
  const std::string& registry() const { return registry_; }

  // Builds another image archive with `tools/lab/image build OUT args...` under the lab's
  // directory and returns its path.
  absl::StatusOr<std::string> BuildImage(const std::string& name,
                                         const std::vector<std::string>& args);
  // Pushes an OCI archive as NAME:TAG; returns the pullable "HOST:PORT/NAME:TAG@sha256:...".
  absl::StatusOr<std::string> Push(const std::string& archive, const std::string& name_tag);
  // `ctr images import` of an archive into `ns` as `base_name` (e.g. docker.io/library/busybox).
  absl::Status Import(const std::string& ns, const std::string& archive,
                      const std::string& base_name);
  // Runs `ctr -a <socket> args...`; returns stdout, or the error with stderr.
  absl::StatusOr<std::string> Ctr(const std::vector<std::string>& args);

  // Kills and deletes every task, container, image, snapshot and lease of `ns`, then the
  // namespace itself (content is collected asynchronously; bounded retries).
  absl::Status EmptyNamespace(const std::string& ns);

 private:
  ContainerLab() = default;
  absl::StatusOr<std::string> Script(const std::string& name, const std::vector<std::string>& args);

  std::string dir_;
  std::string socket_;
  std::string snapshotter_;
  std::string image_tar_;
  std::string registry_;
  bool containerd_running_ = false;
  bool registry_running_ = false;
};

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_HARNESS_LAB_H_
