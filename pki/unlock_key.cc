#include "pki/unlock_key.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "pki/ossl.h"

namespace shoal::pki {
namespace {

constexpr unsigned char kWrapVersion = 1;
constexpr size_t kSaltSize = 16;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kAesKeySize = 32;
constexpr char kHkdfInfo[] = "shoal node key wrap v1";

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// A string that wipes itself: holds derived keys and decrypted private keys on error paths.
struct WipedString {
  std::string s;
  ~WipedString() { OPENSSL_cleanse(s.data(), s.size()); }
};

absl::StatusOr<std::string> DeriveAesKey(absl::string_view kek, absl::string_view salt) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
  std::string key(kAesKeySize, '\0');
  size_t len = key.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), Bytes(salt), static_cast<int>(salt.size())) != 1 ||
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), Bytes(kek), static_cast<int>(kek.size())) != 1 ||
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), Bytes(kHkdfInfo), sizeof(kHkdfInfo) - 1) != 1 ||
      EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(key.data()), &len) != 1 ||
      len != kAesKeySize) {
    return OpenSslError("deriving the key-wrapping key (HKDF-SHA256)");
  }
  return key;
}

absl::Status CheckKek(absl::string_view kek) {
  if (kek.size() != kUnlockKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid unlock key: expected ", kUnlockKeySize, " bytes, got ", kek.size()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string GenerateUnlockKeyBytes() { return RandomBytes(kUnlockKeySize); }

std::string FormatUnlockKey(absl::string_view kek) {
  std::string b64 = absl::Base64Escape(kek);
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return absl::StrCat(kUnlockKeyPrefix, b64);
}

std::string GenerateUnlockKey() {
  WipedString kek{GenerateUnlockKeyBytes()};
  return FormatUnlockKey(kek.s);
}

absl::StatusOr<std::string> ParseUnlockKey(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (!absl::ConsumePrefix(&text, kUnlockKeyPrefix)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid unlock key: it must start with \"", kUnlockKeyPrefix,
        "\" (print the current key with `shoal swarm unlock-key` on an unlocked manager)"));
  }
  // Docker prints the key unpadded; accept a padded copy too.
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string kek;
  const bool chars_ok = std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
  });
  if (!chars_ok || !absl::Base64Unescape(text, &kek) || kek.size() != kUnlockKeySize) {
    OPENSSL_cleanse(kek.data(), kek.size());
    return absl::InvalidArgumentError(
        absl::StrCat("invalid unlock key: expected \"", kUnlockKeyPrefix, "\" followed by ",
                     (kUnlockKeySize * 4 + 2) / 3, " base64 characters"));
  }
  return kek;
}

absl::StatusOr<std::string> WrapKey(absl::string_view key_pem, absl::string_view kek) {
  if (absl::Status s = CheckKek(kek); !s.ok()) return s;
  const std::string salt = RandomBytes(kSaltSize);
  auto aes_key = DeriveAesKey(kek, salt);
  if (!aes_key.ok()) return aes_key.status();
  WipedString key{*std::move(aes_key)};

  std::string blob(1 + kSaltSize + kNonceSize + key_pem.size() + kTagSize, '\0');
  auto* p = reinterpret_cast<unsigned char*>(blob.data());
  p[0] = kWrapVersion;
  std::copy(salt.begin(), salt.end(), p + 1);
  unsigned char* nonce = p + 1 + kSaltSize;
  const std::string nonce_bytes = RandomBytes(kNonceSize);
  std::copy(nonce_bytes.begin(), nonce_bytes.end(), nonce);
  unsigned char* ct = nonce + kNonceSize;

  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0, final_len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key.s), nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, p, 1) != 1 ||  // version byte as AAD
      EVP_EncryptUpdate(ctx.get(), ct, &len, Bytes(key_pem), static_cast<int>(key_pem.size())) !=
          1 ||
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &final_len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, ct + key_pem.size()) != 1) {
    return OpenSslError("wrapping the private key (AES-256-GCM)");
  }

  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio(bio.get(), kWrappedKeyPemType, "", p, static_cast<long>(blob.size())) <= 0) {
    return OpenSslError("encoding the wrapped private key");
  }
  return BioContents(bio.get());
}

absl::StatusOr<std::string> UnwrapKey(absl::string_view wrapped_pem, absl::string_view kek) {
  if (absl::Status s = CheckKek(kek); !s.ok()) return s;
  if (!IsWrappedKey(wrapped_pem)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a wrapped key: expected a PEM block \"", kWrappedKeyPemType, "\""));
  }
  BioPtr bio = MemBio(wrapped_pem);
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long data_len = 0;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &data_len) != 1) {
    return OpenSslError("wrapped key is malformed PEM", absl::StatusCode::kInvalidArgument);
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  std::string blob(reinterpret_cast<char*>(data), static_cast<size_t>(data_len));
  OPENSSL_free(data);

  constexpr size_t kOverhead = 1 + kSaltSize + kNonceSize + kTagSize;
  if (blob.size() < kOverhead || static_cast<unsigned char>(blob[0]) != kWrapVersion) {
    return absl::InvalidArgumentError("wrapped key is truncated or of an unknown format version");
  }
  const auto* p = Bytes(blob);
  const absl::string_view salt(blob.data() + 1, kSaltSize);
  const unsigned char* nonce = p + 1 + kSaltSize;
  const unsigned char* ct = nonce + kNonceSize;
  const size_t ct_len = blob.size() - kOverhead;
  unsigned char tag[kTagSize];
  std::copy(ct + ct_len, ct + ct_len + kTagSize, tag);

  auto aes_key = DeriveAesKey(kek, salt);
  if (!aes_key.ok()) return aes_key.status();
  WipedString key{*std::move(aes_key)};
  WipedString plain{std::string(ct_len, '\0')};
  auto* out = reinterpret_cast<unsigned char*>(plain.s.data());

  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0, final_len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key.s), nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, p, 1) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out, &len, ct, static_cast<int>(ct_len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) != 1) {
    return OpenSslError("unwrapping the private key (AES-256-GCM)");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), out + len, &final_len) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "invalid unlock key: it does not decrypt this node's key (was the unlock key rotated? "
        "`shoal swarm unlock-key` on an unlocked manager prints the current one)");
  }
  std::string result = std::move(plain.s);
  plain.s.clear();
  return result;
}

bool IsWrappedKey(absl::string_view pem) {
  return absl::StrContains(pem, absl::StrCat("-----BEGIN ", kWrappedKeyPemType, "-----"));
}

}  // namespace shoal::pki
