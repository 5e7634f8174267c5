#include "manager/ca/rotation.h"

#include "openssl/x509.h"

#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "manager/cluster_object.h"
#include "pki/identity.h"
#include "pki/join_token.h"
#include "pki/ossl.h"
#include "pki/root_ca.h"
#include "spdlog/spdlog.h"

namespace shoal::manager {
namespace {

// Whether the spec asks for a rotation that is not under way yet.
bool NeedsNewRotation(const api::Cluster& cluster) {
  const api::CAConfig& cfg = cluster.spec().ca_config();
  const api::RootCA& root = cluster.root_ca();
  if (cfg.force_rotate() > root.last_forced_rotation()) return true;
  if (cfg.signing_ca_cert().empty() || cfg.signing_ca_cert() == root.ca_cert()) return false;
  return !root.has_root_rotation() || root.root_rotation().ca_cert() != cfg.signing_ca_cert();
}

// Whether a node's certificate state means it has been told to get a new certificate already.
bool RenewalUnderWay(api::IssuanceStatus::State state) {
  return state == api::IssuanceStatus::ROTATE || state == api::IssuanceStatus::RENEW ||
         state == api::IssuanceStatus::PENDING;
}

}  // namespace

CaRotationReconciler::CaRotationReconciler(store::MemoryStore* store, CaOptions options)
    : store_(store),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : &RealClock()) {}

CaRotationReconciler::~CaRotationReconciler() { Stop(); }

void CaRotationReconciler::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

void CaRotationReconciler::Stop() {
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watcher_ != nullptr) watcher_->Close();
    thread = std::move(thread_);
  }
  if (thread.joinable()) thread.join();
}

void CaRotationReconciler::Run() {
  store::WatchFilter filter;
  filter.kinds = {api::OBJECT_KIND_CLUSTER, api::OBJECT_KIND_NODE};
  while (true) {
    std::unique_ptr<store::Watcher> watcher =
        store_->ViewAndWatch([](const store::ReadTx&) {}, filter);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      watcher_ = watcher.get();
    }
    bool restart = false;
    while (!restart) {
      if (absl::Status s = ReconcileOnce(); !s.ok()) {
        spdlog::warn("root CA rotation: {}", s.ToString());
      }
      auto change = watcher->Next(absl::Now() + options_.rotation_retry_interval);
      // Take everything already queued: one pass answers all of it.
      while (change.ok()) change = watcher->Next(absl::InfinitePast());
      if (change.status().code() != absl::StatusCode::kDeadlineExceeded) restart = true;
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        watcher_ = nullptr;
        return;
      }
      if (restart) watcher_ = nullptr;
    }
  }
}

absl::StatusOr<CaRotationReconciler::RootIssuer> CaRotationReconciler::IssuerOfRoot(
    const std::string& root_pem) {
  absl::StatusOr<pki::X509Ptr> cert = pki::ParseCertificate(root_pem, "new root CA certificate");
  if (!cert.ok()) return cert.status();
  RootIssuer out;
  unsigned char* buf = nullptr;
  int len = i2d_X509_NAME(X509_get_subject_name(cert->get()), &buf);
  if (len <= 0) return absl::InternalError("cannot encode the new root's subject");
  out.subject.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
  OPENSSL_free(buf);
  buf = nullptr;
  len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert->get()), &buf);
  if (len <= 0) return absl::InternalError("cannot encode the new root's public key");
  out.public_key.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
  OPENSSL_free(buf);
  return out;
}

bool CaRotationReconciler::ReportsIssuer(const api::NodeTLSInfo& tls, const RootIssuer& issuer) {
  return tls.cert_issuer_subject() == issuer.subject &&
         tls.cert_issuer_public_key() == issuer.public_key;
}

bool CaRotationReconciler::VerifiesAgainst(const std::string& node_id, const std::string& cert_pem,
                                           const std::string& root_pem,
                                           const std::string& cluster_id, absl::Time now) {
  if (cert_pem.empty()) return false;
  const std::string key = absl::StrCat(cert_pem, root_pem);
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = verified_.find(node_id);
    // Verified before (during this rotation): skip the chain check. Expiry is not re-checked;
    // a certificate expiring mid-rotation is renewed by its node anyway.
    if (it != verified_.end() && it->second == key) return true;
  }
  auto id = pki::VerifyNodeCertificate(cert_pem, root_pem, "", now, cluster_id);
  if (!id.ok() || id->node_id != node_id) return false;
  absl::MutexLock lock(&cache_mu_);
  verified_[node_id] = key;
  return true;
}

absl::Status CaRotationReconciler::StartRotation(const api::Cluster& cluster) {
  const absl::Time now = clock_->Now();
  const api::CAConfig& cfg = cluster.spec().ca_config();
  const api::RootCA& root = cluster.root_ca();
  if (root.ca_key().empty()) {
    return absl::FailedPreconditionError(
        "cannot rotate the root CA: the managers do not hold the current root's key, so they "
        "cannot cross-sign a new root");
  }
  auto old_root = pki::RootCA::Load(root.ca_cert(), root.ca_key(), now);
  if (!old_root.ok()) {
    return absl::Status(old_root.status().code(),
                        absl::StrCat("cannot rotate the root CA: the current root does not load: ",
                                     old_root.status().message()));
  }
  const bool use_given = !cfg.signing_ca_cert().empty() && cfg.signing_ca_cert() != root.ca_cert();
  std::optional<pki::RootCA> new_root;
  if (use_given) {
    if (cfg.signing_ca_key().empty()) {
      return absl::FailedPreconditionError(
          "cannot rotate to the given root CA: its key is missing (external CAs are not "
          "supported); run `shoal swarm ca --rotate --ca-cert F --ca-key F` with both files");
    }
    auto loaded = pki::RootCA::Load(cfg.signing_ca_cert(), cfg.signing_ca_key(), now);
    if (!loaded.ok()) {
      return absl::Status(
          loaded.status().code(),
          absl::StrCat("cannot rotate to the given root CA: ", loaded.status().message()));
    }
    new_root.emplace(*std::move(loaded));
  } else {
    auto created = pki::RootCA::Create(now);
    if (!created.ok()) return created.status();
    new_root.emplace(*std::move(created));
  }
  auto cross = old_root->CrossSign(new_root->cert_pem());
  if (!cross.ok()) {
    return absl::Status(cross.status().code(),
                        absl::StrCat("cannot cross-sign the new root CA with the current one: ",
                                     cross.status().message()));
  }
  bool started = false;
  absl::Status s = UpdateWithRetry(*store_, [&](store::WriteTx& tx) -> absl::Status {
    started = false;
    const api::Cluster* current = FindCluster(tx);
    if (current == nullptr || current->id() != cluster.id()) return absl::OkStatus();
    const api::CAConfig& now_cfg = current->spec().ca_config();
    // Act only on what was read: if the root or the request changed meanwhile, the next pass
    // decides again.
    if (current->root_ca().ca_cert() != root.ca_cert() ||
        now_cfg.force_rotate() != cfg.force_rotate() ||
        now_cfg.signing_ca_cert() != cfg.signing_ca_cert() || !NeedsNewRotation(*current)) {
      return absl::OkStatus();
    }
    api::Cluster updated = *current;
    api::RootCA* r = updated.mutable_root_ca();
    api::RootRotation* rotation = r->mutable_root_rotation();
    rotation->set_ca_cert(new_root->cert_pem());
    rotation->set_ca_key(new_root->key_pem());
    rotation->set_cross_signed_ca_cert(*cross);
    r->set_last_forced_rotation(std::max(r->last_forced_rotation(), now_cfg.force_rotate()));
    started = true;
    return tx.Update(std::move(updated));
  });
  if (!s.ok()) return s;
  if (started) {
    spdlog::info("root CA rotation started ({})",
                 use_given ? "to the given root CA" : "to a new root CA");
  }
  return absl::OkStatus();
}

absl::Status CaRotationReconciler::ReconcileOnce() {
  std::optional<api::Cluster> cluster;
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Cluster* c = FindCluster(tx)) cluster = *c;
  });
  if (!cluster.has_value()) return absl::OkStatus();
  if (NeedsNewRotation(*cluster)) {
    if (absl::Status s = StartRotation(*cluster); !s.ok()) return s;
  }

  // Progress of the rotation under way.
  struct NodeState {
    std::string id;
    bool down = false;
    bool verified = false;
    api::IssuanceStatus::State cert_state = api::IssuanceStatus::UNKNOWN;
    std::string cert;
    api::NodeTLSInfo tls;
  };
  std::vector<NodeState> nodes;
  std::string new_root;
  std::string cluster_id;
  store_->View([&](const store::ReadTx& tx) {
    const api::Cluster* c = FindCluster(tx);
    if (c == nullptr || !c->root_ca().has_root_rotation()) return;
    new_root = c->root_ca().root_rotation().ca_cert();
    cluster_id = c->id();
    for (const api::Node* n : tx.List<api::Node>()) {
      NodeState state;
      state.id = n->id();
      state.down = n->status().state() == api::NodeStatus::DOWN;
      state.cert_state = n->certificate().status().state();
      state.cert = n->certificate().certificate();
      state.tls = n->description().tls_info();
      nodes.push_back(std::move(state));
    }
  });
  if (new_root.empty()) return absl::OkStatus();
  absl::StatusOr<RootIssuer> issuer = IssuerOfRoot(new_root);
  if (!issuer.ok()) return issuer.status();
  const absl::Time now = clock_->Now();
  std::vector<std::string> to_mark;
  bool done = true;
  for (NodeState& n : nodes) {
    const bool issued = n.cert_state == api::IssuanceStatus::ISSUED &&
                        VerifiesAgainst(n.id, n.cert, new_root, cluster_id, now);
    // The store says what the CA issued; only the node's own report (its session's description)
    // says it received and uses it. A node that lost the answer to its renewal would otherwise be
    // counted as rotated and then locked out when the old root is retired.
    n.verified = issued && ReportsIssuer(n.tls, *issuer);
    if (n.verified) {
      absl::MutexLock lock(&cache_mu_);
      unconfirmed_since_.erase(n.id);
      continue;
    }
    if (!n.down) done = false;
    if (issued) {
      // Issued but not yet reported: give the node time to adopt it and reconnect, then ask it
      // to renew again.
      absl::MutexLock lock(&cache_mu_);
      auto [it, inserted] = unconfirmed_since_.emplace(n.id, now);
      if (inserted || now - it->second < kAdoptionGrace) continue;
      it->second = now;
    }
    if (!issued && RenewalUnderWay(n.cert_state)) continue;
    to_mark.push_back(n.id);
  }

  if (!to_mark.empty()) {
    absl::Status s = store_->Batch([&](store::Batch& batch) -> absl::Status {
      for (const std::string& id : to_mark) {
        absl::Status one = batch.Update([&](store::WriteTx& tx) -> absl::Status {
          const api::Node* node = tx.Get<api::Node>(id);
          if (node == nullptr || RenewalUnderWay(node->certificate().status().state())) {
            return absl::OkStatus();
          }
          if (node->certificate().status().state() == api::IssuanceStatus::ISSUED &&
              VerifiesAgainst(id, node->certificate().certificate(), new_root, cluster_id, now) &&
              ReportsIssuer(node->description().tls_info(), *issuer)) {
            return absl::OkStatus();  // renewed meanwhile
          }
          api::Node updated = *node;
          updated.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::ROTATE);
          updated.mutable_certificate()->mutable_status()->clear_err();
          return tx.Update(std::move(updated));
        });
        if (!one.ok() && one.code() != absl::StatusCode::kAborted) return one;
      }
      return absl::OkStatus();
    });
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("root CA rotation: marking nodes for a new "
                                                 "certificate: ",
                                                 s.message()));
    }
  }
  if (!done) return absl::OkStatus();

  // Every live node holds a certificate from the new root: make it the root.
  auto parsed = pki::ParseCertificate(new_root, "new root CA certificate");
  if (!parsed.ok()) return parsed.status();
  const std::string digest = pki::CertificateDigest(parsed->get());
  bool finished = false;
  absl::Status s = UpdateWithRetry(*store_, [&](store::WriteTx& tx) -> absl::Status {
    finished = false;
    const api::Cluster* current = FindCluster(tx);
    if (current == nullptr || !current->root_ca().has_root_rotation() ||
        current->root_ca().root_rotation().ca_cert() != new_root) {
      return absl::OkStatus();
    }
    // Check again against the nodes as this transaction sees them.
    for (const api::Node* n : tx.List<api::Node>()) {
      if (n->status().state() == api::NodeStatus::DOWN) continue;
      if (n->certificate().status().state() != api::IssuanceStatus::ISSUED ||
          !VerifiesAgainst(n->id(), n->certificate().certificate(), new_root, cluster_id, now) ||
          !ReportsIssuer(n->description().tls_info(), *issuer)) {
        return absl::OkStatus();
      }
    }
    api::Cluster updated = *current;
    api::RootCA* r = updated.mutable_root_ca();
    const api::RootRotation rotation = r->root_rotation();
    r->set_ca_cert(rotation.ca_cert());
    r->set_ca_key(rotation.ca_key());
    r->set_ca_cert_hash(CaCertHash(digest));
    api::JoinTokens* tokens = r->mutable_join_tokens();
    auto worker = RedigestJoinToken(tokens->worker(), digest);
    tokens->set_worker(worker.ok() ? *worker : pki::GenerateJoinToken(digest));
    auto manager = RedigestJoinToken(tokens->manager(), digest);
    tokens->set_manager(manager.ok() ? *manager : pki::GenerateJoinToken(digest));
    r->clear_root_rotation();
    finished = true;
    return tx.Update(std::move(updated));
  });
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("root CA rotation: finishing: ", s.message()));
  }
  if (finished) {
    spdlog::info("root CA rotation finished: every node holds a certificate from the new root");
    absl::MutexLock lock(&cache_mu_);
    verified_.clear();
    unconfirmed_since_.clear();
  }
  return absl::OkStatus();
}

}  // namespace shoal::manager
