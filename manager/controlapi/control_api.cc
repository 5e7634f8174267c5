#include "manager/controlapi/control_api.h"

#include <openssl/x509.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "manager/cluster_object.h"
#include "manager/controlapi/internal.h"
#include "manager/rolemanager/quorum.h"
#include "pki/join_token.h"
#include "pki/ossl.h"
#include "pki/root_ca.h"
#include "pki/unlock_key.h"

namespace shoal::manager {
namespace {

using controlapi_internal::AnyOf;
using controlapi_internal::MatchesLabels;
using controlapi_internal::RedactTask;
using controlapi_internal::ToGrpc;
using controlapi_internal::ToProto;
using controlapi_internal::UpdateWithRetry;

// Denied certificates are kept this long past their expiry (clock skew: certificates are
// backdated by as much, see pki::RootCA::kBackdate), then pruned.
constexpr absl::Duration kDeniedGrace = absl::Hours(1);

absl::Status NoCluster() {
  return absl::UnavailableError(
      "this manager does not hold the swarm's cluster object yet (it may still be catching up "
      "with the Raft log); retry shortly");
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// "host1 (id)" when the node reported a hostname, else its ID.
std::string NodeName(const api::Node& node) {
  const std::string& host = node.description().hostname();
  if (host.empty() || host == node.id()) return node.id();
  return absl::StrCat(host, " (", node.id(), ")");
}

// "<service>.<slot or node ID>.<task ID>" unless the task carries a name of its own.
std::string TaskName(const api::Task& t) {
  if (!t.annotations().name().empty()) return t.annotations().name();
  const std::string& service = t.service_annotations().name();
  if (service.empty()) return t.id();
  return absl::StrCat(service, ".", t.slot() != 0 ? absl::StrCat(t.slot()) : t.node_id(), ".",
                      t.id());
}

bool NodeMatches(const api::ListNodesRequest::Filters& f, const api::Node& n) {
  const std::string& host = n.description().hostname();
  const std::string& spec_name = n.spec().annotations().name();
  return AnyOf(f.names(),
               [&](const std::string& name) { return name == host || name == spec_name; }) &&
         AnyOf(f.name_prefixes(),
               [&](const std::string& p) {
                 return absl::StartsWith(host, p) ||
                        (!spec_name.empty() && absl::StartsWith(spec_name, p));
               }) &&
         AnyOf(f.id_prefixes(),
               [&](const std::string& p) { return absl::StartsWith(n.id(), p); }) &&
         MatchesLabels(f.labels(), n.spec().annotations().labels()) &&
         AnyOf(f.roles(), [&](int r) { return r == n.role(); }) &&
         AnyOf(f.memberships(), [&](int m) { return m == n.spec().membership(); }) &&
         AnyOf(f.availabilities(), [&](int a) { return a == n.spec().availability(); });
}

bool TaskMatches(const api::ListTasksRequest::Filters& f, const api::Task& t) {
  const std::string name = TaskName(t);
  return AnyOf(f.names(), [&](const std::string& n) { return n == name; }) &&
         AnyOf(f.name_prefixes(),
               [&](const std::string& p) { return absl::StartsWith(name, p); }) &&
         AnyOf(f.id_prefixes(),
               [&](const std::string& p) { return absl::StartsWith(t.id(), p); }) &&
         MatchesLabels(f.labels(), t.annotations().labels()) &&
         AnyOf(f.service_ids(), [&](const std::string& s) { return s == t.service_id(); }) &&
         AnyOf(f.node_ids(), [&](const std::string& s) { return s == t.node_id(); }) &&
         AnyOf(f.desired_states(), [&](int s) { return s == t.desired_state(); }) &&
         AnyOf(f.slots(), [&](uint64_t s) { return s == t.slot(); });
}

// SHA-256 of the root CA certificate's DER: what join tokens pin.
absl::StatusOr<std::string> RootDigest(const std::string& ca_cert_pem) {
  absl::StatusOr<pki::X509Ptr> cert =
      pki::ParseCertificate(ca_cert_pem, "root CA certificate", /*allow_more=*/true);
  if (!cert.ok()) {
    return absl::InternalError(absl::StrCat("the cluster's root CA certificate cannot be read (",
                                            cert.status().message(), ")"));
  }
  return pki::CertificateDigest(cert->get());
}

// The notAfter of a PEM certificate, if it parses.
std::optional<absl::Time> CertificateNotAfter(const std::string& pem) {
  if (pem.empty()) return std::nullopt;
  absl::StatusOr<pki::X509Ptr> cert =
      pki::ParseCertificate(pem, "node certificate", /*allow_more=*/true);
  if (!cert.ok()) return std::nullopt;
  const ASN1_TIME* t = X509_get0_notAfter(cert->get());
  if (t == nullptr) return std::nullopt;
  return pki::Asn1TimeToAbsl(t);
}

bool IsUnlockKey(const api::EncryptionKey& k) {
  return k.subsystem() == ControlApi::kUnlockKeySubsystem;
}

const api::EncryptionKey* NewestUnlockKey(const api::Cluster& c) {
  const api::EncryptionKey* newest = nullptr;
  for (const api::EncryptionKey& k : c.unlock_keys()) {
    if (IsUnlockKey(k) && (newest == nullptr || k.lamport_time() > newest->lamport_time())) {
      newest = &k;
    }
  }
  return newest;
}

// Adds a fresh unlock key to `c`, newer than every key it holds, and returns its bytes.
std::string AddUnlockKey(api::Cluster* c) {
  uint64_t time = c->encryption_key_lamport_clock();
  for (const api::EncryptionKey& k : c->unlock_keys()) time = std::max(time, k.lamport_time() + 1);
  c->set_encryption_key_lamport_clock(time + 1);
  api::EncryptionKey* key = c->add_unlock_keys();
  key->set_subsystem(ControlApi::kUnlockKeySubsystem);
  key->set_algorithm(api::EncryptionKey::AES_256_GCM);
  key->set_key(pki::GenerateUnlockKeyBytes());
  key->set_lamport_time(time);
  return key->key();
}

// Keeps the newest `keep` unlock keys (and every key of another subsystem).
void TrimUnlockKeys(api::Cluster* c, size_t keep) {
  std::vector<api::EncryptionKey> unlock;
  std::vector<api::EncryptionKey> others;
  for (const api::EncryptionKey& k : c->unlock_keys())
    (IsUnlockKey(k) ? unlock : others).push_back(k);
  std::sort(unlock.begin(), unlock.end(),
            [](const auto& a, const auto& b) { return a.lamport_time() > b.lamport_time(); });
  if (unlock.size() > keep) unlock.resize(keep);
  c->clear_unlock_keys();
  for (auto& k : unlock) *c->add_unlock_keys() = std::move(k);
  for (auto& k : others) *c->add_unlock_keys() = std::move(k);
}

std::string VersionDetail(uint64_t read, uint64_t now) {
  return absl::StrCat(" (read at version ", read, ", now at version ", now, ")");
}

absl::Status ClusterChanged(uint64_t read, uint64_t now) {
  return absl::AbortedError(absl::StrCat(
      "the cluster was changed since you read it; re-read and retry", VersionDetail(read, now)));
}

absl::Status NodeChanged(const api::Node& node, uint64_t read) {
  return absl::AbortedError(absl::StrCat("node ", NodeName(node),
                                         " was changed since you read it; re-read and retry",
                                         VersionDetail(read, node.meta().version().index())));
}

// Checks on a requested cluster spec that need no stored state.
absl::Status ValidateClusterSpec(const api::ClusterSpec& spec) {
  const api::CAConfig& ca = spec.ca_config();
  if (ca.has_node_cert_expiry()) {
    const absl::Duration expiry = FromProto(ca.node_cert_expiry());
    if (expiry < pki::RootCA::kMinNodeValidity) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--cert-expiry must be at least ", absl::FormatDuration(pki::RootCA::kMinNodeValidity),
          "; got ", absl::FormatDuration(expiry)));
    }
  }
  if (spec.dispatcher().has_heartbeat_period()) {
    const absl::Duration period = FromProto(spec.dispatcher().heartbeat_period());
    if (period < absl::Seconds(1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the dispatcher heartbeat period must be at least 1s; got ",
                       absl::FormatDuration(period)));
    }
  }
  const int64_t history = spec.orchestration().task_history_retention_limit();
  if (history < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--task-history-limit must be -1 (keep every task) or more; got ", history));
  }
  const api::RaftConfig& raft = spec.raft();
  if (raft.heartbeat_tick() != 0 && raft.election_tick() != 0 &&
      raft.election_tick() <= raft.heartbeat_tick()) {
    return absl::InvalidArgumentError(absl::StrCat("the Raft election tick (", raft.election_tick(),
                                                   ") must be greater than the heartbeat tick (",
                                                   raft.heartbeat_tick(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

ControlApi::ControlApi(store::MemoryStore* store, RaftControl* raft, ControlApiOptions options)
    : store_(store),
      raft_(raft),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock()) {}

grpc::Status ControlApi::Barrier() {
  const absl::Status s = raft_->ReadBarrier(absl::Now() + options_.timeout);
  if (s.ok()) return grpc::Status::OK;
  if (absl::IsUnavailable(s)) {
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("the swarm has no leader right now, so this manager cannot answer with the "
                     "latest state (",
                     s.message(),
                     "); check that a majority of the managers is running and reachable, then "
                     "retry"));
  }
  if (absl::IsDeadlineExceeded(s)) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        absl::StrCat("timed out after ", absl::FormatDuration(options_.timeout),
                                     " waiting for the Raft leader to confirm the latest state (",
                                     s.message(), "); retry"));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      absl::StrCat("reading the swarm's state: ", s.message()));
}

void ControlApi::FillManagerStatus(const std::vector<ManagerMember>& members, api::Node* node) {
  node->clear_manager_status();
  for (const ManagerMember& m : members) {
    if (m.node_id != node->id()) continue;
    api::ManagerStatus* ms = node->mutable_manager_status();
    ms->set_raft_id(m.raft_id);
    ms->set_addr(m.addr);
    ms->set_leader(m.leader);
    ms->set_reachability(m.reachable ? api::ManagerStatus::REACHABLE
                                     : api::ManagerStatus::UNREACHABLE);
    return;
  }
}

// ---------------------------------------------------------------------------------------------
// Cluster

grpc::Status ControlApi::GetCluster(const api::GetClusterRequest&, api::GetClusterResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  bool found = false;
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Cluster* c = FindCluster(tx)) {
      *resp->mutable_cluster() = RedactCluster(*c);
      found = true;
    }
  });
  return found ? grpc::Status::OK : ToGrpc(NoCluster());
}

grpc::Status ControlApi::UpdateCluster(const api::UpdateClusterRequest& req,
                                       api::UpdateClusterResponse* resp) {
  if (absl::Status s = ValidateClusterSpec(req.spec()); !s.ok()) return ToGrpc(s);
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  const uint64_t read_version = req.version().index();
  bool checked = false;  // the transaction got past its own checks
  std::string cluster_id;
  absl::Status st = store_->Update([&](store::WriteTx& tx) -> absl::Status {
    checked = false;
    const api::Cluster* current = FindCluster(tx);
    if (current == nullptr) return NoCluster();
    cluster_id = current->id();
    if (current->meta().version().index() != read_version) {
      return ClusterChanged(read_version, current->meta().version().index());
    }
    api::ClusterSpec spec = req.spec();

    // The name identifies the cluster object: it cannot change.
    const std::string& name = current->spec().annotations().name();
    if (spec.annotations().name().empty()) {
      spec.mutable_annotations()->set_name(name);
    } else if (spec.annotations().name() != name) {
      return absl::InvalidArgumentError(absl::StrCat("the cluster's name (\"", name,
                                                     "\") cannot be changed; got \"",
                                                     spec.annotations().name(), "\""));
    }

    // CA: the request holds the redacted view, so an unchanged signing certificate without a key
    // means "keep the stored key". A new signing CA must be complete and usable.
    const api::CAConfig& cur_ca = current->spec().ca_config();
    api::CAConfig* ca = spec.mutable_ca_config();
    if (ca->signing_ca_key().empty() && !ca->signing_ca_cert().empty() &&
        ca->signing_ca_cert() == cur_ca.signing_ca_cert()) {
      ca->set_signing_ca_key(cur_ca.signing_ca_key());
    }
    if (ca->signing_ca_cert() != cur_ca.signing_ca_cert() ||
        ca->signing_ca_key() != cur_ca.signing_ca_key()) {
      if (ca->signing_ca_cert().empty() != ca->signing_ca_key().empty()) {
        return absl::InvalidArgumentError(
            "a new signing CA needs both its certificate and its key (--ca-cert and --ca-key)");
      }
      if (!ca->signing_ca_cert().empty()) {
        absl::StatusOr<pki::RootCA> loaded =
            pki::RootCA::Load(ca->signing_ca_cert(), ca->signing_ca_key(), now);
        if (!loaded.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "the CA given with --ca-cert/--ca-key cannot be used: ", loaded.status().message()));
        }
      }
    }
    if (ca->force_rotate() < cur_ca.force_rotate()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ca_config.force_rotate can only increase (it is ", cur_ca.force_rotate(),
                       ", got ", ca->force_rotate(), "); re-read the cluster and retry"));
    }

    api::Cluster updated = *current;
    const bool was_locked = current->spec().encryption_config().auto_lock_managers();
    const bool locked = spec.encryption_config().auto_lock_managers();
    if (locked && (!was_locked || NewestUnlockKey(updated) == nullptr)) {
      AddUnlockKey(&updated);
    } else if (!locked && was_locked) {
      updated.clear_unlock_keys();
    }
    *updated.mutable_spec() = std::move(spec);
    checked = true;
    return tx.Update(std::move(updated));
  });
  if (absl::IsAborted(st) && checked) {
    // Applying found the cluster changed by a concurrent writer (or a leader change dropped the
    // entry): say which.
    uint64_t now_version = 0;
    store_->View([&](const store::ReadTx& tx) {
      if (const api::Cluster* c = FindCluster(tx)) now_version = c->meta().version().index();
    });
    if (now_version != read_version) st = ClusterChanged(read_version, now_version);
  }
  if (!st.ok()) return ToGrpc(st);
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Cluster* c = tx.Get<api::Cluster>(cluster_id)) {
      *resp->mutable_cluster() = RedactCluster(*c);
    }
  });
  return grpc::Status::OK;
}

grpc::Status ControlApi::GetJoinTokens(const api::GetJoinTokensRequest&,
                                       api::GetJoinTokensResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  bool found = false;
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Cluster* c = FindCluster(tx)) {
      *resp->mutable_join_tokens() = c->root_ca().join_tokens();
      found = true;
    }
  });
  if (!found) return ToGrpc(NoCluster());
  resp->set_manager_addr(options_.manager_addr);
  return grpc::Status::OK;
}

grpc::Status ControlApi::RotateJoinToken(const api::RotateJoinTokenRequest& req,
                                         api::RotateJoinTokenResponse* resp) {
  if (!api::NodeRole_IsValid(req.role())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("unknown role ", req.role(), "; use worker or manager"));
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  api::JoinTokens tokens;
  absl::Status st = UpdateWithRetry(store_, [&](store::WriteTx& tx) -> absl::Status {
    const api::Cluster* current = FindCluster(tx);
    if (current == nullptr) return NoCluster();
    absl::StatusOr<std::string> digest = RootDigest(current->root_ca().ca_cert());
    if (!digest.ok()) return digest.status();
    api::Cluster updated = *current;
    api::JoinTokens* t = updated.mutable_root_ca()->mutable_join_tokens();
    if (req.role() == api::NODE_ROLE_MANAGER) {
      t->set_manager(pki::GenerateJoinToken(*digest));
    } else {
      t->set_worker(pki::GenerateJoinToken(*digest));
    }
    tokens = *t;
    return tx.Update(std::move(updated));
  });
  if (!st.ok()) return ToGrpc(st);
  *resp->mutable_join_tokens() = std::move(tokens);
  resp->set_manager_addr(options_.manager_addr);
  return grpc::Status::OK;
}

grpc::Status ControlApi::GetUnlockKey(const api::GetUnlockKeyRequest&,
                                      api::GetUnlockKeyResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  absl::Status st = NoCluster();
  store_->View([&](const store::ReadTx& tx) {
    const api::Cluster* c = FindCluster(tx);
    if (c == nullptr) return;
    *resp->mutable_version() = c->meta().version();
    st = absl::OkStatus();
    if (!c->spec().encryption_config().auto_lock_managers()) return;
    const api::EncryptionKey* key = NewestUnlockKey(*c);
    if (key == nullptr) {
      st = absl::FailedPreconditionError(
          "autolock is on but the swarm holds no unlock key; run `shoal swarm unlock-key "
          "--rotate` to create one");
    } else if (key->key().size() != pki::kUnlockKeySize) {
      st = absl::InternalError(absl::StrCat("the stored unlock key has ", key->key().size(),
                                            " bytes instead of ", pki::kUnlockKeySize,
                                            "; run `shoal swarm unlock-key --rotate`"));
    } else {
      resp->set_unlock_key(pki::FormatUnlockKey(key->key()));
    }
  });
  if (!st.ok()) resp->Clear();
  return ToGrpc(st);
}

grpc::Status ControlApi::RotateUnlockKey(const api::RotateUnlockKeyRequest&,
                                         api::RotateUnlockKeyResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  std::string key;
  absl::Status st = UpdateWithRetry(store_, [&](store::WriteTx& tx) -> absl::Status {
    const api::Cluster* current = FindCluster(tx);
    if (current == nullptr) return NoCluster();
    if (!current->spec().encryption_config().auto_lock_managers()) {
      return absl::FailedPreconditionError(
          "autolock is not enabled; enable it with `shoal swarm update --autolock=true`");
    }
    api::Cluster updated = *current;
    key = AddUnlockKey(&updated);
    // The previous key stays valid until every manager has re-wrapped its keys under the new one.
    TrimUnlockKeys(&updated, 2);
    return tx.Update(std::move(updated));
  });
  if (!st.ok()) return ToGrpc(st);
  resp->set_unlock_key(pki::FormatUnlockKey(key));
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// Nodes

grpc::Status ControlApi::GetNode(const api::GetNodeRequest& req, api::GetNodeResponse* resp) {
  if (req.node_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a node ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  const std::vector<ManagerMember> members = raft_->Members();
  bool found = false;
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Node* n = tx.Get<api::Node>(req.node_id())) {
      *resp->mutable_node() = *n;
      found = true;
    }
  });
  if (!found) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("node ", req.node_id(), " not found"));
  }
  FillManagerStatus(members, resp->mutable_node());
  return grpc::Status::OK;
}

grpc::Status ControlApi::ListNodes(const api::ListNodesRequest& req, api::ListNodesResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  const std::vector<ManagerMember> members = raft_->Members();
  store_->View([&](const store::ReadTx& tx) {
    for (const api::Node* n : tx.List<api::Node>()) {
      if (NodeMatches(req.filters(), *n)) *resp->add_nodes() = *n;
    }
  });
  for (api::Node& n : *resp->mutable_nodes()) FillManagerStatus(members, &n);
  return grpc::Status::OK;
}

grpc::Status ControlApi::UpdateNode(const api::UpdateNodeRequest& req,
                                    api::UpdateNodeResponse* resp) {
  if (req.node_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a node ID is required");
  }
  if (!api::NodeAvailability_IsValid(req.spec().availability())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("unknown availability ", req.spec().availability(),
                                     "; use active, pause or drain"));
  }
  if (!api::NodeRole_IsValid(req.spec().desired_role())) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("unknown role ", req.spec().desired_role(), "; use worker or manager"));
  }
  for (const auto& [key, value] : req.spec().annotations().labels()) {
    if (key.empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "node labels need a non-empty key (--label-add key=value)");
    }
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  const std::vector<ManagerMember> members = raft_->Members();
  const uint64_t read_version = req.version().index();
  bool checked = false;
  absl::Status st = store_->Update([&](store::WriteTx& tx) -> absl::Status {
    checked = false;
    const api::Node* node = tx.Get<api::Node>(req.node_id());
    if (node == nullptr)
      return absl::NotFoundError(absl::StrCat("node ", req.node_id(), " not found"));
    if (node->meta().version().index() != read_version) return NodeChanged(*node, read_version);

    const bool demotion = node->spec().desired_role() == api::NODE_ROLE_MANAGER &&
                          req.spec().desired_role() == api::NODE_ROLE_WORKER;
    if (demotion) {
      bool other_manager = false;
      for (const api::Node* n : tx.List<api::Node>()) {
        if (n->id() != node->id() && n->role() == api::NODE_ROLE_MANAGER &&
            n->spec().desired_role() == api::NODE_ROLE_MANAGER) {
          other_manager = true;
          break;
        }
      }
      if (!other_manager) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot demote the last manager of the swarm (", NodeName(*node),
                         "); promote another node first"));
      }
      for (const ManagerMember& m : members) {
        if (m.node_id != node->id()) continue;
        if (absl::Status s = CheckDemotionKeepsQuorum(members, m.raft_id, NodeName(*node));
            !s.ok()) {
          return s;
        }
      }
    }

    api::Node updated = *node;
    api::NodeSpec* spec = updated.mutable_spec();
    spec->set_availability(req.spec().availability());
    spec->set_desired_role(req.spec().desired_role());
    *spec->mutable_annotations()->mutable_labels() = req.spec().annotations().labels();
    checked = true;
    return tx.Update(std::move(updated));
  });
  if (absl::IsAborted(st) && checked) {
    api::Node now;
    store_->View([&](const store::ReadTx& tx) {
      if (const api::Node* n = tx.Get<api::Node>(req.node_id())) now = *n;
    });
    if (!now.id().empty() && now.meta().version().index() != read_version) {
      st = NodeChanged(now, read_version);
    }
  }
  if (!st.ok()) return ToGrpc(st);
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Node* n = tx.Get<api::Node>(req.node_id())) *resp->mutable_node() = *n;
  });
  FillManagerStatus(raft_->Members(), resp->mutable_node());
  return grpc::Status::OK;
}

grpc::Status ControlApi::RemoveNode(const api::RemoveNodeRequest& req, api::RemoveNodeResponse*) {
  if (req.node_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a node ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  const std::vector<ManagerMember> members = raft_->Members();
  const absl::Time now = clock_->Now();
  absl::Status st = UpdateWithRetry(store_, [&](store::WriteTx& tx) -> absl::Status {
    const api::Node* node = tx.Get<api::Node>(req.node_id());
    if (node == nullptr)
      return absl::NotFoundError(absl::StrCat("node ", req.node_id(), " not found"));
    const bool raft_member =
        std::any_of(members.begin(), members.end(),
                    [&](const ManagerMember& m) { return m.node_id == node->id(); });
    if (node->role() == api::NODE_ROLE_MANAGER ||
        node->spec().desired_role() == api::NODE_ROLE_MANAGER || raft_member) {
      return absl::FailedPreconditionError(absl::StrCat(
          "node ", NodeName(*node),
          " is a cluster manager and is a member of the raft cluster. It must be demoted to "
          "worker before removal"));
    }
    if (!req.force() && node->status().state() != api::NodeStatus::DOWN) {
      return absl::FailedPreconditionError(
          absl::StrCat("node ", NodeName(*node),
                       " is not down and can't be removed; use --force to remove it anyway"));
    }
    const api::Cluster* cluster = FindCluster(tx);
    if (cluster == nullptr) return NoCluster();
    api::Cluster updated = *cluster;
    auto* denied = updated.mutable_denied_certificates();
    // Entries for certificates long expired are no longer needed: such certificates are refused
    // anyway.
    for (auto it = denied->begin(); it != denied->end();) {
      if (it->second.has_expiry() && FromProto(it->second.expiry()) + kDeniedGrace < now) {
        it = denied->erase(it);
      } else {
        ++it;
      }
    }
    const absl::Time expiry =
        CertificateNotAfter(node->certificate().certificate()).value_or(now + kDefaultDenyPeriod);
    *(*denied)[node->id()].mutable_expiry() = ToProto(expiry);
    if (absl::Status s = tx.Update(std::move(updated)); !s.ok()) return s;
    return tx.Delete<api::Node>(req.node_id());
  });
  return ToGrpc(st);
}

// ---------------------------------------------------------------------------------------------
// Tasks

grpc::Status ControlApi::GetTask(const api::GetTaskRequest& req, api::GetTaskResponse* resp) {
  if (req.task_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a task ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  bool found = false;
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Task* t = tx.Get<api::Task>(req.task_id())) {
      *resp->mutable_task() = *t;
      RedactTask(resp->mutable_task());
      found = true;
    }
  });
  if (!found) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("task ", req.task_id(), " not found"));
  }
  return grpc::Status::OK;
}

grpc::Status ControlApi::ListTasks(const api::ListTasksRequest& req, api::ListTasksResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  const api::ListTasksRequest::Filters& f = req.filters();
  store_->View([&](const store::ReadTx& tx) {
    // Start from an index when the filters allow it; every filter is applied afterwards.
    std::vector<const api::Task*> candidates;
    if (!f.service_ids().empty()) {
      for (const std::string& id :
           std::set<std::string>(f.service_ids().begin(), f.service_ids().end())) {
        for (const api::Task* t : tx.FindTasksByService(id)) candidates.push_back(t);
      }
    } else if (!f.node_ids().empty()) {
      for (const std::string& id :
           std::set<std::string>(f.node_ids().begin(), f.node_ids().end())) {
        for (const api::Task* t : tx.FindTasksByNode(id)) candidates.push_back(t);
      }
    } else {
      candidates = tx.List<api::Task>();
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const api::Task* a, const api::Task* b) { return a->id() < b->id(); });
    for (const api::Task* t : candidates) {
      if (!TaskMatches(f, *t)) continue;
      api::Task* out = resp->add_tasks();
      *out = *t;
      RedactTask(out);
    }
  });
  return grpc::Status::OK;
}

}  // namespace shoal::manager
