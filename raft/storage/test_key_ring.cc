#include "raft/storage/test_key_ring.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace shoal::raft::testing {

TestKeyRing::TestKeyRing(absl::string_view tags) {
  if (tags.empty()) std::abort();
  for (char tag : tags) AddKeyAndMakeCurrent(tag);
}

std::string TestKeyRing::Marker(char tag) {
  return absl::StrCat("<<test-key-", std::string(1, tag), ">>");
}

void TestKeyRing::AddKeyAndMakeCurrent(char tag) {
  absl::MutexLock lock(&mu_);
  if (keys_.count(tag) == 0) {
    absl::StatusOr<std::unique_ptr<AesGcmEncrypter>> aead =
        AesGcmEncrypter::Create(std::string(AesGcmEncrypter::kKeySize, tag));
    if (!aead.ok()) std::abort();
    keys_[tag] = std::move(*aead);
  }
  current_ = tag;
}

void TestKeyRing::DropKey(char tag) {
  absl::MutexLock lock(&mu_);
  if (tag == current_) std::abort();
  keys_.erase(tag);
}

char TestKeyRing::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

int64_t TestKeyRing::seals(char tag) const {
  absl::MutexLock lock(&mu_);
  auto it = seals_.find(tag);
  return it == seals_.end() ? 0 : it->second;
}

void TestKeyRing::FailSealsAfter(int64_t n) {
  absl::MutexLock lock(&mu_);
  seals_left_ = n;
}

absl::StatusOr<std::string> TestKeyRing::Seal(absl::string_view plaintext,
                                              absl::string_view associated_data) {
  std::shared_ptr<AesGcmEncrypter> aead;
  char tag;
  {
    absl::MutexLock lock(&mu_);
    if (seals_left_ == 0) return absl::UnavailableError("test key ring: injected Seal failure");
    if (seals_left_ > 0) --seals_left_;
    tag = current_;
    aead = keys_.at(tag);
    ++seals_[tag];
  }
  absl::StatusOr<std::string> sealed =
      aead->Seal(plaintext, absl::StrCat(std::string(1, tag), associated_data));
  if (!sealed.ok()) return sealed.status();
  return absl::StrCat(std::string(1, tag), Marker(tag), *sealed);
}

absl::StatusOr<std::string> TestKeyRing::Open(absl::string_view sealed,
                                              absl::string_view associated_data) {
  if (sealed.empty()) return absl::DataLossError("test key ring: empty record");
  const char tag = sealed[0];
  const std::string marker = Marker(tag);
  if (sealed.substr(1, marker.size()) != marker) {
    return absl::DataLossError("test key ring: record has no key marker");
  }
  std::shared_ptr<AesGcmEncrypter> aead;
  {
    absl::MutexLock lock(&mu_);
    auto it = keys_.find(tag);
    if (it == keys_.end()) {
      return absl::DataLossError(absl::StrCat("test key ring: record sealed by key '",
                                              std::string(1, tag), "', which is not on the ring"));
    }
    aead = it->second;
  }
  return aead->Open(sealed.substr(1 + marker.size()),
                    absl::StrCat(std::string(1, tag), associated_data));
}

}  // namespace shoal::raft::testing
