// ContainerdExecutor: tasks as containerd 1.6 containers (runc shim), behind exec::Executor.
//
// A task T becomes, in the client's containerd namespace:
//   container T    labels = ContainerLabels(task, image) + com.shoal.* (below), spec = the OCI
//                  spec of oci_spec.h, runtime io.containerd.runc.v2, snapshot key T
//   snapshot T     active, on the image's top chain ID (prepared and the container created under
//                  a lease, deleted afterwards: an unreferenced active snapshot is garbage)
//   task T         rootfs = the snapshot's mounts, stdio = the log driver (log_driver.h)
// and, on the host:
//   <state>/containers/T/          container.log (+ rotations), hosts, hostname, resolv.conf
//   <state>/secrets/T/             a tmpfs (mode 0700, never on disk) holding the task's secret and
//                                  config files, bind-mounted read-only at their targets
//   <state>/volumes/<name>/_data   the named and anonymous volumes (left on Remove, as Docker)
//
// Phases come from containerd, so a new executor on the same namespace and state dir (an agent
// restart) adopts what runs: Inspect asks containerd; exits are delivered through ONE
// Events.Subscribe stream per executor (SubscribeTaskExits); when that stream ends (containerd
// restarted) the executor resubscribes and reconciles every task it waits for with Tasks.Get.
// Whether an exit was caused by Shutdown/Terminate/Remove (ExitStatus::stopped) and a failure of
// the executor's own (an unhealthy container) are kept as container labels, so they survive a
// restart too:
//   com.shoal.task         the task ID (what ListAdoptable lists)
//   com.shoal.stop-signal  the signal number Shutdown sends first
//   com.shoal.stopped      "true" once a stop was asked
//   com.shoal.exit-error   set when the executor killed the task for a reason ("task: unhealthy
//                          container (...)")
//   com.shoal.health       the health check, JSON (argv, interval, timeout, ...), when there is one
//
// Stopping: Shutdown sends the stop signal (spec, else image, else SIGTERM) to the init process,
// waits at most `grace`, then SIGKILLs every process of the container; a PID 1 without a SIGTERM
// handler ignores SIGTERM, so a bare `sleep` ends with 137 after the grace. Exit codes are
// containerd's (128+N for signal N).
//
// Health checks: one thread runs every task's checks (Tasks.Exec of the check's argv with the
// container's env, user and cwd), as Docker: not before `start_period` counts failures, each
// check bounded by `timeout`, UNHEALTHY after `retries` failures in a row; then the task is
// SIGKILLed and exits with error "task: unhealthy container (<last result>)". Health changes go
// to the controller's status listener, as does the image pull's progress.
//
// Thread-safety: as Executor and Controller (agent/exec/executor.h). REQUIRES: the executor
// outlives its controllers.
#ifndef SHOAL_AGENT_EXEC_CONTAINERD_CONTAINERD_EXECUTOR_H_
#define SHOAL_AGENT_EXEC_CONTAINERD_CONTAINERD_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/containerd/client.h"
#include "agent/exec/containerd/log_driver.h"
#include "agent/exec/containerd/oci_spec.h"
#include "agent/exec/executor.h"
#include "agent/image/image_store.h"
#include "common/clock.h"
#include "proto/objects.pb.h"

namespace shoal::agent::exec::containerd {

namespace ctrd = ::shoal::agent::containerd;

inline constexpr char kTaskLabel[] = "com.shoal.task";
inline constexpr char kStopSignalLabel[] = "com.shoal.stop-signal";
inline constexpr char kStoppedLabel[] = "com.shoal.stopped";
inline constexpr char kExitErrorLabel[] = "com.shoal.exit-error";
inline constexpr char kHealthLabel[] = "com.shoal.health";

struct ContainerdExecutorOptions {
  // A client for the namespace the executor owns (e.g. "shoal"). Required.
  std::shared_ptr<ctrd::ContainerdClient> client;
  // Where images come from. Required.
  image::ImageStore* images = nullptr;
  // The executor's directory (see the header comment). Required, absolute.
  std::string state_dir;
  Clock* clock = &RealClock();
  std::string snapshotter = "overlayfs";
  // runc's state directory for Tasks.Create's options; empty = the shim's default
  // (/run/containerd/runc/<namespace>).
  std::string runc_root;
  // The secrets and configs the worker holds, by ID. A task that references one the getter cannot
  // give is rejected at Prepare.
  std::function<absl::StatusOr<api::Secret>(const std::string&)> secret_getter;
  std::function<absl::StatusOr<api::Config>(const std::string&)> config_getter;
  // The binary the shim runs as the task's log driver (RunLogDriver: shoald, or the
  // shoal_log_driver test binary). Required, absolute.
  std::string log_driver_path;
  int64_t log_max_bytes = kDefaultLogMaxBytes;
  int log_max_files = kDefaultLogMaxFiles;
  // The network namespace a task joins (a path such as /var/run/netns/x); empty = a new one with
  // loopback only. Null = always a new one.
  std::function<std::string(const api::Task&)> netns;
  // The node as it is now, for hostname and env templates ({{.Node.ID}}, {{.Node.Hostname}},
  // ...); called at each Prepare. Null: an empty node.
  std::function<api::Node()> node;
  // Static init binary for tasks with `init` (e.g. /usr/bin/tini-static); empty = none (such tasks
  // are rejected).
  std::string init_path;
  bool default_init = false;
  // The cgroup parent (cgroupfs style); empty = "/shoal/<namespace>", unique per namespace so
  // that two executors on one host never share a cgroup.
  std::string cgroup_parent;
  // RLIMIT_NOFILE the containers get (see OciSpecInputs::default_nofile); 0 = min(1048576, this
  // process's hard limit).
  uint64_t default_nofile = 0;
  // Up to this many replicated tasks of one service share a runc shim process (ShimGroup in
  // oci_spec.h); 0 or 1 = a shim per container, as Docker runs them. A shim costs a process start
  // per container and ~10 MB; sharing it means a shim crash takes down its group's containers.
  int shim_group_size = 0;
  // How long Remove waits for a killed task to exit before giving up.
  absl::Duration kill_timeout = absl::Seconds(10);
};

class ContainerdExecutor : public Executor {
 public:
  // Checks the options, creates the state directories and subscribes to task exits. Errors:
  // INVALID_ARGUMENT for missing options; containerd's error when it cannot subscribe.
  static absl::StatusOr<std::unique_ptr<ContainerdExecutor>> Create(
      ContainerdExecutorOptions options);
  ~ContainerdExecutor() override;  // REQUIRES: every controller destroyed.
  ContainerdExecutor(const ContainerdExecutor&) = delete;
  ContainerdExecutor& operator=(const ContainerdExecutor&) = delete;

  api::EngineDescription Describe() const override;
  absl::StatusOr<std::unique_ptr<Controller>> NewController(const api::Task& task) override;
  absl::StatusOr<std::vector<std::string>> ListAdoptable() override;

  // The task's log directory (<state>/containers/<id>).
  std::string TaskDir(const std::string& task_id) const;
  // The task's secrets tmpfs (<state>/secrets/<id>).
  std::string SecretsDir(const std::string& task_id) const;
  const std::string& state_dir() const { return options_.state_dir; }

 private:
  friend class ContainerdController;

  struct Registration {
    const void* owner;
    Controller::ExitCallback fn;
  };
  // What the executor remembers of a task beside containerd.
  struct TaskRecord {
    std::optional<ExitStatus> exit;  // Once known.
    bool stop_requested = false;
    std::string exit_error;
    bool removed = false;
  };
  struct HealthState;
  struct ProbeExit {
    std::string task_id;
    std::string exec_id;
    uint32_t exit_status;
  };
  // Work for the event thread.
  struct Event {
    enum class Kind { kExit, kResubscribe } kind = Kind::kExit;
    std::string task_id;
    uint32_t exit_status = 0;
  };

  explicit ContainerdExecutor(ContainerdExecutorOptions options);
  absl::Status Subscribe();
  void EventLoop();
  void HealthLoop();

  // Controller operations, by task.
  absl::Status Prepare(const api::Task& task,
                       const std::function<void(const ControllerStatus&)>& report);
  absl::Status Start(const std::string& id);
  absl::StatusOr<RuntimeState> Inspect(const std::string& id);
  void NotifyExit(const std::string& id, const void* owner, Controller::ExitCallback fn);
  void Unregister(const std::string& id, const void* owner);
  absl::Status Shutdown(const std::string& id, absl::Duration grace);
  absl::Status Terminate(const std::string& id);
  absl::Status Remove(const std::string& id);
  void SetStatusListener(const std::string& id, const void* owner,
                         std::function<void(const ControllerStatus&)> listener);

  // Prepare's pieces.
  absl::Status WriteSecrets(const api::Task& task, const std::string& dir);
  absl::Status WriteHostFiles(const std::string& task_dir, const std::string& hostname,
                              const api::ContainerSpec& spec);
  // Removes the cgroup parent directories once no task uses them.
  void RemoveEmptyCgroupParent();
  absl::Status CreateContainer(const api::Task& task, const image::LocalImage& image,
                               const ImageConfig& config);

  // Records that a stop was asked (label and memory) before signalling.
  absl::Status MarkStopped(const std::string& id);
  // Records the executor's own reason to end the task.
  absl::Status MarkExitError(const std::string& id, const std::string& error);
  // Kills with SIGKILL (every process) and waits for the exit at most `timeout`.
  absl::Status KillAndWait(const std::string& id, absl::Duration timeout);
  // The exit of a stopped task from containerd (labels for stopped/error).
  absl::StatusOr<ExitStatus> ExitFromContainerd(const std::string& id, uint32_t exit_status);
  // Records `exit` for `id` and runs its callbacks (once). REQUIRES: no lock held.
  void DeliverExit(const std::string& id, const ExitStatus& exit);
  void Report(const std::string& id, const ControllerStatus& status);
  // Re-reads every task someone waits for (after a resubscription).
  void Reconcile();

  // Health.
  void StartHealth(const std::string& id);
  void StopHealth(const std::string& id);
  void OnProbeExit(const std::string& task_id, const std::string& exec_id, uint32_t status);

  const ContainerdExecutorOptions options_;
  const std::shared_ptr<ctrd::ContainerdClient> client_;
  Clock* const clock_;
  std::string cgroup_parent_;
  uint64_t default_nofile_ = 0;

  // Serialises callback registration and delivery (each runs at most once, none after its
  // controller is gone). Taken before mu_.
  absl::Mutex callback_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unordered_multimap<std::string, Registration> callbacks_ ABSL_GUARDED_BY(callback_mu_);
  std::map<std::pair<std::string, const void*>, std::function<void(const ControllerStatus&)>>
      listeners_ ABSL_GUARDED_BY(callback_mu_);
  std::map<std::string, ControllerStatus> statuses_ ABSL_GUARDED_BY(callback_mu_);

  absl::Mutex mu_;
  std::map<std::string, TaskRecord> records_ ABSL_GUARDED_BY(mu_);
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<ctrd::EventSubscription>
      subscription_;  // Owned by the event thread after Create.
  std::thread event_thread_;

  // Health checks.
  absl::Mutex health_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::map<std::string, std::unique_ptr<HealthState>> health_ ABSL_GUARDED_BY(health_mu_);
  std::vector<ProbeExit> probe_exits_ ABSL_GUARDED_BY(health_mu_);
  bool health_stopping_ ABSL_GUARDED_BY(health_mu_) = false;
  bool health_wake_ ABSL_GUARDED_BY(health_mu_) = false;
  std::thread health_thread_;
};

}  // namespace shoal::agent::exec::containerd

#endif  // SHOAL_AGENT_EXEC_CONTAINERD_CONTAINERD_EXECUTOR_H_
