// RootCA: the swarm's certificate authority — a self-signed root that issues node certificates.
//
// The root is ECDSA P-256, valid 20 years, subject CN=swarm-ca, CA:TRUE with keyCertSign. It
// signs node certificates from CSRs: the CSR contributes only its public key; the subject is
// decided here (O=cluster ID, OU=role, CN=node ID), with serverAuth+clientAuth usage and the DNS
// names Docker Swarm puts in them (the role name and the node ID; managers also "swarm-ca"), so a
// client can check a manager's certificate by the name "swarm-manager".
//
// Every certificate's notBefore is backdated by kBackdate so that nodes whose clocks run a little
// behind the manager's accept a certificate the moment it is issued; notAfter is never later than
// the root's own.
//
// Root rotation: the new root is cross-signed by the old one (CrossSign): the result is a CA
// certificate with the new root's subject and key, issued by the old root. A new-root-issued node
// certificate followed by that intermediate verifies against the old root, so nodes that have not
// yet learnt the new root still accept it; once every node trusts the new root and holds a
// certificate from it, the old root and the intermediate are dropped.
//
// Time is a parameter (`now`), never read from the system, so tests can issue certificates that
// are already expired or not yet valid.
//
// Thread-safety: a RootCA is immutable after Create/Load; its const methods may be called
// concurrently.
#ifndef SHOAL_PKI_ROOT_CA_H_
#define SHOAL_PKI_ROOT_CA_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pki/identity.h"
#include "pki/ossl.h"

namespace shoal::pki {

class RootCA {
 public:
  static constexpr absl::Duration kRootValidity = absl::Hours(24 * 365 * 20);
  static constexpr absl::Duration kDefaultNodeValidity = absl::Hours(24 * 90);  // Docker's 2160h
  static constexpr absl::Duration kMinNodeValidity = absl::Hours(1);
  static constexpr absl::Duration kBackdate = absl::Hours(1);

  // A new self-signed root with a fresh key.
  static absl::StatusOr<RootCA> Create(absl::Time now);

  // A root from PEM certificate and key (`swarm ca --rotate --ca-cert F --ca-key F`, or the
  // cluster's stored root). Checks that the key matches the certificate, that it is a
  // self-signed CA allowed to sign certificates, and that it is valid at `now`.
  // `issued_chain_pem`: certificates appended to every issued certificate — the cross-signed
  // root during a rotation (each must carry this root's public key); usually empty.
  static absl::StatusOr<RootCA> Load(absl::string_view cert_pem, absl::string_view key_pem,
                                     absl::Time now, absl::string_view issued_chain_pem = "");

  RootCA(RootCA&&) = default;
  RootCA& operator=(RootCA&&) = default;

  // Signs a node certificate for `csr_pem` valid from now - kBackdate to now + validity (capped
  // at the root's expiry). Returns the PEM certificate followed by the issued chain, if any.
  // REQUIRES: validity >= kMinNodeValidity (else INVALID_ARGUMENT, naming --cert-expiry);
  // node_id and cluster_id non-empty, at most 64 characters of [A-Za-z0-9._-]; the CSR's key is
  // ECDSA P-256.
  absl::StatusOr<std::string> IssueNodeCertificate(absl::string_view csr_pem,
                                                   absl::string_view node_id, Role role,
                                                   absl::string_view cluster_id,
                                                   absl::Duration validity, absl::Time now) const;

  // The intermediate for a root rotation: `new_root_cert_pem`'s subject, key, validity and CA
  // extensions, issued (signed) by this root.
  absl::StatusOr<std::string> CrossSign(absl::string_view new_root_cert_pem) const;

  // SHA-256 of the root certificate's DER (32 raw bytes): what join tokens pin.
  std::string Digest() const;

  const std::string& cert_pem() const { return cert_pem_; }
  // The unencrypted private key; callers store it only where the cluster's secrets live.
  const std::string& key_pem() const { return key_pem_; }
  X509* cert() const { return cert_.get(); }
  absl::Time not_after() const;

 private:
  RootCA(X509Ptr cert, EvpPkeyPtr key, std::string issued_chain_pem);

  X509Ptr cert_;
  EvpPkeyPtr key_;
  std::string cert_pem_;
  std::string key_pem_;
  std::string issued_chain_pem_;
};

}  // namespace shoal::pki

#endif  // SHOAL_PKI_ROOT_CA_H_
