#include "pki/root_ca.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pki/keys.h"

namespace shoal::pki {
namespace {

// At most 20 octets and positive (RFC 5280 4.1.2.2): 159 random bits.
absl::Status SetRandomSerial(X509* cert) {
  BignumPtr bn(BN_new());
  if (!bn) return OpenSslError("allocating a serial number");
  do {
    if (BN_rand(bn.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) {
      return OpenSslError("generating a serial number");
    }
  } while (BN_is_zero(bn.get()));
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError("setting the serial number");
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* cert, absl::Time not_before, absl::Time not_after) {
  Asn1TimePtr nb = AbslToAsn1Time(not_before);
  Asn1TimePtr na = AbslToAsn1Time(not_after);
  if (!nb || !na || X509_set1_notBefore(cert, nb.get()) != 1 ||
      X509_set1_notAfter(cert, na.get()) != 1) {
    return OpenSslError("setting the validity period");
  }
  return absl::OkStatus();
}

// Adds an extension written in openssl.cnf syntax, with `issuer` providing the authority key ID.
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(absl::StrCat("adding extension ", OBJ_nid2sn(nid), "=", value));
  }
  return absl::OkStatus();
}

absl::Status CopyExtension(X509* from, X509* to, int nid) {
  const int idx = X509_get_ext_by_NID(from, nid, -1);
  if (idx < 0) return absl::OkStatus();
  if (X509_add_ext(to, X509_get_ext(from, idx), -1) != 1) {
    return OpenSslError(absl::StrCat("copying extension ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

absl::Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return OpenSslError("signing a certificate");
  return absl::OkStatus();
}

absl::Status CheckIdField(absl::string_view what, absl::string_view value) {
  const bool ok =
      !value.empty() && value.size() <= 64 && std::all_of(value.begin(), value.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
               c == '_';
      });
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", what, " \"", std::string(value),
                     "\": expected 1-64 characters of letters, digits, '-', '.', '_'"));
  }
  return absl::OkStatus();
}

absl::Status AddName(X509_NAME* name, int nid, absl::string_view value) {
  const std::string v(value);
  if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(v.c_str()), -1, -1,
                                 0) != 1) {
    return OpenSslError(absl::StrCat("setting subject ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

// The builders below run their steps as a braced list: its elements are evaluated left to right
// (so the signature comes last), and the first failure is reported. Steps after a failure only
// touch a certificate that is about to be discarded.

}  // namespace

RootCA::RootCA(X509Ptr cert, EvpPkeyPtr key, std::string issued_chain_pem)
    : cert_(std::move(cert)),
      key_(std::move(key)),
      cert_pem_(CertificateToPem(cert_.get())),
      key_pem_(PrivateKeyToPem(key_.get())),
      issued_chain_pem_(std::move(issued_chain_pem)) {}

absl::StatusOr<RootCA> RootCA::Create(absl::Time now) {
  auto key = GenerateKey();
  if (!key.ok()) return key.status();
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return OpenSslError("allocating the root certificate");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (absl::Status s = AddName(subject, NID_commonName, kCaCommonName); !s.ok()) return s;
  if (X509_set_issuer_name(cert.get(), subject) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1) {
    return OpenSslError("filling in the root certificate");
  }
  for (auto s :
       {SetRandomSerial(cert.get()), SetValidity(cert.get(), now - kBackdate, now + kRootValidity),
        AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE"),
        AddExtension(cert.get(), cert.get(), NID_key_usage,
                     "critical,keyCertSign,cRLSign,digitalSignature"),
        AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"),
        Sign(cert.get(), key->get())}) {
    if (!s.ok()) return s;
  }
  return RootCA(std::move(cert), *std::move(key), "");
}

absl::StatusOr<RootCA> RootCA::Load(absl::string_view cert_pem, absl::string_view key_pem,
                                    absl::Time now, absl::string_view issued_chain_pem) {
  auto cert = ParseCertificate(cert_pem, "root CA certificate");
  if (!cert.ok()) return cert.status();
  auto key = ParsePrivateKey(key_pem);
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("root CA key: ", key.status().message()));
  }
  X509* c = cert->get();
  if (!KeyMatchesCertificate(key->get(), c)) {
    return absl::InvalidArgumentError(
        "root CA key does not match the root CA certificate (check --ca-cert and --ca-key name "
        "the same CA)");
  }
  if (X509_check_ca(c) != 1) {
    return absl::InvalidArgumentError(
        "root CA certificate is not a CA certificate (it needs basicConstraints CA:TRUE)");
  }
  if (X509_self_signed(c, /*verify_signature=*/1) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "root CA certificate is not self-signed: give the root of the CA, not an intermediate");
  }
  const uint32_t usage = X509_get_key_usage(c);
  if (usage != UINT32_MAX && (usage & KU_KEY_CERT_SIGN) == 0) {
    return absl::InvalidArgumentError(
        "root CA certificate's key usage does not allow signing certificates (keyCertSign)");
  }
  const absl::Time not_before = Asn1TimeToAbsl(X509_get0_notBefore(c));
  const absl::Time not_after = Asn1TimeToAbsl(X509_get0_notAfter(c));
  if (now >= not_after) {
    return absl::InvalidArgumentError(absl::StrCat(
        "root CA certificate expired at ", absl::FormatTime(not_after, absl::UTCTimeZone()),
        "; rotate to a new root (shoal swarm ca --rotate)"));
  }
  if (now < not_before) {
    return absl::InvalidArgumentError(absl::StrCat(
        "root CA certificate is not valid before ",
        absl::FormatTime(not_before, absl::UTCTimeZone()), "; check this machine's clock"));
  }
  if (!issued_chain_pem.empty()) {
    auto chain = ParseCertificates(issued_chain_pem, "root CA issued chain");
    if (!chain.ok()) return chain.status();
    for (auto& link : *chain) {
      if (!KeyMatchesCertificate(key->get(), link.get())) {
        return absl::InvalidArgumentError(
            "root CA issued chain: a certificate does not carry this root's key (expected the "
            "cross-signed copy of this root)");
      }
    }
  }
  ERR_clear_error();
  return RootCA(*std::move(cert), *std::move(key), std::string(issued_chain_pem));
}

absl::StatusOr<std::string> RootCA::IssueNodeCertificate(absl::string_view csr_pem,
                                                         absl::string_view node_id, Role role,
                                                         absl::string_view cluster_id,
                                                         absl::Duration validity,
                                                         absl::Time now) const {
  if (validity < kMinNodeValidity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "certificate validity ", absl::FormatDuration(validity),
        " is too short: --cert-expiry must be at least ", absl::FormatDuration(kMinNodeValidity)));
  }
  if (absl::Status s = CheckIdField("node ID", node_id); !s.ok()) return s;
  if (absl::Status s = CheckIdField("cluster ID", cluster_id); !s.ok()) return s;
  auto csr = ParseCsr(csr_pem);
  if (!csr.ok()) return csr.status();
  EVP_PKEY* pub = X509_REQ_get0_pubkey(csr->get());
  if (!EVP_PKEY_is_a(pub, "EC") || EVP_PKEY_get_bits(pub) != 256) {
    return absl::InvalidArgumentError(
        "invalid CSR: node keys must be ECDSA P-256 (the CSR has another key type)");
  }

  const absl::Time root_not_after = not_after();
  if (now >= root_not_after) {
    return absl::FailedPreconditionError("the root CA has expired; rotate it (swarm ca --rotate)");
  }
  const absl::Time not_after = std::min(now + validity, root_not_after);

  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return OpenSslError("allocating a node certificate");
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  for (auto s : {AddName(subject, NID_organizationName, cluster_id),
                 AddName(subject, NID_organizationalUnitName, RoleName(role)),
                 AddName(subject, NID_commonName, node_id)}) {
    if (!s.ok()) return s;
  }
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) != 1 ||
      X509_set_pubkey(cert.get(), pub) != 1) {
    return OpenSslError("filling in a node certificate");
  }
  std::string san = absl::StrCat("DNS:", RoleName(role), ",DNS:", node_id);
  if (role == Role::kManager) absl::StrAppend(&san, ",DNS:", kCaCommonName);
  for (auto s :
       {SetRandomSerial(cert.get()), SetValidity(cert.get(), now - kBackdate, not_after),
        AddExtension(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE"),
        AddExtension(cert.get(), cert_.get(), NID_key_usage,
                     "critical,digitalSignature,keyEncipherment"),
        AddExtension(cert.get(), cert_.get(), NID_ext_key_usage, "serverAuth,clientAuth"),
        AddExtension(cert.get(), cert_.get(), NID_subject_alt_name, san),
        AddExtension(cert.get(), cert_.get(), NID_subject_key_identifier, "hash"),
        AddExtension(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid:always"),
        Sign(cert.get(), key_.get())}) {
    if (!s.ok()) return s;
  }
  return absl::StrCat(CertificateToPem(cert.get()), issued_chain_pem_);
}

absl::StatusOr<std::string> RootCA::CrossSign(absl::string_view new_root_cert_pem) const {
  auto parsed = ParseCertificate(new_root_cert_pem, "new root CA certificate");
  if (!parsed.ok()) return parsed.status();
  X509* new_root = parsed->get();
  if (X509_check_ca(new_root) != 1) {
    return absl::InvalidArgumentError("new root CA certificate is not a CA certificate");
  }
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_subject_name(cert.get(), X509_get_subject_name(new_root)) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) != 1 ||
      X509_set_pubkey(cert.get(), X509_get0_pubkey(new_root)) != 1 ||
      X509_set1_notBefore(cert.get(), X509_get0_notBefore(new_root)) != 1 ||
      X509_set1_notAfter(cert.get(), X509_get0_notAfter(new_root)) != 1) {
    return OpenSslError("filling in the cross-signed root");
  }
  for (auto s :
       {SetRandomSerial(cert.get()), CopyExtension(new_root, cert.get(), NID_basic_constraints),
        CopyExtension(new_root, cert.get(), NID_key_usage),
        CopyExtension(new_root, cert.get(), NID_subject_key_identifier),
        AddExtension(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid:always"),
        Sign(cert.get(), key_.get())}) {
    if (!s.ok()) return s;
  }
  return CertificateToPem(cert.get());
}

std::string RootCA::Digest() const { return CertificateDigest(cert_.get()); }

absl::Time RootCA::not_after() const { return Asn1TimeToAbsl(X509_get0_notAfter(cert_.get())); }

}  // namespace shoal::pki
