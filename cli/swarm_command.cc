#include "cli/swarm_command.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/ca_rotation.h"
#include "cli/duration.h"
#include "cli/json_util.h"
#include "cli/swarm_text.h"
#include "common/clock.h"

namespace shoal::cli {
namespace {

constexpr int kUsageError = 2;
// Init and join wait for certificates, Raft and the first session: longer than a plain call.
constexpr std::chrono::seconds kSwarmSetupTimeout(120);

[[noreturn]] void UsageError(const std::string& message) {
  throw CommandError{message, kUsageError};
}

absl::Duration DurationFlag(const std::string& flag, const std::string& text) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) UsageError(absl::StrCat("--", flag, ": ", d.status().message()));
  return *d;
}

absl::Duration PositiveDurationFlag(const std::string& flag, const std::string& text) {
  const absl::Duration d = DurationFlag(flag, text);
  if (d <= absl::ZeroDuration()) {
    UsageError(absl::StrCat("--", flag, " must be more than 0, e.g. 5s"));
  }
  return d;
}

// The cluster-settings flags shared by init and update.
struct ClusterFlags {
  bool autolock = false;
  std::string cert_expiry;
  int64_t task_history_limit = 0;
  std::string dispatcher_heartbeat;
  uint64_t snapshot_interval = 0;
  uint64_t max_snapshots = 0;
  CLI::Option* autolock_opt = nullptr;
  CLI::Option* cert_expiry_opt = nullptr;
  CLI::Option* task_history_opt = nullptr;
  CLI::Option* heartbeat_opt = nullptr;
  CLI::Option* snapshot_interval_opt = nullptr;
  CLI::Option* max_snapshots_opt = nullptr;

  void Add(CLI::App* cmd, const std::string& autolock_help) {
    autolock_opt = cmd->add_flag("--autolock", autolock, autolock_help);
    cert_expiry_opt = cmd->add_option("--cert-expiry", cert_expiry,
                                      "Validity period for node certificates, e.g. 2160h or 90d "
                                      "(default 90d; at least 1h)");
    task_history_opt = cmd->add_option("--task-history-limit", task_history_limit,
                                       "Task history retention limit (default 5)");
    heartbeat_opt = cmd->add_option("--dispatcher-heartbeat", dispatcher_heartbeat,
                                    "Dispatcher heartbeat period, e.g. 5s (default 5s)");
    snapshot_interval_opt = cmd->add_option("--snapshot-interval", snapshot_interval,
                                            "Number of log entries between Raft snapshots "
                                            "(default 10000)");
    max_snapshots_opt = cmd->add_option("--max-snapshots", max_snapshots,
                                        "Number of additional Raft snapshots to retain");
  }

  // Validates the flags that were given; throws CommandError for bad values.
  ClusterSpecChanges Changes() const {
    ClusterSpecChanges c;
    if (autolock_opt->count() > 0) c.autolock = autolock;
    if (cert_expiry_opt->count() > 0) {
      absl::StatusOr<absl::Duration> d = ParseCertExpiry(cert_expiry);
      if (!d.ok()) UsageError(std::string(d.status().message()));
      c.cert_expiry = *d;
    }
    if (task_history_opt->count() > 0) c.task_history_limit = task_history_limit;
    if (heartbeat_opt->count() > 0) {
      c.dispatcher_heartbeat = PositiveDurationFlag("dispatcher-heartbeat", dispatcher_heartbeat);
    }
    if (snapshot_interval_opt->count() > 0) c.snapshot_interval = snapshot_interval;
    if (max_snapshots_opt->count() > 0) c.keep_old_snapshots = max_snapshots;
    return c;
  }
};

api::NodeAvailability AvailabilityFlag(const std::string& text) {
  absl::StatusOr<api::NodeAvailability> a = ParseAvailability(text);
  if (!a.ok()) UsageError(absl::StrCat("--availability: ", a.status().message()));
  return *a;
}

void CheckCidr(const std::string& cidr) {
  const size_t slash = cidr.find('/');
  int bits = -1;
  unsigned char buf[16];
  const std::string addr = cidr.substr(0, slash);
  const bool v4 = ::inet_pton(AF_INET, addr.c_str(), buf) == 1;
  const bool v6 = !v4 && ::inet_pton(AF_INET6, addr.c_str(), buf) == 1;
  if (slash == std::string::npos || (!v4 && !v6) ||
      !absl::SimpleAtoi(cidr.substr(slash + 1), &bits) || bits < 0 || bits > (v4 ? 32 : 128)) {
    UsageError(absl::StrCat("--default-addr-pool: invalid CIDR \"", cidr,
                            "\": use an address with a prefix length, e.g. 10.20.0.0/16"));
  }
}

std::string ReadFileFlag(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw CommandError{absl::StrCat("cannot read --", flag, " file ", path, ": ",
                                    std::strerror(errno), "; check the path")};
  }
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

api::GetInfoResponse GetInfo(Context& ctx) {
  api::GetInfoResponse info;
  auto call = CallContext();
  ctx.Check(ctx.control().GetInfo(call.get(), api::GetInfoRequest(), &info));
  return info;
}

std::string GetUnlockKey(Context& ctx) {
  api::GetUnlockKeyResponse resp;
  auto call = CallContext();
  ctx.Check(ctx.control().GetUnlockKey(call.get(), api::GetUnlockKeyRequest(), &resp));
  return resp.unlock_key();
}

// Reads the cluster, lets `modify` change its spec, and writes it back with the version read;
// again while that version turns out stale. Returns the cluster as read by the attempt that
// succeeded (before `modify`).
api::Cluster UpdateClusterSpec(
    Context& ctx, const std::function<void(const api::Cluster&, api::ClusterSpec*)>& modify) {
  api::Cluster read;
  ctx.Check(RetryOnAborted([&] {
    api::GetClusterResponse got;
    auto call = CallContext();
    grpc::Status s = ctx.control().GetCluster(call.get(), api::GetClusterRequest(), &got);
    if (!s.ok()) return s;
    read = got.cluster();
    api::UpdateClusterRequest req;
    *req.mutable_version() = read.meta().version();
    *req.mutable_spec() = read.spec();
    modify(read, req.mutable_spec());
    api::UpdateClusterResponse resp;
    auto update_call = CallContext();
    return ctx.control().UpdateCluster(update_call.get(), req, &resp);
  }));
  return read;
}

void AddInit(CLI::App& swarm, Context& ctx) {
  struct Options {
    std::string advertise_addr, listen_addr, data_path_addr, availability;
    std::vector<std::string> default_addr_pool;
    uint32_t mask_length = 24;
    uint32_t data_path_port = 0;
    bool force_new_cluster = false;
    ClusterFlags cluster;
    CLI::Option* mask_opt = nullptr;
    CLI::Option* port_opt = nullptr;
    CLI::Option* availability_opt = nullptr;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = swarm.add_subcommand("init", "Initialize a swarm");
  cmd->add_option("--advertise-addr", o->advertise_addr,
                  "Advertised address (format: <ip|interface>[:port])");
  cmd->add_option("--listen-addr", o->listen_addr,
                  "Listen address (format: <ip|interface>[:port]) (default 0.0.0.0:2377)");
  cmd->add_option("--data-path-addr", o->data_path_addr,
                  "Address or interface to use for data path traffic");
  o->port_opt = cmd->add_option("--data-path-port", o->data_path_port,
                                "Port number to use for data path traffic (1024 - 49151; "
                                "default 4789)");
  cmd->add_option("--default-addr-pool", o->default_addr_pool,
                  "Default address pool in CIDR format (default 10.0.0.0/8)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false)
      ->delimiter(',');
  o->mask_opt = cmd->add_option("--default-addr-pool-mask-length", o->mask_length,
                                "Default address pool subnet mask length (default 24)");
  cmd->add_flag("--force-new-cluster", o->force_new_cluster,
                "Force create a new cluster from current state");
  o->availability_opt = cmd->add_option("--availability", o->availability,
                                        "Availability of the node (active|pause|drain)");
  o->cluster.Add(cmd,
                 "Enable manager autolocking (requiring an unlock key to start a stopped "
                 "manager)");
  cmd->callback([&ctx, o] {
    api::InitSwarmRequest req;
    req.set_listen_addr(o->listen_addr);
    req.set_advertise_addr(o->advertise_addr);
    req.set_data_path_addr(o->data_path_addr);
    if (o->port_opt->count() > 0) {
      if (o->data_path_port < 1024 || o->data_path_port > 49151) {
        UsageError(absl::StrCat("--data-path-port ", o->data_path_port,
                                " is out of range: use a port from 1024 to 49151"));
      }
      req.set_data_path_port(o->data_path_port);
    }
    for (const std::string& pool : o->default_addr_pool) {
      CheckCidr(pool);
      req.add_default_addr_pool(pool);
    }
    if (o->mask_opt->count() > 0) {
      if (o->mask_length < 1 || o->mask_length > 32) {
        UsageError("--default-addr-pool-mask-length must be from 1 to 32");
      }
      req.set_subnet_size(o->mask_length);
    }
    req.set_force_new_cluster(o->force_new_cluster);
    if (o->availability_opt->count() > 0) {
      req.set_availability(AvailabilityFlag(o->availability));
    }
    const ClusterSpecChanges changes = o->cluster.Changes();
    ApplyClusterSpecChanges(changes, req.mutable_spec());

    api::InitSwarmResponse resp;
    auto call = CallContext(kSwarmSetupTimeout);
    ctx.Check(ctx.control().InitSwarm(call.get(), req, &resp));
    std::string unlock_key = resp.unlock_key();
    if (unlock_key.empty() && changes.autolock.value_or(false)) unlock_key = GetUnlockKey(ctx);
    ctx.out() << InitText(resp.node_id(), resp.join_tokens().worker(), resp.manager_addr(),
                          unlock_key);
  });
}

void AddJoin(CLI::App& swarm, Context& ctx) {
  struct Options {
    std::string token, advertise_addr, listen_addr, data_path_addr, availability, remote;
    CLI::Option* availability_opt = nullptr;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = swarm.add_subcommand("join", "Join a swarm as a node and/or manager");
  cmd->add_option("--token", o->token, "Token for entry into the swarm")->required();
  cmd->add_option("--advertise-addr", o->advertise_addr,
                  "Advertised address (format: <ip|interface>[:port])");
  cmd->add_option("--listen-addr", o->listen_addr,
                  "Listen address (format: <ip|interface>[:port]) (default 0.0.0.0:2377)");
  cmd->add_option("--data-path-addr", o->data_path_addr,
                  "Address or interface to use for data path traffic");
  o->availability_opt = cmd->add_option("--availability", o->availability,
                                        "Availability of the node (active|pause|drain)");
  cmd->add_option("remote", o->remote, "A manager's address")->required()->type_name("HOST:PORT");
  cmd->callback([&ctx, o] {
    api::JoinSwarmRequest req;
    req.add_remote_addrs(o->remote);
    req.set_join_token(o->token);
    req.set_listen_addr(o->listen_addr);
    req.set_advertise_addr(o->advertise_addr);
    req.set_data_path_addr(o->data_path_addr);
    if (o->availability_opt->count() > 0) {
      req.set_availability(AvailabilityFlag(o->availability));
    }
    api::JoinSwarmResponse resp;
    auto call = CallContext(kSwarmSetupTimeout);
    ctx.Check(ctx.control().JoinSwarm(call.get(), req, &resp));
    ctx.out() << "This node joined a swarm as a "
              << (resp.role() == api::NODE_ROLE_MANAGER ? "manager" : "worker") << ".\n";
  });
}

void AddJoinToken(CLI::App& swarm, Context& ctx) {
  struct Options {
    std::string role;
    bool quiet = false;
    bool rotate = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = swarm.add_subcommand("join-token", "Manage join tokens");
  cmd->add_flag("-q,--quiet", o->quiet, "Only display token");
  cmd->add_flag("--rotate", o->rotate, "Rotate join token");
  cmd->add_option("role", o->role, "worker or manager")->required()->type_name("(worker|manager)");
  cmd->callback([&ctx, o] {
    absl::StatusOr<api::NodeRole> role = ParseRole(o->role);
    if (!role.ok()) UsageError(absl::StrCat("unknown role ", o->role, ": use worker or manager"));
    api::JoinTokens tokens;
    std::string manager_addr;
    if (o->rotate) {
      api::RotateJoinTokenRequest req;
      req.set_role(*role);
      api::RotateJoinTokenResponse resp;
      auto call = CallContext();
      ctx.Check(ctx.control().RotateJoinToken(call.get(), req, &resp));
      if (!o->quiet) ctx.out() << "Successfully rotated " << o->role << " join token.\n\n";
      tokens = resp.join_tokens();
      manager_addr = resp.manager_addr();
    } else {
      api::GetJoinTokensResponse resp;
      auto call = CallContext();
      ctx.Check(ctx.control().GetJoinTokens(call.get(), api::GetJoinTokensRequest(), &resp));
      tokens = resp.join_tokens();
      manager_addr = resp.manager_addr();
    }
    const std::string& token = *role == api::NODE_ROLE_MANAGER ? tokens.manager() : tokens.worker();
    if (o->quiet) {
      ctx.out() << token << "\n";
    } else {
      ctx.out() << JoinCommandText(*role, token, manager_addr);
    }
  });
}

void AddLeave(CLI::App& swarm, Context& ctx) {
  auto force = std::make_shared<bool>(false);
  auto* cmd = swarm.add_subcommand("leave", "Leave the swarm");
  cmd->add_flag("-f,--force", *force,
                "Force this node to leave the swarm, ignoring warnings (needed for a manager)");
  cmd->callback([&ctx, force] {
    api::LeaveSwarmRequest req;
    req.set_force(*force);
    api::LeaveSwarmResponse resp;
    auto call = CallContext(kSwarmSetupTimeout);
    ctx.Check(ctx.control().LeaveSwarm(call.get(), req, &resp));
    ctx.out() << "Node left the swarm.\n";
  });
}

void AddUnlock(CLI::App& swarm, Context& ctx) {
  auto* cmd = swarm.add_subcommand(
      "unlock", "Unlock swarm (the key is read from stdin, without echo on a terminal)");
  cmd->callback([&ctx] {
    const api::GetInfoResponse info = GetInfo(ctx);
    switch (info.local_node_state()) {
      case api::GetInfoResponse::INACTIVE:
        throw CommandError{"this node is not part of a swarm, so there is nothing to unlock"};
      case api::GetInfoResponse::LOCKED:
        break;
      default:
        throw CommandError{"swarm is not locked: nothing to unlock"};
    }
    const std::string key = ReadSecretLine(ctx, "Enter unlock key: ");
    if (key.empty()) {
      throw CommandError{
          "no unlock key given: type or pipe in the SWMKEY-1-… key that `shoal swarm init "
          "--autolock` or `shoal swarm unlock-key` printed"};
    }
    api::UnlockSwarmRequest req;
    req.set_unlock_key(key);
    api::UnlockSwarmResponse resp;
    auto call = CallContext(kSwarmSetupTimeout);
    ctx.Check(ctx.control().UnlockSwarm(call.get(), req, &resp));
  });
}

void AddUnlockKey(CLI::App& swarm, Context& ctx) {
  struct Options {
    bool quiet = false;
    bool rotate = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = swarm.add_subcommand("unlock-key", "Manage the unlock key");
  cmd->add_flag("-q,--quiet", o->quiet, "Only display the key");
  cmd->add_flag("--rotate", o->rotate, "Rotate unlock key");
  cmd->callback([&ctx, o] {
    std::string key;
    if (o->rotate) {
      api::RotateUnlockKeyResponse resp;
      auto call = CallContext();
      ctx.Check(ctx.control().RotateUnlockKey(call.get(), api::RotateUnlockKeyRequest(), &resp));
      if (!o->quiet) ctx.out() << "Successfully rotated manager unlock key.\n\n";
      key = resp.unlock_key();
    } else {
      key = GetUnlockKey(ctx);
    }
    if (key.empty()) {
      throw CommandError{
          "no unlock key is set: autolock is off (turn it on with `shoal swarm update "
          "--autolock=true`)"};
    }
    if (o->quiet) {
      ctx.out() << key << "\n";
    } else {
      ctx.out() << UnlockKeyText(key);
    }
  });
}

void AddUpdate(CLI::App& swarm, Context& ctx) {
  auto flags = std::make_shared<ClusterFlags>();
  auto* cmd = swarm.add_subcommand("update", "Update the swarm");
  flags->Add(cmd, "Change manager autolocking setting (true|false)");
  cmd->callback([&ctx, flags] {
    const ClusterSpecChanges changes = flags->Changes();
    bool turned_on = false;
    UpdateClusterSpec(ctx, [&](const api::Cluster& cluster, api::ClusterSpec* spec) {
      const bool before = cluster.spec().encryption_config().auto_lock_managers();
      ApplyClusterSpecChanges(changes, spec);
      turned_on = !before && spec->encryption_config().auto_lock_managers();
    });
    ctx.out() << "Swarm updated.\n";
    if (turned_on) {
      const std::string key = GetUnlockKey(ctx);
      if (!key.empty()) ctx.out() << UnlockKeyText(key);
    }
  });
}

void AddCa(CLI::App& swarm, Context& ctx) {
  struct Options {
    bool rotate = false, quiet = false, detach = false;
    std::string cert_expiry, ca_cert, ca_key, timeout = "2m";
    CLI::Option* cert_expiry_opt = nullptr;
    CLI::Option* ca_cert_opt = nullptr;
    CLI::Option* ca_key_opt = nullptr;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = swarm.add_subcommand("ca", "Display and rotate the root CA");
  cmd->add_flag("--rotate", o->rotate,
                "Rotate the swarm CA (to a new generated root, or to --ca-cert/--ca-key)");
  o->cert_expiry_opt = cmd->add_option("--cert-expiry", o->cert_expiry,
                                       "Validity period for node certificates, e.g. 2160h or 90d");
  o->ca_cert_opt = cmd->add_option("--ca-cert", o->ca_cert,
                                   "Path to the PEM-formatted root CA certificate to use");
  o->ca_key_opt =
      cmd->add_option("--ca-key", o->ca_key, "Path to the PEM-formatted root CA key to use");
  cmd->add_flag("-q,--quiet", o->quiet, "Suppress progress output");
  cmd->add_flag("-d,--detach", o->detach,
                "Exit immediately instead of waiting for the root rotation to converge");
  cmd->add_option("--timeout", o->timeout,
                  "How long to wait for the rotation to converge (default 2m)");
  cmd->callback([&ctx, o] {
    if (!o->rotate) {
      for (CLI::Option* opt : {o->cert_expiry_opt, o->ca_cert_opt, o->ca_key_opt}) {
        if (opt->count() > 0) {
          UsageError(absl::StrCat("`", opt->get_name(),
                                  "` flag requires the `--rotate` flag to update the CA"));
        }
      }
      api::GetClusterResponse resp;
      auto call = CallContext();
      ctx.Check(ctx.control().GetCluster(call.get(), api::GetClusterRequest(), &resp));
      ctx.out() << absl::StripAsciiWhitespace(resp.cluster().root_ca().ca_cert()) << "\n";
      return;
    }
    if ((o->ca_cert_opt->count() > 0) != (o->ca_key_opt->count() > 0)) {
      UsageError(
          "rotating to a known CA needs both --ca-cert and --ca-key (external CAs are not "
          "supported)");
    }
    std::optional<absl::Duration> cert_expiry;
    if (o->cert_expiry_opt->count() > 0) {
      absl::StatusOr<absl::Duration> d = ParseCertExpiry(o->cert_expiry);
      if (!d.ok()) UsageError(std::string(d.status().message()));
      cert_expiry = *d;
    }
    const absl::Duration timeout = PositiveDurationFlag("timeout", o->timeout);
    const std::string cert = o->ca_cert.empty() ? "" : ReadFileFlag("ca-cert", o->ca_cert);
    const std::string key = o->ca_key.empty() ? "" : ReadFileFlag("ca-key", o->ca_key);

    const api::Cluster before =
        UpdateClusterSpec(ctx, [&](const api::Cluster&, api::ClusterSpec* spec) {
          api::CAConfig* ca = spec->mutable_ca_config();
          if (cert_expiry) *ca->mutable_node_cert_expiry() = ToProto(*cert_expiry);
          ca->set_signing_ca_cert(cert);
          ca->set_signing_ca_key(key);
          if (cert.empty() && key.empty()) ca->set_force_rotate(ca->force_rotate() + 1);
        });
    if (o->detach) return;
    const std::string old_root = before.root_ca().ca_cert();
    const bool expect_new_root =
        cert.empty() || absl::StripAsciiWhitespace(cert) != absl::StripAsciiWhitespace(old_root);
    const api::Cluster after = WaitForRootRotation(ctx, RealClock(), old_root, expect_new_root,
                                                   timeout, absl::Milliseconds(500), o->quiet);
    ctx.out() << absl::StripAsciiWhitespace(after.root_ca().ca_cert()) << "\n";
  });
}

}  // namespace

void ApplyClusterSpecChanges(const ClusterSpecChanges& changes, api::ClusterSpec* spec) {
  if (changes.autolock)
    spec->mutable_encryption_config()->set_auto_lock_managers(*changes.autolock);
  if (changes.cert_expiry) {
    *spec->mutable_ca_config()->mutable_node_cert_expiry() = ToProto(*changes.cert_expiry);
  }
  if (changes.task_history_limit) {
    spec->mutable_orchestration()->set_task_history_retention_limit(*changes.task_history_limit);
  }
  if (changes.dispatcher_heartbeat) {
    *spec->mutable_dispatcher()->mutable_heartbeat_period() =
        ToProto(*changes.dispatcher_heartbeat);
  }
  if (changes.snapshot_interval)
    spec->mutable_raft()->set_snapshot_interval(*changes.snapshot_interval);
  if (changes.keep_old_snapshots) {
    spec->mutable_raft()->set_keep_old_snapshots(*changes.keep_old_snapshots);
  }
}

absl::StatusOr<absl::Duration> ParseCertExpiry(const std::string& text) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok())
    return absl::InvalidArgumentError(absl::StrCat("--cert-expiry: ", d.status().message()));
  if (*d < absl::Hours(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cert-expiry ", text,
                     " is too short: node certificates must be valid for at least 1h "
                     "(the default is 90d)"));
  }
  return *d;
}

void AddSwarmCommand(CLI::App& app, Context& ctx) {
  auto* swarm = app.add_subcommand("swarm", "Manage Swarm");
  swarm->require_subcommand(1);
  AddInit(*swarm, ctx);
  AddJoin(*swarm, ctx);
  AddJoinToken(*swarm, ctx);
  AddLeave(*swarm, ctx);
  AddUnlock(*swarm, ctx);
  AddUnlockKey(*swarm, ctx);
  AddUpdate(*swarm, ctx);
  AddCa(*swarm, ctx);
}

}  // namespace shoal::cli
