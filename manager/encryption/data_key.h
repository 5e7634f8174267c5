// data_key: the Raft data-encryption keys (DEKs) a manager holds, as plain values.
//
// A DEK is 32 random bytes (AES-256) with a 32-bit ID. Every record sealed at rest carries the ID
// of the key that sealed it (key_ring_encrypter.h), so a manager keeps every key that may still
// have sealed a record: the current one, which seals new records, and older ones until a snapshot
// has replaced everything they sealed. The set is stored in <state-dir>/raft/dek.pem
// (dek_file.h).
//
// Thread-safety: plain values.
#ifndef SHOAL_MANAGER_ENCRYPTION_DATA_KEY_H_
#define SHOAL_MANAGER_ENCRYPTION_DATA_KEY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace shoal::manager::encryption {

struct DataKey {
  uint32_t id = 0;
  std::string key;  // kDataKeySize raw bytes.
};

inline constexpr size_t kDataKeySize = 32;

struct DekState {
  std::vector<DataKey> keys;
  uint32_t current_id = 0;  // The key that seals new records; one of `keys`.
};

// One fresh random key, ID 1, current: a new manager's state.
DekState NewDekState();

// A fresh random key with ID `id`.
DataKey NewDataKey(uint32_t id);

// OK when `state` has at least one key, every key is kDataKeySize bytes, IDs are unique and
// non-zero, and current_id names one of them. INVALID_ARGUMENT naming the problem otherwise.
absl::Status ValidateDekState(const DekState& state);

// Overwrites every key's bytes in memory (for states about to be dropped).
void WipeDekState(DekState* state);

}  // namespace shoal::manager::encryption

#endif  // SHOAL_MANAGER_ENCRYPTION_DATA_KEY_H_
