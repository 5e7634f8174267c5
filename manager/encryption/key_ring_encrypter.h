// KeyRingEncrypter: the Raft Encrypter for a manager's encryption at rest — AES-256-GCM under a
// ring of data-encryption keys (DEKs), so the key can rotate without re-sealing old records.
//
// Sealed layout: [4-byte key ID, big-endian][AesGcmEncrypter's sealed bytes]. The key ID is also
// authenticated (it is prefixed to the associated data given to AES-GCM), so changing it can only
// make Open() fail, never select another key's plaintext. Open() reads the ID and uses that key:
// records sealed under an older key stay readable while it is on the ring. An ID the ring does not
// hold fails with DATA_LOSS naming the ID.
//
// Rotation: AddKeyAndMakeCurrent() makes new records seal under the new key at once; DropKey()
// removes an old key once a snapshot has replaced every record it sealed. Persisting the ring is
// the caller's job (State() + DekFile::Save).
//
// Thread-safety: every method may be called concurrently; Seal/Open run outside the lock on an
// immutable per-key AesGcmEncrypter, so rotation never waits for a long Seal.
#ifndef SHOAL_MANAGER_ENCRYPTION_KEY_RING_ENCRYPTER_H_
#define SHOAL_MANAGER_ENCRYPTION_KEY_RING_ENCRYPTER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "manager/encryption/data_key.h"
#include "raft/storage/aes_gcm_encrypter.h"
#include "raft/storage/encrypter.h"

namespace shoal::manager::encryption {

class KeyRingEncrypter : public raft::Encrypter {
 public:
  static constexpr size_t kKeyIdSize = 4;
  // Bytes a sealed record has beyond its plaintext.
  static constexpr size_t kOverhead = kKeyIdSize + raft::AesGcmEncrypter::kOverhead;

  // INVALID_ARGUMENT when the keys are not a valid DekState (ValidateDekState).
  static absl::StatusOr<std::unique_ptr<KeyRingEncrypter>> Create(std::vector<DataKey> keys,
                                                                  uint32_t current_id);
  static absl::StatusOr<std::unique_ptr<KeyRingEncrypter>> Create(const DekState& state);

  ~KeyRingEncrypter() override;  // wipes the keys from memory
  KeyRingEncrypter(const KeyRingEncrypter&) = delete;
  KeyRingEncrypter& operator=(const KeyRingEncrypter&) = delete;

  absl::StatusOr<std::string> Seal(absl::string_view plaintext,
                                   absl::string_view associated_data) override;
  absl::StatusOr<std::string> Open(absl::string_view sealed,
                                   absl::string_view associated_data) override;

  // Adds `key` and seals every later record with it. Adding an ID already on the ring with the
  // same bytes only makes it current; with other bytes it is INVALID_ARGUMENT (records sealed
  // under the old bytes would become unreadable). Also INVALID_ARGUMENT for a bad key size or ID 0.
  absl::Status AddKeyAndMakeCurrent(DataKey key);
  // Removes a key. FAILED_PRECONDITION for the current key; dropping an absent ID is OK.
  absl::Status DropKey(uint32_t id);

  uint32_t current_id() const;
  std::vector<uint32_t> key_ids() const;  // ascending
  // A copy of the ring, for DekFile::Save.
  DekState State() const;

 private:
  struct Entry {
    std::string key;  // Kept only to answer State(); wiped on destruction.
    std::shared_ptr<raft::AesGcmEncrypter> aead;
  };

  KeyRingEncrypter() = default;
  static absl::StatusOr<Entry> MakeEntry(const DataKey& key);

  mutable absl::Mutex mu_;
  std::map<uint32_t, Entry> keys_ ABSL_GUARDED_BY(mu_);
  uint32_t current_id_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace shoal::manager::encryption

#endif  // SHOAL_MANAGER_ENCRYPTION_KEY_RING_ENCRYPTER_H_
