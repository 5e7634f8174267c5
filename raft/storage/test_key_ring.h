// TestKeyRing: a stand-in for the manager's key-ring Encrypter (manager/encryption), for the
// storage and node tests of key rotation (DurableLog::Reseal).
//
// Keys are named by a one-character tag; each key's AES-256 bytes are derived from its tag, so
// two processes (the crash test's parent and writer) that add the same tags share the keys.
// Sealed layout: [tag][Marker(tag)][AesGcmEncrypter sealed bytes, associated data = tag + ad].
// Open() uses the key the tag names and fails with DATA_LOSS when that key is not on the ring,
// as the real key ring does for a dropped key ID. The marker is plain text so that tests can
// search raw files for anything still sealed by a given key.
//
// Failure injection: FailSealsAfter(n) lets n more Seal() calls succeed, then fails every later
// one with UNAVAILABLE (as a real encrypter might on an internal error).
//
// Thread-safety: every method may be called concurrently.
#ifndef SHOAL_RAFT_STORAGE_TEST_KEY_RING_H_
#define SHOAL_RAFT_STORAGE_TEST_KEY_RING_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "raft/storage/aes_gcm_encrypter.h"
#include "raft/storage/encrypter.h"

namespace shoal::raft::testing {

class TestKeyRing : public Encrypter {
 public:
  // A ring holding the keys in `tags`, the last one current. At least one tag.
  explicit TestKeyRing(absl::string_view tags);

  absl::StatusOr<std::string> Seal(absl::string_view plaintext,
                                   absl::string_view associated_data) override;
  absl::StatusOr<std::string> Open(absl::string_view sealed,
                                   absl::string_view associated_data) override;

  // Adds the key (if missing) and seals every later record with it.
  void AddKeyAndMakeCurrent(char tag);
  // Removes a key; records it sealed no longer open. Dropping the current key is a test bug.
  void DropKey(char tag);
  char current() const;

  // Successful Seal() calls with key `tag` so far.
  int64_t seals(char tag) const;
  // n >= 0: n more Seal() calls succeed, then they fail. n < 0: never fail (the default).
  void FailSealsAfter(int64_t n);

  // The bytes every record sealed by `tag` carries in the clear.
  static std::string Marker(char tag);

 private:
  mutable absl::Mutex mu_;
  std::map<char, std::shared_ptr<AesGcmEncrypter>> keys_ ABSL_GUARDED_BY(mu_);
  char current_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<char, int64_t> seals_ ABSL_GUARDED_BY(mu_);
  int64_t seals_left_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace shoal::raft::testing

#endif  // SHOAL_RAFT_STORAGE_TEST_KEY_RING_H_
