#include "manager/encryption/key_ring_encrypter.h"

#include <openssl/crypto.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::manager::encryption {
namespace {

std::string EncodeKeyId(uint32_t id) {
  std::string out(KeyRingEncrypter::kKeyIdSize, '\0');
  out[0] = static_cast<char>((id >> 24) & 0xff);
  out[1] = static_cast<char>((id >> 16) & 0xff);
  out[2] = static_cast<char>((id >> 8) & 0xff);
  out[3] = static_cast<char>(id & 0xff);
  return out;
}

uint32_t DecodeKeyId(absl::string_view b) {
  return (uint32_t{static_cast<unsigned char>(b[0])} << 24) |
         (uint32_t{static_cast<unsigned char>(b[1])} << 16) |
         (uint32_t{static_cast<unsigned char>(b[2])} << 8) |
         uint32_t{static_cast<unsigned char>(b[3])};
}

// The key ID is authenticated with the record: AAD = ID || caller's associated data.
std::string BoundAssociatedData(absl::string_view key_id, absl::string_view associated_data) {
  return absl::StrCat(key_id, associated_data);
}

}  // namespace

absl::StatusOr<KeyRingEncrypter::Entry> KeyRingEncrypter::MakeEntry(const DataKey& key) {
  auto aead = raft::AesGcmEncrypter::Create(key.key);
  if (!aead.ok()) return aead.status();
  return Entry{key.key, std::shared_ptr<raft::AesGcmEncrypter>(*std::move(aead))};
}

absl::StatusOr<std::unique_ptr<KeyRingEncrypter>> KeyRingEncrypter::Create(
    std::vector<DataKey> keys, uint32_t current_id) {
  DekState state{std::move(keys), current_id};
  auto result = Create(state);
  WipeDekState(&state);
  return result;
}

absl::StatusOr<std::unique_ptr<KeyRingEncrypter>> KeyRingEncrypter::Create(const DekState& state) {
  if (absl::Status s = ValidateDekState(state); !s.ok()) return s;
  std::unique_ptr<KeyRingEncrypter> ring(new KeyRingEncrypter());
  absl::MutexLock lock(&ring->mu_);
  for (const DataKey& k : state.keys) {
    auto entry = MakeEntry(k);
    if (!entry.ok()) return entry.status();
    ring->keys_.emplace(k.id, *std::move(entry));
  }
  ring->current_id_ = state.current_id;
  return ring;
}

KeyRingEncrypter::~KeyRingEncrypter() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, entry] : keys_) OPENSSL_cleanse(entry.key.data(), entry.key.size());
}

absl::StatusOr<std::string> KeyRingEncrypter::Seal(absl::string_view plaintext,
                                                   absl::string_view associated_data) {
  std::shared_ptr<raft::AesGcmEncrypter> aead;
  uint32_t id;
  {
    absl::MutexLock lock(&mu_);
    id = current_id_;
    aead = keys_.at(id).aead;
  }
  const std::string key_id = EncodeKeyId(id);
  auto sealed = aead->Seal(plaintext, BoundAssociatedData(key_id, associated_data));
  if (!sealed.ok()) return sealed.status();
  return absl::StrCat(key_id, *sealed);
}

absl::StatusOr<std::string> KeyRingEncrypter::Open(absl::string_view sealed,
                                                   absl::string_view associated_data) {
  if (sealed.size() < kOverhead) {
    return absl::DataLossError(absl::StrCat("sealed record is truncated: ", sealed.size(),
                                            " bytes, at least ", kOverhead, " expected"));
  }
  const absl::string_view key_id = sealed.substr(0, kKeyIdSize);
  const uint32_t id = DecodeKeyId(key_id);
  std::shared_ptr<raft::AesGcmEncrypter> aead;
  {
    absl::MutexLock lock(&mu_);
    auto it = keys_.find(id);
    if (it == keys_.end()) {
      return absl::DataLossError(absl::StrCat(
          "record sealed with data-encryption key ", id,
          ", which this manager does not hold (the record is corrupt, or the key was dropped "
          "before a snapshot replaced it; restore the manager from a backup or re-join it)"));
    }
    aead = it->second.aead;
  }
  auto plain = aead->Open(sealed.substr(kKeyIdSize), BoundAssociatedData(key_id, associated_data));
  if (!plain.ok() && plain.status().code() == absl::StatusCode::kDataLoss) {
    return absl::DataLossError(absl::StrCat("record sealed with data-encryption key ", id,
                                            " does not authenticate: ", plain.status().message()));
  }
  return plain;
}

absl::Status KeyRingEncrypter::AddKeyAndMakeCurrent(DataKey key) {
  if (key.id == 0) return absl::InvalidArgumentError("data-encryption key ID 0 is reserved");
  auto entry = MakeEntry(key);
  OPENSSL_cleanse(key.key.data(), key.key.size());
  if (!entry.ok()) return entry.status();
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(key.id);
  if (it != keys_.end()) {
    if (it->second.key != entry->key) {
      OPENSSL_cleanse(entry->key.data(), entry->key.size());
      return absl::InvalidArgumentError(
          absl::StrCat("data-encryption key ID ", key.id,
                       " is already on the ring with other key bytes; pick a new ID"));
    }
    OPENSSL_cleanse(entry->key.data(), entry->key.size());
  } else {
    keys_.emplace(key.id, *std::move(entry));
  }
  current_id_ = key.id;
  return absl::OkStatus();
}

absl::Status KeyRingEncrypter::DropKey(uint32_t id) {
  absl::MutexLock lock(&mu_);
  if (id == current_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot drop data-encryption key ", id, ": it is the current key (add a new one first)"));
  }
  auto it = keys_.find(id);
  if (it == keys_.end()) return absl::OkStatus();
  OPENSSL_cleanse(it->second.key.data(), it->second.key.size());
  keys_.erase(it);
  return absl::OkStatus();
}

uint32_t KeyRingEncrypter::current_id() const {
  absl::MutexLock lock(&mu_);
  return current_id_;
}

std::vector<uint32_t> KeyRingEncrypter::key_ids() const {
  absl::MutexLock lock(&mu_);
  std::vector<uint32_t> ids;
  for (const auto& [id, entry] : keys_) ids.push_back(id);
  return ids;
}

DekState KeyRingEncrypter::State() const {
  absl::MutexLock lock(&mu_);
  DekState state;
  for (const auto& [id, entry] : keys_) state.keys.push_back(DataKey{id, entry.key});
  state.current_id = current_id_;
  return state;
}

}  // namespace shoal::manager::encryption
