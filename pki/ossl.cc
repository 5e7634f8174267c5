#include "pki/ossl.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <ctime>

#include "absl/strings/str_cat.h"

namespace shoal::pki {
namespace {

struct OpenSslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};

}  // namespace

absl::Status OpenSslError(absl::string_view what, absl::StatusCode code) {
  unsigned long err = ERR_peek_error();
  std::string detail = "no OpenSSL error recorded";
  if (err != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    detail = buf;
  }
  ERR_clear_error();
  return absl::Status(code, absl::StrCat(what, ": ", detail));
}

BioPtr MemBio(absl::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) return "";
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view pem,
                                                       absl::string_view what) {
  BioPtr bio = MemBio(pem);
  if (!bio) return OpenSslError("allocating a BIO");
  std::vector<X509Ptr> certs;
  for (int block = 1;; ++block) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) {
      const unsigned long err = ERR_peek_last_error();
      ERR_clear_error();
      // "No start line" after at least one block is simply the end of the input.
      if (ERR_GET_REASON(err) == PEM_R_NO_START_LINE) break;
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": PEM block ", block, " is malformed (truncated or bad base64)"));
    }
    std::unique_ptr<char, OpenSslFree> name_owner(name);
    std::unique_ptr<char, OpenSslFree> header_owner(header);
    std::unique_ptr<unsigned char, OpenSslFree> data_owner(data);
    if (std::string(name) != PEM_STRING_X509) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": PEM block ", block, " is a \"", name,
                                                     "\", expected a \"CERTIFICATE\""));
    }
    const unsigned char* p = data;
    X509Ptr cert(d2i_X509(nullptr, &p, len));
    if (!cert || p != data + len) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": PEM block ", block, " is not a valid X.509 certificate"));
    }
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": no PEM certificate found (expected -----BEGIN CERTIFICATE-----)"));
  }
  return certs;
}

absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem, absl::string_view what,
                                         bool allow_more) {
  auto certs = ParseCertificates(pem, what);
  if (!certs.ok()) return certs.status();
  if (certs->size() > 1 && !allow_more) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": expected one certificate, found ", certs->size()));
  }
  return std::move(certs->front());
}

std::string CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    ERR_clear_error();
    return "";
  }
  return BioContents(bio.get());
}

std::string CertificateToDer(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) {
    ERR_clear_error();
    return "";
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string CertificateDigest(X509* cert) {
  const std::string der = CertificateToDer(cert);
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(der.data()), der.size(),
         reinterpret_cast<unsigned char*>(digest.data()));
  return digest;
}

absl::Time Asn1TimeToAbsl(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return absl::InfinitePast();
  }
  return absl::FromUnixSeconds(timegm(&tm));
}

Asn1TimePtr AbslToAsn1Time(absl::Time t) {
  return Asn1TimePtr(ASN1_TIME_set(nullptr, static_cast<time_t>(absl::ToUnixSeconds(t))));
}

absl::StatusOr<std::string> SubjectAttribute(X509_NAME* name, int nid) {
  const int first = X509_NAME_get_index_by_NID(name, nid, -1);
  if (first < 0) return std::string();
  if (X509_NAME_get_index_by_NID(name, nid, first) >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate subject has more than one ", OBJ_nid2sn(nid), " attribute"));
  }
  ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, first));
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, value);
  if (len < 0)
    return OpenSslError("decoding a subject attribute", absl::StatusCode::kInvalidArgument);
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    OPENSSL_die("RAND_bytes failed", __FILE__, __LINE__);
  }
  return out;
}

}  // namespace shoal::pki
