#include "manager/ca/ca_common.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "pki/join_token.h"

namespace shoal::manager {

std::string CaCertHash(absl::string_view raw_digest) {
  return absl::StrCat("sha256:", absl::BytesToHexString(raw_digest));
}

std::string TrustedRootsPem(const api::RootCA& root_ca) {
  std::string pem = root_ca.ca_cert();
  if (root_ca.has_root_rotation() && !root_ca.root_rotation().ca_cert().empty()) {
    if (!pem.empty() && pem.back() != '\n') pem += '\n';
    pem += root_ca.root_rotation().ca_cert();
  }
  return pem;
}

absl::StatusOr<std::string> RedigestJoinToken(absl::string_view token,
                                              absl::string_view raw_digest) {
  auto parsed = pki::ParseJoinToken(token);
  if (!parsed.ok()) return parsed.status();
  return absl::StrCat(pki::kJoinTokenPrefix, "-", pki::kJoinTokenVersion, "-",
                      pki::Base36Encode(raw_digest, pki::kJoinTokenDigestChars), "-",
                      parsed->secret);
}

absl::Duration NodeCertValidity(const api::Cluster& cluster) {
  const auto& expiry = cluster.spec().ca_config().node_cert_expiry();
  const absl::Duration d = absl::Seconds(expiry.seconds()) + absl::Nanoseconds(expiry.nanos());
  return d > absl::ZeroDuration() ? d : pki::RootCA::kDefaultNodeValidity;
}

const api::EncryptionKey* NewestUnlockKey(const api::Cluster& cluster) {
  const api::EncryptionKey* newest = nullptr;
  for (const api::EncryptionKey& key : cluster.unlock_keys()) {
    if (!key.subsystem().empty() && key.subsystem() != kUnlockKeySubsystem) continue;
    if (newest == nullptr || key.lamport_time() > newest->lamport_time()) newest = &key;
  }
  return newest;
}

absl::StatusOr<std::shared_ptr<const pki::RootCA>> SignerCache::Get(const api::RootCA& root_ca,
                                                                    absl::Time now) {
  const bool rotating = root_ca.has_root_rotation() && !root_ca.root_rotation().ca_cert().empty();
  const std::string& cert = rotating ? root_ca.root_rotation().ca_cert() : root_ca.ca_cert();
  const std::string& key = rotating ? root_ca.root_rotation().ca_key() : root_ca.ca_key();
  const std::string& chain = rotating ? root_ca.root_rotation().cross_signed_ca_cert() : "";
  if (cert.empty()) {
    return absl::FailedPreconditionError(
        "this swarm has no root CA certificate in its cluster object; the swarm was not "
        "initialised correctly (re-run `shoal swarm init`)");
  }
  if (key.empty()) {
    return absl::FailedPreconditionError(
        "the managers do not hold this swarm's root CA key (an external CA), so they cannot sign "
        "node certificates; rotate to a CA whose key the swarm holds with `shoal swarm ca "
        "--rotate [--ca-cert F --ca-key F]`");
  }
  const std::string cache_key = absl::StrCat(cert, std::string(1, '\0'), chain);
  {
    absl::MutexLock lock(&mu_);
    auto it = by_pem_.find(cache_key);
    if (it != by_pem_.end() && now < it->second->not_after()) return it->second;
  }
  auto loaded = pki::RootCA::Load(cert, key, now, chain);
  if (!loaded.ok()) return loaded.status();
  auto shared = std::make_shared<const pki::RootCA>(*std::move(loaded));
  absl::MutexLock lock(&mu_);
  if (by_pem_.size() >= kMaxEntries) by_pem_.clear();
  by_pem_[cache_key] = shared;
  return shared;
}

absl::Status UpdateWithRetry(store::MemoryStore& store,
                             const std::function<absl::Status(store::WriteTx&)>& fn, int attempts) {
  absl::Status status;
  for (int i = 0; i < attempts; ++i) {
    status = store.Update(fn);
    if (status.code() != absl::StatusCode::kAborted) return status;
  }
  return status;
}

}  // namespace shoal::manager
