// Encrypter: how the Raft storage seals every record it writes to disk (encryption at rest).
//
// DurableLog hands each serialized value (log entries, hard state, snapshot metadata, snapshot
// files) to Seal() before writing, and to Open() after reading. `associated_data` names the
// record the bytes belong to (for an entry it contains the entry's index), so an implementation
// that authenticates it turns "this ciphertext was moved to another record" into an Open() error,
// not into silently wrong data.
//
// Implementations here: NoEncryption (pass-through, when encryption is off) and AesGcmEncrypter
// (aes_gcm_encrypter.h). The manager plugs its own data-encryption-key handling in behind this
// interface.
//
// Thread-safety: DurableLog calls an Encrypter from its single writer thread only, but an
// implementation shared by several users must be safe to call concurrently; both
// implementations here are.
#ifndef SHOAL_RAFT_STORAGE_ENCRYPTER_H_
#define SHOAL_RAFT_STORAGE_ENCRYPTER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::raft {

class Encrypter {
 public:
  virtual ~Encrypter() = default;

  // Returns the sealed form of `plaintext`, bound to `associated_data` (which is not stored: the
  // caller must present the same bytes to Open()).
  virtual absl::StatusOr<std::string> Seal(absl::string_view plaintext,
                                           absl::string_view associated_data) = 0;

  // Inverse of Seal(). Fails (DATA_LOSS for authenticated implementations) when `sealed` was
  // altered, was sealed under another key, or was sealed with different associated data.
  // Never returns unauthenticated bytes as plaintext.
  virtual absl::StatusOr<std::string> Open(absl::string_view sealed,
                                           absl::string_view associated_data) = 0;
};

// Stores plaintext unchanged and ignores associated data: the configuration when encryption at
// rest is off. Integrity is then left to the storage's own checksums.
class NoEncryption : public Encrypter {
 public:
  absl::StatusOr<std::string> Seal(absl::string_view plaintext,
                                   absl::string_view associated_data) override;
  absl::StatusOr<std::string> Open(absl::string_view sealed,
                                   absl::string_view associated_data) override;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_STORAGE_ENCRYPTER_H_
