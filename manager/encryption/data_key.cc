#include "manager/encryption/data_key.h"

#include <openssl/crypto.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "raft/storage/aes_gcm_encrypter.h"

namespace shoal::manager::encryption {

DataKey NewDataKey(uint32_t id) { return DataKey{id, raft::AesGcmEncrypter::GenerateKey()}; }

DekState NewDekState() {
  DekState state;
  state.keys.push_back(NewDataKey(1));
  state.current_id = 1;
  return state;
}

absl::Status ValidateDekState(const DekState& state) {
  if (state.keys.empty()) {
    return absl::InvalidArgumentError("the data-encryption key set is empty");
  }
  std::set<uint32_t> ids;
  for (const DataKey& k : state.keys) {
    if (k.id == 0) return absl::InvalidArgumentError("data-encryption key ID 0 is reserved");
    if (k.key.size() != kDataKeySize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data-encryption key ", k.id, " is ", k.key.size(), " bytes, expected ", kDataKeySize));
    }
    if (!ids.insert(k.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("data-encryption key ID ", k.id, " appears more than once"));
    }
  }
  if (ids.count(state.current_id) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("the current data-encryption key ",
                                                   state.current_id, " is not in the key set"));
  }
  return absl::OkStatus();
}

void WipeDekState(DekState* state) {
  for (DataKey& k : state->keys) OPENSSL_cleanse(k.key.data(), k.key.size());
  state->keys.clear();
  state->current_id = 0;
}

}  // namespace shoal::manager::encryption
