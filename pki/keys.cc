#include "pki/keys.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "pki/unlock_key.h"

namespace shoal::pki {
namespace {

// Refuses to prompt on a terminal when OpenSSL meets an encrypted PEM key.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return -1; }

}  // namespace

absl::StatusOr<EvpPkeyPtr> GenerateKey() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("generating an ECDSA P-256 key");
  return key;
}

std::string PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    ERR_clear_error();
    return "";
  }
  return BioContents(bio.get());
}

absl::StatusOr<EvpPkeyPtr> ParsePrivateKey(absl::string_view pem) {
  if (IsWrappedKey(pem)) {
    return absl::FailedPreconditionError(
        "private key is encrypted with the swarm's unlock key; unwrap it first (shoal swarm "
        "unlock)");
  }
  BioPtr bio = MemBio(pem);
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    return OpenSslError("private key is not a readable unencrypted PEM key",
                        absl::StatusCode::kInvalidArgument);
  }
  return key;
}

absl::StatusOr<std::string> CreateCsr(EVP_PKEY* key) {
  X509ReqPtr req(X509_REQ_new());
  if (!req) return OpenSslError("allocating a CSR");
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("swarm-node"), -1, -1,
                                 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key) != 1) {
    return OpenSslError("filling in a CSR");
  }
  if (X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) return OpenSslError("signing a CSR");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return OpenSslError("encoding a CSR");
  }
  return BioContents(bio.get());
}

absl::StatusOr<X509ReqPtr> ParseCsr(absl::string_view pem) {
  if (!absl::StrContains(pem, "-----BEGIN CERTIFICATE REQUEST-----")) {
    return absl::InvalidArgumentError(
        "invalid CSR: expected a PEM block \"-----BEGIN CERTIFICATE REQUEST-----\"");
  }
  BioPtr bio = MemBio(pem);
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!req) return OpenSslError("invalid CSR", absl::StatusCode::kInvalidArgument);
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (key == nullptr)
    return OpenSslError("invalid CSR: no public key", absl::StatusCode::kInvalidArgument);
  if (X509_REQ_verify(req.get(), key) != 1) {
    return OpenSslError("invalid CSR: its signature does not match its public key",
                        absl::StatusCode::kInvalidArgument);
  }
  return req;
}

absl::StatusOr<KeyAndCsr> GenerateKeyAndCsr() {
  auto key = GenerateKey();
  if (!key.ok()) return key.status();
  auto csr = CreateCsr(key->get());
  if (!csr.ok()) return csr.status();
  return KeyAndCsr{PrivateKeyToPem(key->get()), *std::move(csr)};
}

bool KeyMatchesCertificate(EVP_PKEY* key, X509* cert) {
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  const bool match = pub != nullptr && EVP_PKEY_eq(key, pub) == 1;
  ERR_clear_error();
  return match;
}

}  // namespace shoal::pki
