#include "agent/image/digest.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::agent::image {
namespace {

struct Algorithm {
  const char* name;
  size_t hex_length;
  const EVP_MD* (*md)();
};

constexpr Algorithm kAlgorithms[] = {
    {"sha256", 64, &EVP_sha256},
    {"sha384", 96, &EVP_sha384},
    {"sha512", 128, &EVP_sha512},
};

// go-digest's DigestRegexp: [a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+
bool LooksLikeDigest(absl::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon + 1 == digest.size()) return false;
  absl::string_view alg = digest.substr(0, colon);
  bool after_separator = true;
  for (char c : alg) {
    bool sep = c == '.' || c == '+' || c == '_' || c == '-';
    if (sep) {
      if (after_separator) return false;
      after_separator = true;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      after_separator = false;
    } else {
      return false;
    }
  }
  if (after_separator) return false;
  for (char c : digest.substr(colon + 1)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '=' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

const Algorithm* FindAlgorithm(absl::string_view name) {
  for (const Algorithm& a : kAlgorithms) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

std::string Hex(const unsigned char* data, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 0xf];
  }
  return out;
}

}  // namespace

absl::Status ValidateDigest(absl::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == absl::string_view::npos || colon == 0 || colon + 1 == digest.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid checksum digest format \"", std::string(digest),
                     "\": a digest is ALGORITHM:HEX, e.g. sha256:<64 hex digits>"));
  }
  const Algorithm* alg = FindAlgorithm(digest.substr(0, colon));
  if (alg == nullptr) {
    if (!LooksLikeDigest(digest)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid checksum digest format \"", std::string(digest), "\""));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported digest algorithm \"", std::string(digest.substr(0, colon)),
                     "\" in \"", std::string(digest), "\" (supported: sha256, sha384, sha512)"));
  }
  absl::string_view hex = digest.substr(colon + 1);
  if (hex.size() != alg->hex_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid checksum digest length in \"", std::string(digest), "\": ", alg->name,
                     " wants ", alg->hex_length, " hex digits, not ", hex.size()));
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid checksum digest format \"", std::string(digest), "\": lowercase hex wanted"));
    }
  }
  return absl::OkStatus();
}

struct Digester::Impl {
  const Algorithm* algorithm = nullptr;
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Digester::Digester(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Digester::Digester() : impl_(std::make_unique<Impl>()) {
  impl_->algorithm = &kAlgorithms[0];
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    std::abort();  // out of memory, or an OpenSSL without sha256
  }
}

absl::StatusOr<Digester> Digester::ForDigest(absl::string_view digest) {
  if (absl::Status s = ValidateDigest(digest); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  impl->algorithm = FindAlgorithm(digest.substr(0, digest.find(':')));
  impl->ctx = EVP_MD_CTX_new();
  if (impl->ctx == nullptr || EVP_DigestInit_ex(impl->ctx, impl->algorithm->md(), nullptr) != 1) {
    return absl::InternalError(
        absl::StrCat("OpenSSL cannot compute ", impl->algorithm->name, " digests"));
  }
  return Digester(std::move(impl));
}

Digester::~Digester() = default;
Digester::Digester(Digester&& other) noexcept = default;
Digester& Digester::operator=(Digester&& other) noexcept = default;

void Digester::Update(absl::string_view data) {
  if (!data.empty()) EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

std::string Digester::Final() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &n);
  return absl::StrCat(impl_->algorithm->name, ":", Hex(md, n));
}

std::string Sha256Digest(absl::string_view data) {
  Digester d;
  d.Update(data);
  return d.Final();
}

}  // namespace shoal::agent::image
