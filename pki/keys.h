// keys: private keys and certificate signing requests for nodes and CAs.
//
// Every key Shoal generates is ECDSA on P-256 (what Docker Swarm uses: small, fast, and accepted
// by every TLS stack). Private keys are PEM PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted: wrapping
// with the cluster's key-encryption key is unlock_key.h's job.
//
// A CSR only proves possession of the key: the CA ignores its subject and extensions and decides
// the node's identity itself (root_ca.h), so a node cannot ask for a role or an ID it wasn't given.
//
// Thread-safety: free functions; safe from any thread.
#ifndef SHOAL_PKI_KEYS_H_
#define SHOAL_PKI_KEYS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pki/ossl.h"

namespace shoal::pki {

// A fresh ECDSA P-256 key.
absl::StatusOr<EvpPkeyPtr> GenerateKey();

std::string PrivateKeyToPem(EVP_PKEY* key);
// Any unencrypted PEM private key OpenSSL reads (PKCS#8, SEC1 "EC PRIVATE KEY", PKCS#1 RSA).
// A key wrapped with the unlock key is refused with a message saying so (never prompts for a
// passphrase).
absl::StatusOr<EvpPkeyPtr> ParsePrivateKey(absl::string_view pem);

// A PEM PKCS#10 request signed by `key` (subject CN=swarm-node: a placeholder the CA replaces).
absl::StatusOr<std::string> CreateCsr(EVP_PKEY* key);
// Parses a PEM CSR and checks its self-signature. Errors are INVALID_ARGUMENT and say what is
// wrong with the CSR.
absl::StatusOr<X509ReqPtr> ParseCsr(absl::string_view pem);

struct KeyAndCsr {
  std::string key_pem;
  std::string csr_pem;
};
// GenerateKey + CreateCsr, as a joining or renewing node needs them.
absl::StatusOr<KeyAndCsr> GenerateKeyAndCsr();

// True when `key` is the private half of `cert`'s public key.
bool KeyMatchesCertificate(EVP_PKEY* key, X509* cert);

}  // namespace shoal::pki

#endif  // SHOAL_PKI_KEYS_H_
