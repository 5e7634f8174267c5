// TaskRuntime: what runs a node's tasks, chosen by shoald's --executor, and everything it needs —
//
//   containerd  a client for --containerd / --containerd-namespace (containerd must answer when
//               the daemon starts: otherwise an UNAVAILABLE error that names the socket and the
//               fix), the image store on it (registry pulls, --insecure-registry), the
//               containerd executor (state under <state-dir>/containerd: task logs, secrets
//               tmpfs mounts, bundles), and the tasks' logs for `shoal service logs`;
//   sim         the simulated executor (<state-dir>/worker/sim.json) and its task logs.
//
// The executor asks for the secrets, configs and node it needs through `deps`, which the node
// points at its current worker and identity; a runtime outlives every worker.
#ifndef SHOAL_NODE_TASK_RUNTIME_H_
#define SHOAL_NODE_TASK_RUNTIME_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/exec/executor.h"
#include "agent/logs/log_source.h"
#include "common/clock.h"
#include "proto/objects.pb.h"

namespace shoal::agent::containerd {
class ContainerdClient;
}  // namespace shoal::agent::containerd
namespace shoal::agent::image {
class ImageStore;
}  // namespace shoal::agent::image

namespace shoal::node {

// Where the executor gets what the managers assigned: the worker's secrets and configs, and the
// node (for templates). Each may be called on any thread.
struct TaskDependencies {
  std::function<absl::StatusOr<api::Secret>(const std::string&)> secret;
  std::function<absl::StatusOr<api::Config>(const std::string&)> config;
  std::function<api::Node()> node;
};

struct TaskRuntimeOptions {
  std::string executor;  // "containerd" or "sim"
  std::string state_dir;
  Clock* clock = nullptr;
  std::string containerd_address;
  std::string containerd_namespace;
  std::vector<std::string> insecure_registries;
  // ContainerdExecutorOptions::shim_group_size.
  int shim_group_size = 1;
  // The binary containerd's shim runs as a task's log driver (DefaultLogDriver()).
  std::string log_driver_path;
  TaskDependencies deps;
};

class TaskRuntime {
 public:
  // Errors: INVALID_ARGUMENT for an unknown executor; UNAVAILABLE when containerd is not
  // reachable; the executor's own errors (state directories, event subscription).
  static absl::StatusOr<std::unique_ptr<TaskRuntime>> Open(TaskRuntimeOptions options);
  ~TaskRuntime();
  TaskRuntime(const TaskRuntime&) = delete;
  TaskRuntime& operator=(const TaskRuntime&) = delete;

  agent::exec::Executor* executor() const { return executor_.get(); }
  // The tasks' output; null when the executor keeps none.
  agent::logs::TaskLogSource* logs() const { return logs_; }

 private:
  TaskRuntime() = default;

  // Destroyed in reverse: the log source and executor before the images and the client they use.
  std::shared_ptr<agent::containerd::ContainerdClient> client_;
  std::unique_ptr<agent::image::ImageStore> images_;
  std::unique_ptr<agent::exec::Executor> executor_;
  std::unique_ptr<agent::logs::TaskLogSource> owned_logs_;
  agent::logs::TaskLogSource* logs_ = nullptr;
};

// The real path of the running binary (/proc/self/exe).
absl::StatusOr<std::string> SelfExecutable();
// The log driver the shim runs for each task: shoal-log-driver beside this binary when it is
// installed (it starts faster and is smaller), else this binary itself (shoald plays the part
// when its arguments say so).
absl::StatusOr<std::string> DefaultLogDriver();

}  // namespace shoal::node

#endif  // SHOAL_NODE_TASK_RUNTIME_H_
