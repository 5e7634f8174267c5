#include "node/task_runtime.h"

#include <limits.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/containerd/client.h"
#include "agent/exec/containerd/containerd_executor.h"
#include "agent/exec/containerd/log_driver.h"
#include "agent/exec/sim/sim_executor.h"
#include "agent/image/containerd_image_store.h"
#include "common/files.h"

namespace shoal::node {
namespace {

// How long the daemon waits at start for containerd to answer.
constexpr absl::Duration kContainerdConnectTimeout = absl::Seconds(10);
constexpr char kLogDriverName[] = "shoal-log-driver";

}  // namespace

absl::StatusOr<std::string> DefaultLogDriver() {
  absl::StatusOr<std::string> self = SelfExecutable();
  if (!self.ok()) return self;
  const std::string sibling = absl::StrCat(self->substr(0, self->rfind('/') + 1), kLogDriverName);
  if (::access(sibling.c_str(), X_OK) == 0) return sibling;
  return self;
}

absl::StatusOr<std::string> SelfExecutable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) {
    return absl::InternalError("cannot read /proc/self/exe: the log driver needs shoald's path");
  }
  return std::string(buf, static_cast<size_t>(n));
}

TaskRuntime::~TaskRuntime() {
  logs_ = nullptr;
  owned_logs_.reset();
  executor_.reset();
  images_.reset();
  client_.reset();
}

absl::StatusOr<std::unique_ptr<TaskRuntime>> TaskRuntime::Open(TaskRuntimeOptions options) {
  std::unique_ptr<TaskRuntime> runtime(new TaskRuntime());
  Clock* clock = options.clock != nullptr ? options.clock : &RealClock();

  if (options.executor == "sim") {
    if (absl::Status s = MakeDirectories(absl::StrCat(options.state_dir, "/worker"), 0700);
        !s.ok()) {
      return s;
    }
    agent::exec::SimExecutorOptions so;
    so.clock = clock;
    so.state_file = absl::StrCat(options.state_dir, "/worker/sim.json");
    absl::StatusOr<std::unique_ptr<agent::exec::SimExecutor>> sim =
        agent::exec::SimExecutor::Create(so);
    if (!sim.ok()) return sim.status();
    runtime->logs_ = (*sim)->log_source();
    runtime->executor_ = std::move(*sim);
    return runtime;
  }

  if (options.executor != "containerd") {
    return absl::InvalidArgumentError(
        absl::StrCat("--executor must be containerd or sim (got \"", options.executor, "\")"));
  }
  absl::StatusOr<std::unique_ptr<agent::containerd::ContainerdClient>> client =
      agent::containerd::ContainerdClient::Connect(
          options.containerd_address, options.containerd_namespace, kContainerdConnectTimeout);
  if (!client.ok()) return client.status();
  runtime->client_ = std::move(*client);

  agent::image::ContainerdImageStoreOptions io;
  io.client = runtime->client_;
  io.registry.insecure_registries = options.insecure_registries;
  io.registry.clock = clock;
  absl::StatusOr<std::unique_ptr<agent::image::ContainerdImageStore>> images =
      agent::image::ContainerdImageStore::Create(io);
  if (!images.ok()) return images.status();
  runtime->images_ = std::move(*images);

  namespace cx = agent::exec::containerd;
  cx::ContainerdExecutorOptions eo;
  eo.client = runtime->client_;
  eo.images = runtime->images_.get();
  eo.state_dir = absl::StrCat(options.state_dir, "/containerd");
  eo.clock = clock;
  eo.secret_getter = options.deps.secret;
  eo.config_getter = options.deps.config;
  eo.node = options.deps.node;
  eo.log_driver_path = options.log_driver_path;
  eo.shim_group_size = options.shim_group_size;
  absl::StatusOr<std::unique_ptr<cx::ContainerdExecutor>> executor =
      cx::ContainerdExecutor::Create(std::move(eo));
  if (!executor.ok()) return executor.status();
  runtime->owned_logs_ = std::make_unique<cx::ContainerdLogSource>((*executor)->state_dir());
  runtime->logs_ = runtime->owned_logs_.get();
  runtime->executor_ = std::move(*executor);
  return runtime;
}

}  // namespace shoal::node
