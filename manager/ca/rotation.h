// CaRotationReconciler: the leader-only loop that moves the swarm to a new root CA.
//
// A rotation starts when the cluster spec asks for one:
//   - spec.ca_config.force_rotate > root_ca.last_forced_rotation (`swarm ca --rotate`): a fresh
//     root is generated, unless spec.ca_config.signing_ca_cert/key name a root other than the
//     current one, which is then used;
//   - spec.ca_config.signing_ca_cert differs from the current root (and from the root a running
//     rotation moves to): that root (with signing_ca_key) is loaded.
// Starting writes root_ca.root_rotation = {new cert, new key, new root cross-signed by the current
// root} and last_forced_rotation = force_rotate (so the request is answered once, and a further
// `--rotate` during a rotation restarts it towards another fresh root). From then on the
// NodeCA signs with the new root and appends the cross-signed certificate, so nodes that still
// trust only the old root accept the new certificates; dispatcher sessions and
// GetRootCACertificate hand out both roots.
//
// Each pass then marks ROTATE every node whose certificate is ISSUED but does not verify against
// the new root (the agent renews on seeing it), and finishes once every node that is not DOWN
// holds an ISSUED certificate verifying against the new root: root_ca becomes the new root
// (ca_cert, ca_key, ca_cert_hash), the join tokens keep their secrets but pin the new digest, and
// root_rotation is cleared. Nodes that are DOWN are not waited for (as in Docker): when they come
// back they no longer trust the managers and must join again.
//
// Thread-safety: Start, Stop and ReconcileOnce may be called from any thread; Start/Stop are
// idempotent and may be repeated (leadership comes and goes).
#ifndef SHOAL_MANAGER_CA_ROTATION_H_
#define SHOAL_MANAGER_CA_ROTATION_H_

#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "manager/ca/ca_common.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {

class CaRotationReconciler {
 public:
  // `store` is not owned and must outlive the reconciler.
  CaRotationReconciler(store::MemoryStore* store, CaOptions options = {});
  ~CaRotationReconciler();  // Stop()s
  CaRotationReconciler(const CaRotationReconciler&) = delete;
  CaRotationReconciler& operator=(const CaRotationReconciler&) = delete;

  // Starts the loop on a thread of its own: a pass now, then one after every change to the
  // cluster or a node, and at least every options.rotation_retry_interval.
  void Start();
  // Stops the loop and waits for it.
  void Stop();

  // One pass: starts, advances or finishes a rotation as the store asks. Errors say which step
  // failed; the loop logs them and retries.
  absl::Status ReconcileOnce();

 private:
  // How long a node may take to report (in its session) a certificate the CA issued it before
  // it is asked to renew again.
  static constexpr absl::Duration kAdoptionGrace = absl::Seconds(30);
  struct RootIssuer {
    std::string subject;     // DER
    std::string public_key;  // DER SubjectPublicKeyInfo
  };
  static absl::StatusOr<RootIssuer> IssuerOfRoot(const std::string& root_pem);
  static bool ReportsIssuer(const api::NodeTLSInfo& tls, const RootIssuer& issuer);
  void Run();
  absl::Status StartRotation(const api::Cluster& cluster);
  // Whether `cert_pem` verifies against `root_pem` (cached per node: passes repeat).
  bool VerifiesAgainst(const std::string& node_id, const std::string& cert_pem,
                       const std::string& root_pem, const std::string& cluster_id, absl::Time now);

  store::MemoryStore* const store_;
  const CaOptions options_;
  Clock* const clock_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  store::Watcher* watcher_ ABSL_GUARDED_BY(mu_) = nullptr;

  absl::Mutex cache_mu_;
  // node ID -> (certificate PEM + root PEM) that verified.
  std::map<std::string, std::string> verified_ ABSL_GUARDED_BY(cache_mu_);
  // node ID -> when its new certificate was first seen issued but not yet reported in use.
  std::map<std::string, absl::Time> unconfirmed_since_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_CA_ROTATION_H_
