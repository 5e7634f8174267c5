#include "raft/storage/aes_gcm_encrypter.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace shoal::raft {
namespace {

constexpr char kFormatVersion = 1;
// EVP_*Update take int lengths; larger inputs are fed in pieces.
constexpr size_t kMaxChunk = size_t{1} << 30;

struct CtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxDeleter>;

absl::Status OpenSslError(absl::string_view what) {
  unsigned long code = ERR_get_error();
  char buf[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, buf, sizeof(buf));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat("AES-GCM ", what, ": ", buf));
}

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// The authenticated header byte followed by the caller's associated data; fed to GCM as AAD.
bool FeedAad(EVP_CIPHER_CTX* ctx, bool encrypt, absl::string_view associated_data) {
  int len = 0;
  const unsigned char version = kFormatVersion;
  auto update = encrypt ? EVP_EncryptUpdate : EVP_DecryptUpdate;
  if (update(ctx, nullptr, &len, &version, 1) != 1) return false;
  for (size_t off = 0; off < associated_data.size(); off += kMaxChunk) {
    const size_t n = std::min(kMaxChunk, associated_data.size() - off);
    if (update(ctx, nullptr, &len, Bytes(associated_data) + off, static_cast<int>(n)) != 1) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AesGcmEncrypter>> AesGcmEncrypter::Create(absl::string_view key) {
  if (key.size() != kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-256-GCM needs a ", kKeySize, "-byte key, got ", key.size(), " bytes"));
  }
  return std::unique_ptr<AesGcmEncrypter>(new AesGcmEncrypter(std::string(key)));
}

std::string AesGcmEncrypter::GenerateKey() {
  std::string key(kKeySize, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), kKeySize) != 1) {
    // The CSPRNG failing is not something a caller can handle; a zero key must never be used.
    OPENSSL_die("RAND_bytes failed while generating an AES key", __FILE__, __LINE__);
  }
  return key;
}

AesGcmEncrypter::~AesGcmEncrypter() { OPENSSL_cleanse(key_.data(), key_.size()); }

absl::StatusOr<std::string> AesGcmEncrypter::Seal(absl::string_view plaintext,
                                                  absl::string_view associated_data) {
  std::string out(kOverhead + plaintext.size(), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  p[0] = kFormatVersion;
  unsigned char* nonce = p + 1;
  unsigned char* ciphertext = nonce + kNonceSize;
  unsigned char* tag = ciphertext + plaintext.size();
  if (RAND_bytes(nonce, kNonceSize) != 1) return OpenSslError("nonce generation");

  CtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return OpenSslError("context allocation");
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce) != 1) {
    return OpenSslError("encrypt init");
  }
  if (!FeedAad(ctx.get(), /*encrypt=*/true, associated_data)) return OpenSslError("encrypt aad");
  size_t written = 0;
  for (size_t off = 0; off < plaintext.size(); off += kMaxChunk) {
    const size_t n = std::min(kMaxChunk, plaintext.size() - off);
    int len = 0;
    if (EVP_EncryptUpdate(ctx.get(), ciphertext + written, &len, Bytes(plaintext) + off,
                          static_cast<int>(n)) != 1) {
      return OpenSslError("encrypt");
    }
    written += len;
  }
  int len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), ciphertext + written, &len) != 1) {
    return OpenSslError("encrypt final");
  }
  written += len;
  if (written != plaintext.size()) return absl::InternalError("AES-GCM produced a short output");
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, tag) != 1) {
    return OpenSslError("get tag");
  }
  return out;
}

absl::StatusOr<std::string> AesGcmEncrypter::Open(absl::string_view sealed,
                                                  absl::string_view associated_data) {
  if (sealed.size() < kOverhead) {
    return absl::DataLossError(absl::StrCat("sealed record too short (", sealed.size(),
                                            " bytes; at least ", kOverhead, " expected)"));
  }
  if (sealed[0] != kFormatVersion) {
    return absl::DataLossError(absl::StrCat("unknown sealed-record format version ",
                                            static_cast<int>(static_cast<uint8_t>(sealed[0]))));
  }
  const unsigned char* nonce = Bytes(sealed) + 1;
  const unsigned char* ciphertext = nonce + kNonceSize;
  const size_t size = sealed.size() - kOverhead;
  unsigned char tag[kTagSize];
  std::copy_n(ciphertext + size, kTagSize, tag);

  CtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return OpenSslError("context allocation");
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key_), nonce) != 1) {
    return OpenSslError("decrypt init");
  }
  if (!FeedAad(ctx.get(), /*encrypt=*/false, associated_data)) return OpenSslError("decrypt aad");
  std::string out(size, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  size_t written = 0;
  for (size_t off = 0; off < size; off += kMaxChunk) {
    const size_t n = std::min(kMaxChunk, size - off);
    int len = 0;
    if (EVP_DecryptUpdate(ctx.get(), o + written, &len, ciphertext + off, static_cast<int>(n)) !=
        1) {
      return OpenSslError("decrypt");
    }
    written += len;
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) != 1) {
    return OpenSslError("set tag");
  }
  int len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), o + written, &len) != 1) {
    ERR_clear_error();
    // Do not hand back a byte of unauthenticated plaintext.
    OPENSSL_cleanse(out.data(), out.size());
    return absl::DataLossError(
        "AES-GCM authentication failed: wrong key, data altered, or record moved");
  }
  return out;
}

}  // namespace shoal::raft
