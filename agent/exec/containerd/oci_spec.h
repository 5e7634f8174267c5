// oci_spec: the pure core of the containerd executor — what a task's container looks like.
//
// Everything here is a pure function of its inputs (no file system, no containerd): the
// executor reads the image config, the image's /etc/passwd and /etc/group, writes the secret,
// hosts and resolv.conf files, creates volume directories, and then calls BuildOciSpec for the
// config.json (OCI runtime-spec 1.0.2, as runc 1.1 accepts it) that goes into containerd's
// Container.spec (an Any with type_url kOciSpecTypeUrl).
//
// The rules follow Docker 20.10 running a SwarmKit task (daemon/oci_linux.go, daemon/commit.go
// merge(), swarmkit's container adapter and template package):
//
//   args     (command, or the image's Entrypoint) + (args, or — only when command is empty — the
//            image's Cmd); spec.init (or the node's default) prefixes ["/sbin/docker-init", "--"]
//            with the init binary bind-mounted there read-only. Empty args: an error.
//   env      PATH (default below), HOSTNAME, TERM=xterm (tty only); then the image's Env, the
//            spec's env, DOCKER_RESOURCE_<KIND>=… for assigned generic resources, and the
//            executor's extra_env, each replacing earlier entries by key ("KEY" alone unsets).
//   user     spec.user or the image's User, "name|uid[:group|gid]", resolved as runc's
//            GetExecUser against the image's /etc/passwd and /etc/group (numeric IDs need no
//            entry); supplementary groups from /etc/group membership when no group is given, plus
//            spec.groups.
//   cwd      spec.dir, or the image's WorkingDir, or "/"; must be absolute.
//   caps     Docker's 14 default capabilities, then capability_drop / capability_add as Docker's
//            TweakCapabilities ("ALL" in add: every capability but the dropped; "ALL" in drop:
//            only the added), in bounding/effective/permitted (not inheritable or ambient).
//   rlimits  RLIMIT_NOFILE 1048576:1048576 (OciSpecInputs.default_nofile) unless a ulimit says
//            otherwise — what Docker 20.10 containers get from a systemd dockerd with
//            LimitNOFILE=infinity; containerd's own 1024 is too low for servers — and each spec
//            ulimit as RLIMIT_<NAME> (-1 = unlimited).
//   security noNewPrivileges; Docker's masked and read-only /proc and /sys paths; device cgroup:
//            deny all, allow null, zero, full, random, urandom, tty, console, ptmx, pts (136:*),
//            tun (10:200) and mknod of any device (runc's and Docker's default list).
//            NOT applied yet: Docker's default seccomp profile and AppArmor profile.
//   ns       pid, ipc, uts, mount, cgroup, network (joining netns_path when given).
//   mounts   /proc, /dev, /dev/pts, /dev/shm (64 MiB), /dev/mqueue, /sys (ro), /sys/fs/cgroup (ro)
//            — a spec mount on the same target replaces one (one on /dev replaces all /dev/*) —
//            then, sorted by path depth: spec mounts (bind: rbind or bind, propagation, ro; volume:
//            a bind of <state_dir_volumes>/<name>/_data; tmpfs: noexec,nosuid,nodev + size and
//            mode), secrets (/run/secrets/<name> or an absolute target) and configs (absolute
//            target or /<name>) read-only from <secrets_dir>, /etc/hosts, /etc/resolv.conf and
//            /etc/hostname from the executor's files, and the init binary.
//   limits   cgroupsPath <cgroup_parent>/<task id> (cgroupfs style, "/shoal/<id>"); nano_cpus →
//            cpu quota over a 100 ms period; memory limit (swap left unlimited: Docker's 2×memory
//            needs swap accounting, which the executor would have to probe), memory reservation
//            from reservations; pids from ResourceRequirements.pids_limit.
//   other    hostname; root.readonly from read_only; sysctls (namespaced ones only); terminal from
//            tty; annotations = ContainerLabels().
//
// Thread-safety: free functions without state.
#ifndef SHOAL_AGENT_EXEC_CONTAINERD_OCI_SPEC_H_
#define SHOAL_AGENT_EXEC_CONTAINERD_OCI_SPEC_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "proto/objects.pb.h"
#include "proto/specs.pb.h"
#include "proto/types.pb.h"

namespace shoal::agent::exec::containerd {

// The type_url of containerd's Container.spec Any holding a config.json.
inline constexpr char kOciSpecTypeUrl[] = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
// The runtime-spec version written (the one runc 1.1 and containerd 1.6 vendor).
inline constexpr char kOciVersion[] = "1.0.2-dev";
inline constexpr char kDefaultPathEnv[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Where the init binary appears in the container (Docker's path, so scripts that look for it
// work).
inline constexpr char kInitContainerPath[] = "/sbin/docker-init";
inline constexpr char kSecretsContainerDir[] = "/run/secrets";
inline constexpr uint64_t kDefaultNofile = 1048576;
inline constexpr int64_t kDefaultShmBytes = 64 << 20;
inline constexpr int64_t kCpuPeriodUs = 100000;
// Docker's lower bound for a memory limit.
inline constexpr int64_t kMinMemoryBytes = 6 << 20;
inline constexpr absl::Duration kDefaultStopGrace = absl::Seconds(10);

// ---------------------------------------------------------------------------------------------
// Image config
// ---------------------------------------------------------------------------------------------

// Docker's image HEALTHCHECK ("config.Healthcheck"); durations are nanoseconds in the JSON.
struct ImageHealthcheck {
  std::vector<std::string> test;
  absl::Duration interval = absl::ZeroDuration();
  absl::Duration timeout = absl::ZeroDuration();
  absl::Duration start_period = absl::ZeroDuration();
  absl::Duration start_interval = absl::ZeroDuration();
  int retries = 0;
};

// The parts of an OCI / Docker image config ("application/vnd.oci.image.config.v1+json" or
// "application/vnd.docker.container.image.v1+json") that decide how a container runs.
struct ImageConfig {
  std::string os;            // "linux"
  std::string architecture;  // "amd64"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "KEY=value"
  std::string user;
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  std::optional<ImageHealthcheck> healthcheck;
  std::vector<std::string> shell;          // Docker's SHELL; empty = ["/bin/sh", "-c"].
  std::vector<std::string> exposed_ports;  // Keys of ExposedPorts, e.g. "80/tcp", sorted.
  std::vector<std::string> volumes;        // Keys of Volumes, e.g. "/data", sorted.
};

// Parses an image config blob. Missing or null fields are empty. Errors: INVALID_ARGUMENT when
// the blob is not JSON or a field has the wrong type (the message names the field).
absl::StatusOr<ImageConfig> ParseImageConfig(const std::string& json);

// ---------------------------------------------------------------------------------------------
// The pieces of the spec, each usable on its own
// ---------------------------------------------------------------------------------------------

// process.args without the init prefix. Errors: INVALID_ARGUMENT "no command: …" when empty.
absl::StatusOr<std::vector<std::string>> ProcessArgs(const api::ContainerSpec& spec,
                                                     const ImageConfig& image);

// process.env (see the header comment for the order).
std::vector<std::string> ProcessEnv(const api::Task& task, const ImageConfig& image,
                                    const std::string& hostname,
                                    const std::vector<std::string>& extra_env);

// Replaces or appends each of `overrides` in `env` by key; "KEY" without '=' removes KEY.
void MergeEnv(std::vector<std::string>& env, const std::vector<std::string>& overrides);

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
  std::string home = "/";
};

// Resolves "name|uid[:group|gid]" (empty = root) plus supplementary `groups` (names or gids)
// against the contents of the image's /etc/passwd and /etc/group (empty when the image has
// none). Errors: INVALID_ARGUMENT, e.g. "unable to find user app: no matching entries in passwd
// file".
absl::StatusOr<ResolvedUser> ResolveUser(const std::string& user_spec,
                                         const std::vector<std::string>& groups,
                                         const std::string& etc_passwd,
                                         const std::string& etc_group);

// Every capability runc knows, "CAP_CHOWN" … "CAP_CHECKPOINT_RESTORE", in kernel order.
const std::vector<std::string>& AllCapabilities();
// Docker's default set.
const std::vector<std::string>& DefaultCapabilities();
// The default set tweaked by `add` and `drop` (names case-insensitive, "CAP_" optional, "ALL").
// Errors: INVALID_ARGUMENT naming an unknown capability.
absl::StatusOr<std::vector<std::string>> EffectiveCapabilities(
    const std::vector<std::string>& add, const std::vector<std::string>& drop);

// A signal by name ("SIGTERM", "term", "SIGRTMIN+3") or number ("15"). Errors: INVALID_ARGUMENT.
absl::StatusOr<int> ParseSignal(const std::string& name);
// spec.stop_signal, else the image's StopSignal, else SIGTERM. Errors: an unparseable signal.
absl::StatusOr<int> StopSignalFor(const api::ContainerSpec& spec, const ImageConfig& image);
// spec.stop_grace_period, else 10 s (never negative).
absl::Duration StopGrace(const api::ContainerSpec& spec);

// A health check ready to run: exec `args` in the container every `interval`.
struct Healthcheck {
  std::vector<std::string> args;
  absl::Duration interval = absl::Seconds(30);
  absl::Duration timeout = absl::Seconds(30);
  absl::Duration start_period = absl::ZeroDuration();
  absl::Duration start_interval = absl::Seconds(5);
  int retries = 3;
};

// Docker's merge of the service's health options over the image's HEALTHCHECK: the spec's test
// (else the image's), each duration and retries from the spec when set (> 0), else the image's,
// else the defaults (interval 30 s, timeout 30 s, start period 0, start interval 5 s, retries
// 3). nullopt: no check (none configured, or ["NONE"]). CMD → the rest as argv; CMD-SHELL → the
// image's shell (default /bin/sh -c) + the rest. Errors: INVALID_ARGUMENT for another test type
// or an empty command.
absl::StatusOr<std::optional<Healthcheck>> EffectiveHealthcheck(const api::ContainerSpec& spec,
                                                                const ImageConfig& image);

// Expands SwarmKit's placeholders in `tmpl`: {{.Service.ID}}, {{.Service.Name}},
// {{.Service.Labels.KEY}} and {{index .Service.Labels "KEY"}}, {{.Node.ID}}, {{.Node.Hostname}},
// {{.Node.Platform.OS}}, {{.Node.Platform.Architecture}}, {{.Task.ID}}, {{.Task.Name}} and
// {{.Task.Slot}} (the node ID for global services). Spaces inside the braces are allowed.
// Errors: INVALID_ARGUMENT naming an unknown placeholder or an unclosed "{{".
absl::StatusOr<std::string> ExpandTemplate(absl::string_view tmpl, const api::Task& task,
                                           const api::Node& node);
// The task's container spec with templates expanded where SwarmKit expands them: hostname, env,
// and mount sources and targets.
absl::StatusOr<api::ContainerSpec> ExpandContainerSpec(const api::Task& task,
                                                       const api::Node& node);
// The task name as SwarmKit shows it: annotations.name, else "<service>.<slot|node>.<task id>".
std::string TaskName(const api::Task& task);

// A volume the container mounts; the executor creates `host_path` before starting it (and, when
// the volume is new and !nocopy, copies the image's content at `target` into it, as Docker).
struct VolumeUse {
  std::string name;       // The spec's source, or "<task id>-anon-<n>" for an anonymous volume.
  std::string host_path;  // <state_dir_volumes>/<name>/_data
  std::string target;
  bool anonymous = false;
  bool readonly = false;
  bool nocopy = false;
  std::map<std::string, std::string> labels;
};

// The task's volume mounts. Errors: INVALID_ARGUMENT for a bad volume name, a driver other than
// "local" or local driver options (not supported); FAILED_PRECONDITION when there are volume
// mounts but no `state_dir_volumes`.
absl::StatusOr<std::vector<VolumeUse>> PlanVolumes(const api::Task& task,
                                                   const std::string& state_dir_volumes);

// Where the executor writes a secret or config for the task, and where it appears inside.
std::string SecretHostPath(const std::string& secrets_dir, const api::SecretReference& ref);
std::string ConfigHostPath(const std::string& secrets_dir, const api::ConfigReference& ref);
// Errors: INVALID_ARGUMENT for a target with ".." or "/" alone.
absl::StatusOr<std::string> SecretTarget(const api::SecretReference& ref);
absl::StatusOr<std::string> ConfigTarget(const api::ConfigReference& ref);

// The container's labels: the image's, then the spec's, then SwarmKit's own
// (com.docker.swarm.{node.id,service.id,service.name,task,task.id,task.name}).
std::map<std::string, std::string> ContainerLabels(const api::Task& task, const ImageConfig& image);

// "a//b/../c/" → "/a/c", as Go's path.Clean for absolute paths ("" and relative paths are
// returned cleaned but relative).
std::string CleanPath(absl::string_view path);

// ---------------------------------------------------------------------------------------------
// The whole spec
// ---------------------------------------------------------------------------------------------

struct OciSpecInputs {
  api::Task task;  // Templates already expanded (ExpandContainerSpec).
  ImageConfig image;
  // The root file system on the host; empty = "rootfs" in the bundle (containerd mounts the
  // snapshot there from the task's rootfs mounts).
  std::string rootfs_path;
  std::string hostname;    // The container's hostname; empty = the first 12 characters of the ID.
  std::string netns_path;  // Empty: a new network namespace. A path: join it.
  // Host directory (a tmpfs) of the task's secret and config files: see SecretHostPath.
  std::string secrets_dir;
  std::string state_dir_volumes;  // Where named local volumes live: <dir>/<name>/_data.
  // Contents of the image's /etc/passwd and /etc/group; empty when it has none.
  std::string etc_passwd;
  std::string etc_group;
  // Host files bound at /etc/hosts, /etc/resolv.conf and /etc/hostname; empty = not bound.
  std::string hosts_path;
  std::string resolv_conf_path;
  std::string hostname_path;
  // Host path of a static init binary that takes "-- argv" (Debian's tini package ships
  // /usr/bin/tini-static; catatonit and dumb-init work too — busybox is not such an init).
  // Required when the task runs with an init.
  std::string init_path;
  bool default_init = false;  // Whether a task whose spec leaves `init` unset runs one.
  std::string cgroup_parent = "/shoal";
  std::vector<std::string> extra_env;  // Added last; they override everything.
  // RLIMIT_NOFILE (soft = hard) unless a ulimit sets it; 0 = inherit the runtime's. Raising it
  // above the runtime's own hard limit needs CAP_SYS_RESOURCE, which some hosts (containers
  // running the node) lack: runc then fails with "error setting rlimit type 7: operation not
  // permitted". An executor without the capability passes min(kDefaultNofile, its hard limit).
  uint64_t default_nofile = kDefaultNofile;
  int64_t shm_size_bytes = kDefaultShmBytes;
  // Non-empty: the annotation io.containerd.runc.v2.group, so that containers with the same
  // group share one runc shim process (ShimGroup).
  std::string shim_group;
};

// The runc v2 shim's grouping annotation: containers whose specs carry the same value are served
// by one shim process instead of one each.
inline constexpr char kShimGroupAnnotation[] = "io.containerd.runc.v2.group";

// The shim group of a task when up to `group_size` tasks share a shim: the replicated tasks of
// one service in slots (k-1)*size+1 .. k*size are group "shoal-<service ID>-k"; "" (a shim of its
// own) for global and job-per-node tasks (slot 0, one per node anyway) or a size below 2.
std::string ShimGroup(const api::Task& task, int group_size);

// The config.json object. Errors: INVALID_ARGUMENT for what the task asks wrongly (no command,
// unknown user, bad mount, capability, ulimit, sysctl or resource), FAILED_PRECONDITION for
// what the node lacks (no init binary, no volume directory).
absl::StatusOr<nlohmann::json> BuildOciSpecJson(const OciSpecInputs& in);
// The same, serialized (what goes into Container.spec's Any value).
absl::StatusOr<std::string> BuildOciSpec(const OciSpecInputs& in);

}  // namespace shoal::agent::exec::containerd

#endif  // SHOAL_AGENT_EXEC_CONTAINERD_OCI_SPEC_H_
