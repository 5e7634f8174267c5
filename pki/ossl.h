// ossl: RAII ownership of OpenSSL objects and the few conversions every pki/ file needs.
//
// Every OpenSSL object pki/ creates is held by one of the *Ptr types below from the line it is
// made, so an early `return status;` never leaks. OpenSslError() turns the thread's OpenSSL error
// queue into an absl::Status and clears the queue, so one failure never leaks into the next
// caller's message.
//
// Thread-safety: free functions only; each call works on its own objects. OpenSSL 3 initialises
// itself on first use and is thread-safe for independent objects.
#ifndef SHOAL_PKI_OSSL_H_
#define SHOAL_PKI_OSSL_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shoal::pki {

namespace internal {
template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
}  // namespace internal

template <typename T, void (*Free)(T*)>
using OsslPtr = std::unique_ptr<T, internal::Deleter<T, Free>>;

using EvpPkeyPtr = OsslPtr<EVP_PKEY, EVP_PKEY_free>;
using EvpPkeyCtxPtr = OsslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using EvpMdCtxPtr = OsslPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using EvpCipherCtxPtr = OsslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;
using X509Ptr = OsslPtr<X509, X509_free>;
using X509ReqPtr = OsslPtr<X509_REQ, X509_REQ_free>;
using X509NamePtr = OsslPtr<X509_NAME, X509_NAME_free>;
using X509ExtensionPtr = OsslPtr<X509_EXTENSION, X509_EXTENSION_free>;
using X509StorePtr = OsslPtr<X509_STORE, X509_STORE_free>;
using X509StoreCtxPtr = OsslPtr<X509_STORE_CTX, X509_STORE_CTX_free>;
using BioPtr = OsslPtr<BIO, BIO_free_all>;
using BignumPtr = OsslPtr<BIGNUM, BN_free>;
using Asn1IntegerPtr = OsslPtr<ASN1_INTEGER, ASN1_INTEGER_free>;
using Asn1TimePtr = OsslPtr<ASN1_TIME, ASN1_TIME_free>;

// A STACK_OF(X509) that owns its certificates.
struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

// The oldest queued OpenSSL error, prefixed by `what`; clears the queue. `code` is the status
// code to use (INTERNAL by default: most OpenSSL failures are not the caller's fault).
absl::Status OpenSslError(absl::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInternal);

// A read-only memory BIO over `data` (which must outlive the BIO).
BioPtr MemBio(absl::string_view data);
// Everything written to a memory BIO.
std::string BioContents(BIO* bio);

// Every certificate in a PEM text, in order. Text between PEM blocks is ignored; other block
// types (keys, CSRs) are an error. An input without any certificate is INVALID_ARGUMENT, with
// `what` ("root CA certificate", ...) naming it in the message.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view pem,
                                                       absl::string_view what);
// Exactly one certificate (the first, when several are given and `allow_more` is true).
absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem, absl::string_view what,
                                         bool allow_more = false);
std::string CertificateToPem(X509* cert);
std::string CertificateToDer(X509* cert);

// SHA-256 of the certificate's DER encoding (32 raw bytes).
std::string CertificateDigest(X509* cert);

absl::Time Asn1TimeToAbsl(const ASN1_TIME* t);
// REQUIRES: t is within the years 0..9999.
Asn1TimePtr AbslToAsn1Time(absl::Time t);

// The single value of the subject attribute `nid` (e.g. NID_commonName); "" when absent.
// More than one value is an error (a node certificate must be unambiguous).
absl::StatusOr<std::string> SubjectAttribute(X509_NAME* name, int nid);

// Random bytes from OpenSSL's CSPRNG. Aborts if the CSPRNG fails: no caller can continue safely
// with predictable "random" bytes.
std::string RandomBytes(size_t n);

}  // namespace shoal::pki

#endif  // SHOAL_PKI_OSSL_H_
