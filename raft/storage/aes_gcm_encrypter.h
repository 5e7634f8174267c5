// AesGcmEncrypter: the Encrypter for encryption at rest — AES-256-GCM through OpenSSL.
//
// Sealed layout: [1 byte format version = 1][12-byte random nonce][ciphertext][16-byte tag].
// The version byte and the caller's associated data are both authenticated, so a flipped bit
// anywhere, a record moved under another key name, or a different key all make Open() fail with
// DATA_LOSS.
//
// Nonces are random (96 bits), so one key should seal fewer than 2^32 records (NIST SP 800-38D);
// the manager's data-encryption-key rotation is what bounds that.
//
// Thread-safety: Seal() and Open() may be called concurrently (each call uses its own OpenSSL
// context; the key is immutable after Create()).
#ifndef SHOAL_RAFT_STORAGE_AES_GCM_ENCRYPTER_H_
#define SHOAL_RAFT_STORAGE_AES_GCM_ENCRYPTER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "raft/storage/encrypter.h"

namespace shoal::raft {

class AesGcmEncrypter : public Encrypter {
 public:
  static constexpr size_t kKeySize = 32;
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;
  // Bytes a sealed record has beyond its plaintext.
  static constexpr size_t kOverhead = 1 + kNonceSize + kTagSize;

  // REQUIRES: key.size() == kKeySize (else INVALID_ARGUMENT).
  static absl::StatusOr<std::unique_ptr<AesGcmEncrypter>> Create(absl::string_view key);
  // A fresh random key, for tests and for generating data-encryption keys.
  static std::string GenerateKey();

  ~AesGcmEncrypter() override;  // wipes the key from memory
  AesGcmEncrypter(const AesGcmEncrypter&) = delete;
  AesGcmEncrypter& operator=(const AesGcmEncrypter&) = delete;

  absl::StatusOr<std::string> Seal(absl::string_view plaintext,
                                   absl::string_view associated_data) override;
  absl::StatusOr<std::string> Open(absl::string_view sealed,
                                   absl::string_view associated_data) override;

 private:
  explicit AesGcmEncrypter(std::string key) : key_(std::move(key)) {}

  std::string key_;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_STORAGE_AES_GCM_ENCRYPTER_H_
