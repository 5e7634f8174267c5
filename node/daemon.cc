#include "node/daemon.h"

#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/unique_fd.h"
#include "common/version.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "spdlog/spdlog.h"

namespace shoal::node {
namespace {

// Longest path a sockaddr_un can hold, including the terminating NUL.
constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path);

std::string Hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// True if something accepts connections on the unix socket at `path`.
bool SocketIsLive(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

bool ValidHostPort(const std::string& addr) {
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int port = 0;
  return absl::SimpleAtoi(addr.substr(colon + 1), &port) && port > 0 && port < 65536;
}

}  // namespace

absl::Status ValidateOptions(const DaemonOptions& options) {
  if (options.state_dir.empty() || options.state_dir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("--state-dir must be an absolute path (got \"", options.state_dir, "\")"));
  }
  if (options.socket_path.empty() || options.socket_path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("--socket must be an absolute path (got \"", options.socket_path, "\")"));
  }
  if (options.socket_path.size() >= kMaxSocketPath) {
    return absl::InvalidArgumentError(absl::StrCat("--socket path is ", options.socket_path.size(),
                                                   " bytes; unix sockets allow at most ",
                                                   kMaxSocketPath - 1, ": choose a shorter path"));
  }
  if (options.executor != "containerd" && options.executor != "sim") {
    return absl::InvalidArgumentError(
        absl::StrCat("--executor must be containerd or sim (got \"", options.executor, "\")"));
  }
  if (!options.metrics_addr.empty() && !ValidHostPort(options.metrics_addr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-addr must be IP:PORT, e.g. 127.0.0.1:9323 (got \"",
                     options.metrics_addr, "\")"));
  }
  if (options.shim_group_size < 1 || options.shim_group_size > kMaxShimGroupSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shim-group-size must be 1 (a shim per container) to ", kMaxShimGroupSize,
                     " (got ", options.shim_group_size, ")"));
  }
  for (const std::string& registry : options.insecure_registries) {
    if (!ValidHostPort(registry)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--insecure-registry must be HOST:PORT, e.g. 127.0.0.1:5000 (got \"", registry, "\")"));
    }
  }
  return absl::OkStatus();
}

Daemon::Daemon(DaemonOptions options, StateDir state_dir)
    : options_(std::move(options)), state_dir_(std::move(state_dir)) {}

Daemon::~Daemon() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(DaemonOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  if (options.node_name.empty()) options.node_name = Hostname();

  absl::StatusOr<StateDir> state_dir = StateDir::Open(options.state_dir);
  if (!state_dir.ok()) return state_dir.status();

  std::unique_ptr<Daemon> daemon(new Daemon(std::move(options), std::move(*state_dir)));
  if (absl::Status s = daemon->StartMetrics(); !s.ok()) return s;
  if (absl::Status s = daemon->StartControlSocket(); !s.ok()) return s;
  daemon->trimmer_ = std::thread([d = daemon.get()] { d->TrimMemoryLoop(); });
  spdlog::info("shoald {} started: node {}, executor {}, state dir {}, socket {}", kVersion,
               daemon->options_.node_name, daemon->options_.executor, daemon->state_dir_.path(),
               daemon->options_.socket_path);
  return daemon;
}

absl::Status Daemon::StartMetrics() {
  if (options_.metrics_addr.empty()) return absl::OkStatus();
  metrics_registry_ = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("shoal_build_info")
      .Help("Always 1; labels carry the version of this shoald")
      .Register(*metrics_registry_)
      .Add({{"version", kVersion}})
      .Set(1);
  try {
    metrics_exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_addr);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on --metrics-addr ",
                                               options_.metrics_addr, ": ", e.what(),
                                               " (is the port in use?)"));
  }
  metrics_exposer_->RegisterCollectable(metrics_registry_);
  spdlog::info("serving Prometheus metrics on http://{}/metrics", options_.metrics_addr);
  return absl::OkStatus();
}

absl::Status Daemon::StartControlSocket() {
  const std::string& path = options_.socket_path;
  if (absl::Status s = MakeDirs(DirName(path), 0755); !s.ok()) return s;

  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--socket ", path, " exists and is not a socket; remove it or choose another path"));
    }
    if (SocketIsLive(path)) {
      return absl::FailedPreconditionError(
          absl::StrCat("socket ", path,
                       " is served by another process (another shoald?); stop "
                       "it or start this one with a different --socket"));
    }
    ::unlink(path.c_str());  // Left behind by a daemon that crashed.
  }

  SwarmNodeOptions so;
  so.state_dir = state_dir_.path();
  so.node_name = options_.node_name;
  so.executor = options_.executor;
  so.containerd_address = options_.containerd_address;
  so.containerd_namespace = options_.containerd_namespace;
  so.insecure_registries = options_.insecure_registries;
  so.shim_group_size = options_.shim_group_size;
  so.metrics = metrics_registry_.get();
  absl::StatusOr<std::unique_ptr<SwarmNode>> swarm = SwarmNode::Open(so);
  if (!swarm.ok()) return swarm.status();
  swarm_ = std::move(*swarm);
  control_ = std::make_unique<ControlService>(
      NodeIdentity{
          .node_name = options_.node_name,
          .executor = options_.executor,
          .state_dir = state_dir_.path(),
      },
      swarm_.get());
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort("unix://" + path, grpc::InsecureServerCredentials(), &selected_port);
  builder.RegisterService(control_.get());
  // `shoal service logs`: relayed to the leader's log broker over the manager's mutual TLS.
  logs_forwarder_ = std::make_unique<manager::LogsForwarder>(
      [swarm = swarm_.get()]() -> absl::StatusOr<std::shared_ptr<grpc::Channel>> {
        absl::StatusOr<std::shared_ptr<manager::Manager>> m = swarm->ManagerForControl();
        if (!m.ok()) return m.status();
        const std::string leader = (*m)->LeaderAddr();
        if (leader.empty()) {
          return absl::UnavailableError(
              "the swarm has no leader at the moment (an election is under way, or too few "
              "managers are reachable); try again shortly");
        }
        return (*m)->DialManager(leader);
      });
  builder.RegisterService(logs_forwarder_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on socket ", path, "; check the directory's permissions"));
  }
  if (::chmod(path.c_str(), 0660) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot set mode 0660 on socket ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void Daemon::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  spdlog::info("shutting down");
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ::unlink(options_.socket_path.c_str());
  }
  if (swarm_ != nullptr) swarm_->Shutdown();
  metrics_exposer_.reset();
  if (trimmer_.joinable()) trimmer_.join();
  spdlog::info("stopped");
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

void Daemon::TrimMemoryLoop() {
  absl::MutexLock lock(&mu_);
  while (!mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), absl::Seconds(10))) {
    mu_.Unlock();
    ::malloc_trim(0);
    mu_.Lock();
  }
}

void Daemon::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&stopped_));
}

}  // namespace shoal::node
