#include "agent/exec/containerd/containerd_executor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/files.h"

namespace shoal::agent::exec::containerd {
namespace {

constexpr uint32_t kTmpfsMagic = 0x01021994;
constexpr int64_t kSecretsTmpfsBaseBytes = 1 << 20;
constexpr absl::Duration kHealthPoll = absl::Milliseconds(50);
constexpr absl::Duration kResubscribeMin = absl::Milliseconds(100);
constexpr absl::Duration kResubscribeMax = absl::Seconds(1);

using ctrd::task_types_pb::Process;

std::string ErrnoText(int err) { return std::strerror(err); }

absl::Status Annotate(const absl::Status& s, absl::string_view what) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(what, ": ", std::string(s.message())));
}

// containerd's identifier rule (identifiers.Validate): [A-Za-z0-9] then [A-Za-z0-9_.-], ≤ 76.
bool IsValidContainerId(const std::string& id) {
  if (id.empty() || id.size() > 76 || !absl::ascii_isalnum(id[0])) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool IsRunning(const Process& p) {
  return p.status() == ctrd::task_types_pb::RUNNING || p.status() == ctrd::task_types_pb::PAUSED ||
         p.status() == ctrd::task_types_pb::PAUSING;
}

// Reads `rel` (e.g. "etc/passwd") from the image layers under an overlay or bind mount, top layer
// first, as the container will see it; empty when absent (or whited out).
std::string ReadFromLayers(const ctrd::Mounts& mounts, const std::string& rel) {
  std::vector<std::string> dirs;
  for (const auto& m : mounts) {
    if (m.type() == "bind") {
      dirs.push_back(m.source());
      continue;
    }
    for (const std::string& opt : m.options()) {
      if (absl::StartsWith(opt, "upperdir=")) dirs.insert(dirs.begin(), opt.substr(9));
    }
    for (const std::string& opt : m.options()) {
      if (!absl::StartsWith(opt, "lowerdir=")) continue;
      for (absl::string_view d : absl::StrSplit(opt.substr(9), ':')) dirs.emplace_back(d);
    }
  }
  for (const std::string& dir : dirs) {
    const std::string path = absl::StrCat(dir, "/", rel);
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISCHR(st.st_mode)) return "";  // An overlay whiteout: deleted in this layer.
    if (!S_ISREG(st.st_mode)) return "";
    absl::StatusOr<std::string> data = ReadFile(path);
    return data.ok() ? *data : "";
  }
  return "";
}

bool IsTmpfsMount(const std::string& dir) {
  struct statfs fs;
  if (statfs(dir.c_str(), &fs) != 0 || static_cast<uint32_t>(fs.f_type) != kTmpfsMagic) {
    return false;
  }
  // A tmpfs parent (e.g. /tmp on tmpfs) does not count: the directory must be a mount point.
  struct stat self, parent;
  if (stat(dir.c_str(), &self) != 0) return false;
  if (stat(absl::StrCat(dir, "/..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev;
}

absl::StatusOr<uint32_t> ParseId(const std::string& s, const char* what) {
  if (s.empty()) return 0;
  uint32_t v;
  if (!absl::SimpleAtoi(s, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " \"", s, "\" is not numeric"));
  }
  return v;
}

// Writes `data` at `path` with mode and owner, never following a symlink.
absl::Status WriteSecretFile(const std::string& path, const std::string& data,
                             const api::FileTarget& target) {
  absl::StatusOr<uint32_t> uid = ParseId(target.uid(), "uid");
  if (!uid.ok()) return uid.status();
  absl::StatusOr<uint32_t> gid = ParseId(target.gid(), "gid");
  if (!gid.ok()) return gid.status();
  const mode_t mode = target.mode() == 0 ? 0444 : (target.mode() & 07777);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", ErrnoText(errno)));
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::InternalError(absl::StrCat("cannot write ", path, ": ", ErrnoText(err)));
    }
    done += n;
  }
  if (fchown(fd, *uid, *gid) != 0 || fchmod(fd, mode) != 0) {
    const int err = errno;
    close(fd);
    return absl::InternalError(
        absl::StrCat("cannot set the owner and mode of ", path, ": ", ErrnoText(err)));
  }
  close(fd);
  return absl::OkStatus();
}

nlohmann::json HealthToJson(const Healthcheck& hc) {
  return {{"args", hc.args},
          {"interval_ns", absl::ToInt64Nanoseconds(hc.interval)},
          {"timeout_ns", absl::ToInt64Nanoseconds(hc.timeout)},
          {"start_period_ns", absl::ToInt64Nanoseconds(hc.start_period)},
          {"start_interval_ns", absl::ToInt64Nanoseconds(hc.start_interval)},
          {"retries", hc.retries}};
}

std::optional<Healthcheck> HealthFromJson(const std::string& s) {
  nlohmann::json j = nlohmann::json::parse(s, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  try {
    Healthcheck hc;
    hc.args = j.at("args").get<std::vector<std::string>>();
    hc.interval = absl::Nanoseconds(j.at("interval_ns").get<int64_t>());
    hc.timeout = absl::Nanoseconds(j.at("timeout_ns").get<int64_t>());
    hc.start_period = absl::Nanoseconds(j.at("start_period_ns").get<int64_t>());
    hc.start_interval = absl::Nanoseconds(j.at("start_interval_ns").get<int64_t>());
    hc.retries = j.at("retries").get<int>();
    if (hc.args.empty() || hc.interval <= absl::ZeroDuration()) return std::nullopt;
    return hc;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::string FormatBytes(int64_t n) {
  if (n >= (1 << 20)) return absl::StrFormat("%.1f MB", n / 1e6);
  if (n >= 1000) return absl::StrFormat("%.1f kB", n / 1e3);
  return absl::StrCat(n, " B");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The controller: every operation goes to the executor by task.
// ---------------------------------------------------------------------------------------------

class ContainerdController : public Controller {
 public:
  ContainerdController(ContainerdExecutor* executor, api::Task task)
      : executor_(executor), task_(std::move(task)) {}
  ~ContainerdController() override {
    executor_->Unregister(task_.id(), this);
    executor_->SetStatusListener(task_.id(), this, nullptr);
  }

  absl::Status Prepare() override {
    return executor_->Prepare(
        task_, [this](const ControllerStatus& status) { executor_->Report(task_.id(), status); });
  }
  absl::Status Start() override { return executor_->Start(task_.id()); }
  absl::StatusOr<RuntimeState> Inspect() override { return executor_->Inspect(task_.id()); }
  void NotifyExit(ExitCallback on_exit) override {
    executor_->NotifyExit(task_.id(), this, std::move(on_exit));
  }
  absl::Status Shutdown(absl::Duration grace) override {
    return executor_->Shutdown(task_.id(), grace);
  }
  absl::Status Terminate() override { return executor_->Terminate(task_.id()); }
  absl::Status Remove() override { return executor_->Remove(task_.id()); }
  void SetStatusListener(StatusListener listener) override {
    executor_->SetStatusListener(task_.id(), this, std::move(listener));
  }

 private:
  ContainerdExecutor* const executor_;
  const api::Task task_;
};

// A task's health check, run by the health thread.
struct ContainerdExecutor::HealthState {
  Healthcheck check;
  std::string process_json;  // The container's process; args replaced per probe.
  absl::Time started;        // Executor clock.
  absl::Time next_probe;
  int failures = 0;
  int probes = 0;
  bool healthy_once = false;
  api::TaskStatus::Health health = api::TaskStatus::STARTING;
  // The probe in flight.
  std::string exec_id;
  absl::Time deadline = absl::InfiniteFuture();
};

// ---------------------------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ContainerdExecutor>> ContainerdExecutor::Create(
    ContainerdExecutorOptions options) {
  if (options.client == nullptr) {
    return absl::InvalidArgumentError("containerd executor: no containerd client given");
  }
  if (options.images == nullptr) {
    return absl::InvalidArgumentError("containerd executor: no image store given");
  }
  if (options.clock == nullptr) {
    return absl::InvalidArgumentError("containerd executor: no clock given");
  }
  if (options.state_dir.empty() || options.state_dir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("containerd executor: the state directory must be an absolute path (got \"",
                     options.state_dir, "\")"));
  }
  if (options.log_driver_path.empty() || options.log_driver_path[0] != '/' ||
      access(options.log_driver_path.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "containerd executor: the log driver \"", options.log_driver_path,
        "\" is not an executable absolute path (it is the binary containerd's shim runs to keep "
        "task logs: shoald itself)"));
  }
  for (const char* sub : {"containers", "secrets", "volumes"}) {
    if (absl::Status s = MakeDirectories(absl::StrCat(options.state_dir, "/", sub), 0700);
        !s.ok()) {
      return Annotate(s, "containerd executor");
    }
  }
  std::unique_ptr<ContainerdExecutor> executor(new ContainerdExecutor(std::move(options)));
  if (absl::Status s = executor->Subscribe(); !s.ok()) return s;
  executor->event_thread_ = std::thread([e = executor.get()] { e->EventLoop(); });
  executor->health_thread_ = std::thread([e = executor.get()] { e->HealthLoop(); });
  return executor;
}

ContainerdExecutor::ContainerdExecutor(ContainerdExecutorOptions options)
    : options_(std::move(options)), client_(options_.client), clock_(options_.clock) {
  cgroup_parent_ = options_.cgroup_parent.empty() ? absl::StrCat("/shoal/", client_->ns())
                                                  : options_.cgroup_parent;
  default_nofile_ = options_.default_nofile;
  if (default_nofile_ == 0) {
    struct rlimit rl;
    default_nofile_ = kDefaultNofile;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY) {
      default_nofile_ = std::min<uint64_t>(default_nofile_, rl.rlim_max);
    }
  }
}

ContainerdExecutor::~ContainerdExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  {
    absl::MutexLock lock(&health_mu_);
    health_stopping_ = true;
  }
  if (event_thread_.joinable()) event_thread_.join();
  if (health_thread_.joinable()) health_thread_.join();
  subscription_.reset();
}

absl::Status ContainerdExecutor::Subscribe() {
  auto sub = client_->SubscribeTaskExits(
      [this](const ctrd::TaskExitEvent& e) {
        if (e.exec_id.empty() || e.exec_id == e.container_id) {
          absl::MutexLock lock(&mu_);
          Event ev;
          ev.task_id = e.container_id;
          ev.exit_status = e.exit.exit_status;
          events_.push_back(std::move(ev));
        } else {
          OnProbeExit(e.container_id, e.exec_id, e.exit.exit_status);
        }
      },
      [this](const absl::Status& status) {
        spdlog::warn("containerd executor: the task exit stream ended ({}); resubscribing",
                     std::string(status.message()));
        absl::MutexLock lock(&mu_);
        Event ev;
        ev.kind = Event::Kind::kResubscribe;
        events_.push_back(std::move(ev));
      });
  if (!sub.ok()) return Annotate(sub.status(), "containerd executor: cannot watch task exits");
  subscription_ = std::move(*sub);
  return absl::OkStatus();
}

void ContainerdExecutor::EventLoop() {
  for (;;) {
    std::vector<Event> events;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !events_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      events.swap(events_);
    }
    for (const Event& e : events) {
      if (e.kind == Event::Kind::kExit) {
        {
          absl::MutexLock lock(&mu_);
          auto it = records_.find(e.task_id);
          if (it != records_.end() && it->second.removed) continue;
        }
        absl::StatusOr<ExitStatus> exit = ExitFromContainerd(e.task_id, e.exit_status);
        if (exit.ok()) DeliverExit(e.task_id, *exit);
        continue;
      }
      // Resubscribe, then catch up with what happened meanwhile.
      subscription_.reset();
      absl::Duration backoff = kResubscribeMin;
      for (;;) {
        absl::Status s = Subscribe();
        if (s.ok()) break;
        spdlog::warn("{}; retrying in {}", std::string(s.message()), absl::FormatDuration(backoff));
        absl::MutexLock lock(&mu_);
        auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
        mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);
        if (stopping_) return;
        backoff = std::min(backoff * 2, kResubscribeMax);
      }
      Reconcile();
    }
  }
}

void ContainerdExecutor::Reconcile() {
  std::set<std::string> ids;
  {
    absl::MutexLock lock(&callback_mu_);
    for (const auto& [id, reg] : callbacks_) ids.insert(id);
  }
  {
    absl::MutexLock lock(&health_mu_);
    for (const auto& [id, h] : health_) ids.insert(id);
  }
  for (const std::string& id : ids) {
    absl::StatusOr<Process> p = client_->GetTask(id);
    if (!p.ok() || p->status() != ctrd::task_types_pb::STOPPED) continue;
    absl::StatusOr<ExitStatus> exit = ExitFromContainerd(id, p->exit_status());
    if (exit.ok()) DeliverExit(id, *exit);
  }
}

api::EngineDescription ContainerdExecutor::Describe() const {
  api::EngineDescription engine;
  absl::StatusOr<ctrd::ContainerdClient::VersionInfo> v = client_->Version();
  engine.set_engine_version(v.ok() ? absl::StrCat("containerd ", v->version) : "containerd");
  return engine;
}

std::string ContainerdExecutor::TaskDir(const std::string& task_id) const {
  return absl::StrCat(options_.state_dir, "/containers/", task_id);
}

std::string ContainerdExecutor::SecretsDir(const std::string& task_id) const {
  return absl::StrCat(options_.state_dir, "/secrets/", task_id);
}

absl::StatusOr<std::unique_ptr<Controller>> ContainerdExecutor::NewController(
    const api::Task& task) {
  if (!IsValidContainerId(task.id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("containerd executor: task ID \"", task.id(),
                     "\" cannot name a container (letters, digits, '_', '.', '-'; at most 76)"));
  }
  return std::unique_ptr<Controller>(new ContainerdController(this, task));
}

absl::StatusOr<std::vector<std::string>> ContainerdExecutor::ListAdoptable() {
  absl::StatusOr<std::vector<ctrd::containers_pb::Container>> list =
      client_->ListContainers({absl::StrCat("labels.\"", kTaskLabel, "\"")});
  if (!list.ok()) return list.status();
  std::vector<std::string> ids;
  for (const auto& c : *list) ids.push_back(c.id());
  std::sort(ids.begin(), ids.end());
  return ids;
}

// --- Prepare ---------------------------------------------------------------------------------

absl::Status ContainerdExecutor::WriteSecrets(const api::Task& task, const std::string& dir) {
  const api::ContainerSpec& spec = task.spec().container_spec();
  if (spec.secrets_size() == 0 && spec.configs_size() == 0) return absl::OkStatus();
  // Gather the data first: a missing secret rejects the task before anything is mounted.
  std::vector<std::pair<std::string, std::string>> secrets;  // id → data
  std::vector<std::pair<std::string, std::string>> configs;
  int64_t total = 0;
  for (const auto& ref : spec.secrets()) {
    if (!options_.secret_getter) {
      return absl::FailedPreconditionError("this node cannot give tasks secrets (no secret store)");
    }
    absl::StatusOr<api::Secret> s = options_.secret_getter(ref.secret_id());
    if (!s.ok()) {
      return Annotate(s.status(), absl::StrCat("secret ", ref.secret_name(), " (", ref.secret_id(),
                                               ") is not available on this node"));
    }
    total += s->spec().data().size() + 4096;
    secrets.emplace_back(ref.secret_id(), s->spec().data());
  }
  for (const auto& ref : spec.configs()) {
    if (!options_.config_getter) {
      return absl::FailedPreconditionError("this node cannot give tasks configs (no config store)");
    }
    absl::StatusOr<api::Config> c = options_.config_getter(ref.config_id());
    if (!c.ok()) {
      return Annotate(c.status(), absl::StrCat("config ", ref.config_name(), " (", ref.config_id(),
                                               ") is not available on this node"));
    }
    total += c->spec().data().size() + 4096;
    configs.emplace_back(ref.config_id(), c->spec().data());
  }
  if (absl::Status s = MakeDirectories(dir, 0700); !s.ok()) return s;
  if (!IsTmpfsMount(dir)) {
    const std::string opts = absl::StrCat("mode=0700,size=", kSecretsTmpfsBaseBytes + total);
    if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot mount a tmpfs for the task's secrets at ",
                                              dir, ": ", ErrnoText(errno),
                                              " (the agent must run as root)"));
    }
  }
  for (int i = 0; i < spec.secrets_size(); ++i) {
    const auto& ref = spec.secrets(i);
    if (absl::Status s = WriteSecretFile(SecretHostPath(dir, ref), secrets[i].second, ref.file());
        !s.ok()) {
      return Annotate(s, absl::StrCat("secret ", ref.secret_name()));
    }
  }
  for (int i = 0; i < spec.configs_size(); ++i) {
    const auto& ref = spec.configs(i);
    if (absl::Status s = WriteSecretFile(ConfigHostPath(dir, ref), configs[i].second, ref.file());
        !s.ok()) {
      return Annotate(s, absl::StrCat("config ", ref.config_name()));
    }
  }
  return absl::OkStatus();
}

absl::Status ContainerdExecutor::WriteHostFiles(const std::string& task_dir,
                                                const std::string& hostname,
                                                const api::ContainerSpec& spec) {
  std::string hosts =
      absl::StrCat("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t",
                   hostname, "\n");
  // The spec's extra entries, "IP_address canonical_hostname [aliases...]" (hosts(5)).
  for (const std::string& entry : spec.hosts()) absl::StrAppend(&hosts, entry, "\n");
  if (absl::Status s = WriteFileAtomic(task_dir + "/hosts", hosts, 0644); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomic(task_dir + "/hostname", hostname + "\n", 0644); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::string> resolv = ReadFile("/etc/resolv.conf");
  return WriteFileAtomic(task_dir + "/resolv.conf", resolv.ok() ? *resolv : "", 0644);
}

absl::Status ContainerdExecutor::Prepare(
    const api::Task& original, const std::function<void(const ControllerStatus&)>& report) {
  const std::string& id = original.id();
  const std::string& ref = original.spec().container_spec().image();
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(id);
    if (it != records_.end() && it->second.removed) records_.erase(it);
  }
  // Adopt an existing container.
  absl::StatusOr<ctrd::containers_pb::Container> existing = client_->GetContainer(id);
  if (existing.ok()) {
    // Its secrets live in memory only: after a reboot the tmpfs is gone; write them again.
    if (original.has_spec() && !IsTmpfsMount(SecretsDir(id))) {
      if (absl::Status s = WriteSecrets(original, SecretsDir(id)); !s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(existing.status())) return existing.status();
  if (ref.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("task ", id, " has no image: a container spec with an image is required"));
  }

  // The image.
  image::EnsureOptions ensure;
  ensure.progress = [&report, &ref](const image::PullProgress& p) {
    ControllerStatus status;
    status.message = p.total > 0 ? absl::StrCat("pulling ", ref, ": ", FormatBytes(p.done), " / ",
                                                FormatBytes(p.total))
                                 : absl::StrCat("pulling ", ref, ": ", FormatBytes(p.done));
    report(status);
  };
  absl::StatusOr<image::LocalImage> image = options_.images->Ensure(ref, ensure);
  if (!image.ok()) return image.status();
  if (!image->pull_error.empty()) {
    spdlog::warn("task {}: pull of {} failed, using the local image: {}", id, ref,
                 image->pull_error);
  }
  if (image->chain_id.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "image ", ref, " has no layers (no chain ID): a container needs a root file system"));
  }
  absl::StatusOr<ImageConfig> config = ParseImageConfig(image->config_json);
  if (!config.ok()) return Annotate(config.status(), absl::StrCat("image ", ref));
  {
    ControllerStatus status;
    status.message = absl::StrCat("preparing container from ", image->name);
    report(status);
  }
  return CreateContainer(original, *image, *config);
}

absl::Status ContainerdExecutor::CreateContainer(const api::Task& original,
                                                 const image::LocalImage& image,
                                                 const ImageConfig& config) {
  const std::string& id = original.id();
  absl::StatusOr<api::ContainerSpec> expanded =
      ExpandContainerSpec(original, options_.node ? options_.node() : api::Node{});
  if (!expanded.ok()) return expanded.status();
  OciSpecInputs in;
  in.task = original;
  *in.task.mutable_spec()->mutable_container_spec() = *expanded;
  in.image = config;
  in.hostname = expanded->hostname().empty() ? id.substr(0, 12) : expanded->hostname();
  in.netns_path = options_.netns ? options_.netns(original) : "";
  in.state_dir_volumes = absl::StrCat(options_.state_dir, "/volumes");
  in.init_path = options_.init_path;
  in.default_init = options_.default_init;
  in.cgroup_parent = cgroup_parent_;
  in.default_nofile = default_nofile_;
  in.shim_group = ShimGroup(original, options_.shim_group_size);
  absl::StatusOr<int> stop_signal = StopSignalFor(*expanded, config);
  if (!stop_signal.ok()) return stop_signal.status();
  absl::StatusOr<std::optional<Healthcheck>> health = EffectiveHealthcheck(*expanded, config);
  if (!health.ok()) return health.status();

  // Host side: the task directory, its files, secrets and volumes.
  const std::string task_dir = TaskDir(id);
  if (absl::Status s = MakeDirectories(task_dir, 0700); !s.ok()) return s;
  if (absl::Status s = WriteHostFiles(task_dir, in.hostname, *expanded); !s.ok()) return s;
  in.hosts_path = task_dir + "/hosts";
  in.hostname_path = task_dir + "/hostname";
  in.resolv_conf_path = task_dir + "/resolv.conf";
  if (absl::Status s = WriteSecrets(in.task, SecretsDir(id)); !s.ok()) return s;
  in.secrets_dir = SecretsDir(id);
  absl::StatusOr<std::vector<VolumeUse>> volumes = PlanVolumes(in.task, in.state_dir_volumes);
  if (!volumes.ok()) return volumes.status();
  for (const VolumeUse& v : *volumes) {
    if (absl::Status s = MakeDirectories(v.host_path, 0755); !s.ok()) return s;
  }

  // containerd side, under a lease so that the garbage collector leaves the snapshot alone until
  // the container holds it.
  absl::StatusOr<std::string> lease =
      client_->CreateLease("", {{"com.shoal.task", id}}, absl::Minutes(10));
  if (!lease.ok()) return lease.status();
  std::unique_ptr<ctrd::ContainerdClient> leased = client_->WithLease(*lease);
  absl::Status result = [&]() -> absl::Status {
    absl::StatusOr<ctrd::Mounts> mounts = leased->PrepareSnapshot(
        image.snapshotter.empty() ? options_.snapshotter : image.snapshotter, id, image.chain_id);
    if (absl::IsAlreadyExists(mounts.status())) {
      mounts = leased->SnapshotMounts(
          image.snapshotter.empty() ? options_.snapshotter : image.snapshotter, id);
    }
    if (!mounts.ok()) return mounts.status();
    in.etc_passwd = ReadFromLayers(*mounts, "etc/passwd");
    in.etc_group = ReadFromLayers(*mounts, "etc/group");
    absl::StatusOr<std::string> spec = BuildOciSpec(in);
    if (!spec.ok()) return spec.status();

    ctrd::containers_pb::Container c;
    c.set_id(id);
    for (const auto& [k, v] : ContainerLabels(in.task, config)) (*c.mutable_labels())[k] = v;
    (*c.mutable_labels())[kTaskLabel] = id;
    (*c.mutable_labels())[kStopSignalLabel] = absl::StrCat(*stop_signal);
    if (health->has_value()) {
      (*c.mutable_labels())[kHealthLabel] = HealthToJson(**health).dump();
    }
    c.set_image(image.name);
    c.mutable_runtime()->set_name(ctrd::kRuncRuntime);
    *c.mutable_spec() = ctrd::OciSpecAny(*spec);
    c.set_snapshotter(image.snapshotter.empty() ? options_.snapshotter : image.snapshotter);
    c.set_snapshot_key(id);
    absl::StatusOr<ctrd::containers_pb::Container> created = leased->CreateContainer(c);
    if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
    return absl::OkStatus();
  }();
  if (absl::Status s = client_->DeleteLease(*lease); !s.ok() && !absl::IsNotFound(s)) {
    spdlog::warn("task {}: cannot delete lease {}: {}", id, *lease, std::string(s.message()));
  }
  if (!result.ok()) {
    // Leave nothing half-made behind (the lease's removal lets GC take the snapshot anyway).
    client_->RemoveSnapshot(options_.snapshotter, id).IgnoreError();
  }
  return result;
}

// --- Start -----------------------------------------------------------------------------------

absl::Status ContainerdExecutor::Start(const std::string& id) {
  absl::StatusOr<Process> task = client_->GetTask(id);
  if (task.ok()) {
    if (IsRunning(*task)) {
      StartHealth(id);
      return absl::OkStatus();
    }
    if (task->status() == ctrd::task_types_pb::STOPPED) {
      return absl::FailedPreconditionError(
          absl::StrCat("task ", id, " has already run and exited; a task is never started twice"));
    }
    // CREATED: a Start that stopped half-way; start it now.
  } else if (absl::IsNotFound(task.status())) {
    absl::StatusOr<ctrd::containers_pb::Container> c = client_->GetContainer(id);
    if (absl::IsNotFound(c.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("task ", id, " was not prepared: Prepare must come before Start"));
    }
    if (!c.ok()) return c.status();
    absl::StatusOr<ctrd::Mounts> mounts = client_->SnapshotMounts(c->snapshotter(), id);
    if (!mounts.ok()) return Annotate(mounts.status(), "the container's snapshot");
    ctrd::TaskCreateOptions create;
    create.container_id = id;
    create.rootfs = *mounts;
    LogDriverConfig log;
    log.dir = TaskDir(id);
    log.max_bytes = options_.log_max_bytes;
    log.max_files = options_.log_max_files;
    if (absl::Status s = MakeDirectories(log.dir, 0700); !s.ok()) return s;
    create.stdout_path = LogDriverUri(options_.log_driver_path, log);
    create.stderr_path = create.stdout_path;
    if (!options_.runc_root.empty()) {
      ctrd::runc_pb::Options runc;
      runc.set_root(options_.runc_root);
      create.options = ctrd::RuncOptionsAny(runc);
    }
    absl::StatusOr<uint32_t> pid = client_->CreateTask(create);
    if (!pid.ok() && !absl::IsAlreadyExists(pid.status())) return pid.status();
  } else {
    return task.status();
  }
  absl::StatusOr<uint32_t> pid = client_->StartTask(id);
  if (!pid.ok()) {
    // Started meanwhile (a retry racing the first call)?
    absl::StatusOr<Process> again = client_->GetTask(id);
    if (!again.ok() || again->status() == ctrd::task_types_pb::CREATED) return pid.status();
  }
  StartHealth(id);
  return absl::OkStatus();
}

// --- Inspect and exits -----------------------------------------------------------------------

absl::StatusOr<ExitStatus> ContainerdExecutor::ExitFromContainerd(const std::string& id,
                                                                  uint32_t exit_status) {
  ExitStatus exit;
  exit.exit_code = static_cast<int>(exit_status);
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(id);
    if (it != records_.end()) {
      if (it->second.exit.has_value()) return *it->second.exit;
      exit.stopped = it->second.stop_requested;
      exit.error = it->second.exit_error;
    }
  }
  if (!exit.stopped || exit.error.empty()) {
    absl::StatusOr<ctrd::containers_pb::Container> c = client_->GetContainer(id);
    if (c.ok()) {
      const auto& labels = c->labels();
      if (labels.count(kStoppedLabel) != 0) exit.stopped = true;
      auto err = labels.find(kExitErrorLabel);
      if (err != labels.end() && exit.error.empty()) exit.error = err->second;
    }
  }
  return exit;
}

void ContainerdExecutor::DeliverExit(const std::string& id, const ExitStatus& exit) {
  StopHealth(id);
  absl::MutexLock callback_lock(&callback_mu_);
  ExitStatus final_exit = exit;
  {
    absl::MutexLock lock(&mu_);
    TaskRecord& r = records_[id];
    if (r.removed) return;
    if (r.exit.has_value()) {
      final_exit = *r.exit;
    } else {
      r.exit = exit;
    }
  }
  auto range = callbacks_.equal_range(id);
  std::vector<Controller::ExitCallback> fns;
  for (auto it = range.first; it != range.second; ++it) fns.push_back(std::move(it->second.fn));
  callbacks_.erase(range.first, range.second);
  for (auto& fn : fns) fn(final_exit);
}

absl::StatusOr<RuntimeState> ContainerdExecutor::Inspect(const std::string& id) {
  RuntimeState state;
  absl::StatusOr<ctrd::containers_pb::Container> c = client_->GetContainer(id);
  if (absl::IsNotFound(c.status())) return state;
  if (!c.ok()) return c.status();
  state.container_id = id;
  absl::StatusOr<Process> p = client_->GetTask(id);
  if (absl::IsNotFound(p.status())) {
    state.phase = RuntimeState::Phase::kCreated;
    return state;
  }
  if (!p.ok()) return p.status();
  if (IsRunning(*p)) {
    state.phase = RuntimeState::Phase::kRunning;
    state.pid = static_cast<int>(p->pid());
    StartHealth(id);  // An adopted task's checks resume (no-op when they run).
  } else if (p->status() == ctrd::task_types_pb::STOPPED) {
    absl::StatusOr<ExitStatus> exit = ExitFromContainerd(id, p->exit_status());
    if (!exit.ok()) return exit.status();
    state.phase = RuntimeState::Phase::kExited;
    state.exit = *exit;
    DeliverExit(id, *exit);  // In case the event was missed.
  } else {
    state.phase = RuntimeState::Phase::kCreated;
  }
  return state;
}

void ContainerdExecutor::NotifyExit(const std::string& id, const void* owner,
                                    Controller::ExitCallback fn) {
  {
    absl::MutexLock callback_lock(&callback_mu_);
    std::optional<ExitStatus> exited;
    {
      absl::MutexLock lock(&mu_);
      auto it = records_.find(id);
      if (it != records_.end() && it->second.exit.has_value() && !it->second.removed) {
        exited = it->second.exit;
      }
    }
    if (exited.has_value()) {
      fn(*exited);
      return;
    }
    callbacks_.emplace(id, Registration{owner, std::move(fn)});
  }
  // Exited before this executor watched it (adoption)? The event is gone: ask.
  absl::StatusOr<Process> p = client_->GetTask(id);
  if (p.ok() && p->status() == ctrd::task_types_pb::STOPPED) {
    absl::StatusOr<ExitStatus> exit = ExitFromContainerd(id, p->exit_status());
    if (exit.ok()) DeliverExit(id, *exit);
  }
}

void ContainerdExecutor::Unregister(const std::string& id, const void* owner) {
  absl::MutexLock callback_lock(&callback_mu_);
  auto range = callbacks_.equal_range(id);
  for (auto it = range.first; it != range.second;) {
    it = it->second.owner == owner ? callbacks_.erase(it) : std::next(it);
  }
}

void ContainerdExecutor::SetStatusListener(const std::string& id, const void* owner,
                                           std::function<void(const ControllerStatus&)> listener) {
  absl::MutexLock callback_lock(&callback_mu_);
  const auto key = std::make_pair(id, owner);
  if (!listener) {
    listeners_.erase(key);
    return;
  }
  auto& slot = listeners_[key];
  slot = std::move(listener);
  auto it = statuses_.find(id);
  if (it != statuses_.end()) slot(it->second);
}

void ContainerdExecutor::Report(const std::string& id, const ControllerStatus& status) {
  absl::MutexLock callback_lock(&callback_mu_);
  statuses_[id] = status;
  for (auto it = listeners_.lower_bound({id, nullptr});
       it != listeners_.end() && it->first.first == id; ++it) {
    it->second(status);
  }
}

// --- Stopping --------------------------------------------------------------------------------

absl::Status ContainerdExecutor::MarkStopped(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    records_[id].stop_requested = true;
  }
  ctrd::containers_pb::Container c;
  c.set_id(id);
  (*c.mutable_labels())[kStoppedLabel] = "true";
  absl::StatusOr<ctrd::containers_pb::Container> updated =
      client_->UpdateContainer(c, {absl::StrCat("labels.", kStoppedLabel)});
  return updated.status();
}

absl::Status ContainerdExecutor::MarkExitError(const std::string& id, const std::string& error) {
  {
    absl::MutexLock lock(&mu_);
    records_[id].exit_error = error;
  }
  ctrd::containers_pb::Container c;
  c.set_id(id);
  (*c.mutable_labels())[kExitErrorLabel] = error;
  return client_->UpdateContainer(c, {absl::StrCat("labels.", kExitErrorLabel)}).status();
}

absl::Status ContainerdExecutor::KillAndWait(const std::string& id, absl::Duration timeout) {
  absl::Status s = client_->KillTask(id, SIGKILL, /*all=*/true);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  absl::StatusOr<ctrd::ProcessExit> exit = client_->WaitTask(id, "", timeout);
  if (!exit.ok() && !absl::IsNotFound(exit.status())) {
    return Annotate(exit.status(), absl::StrCat("task ", id, " did not die after SIGKILL"));
  }
  return absl::OkStatus();
}

absl::Status ContainerdExecutor::Shutdown(const std::string& id, absl::Duration grace) {
  absl::StatusOr<Process> p = client_->GetTask(id);
  if (absl::IsNotFound(p.status())) return absl::OkStatus();
  if (!p.ok()) return p.status();
  if (!IsRunning(*p)) return absl::OkStatus();
  if (absl::Status s = MarkStopped(id); !s.ok()) {
    if (absl::IsNotFound(s)) return absl::OkStatus();
    return s;
  }
  int signal = SIGTERM;
  if (absl::StatusOr<ctrd::containers_pb::Container> c = client_->GetContainer(id); c.ok()) {
    auto it = c->labels().find(kStopSignalLabel);
    if (it != c->labels().end()) absl::SimpleAtoi(it->second, &signal);
  }
  absl::Status s = client_->KillTask(id, signal, /*all=*/false);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  absl::StatusOr<ctrd::ProcessExit> exit =
      client_->WaitTask(id, "", std::max(grace, absl::ZeroDuration()));
  if (!exit.ok()) {
    if (!absl::IsDeadlineExceeded(exit.status()) && !absl::IsNotFound(exit.status())) {
      return exit.status();
    }
    if (absl::Status k = KillAndWait(id, options_.kill_timeout); !k.ok()) return k;
  }
  absl::StatusOr<Process> done = client_->GetTask(id);
  if (done.ok() && done->status() == ctrd::task_types_pb::STOPPED) {
    absl::StatusOr<ExitStatus> e = ExitFromContainerd(id, done->exit_status());
    if (e.ok()) DeliverExit(id, *e);
  }
  return absl::OkStatus();
}

absl::Status ContainerdExecutor::Terminate(const std::string& id) {
  absl::StatusOr<Process> p = client_->GetTask(id);
  if (absl::IsNotFound(p.status())) return absl::OkStatus();
  if (!p.ok()) return p.status();
  if (!IsRunning(*p)) return absl::OkStatus();
  if (absl::Status s = MarkStopped(id); !s.ok()) {
    if (absl::IsNotFound(s)) return absl::OkStatus();
    return s;
  }
  if (absl::Status s = KillAndWait(id, options_.kill_timeout); !s.ok()) return s;
  absl::StatusOr<Process> done = client_->GetTask(id);
  if (done.ok() && done->status() == ctrd::task_types_pb::STOPPED) {
    absl::StatusOr<ExitStatus> e = ExitFromContainerd(id, done->exit_status());
    if (e.ok()) DeliverExit(id, *e);
  }
  return absl::OkStatus();
}

absl::Status ContainerdExecutor::Remove(const std::string& id) {
  StopHealth(id);
  absl::StatusOr<Process> p = client_->GetTask(id);
  if (p.ok()) {
    if (IsRunning(*p)) {
      if (absl::Status s = Terminate(id); !s.ok()) return s;
    } else if (p->status() != ctrd::task_types_pb::STOPPED) {
      // Created, never started: its exit is never reported.
      absl::MutexLock lock(&mu_);
      records_[id].removed = true;
    }
  } else if (!absl::IsNotFound(p.status())) {
    return p.status();
  }
  {
    absl::MutexLock callback_lock(&callback_mu_);
    callbacks_.erase(id);
    statuses_.erase(id);
    absl::MutexLock lock(&mu_);
    TaskRecord& r = records_[id];
    r = TaskRecord();
    r.removed = true;
  }
  if (p.ok()) {
    absl::StatusOr<ctrd::ProcessExit> deleted = client_->DeleteTask(id);
    if (absl::IsFailedPrecondition(deleted.status())) {
      // Still running after all (created): kill, then delete.
      if (absl::Status s = KillAndWait(id, options_.kill_timeout); !s.ok()) return s;
      deleted = client_->DeleteTask(id);
    }
    if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
  }
  RemoveEmptyCgroupParent();
  std::string snapshotter = options_.snapshotter;
  absl::StatusOr<ctrd::containers_pb::Container> c = client_->GetContainer(id);
  if (c.ok()) {
    if (!c->snapshotter().empty()) snapshotter = c->snapshotter();
    absl::Status s = client_->DeleteContainer(id);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  } else if (!absl::IsNotFound(c.status())) {
    return c.status();
  }
  absl::Status snap = client_->RemoveSnapshot(snapshotter, id);
  if (!snap.ok() && !absl::IsNotFound(snap)) return snap;

  const std::string secrets = SecretsDir(id);
  if (umount2(secrets.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return absl::InternalError(
        absl::StrCat("cannot unmount the task's secrets at ", secrets, ": ", ErrnoText(errno)));
  }
  std::error_code ec;
  std::filesystem::remove_all(secrets, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot remove ", secrets, ": ", ec.message()));
  }
  std::filesystem::remove_all(TaskDir(id), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot remove ", TaskDir(id), ": ", ec.message()));
  }
  return absl::OkStatus();
}

void ContainerdExecutor::RemoveEmptyCgroupParent() {
  // runc removes the task's own cgroup but leaves its parents; rmdir succeeds only once the
  // parent holds no other task's cgroup (EBUSY otherwise), so this is safe to try every time.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/fs/cgroup", ec)) {
    const std::string dir = entry.path().string() + cgroup_parent_;
    rmdir(dir.c_str());
  }
}

// --- Health checks ---------------------------------------------------------------------------

void ContainerdExecutor::StartHealth(const std::string& id) {
  {
    absl::MutexLock lock(&health_mu_);
    if (health_.count(id) != 0) return;
  }
  absl::StatusOr<ctrd::containers_pb::Container> c = client_->GetContainer(id);
  if (!c.ok()) return;
  auto label = c->labels().find(kHealthLabel);
  if (label == c->labels().end()) return;
  std::optional<Healthcheck> check = HealthFromJson(label->second);
  if (!check.has_value()) return;
  nlohmann::json spec = nlohmann::json::parse(c->spec().value(), nullptr, false);
  if (!spec.is_object() || !spec.contains("process")) return;
  nlohmann::json process = spec["process"];
  process["terminal"] = false;
  process.erase("consoleSize");
  auto state = std::make_unique<HealthState>();
  state->check = *check;
  state->process_json = process.dump();
  state->started = clock_->Now();
  state->next_probe =
      state->started +
      (check->start_period > absl::ZeroDuration() ? check->start_interval : check->interval);
  {
    absl::MutexLock lock(&health_mu_);
    if (health_.count(id) != 0) return;
    health_.emplace(id, std::move(state));
    health_wake_ = true;
  }
  ControllerStatus status;
  status.health = api::TaskStatus::STARTING;
  Report(id, status);
}

void ContainerdExecutor::StopHealth(const std::string& id) {
  absl::MutexLock lock(&health_mu_);
  health_.erase(id);
}

void ContainerdExecutor::OnProbeExit(const std::string& task_id, const std::string& exec_id,
                                     uint32_t status) {
  absl::MutexLock lock(&health_mu_);
  if (health_.count(task_id) == 0) return;
  probe_exits_.push_back(ProbeExit{task_id, exec_id, status});
  health_wake_ = true;
}

void ContainerdExecutor::HealthLoop() {
  struct Work {
    enum class Kind { kProbe, kResult } kind;
    std::string id;
    std::string exec_id;
    std::string process_json;
    std::vector<std::string> args;
    // kResult: the outcome.
    bool ok = false;
    std::string result;
  };
  for (;;) {
    std::vector<Work> work;
    {
      absl::MutexLock lock(&health_mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(health_mu_) {
        return health_wake_ || health_stopping_;
      };
      health_mu_.AwaitWithTimeout(absl::Condition(&woken), kHealthPoll);
      if (health_stopping_) return;
      health_wake_ = false;
      const absl::Time now = clock_->Now();
      for (const ProbeExit& e : probe_exits_) {
        auto it = health_.find(e.task_id);
        if (it == health_.end() || it->second->exec_id != e.exec_id) continue;
        it->second->exec_id.clear();
        it->second->deadline = absl::InfiniteFuture();
        work.push_back(Work{Work::Kind::kResult,
                            e.task_id,
                            e.exec_id,
                            "",
                            {},
                            e.exit_status == 0,
                            absl::StrCat("exit code ", e.exit_status)});
      }
      probe_exits_.clear();
      for (auto& [id, h] : health_) {
        if (!h->exec_id.empty() && now >= h->deadline) {
          work.push_back(
              Work{Work::Kind::kResult,
                   id,
                   h->exec_id,
                   "",
                   {},
                   false,
                   absl::StrCat("timed out after ", absl::FormatDuration(h->check.timeout))});
          h->exec_id.clear();
          h->deadline = absl::InfiniteFuture();
        }
        if (h->exec_id.empty() && now >= h->next_probe) {
          h->exec_id = absl::StrCat("health-", ++h->probes);
          h->deadline = now + h->check.timeout;
          work.push_back(
              Work{Work::Kind::kProbe, id, h->exec_id, h->process_json, h->check.args, false, ""});
        }
      }
    }
    for (Work& w : work) {
      if (w.kind == Work::Kind::kProbe) {
        nlohmann::json process = nlohmann::json::parse(w.process_json, nullptr, false);
        process["args"] = w.args;
        absl::Status s = client_->ExecProcess(w.id, w.exec_id, ctrd::OciProcessAny(process.dump()));
        if (s.ok()) s = client_->StartTask(w.id, w.exec_id).status();
        if (!s.ok()) {
          client_->DeleteProcess(w.id, w.exec_id).IgnoreError();
          w.kind = Work::Kind::kResult;
          w.ok = false;
          w.result = absl::StrCat("cannot run the check: ", std::string(s.message()));
        } else {
          continue;
        }
      } else {
        // Done (or timed out): make sure it is gone, then free its exec ID.
        client_->KillTask(w.id, SIGKILL, false, w.exec_id).IgnoreError();
        client_->WaitTask(w.id, w.exec_id, absl::Seconds(2)).IgnoreError();
        client_->DeleteProcess(w.id, w.exec_id).IgnoreError();
      }
      // Count the result.
      std::optional<api::TaskStatus::Health> changed;
      bool unhealthy = false;
      {
        absl::MutexLock lock(&health_mu_);
        auto it = health_.find(w.id);
        if (it == health_.end()) continue;
        HealthState& h = *it->second;
        const absl::Time now = clock_->Now();
        const bool in_start_period = !h.healthy_once && now - h.started < h.check.start_period;
        if (w.ok) {
          h.failures = 0;
          h.healthy_once = true;
          if (h.health != api::TaskStatus::HEALTHY) changed = api::TaskStatus::HEALTHY;
          h.health = api::TaskStatus::HEALTHY;
        } else if (!in_start_period) {
          ++h.failures;
          if (h.failures >= std::max(1, h.check.retries)) {
            unhealthy = true;
            changed = api::TaskStatus::UNHEALTHY;
            h.health = api::TaskStatus::UNHEALTHY;
          }
        }
        const bool still_starting = !h.healthy_once && now - h.started < h.check.start_period;
        h.next_probe = now + (still_starting ? h.check.start_interval : h.check.interval);
        if (unhealthy) health_.erase(it);
      }
      if (changed.has_value()) {
        ControllerStatus status;
        status.health = *changed;
        if (unhealthy) status.message = absl::StrCat("unhealthy: ", w.result);
        Report(w.id, status);
      }
      if (unhealthy) {
        const std::string error = absl::StrCat("task: unhealthy container (", w.result, ")");
        spdlog::warn("task {}: {}; killing it", w.id, error);
        if (absl::Status s = MarkExitError(w.id, error); !s.ok()) {
          spdlog::warn("task {}: cannot record the health failure: {}", w.id,
                       std::string(s.message()));
        }
        client_->KillTask(w.id, SIGKILL, /*all=*/true).IgnoreError();
      }
    }
  }
}

}  // namespace shoal::agent::exec::containerd
