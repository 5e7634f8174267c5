// ca_common: what the CA services and the root-rotation reconciler share — reading the cluster's
// root CA out of the store, the signer to use (the new root during a rotation), the roots nodes
// must trust, and the store-facing formats (ca_cert_hash, re-digested join tokens).
//
// Thread-safety: free functions are safe from any thread; SignerCache is internally locked.
#ifndef SHOAL_MANAGER_CA_CA_COMMON_H_
#define SHOAL_MANAGER_CA_CA_COMMON_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/store/memory_store.h"
#include "pki/root_ca.h"
#include "proto/objects.pb.h"

namespace shoal::manager {

// Options of the CA services and the rotation reconciler.
struct CaOptions {
  Clock* clock = nullptr;  // nullptr = RealClock(); dates certificates and checks them
  // Longest NodeCertificateStatus waits for a PENDING certificate (also bounded by the call's
  // deadline). Wall-clock, as gRPC deadlines are.
  absl::Duration max_status_wait = absl::Seconds(30);
  // CaRotationReconciler: how often it looks again without a store change (wall-clock), so that
  // a failed step is retried.
  absl::Duration rotation_retry_interval = absl::Seconds(5);
};

// The format of RootCA.ca_cert_hash: "sha256:" + lower-case hex of the root certificate's DER
// SHA-256 (Docker's digest string), from the 32 raw bytes RootCA::Digest() returns. The same
// digest, base36-encoded, is the one join tokens carry.
std::string CaCertHash(absl::string_view raw_digest);

// The PEM of every root a node must trust: the cluster's root, followed during a rotation by the
// new root.
std::string TrustedRootsPem(const api::RootCA& root_ca);

// `token` re-issued for the root with digest `raw_digest`, keeping its secret (what a root
// rotation does to the join tokens: the role secrets stay, the pin changes). INVALID_ARGUMENT
// if `token` is not a join token.
absl::StatusOr<std::string> RedigestJoinToken(absl::string_view token,
                                              absl::string_view raw_digest);

// Validity of new node certificates: spec.ca_config.node_cert_expiry, or 90 days when unset.
absl::Duration NodeCertValidity(const api::Cluster& cluster);

// The newest unlock key of the cluster (subsystem "manager:unlock"); nullptr when autolock is off.
const api::EncryptionKey* NewestUnlockKey(const api::Cluster& cluster);

inline constexpr char kUnlockKeySubsystem[] = "manager:unlock";

// The signing CA for the cluster's current root CA state: the root itself, or during a rotation
// the new root with the cross-signed certificate as the chain appended to what it issues. Loaded
// roots are cached by (certificate, chain) PEM so the key is not parsed again on every call.
class SignerCache {
 public:
  // FAILED_PRECONDITION when the managers do not hold the signing key (an external CA), or the
  // root's error from RootCA::Load (e.g. expired).
  absl::StatusOr<std::shared_ptr<const pki::RootCA>> Get(const api::RootCA& root_ca,
                                                         absl::Time now);

 private:
  static constexpr size_t kMaxEntries = 4;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const pki::RootCA>> by_pem_ ABSL_GUARDED_BY(mu_);
};

// MemoryStore::Update, retried (re-running fn on a fresh view) while it fails with ABORTED
// because another writer changed an object fn read.
absl::Status UpdateWithRetry(store::MemoryStore& store,
                             const std::function<absl::Status(store::WriteTx&)>& fn,
                             int attempts = 10);

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_CA_CA_COMMON_H_
