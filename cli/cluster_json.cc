#include "cli/cluster_json.h"

#include "absl/time/time.h"
#include "cli/ca_rotation.h"
#include "cli/duration.h"
#include "cli/json_util.h"

namespace shoal::cli {
namespace {

int64_t Nanos(const google::protobuf::Duration& d) {
  return absl::ToInt64Nanoseconds(FromProto(d));
}

}  // namespace

nlohmann::json ClusterJson(const api::Cluster& cluster) {
  const api::ClusterSpec& spec = cluster.spec();
  nlohmann::json spec_json = {
      {"Name", spec.annotations().name()},
      {"Labels", nlohmann::json(LabelsJson(spec.annotations().labels()))},
      {"Orchestration",
       {{"TaskHistoryRetentionLimit", spec.orchestration().task_history_retention_limit()}}},
      {"Raft",
       {{"SnapshotInterval", spec.raft().snapshot_interval()},
        {"KeepOldSnapshots", spec.raft().keep_old_snapshots()},
        {"LogEntriesForSlowFollowers", spec.raft().log_entries_for_slow_followers()},
        {"ElectionTick", spec.raft().election_tick()},
        {"HeartbeatTick", spec.raft().heartbeat_tick()}}},
      {"Dispatcher", {{"HeartbeatPeriod", Nanos(spec.dispatcher().heartbeat_period())}}},
      {"CAConfig",
       {{"NodeCertExpiry", Nanos(spec.ca_config().node_cert_expiry())},
        {"ForceRotate", spec.ca_config().force_rotate()}}},
      {"TaskDefaults", nlohmann::json::object()},
      {"EncryptionConfig", {{"AutoLockManagers", spec.encryption_config().auto_lock_managers()}}},
  };
  if (!spec.ca_config().signing_ca_cert().empty()) {
    spec_json["CAConfig"]["SigningCACert"] = spec.ca_config().signing_ca_cert();
  }
  if (spec.task_defaults().has_log_driver()) {
    spec_json["TaskDefaults"]["LogDriver"] = {
        {"Name", spec.task_defaults().log_driver().name()},
        {"Options", nlohmann::json(LabelsJson(spec.task_defaults().log_driver().options()))}};
  }
  nlohmann::json tls = nlohmann::json::object();
  if (!cluster.root_ca().ca_cert().empty()) {
    tls["TrustRoot"] = cluster.root_ca().ca_cert();
    absl::StatusOr<CertificateIssuer> issuer = IssuerOf(cluster.root_ca().ca_cert());
    if (issuer.ok()) {
      tls["CertIssuerSubject"] = Base64(issuer->subject);
      tls["CertIssuerPublicKey"] = Base64(issuer->public_key);
    }
  }
  nlohmann::json pools = nlohmann::json::array();
  for (const std::string& p : cluster.default_address_pool()) pools.push_back(p);
  return {
      {"ID", cluster.id()},
      {"Version", {{"Index", cluster.meta().version().index()}}},
      {"CreatedAt", Rfc3339Nano(cluster.meta().created_at())},
      {"UpdatedAt", Rfc3339Nano(cluster.meta().updated_at())},
      {"Spec", spec_json},
      {"TLSInfo", tls},
      {"RootRotationInProgress", cluster.root_ca().has_root_rotation()},
      {"DefaultAddrPool", pools},
      {"SubnetSize", cluster.subnet_size()},
      {"DataPathPort", cluster.vxlan_udp_port()},
  };
}

}  // namespace shoal::cli
