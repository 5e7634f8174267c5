// RecordCodec: the on-disk form of every value the Raft storage writes.
//
//   framed = [1 byte format version = 1][4 bytes CRC-32C of sealed, little-endian][sealed]
//   sealed = Encrypter::Seal(serialized protobuf, associated data naming the record)
//
// The CRC catches torn writes and bit rot before the Encrypter sees the bytes (and is the only
// integrity check when encryption is off); the Encrypter's authentication catches records that
// are intact but belong elsewhere or to another key. Either failure is DATA_LOSS naming the
// record, and no bytes of a failed record are ever returned.
//
// Thread-safety: as safe as the Encrypter it wraps (the codec itself holds no mutable state).
#ifndef SHOAL_RAFT_STORAGE_RECORD_H_
#define SHOAL_RAFT_STORAGE_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "raft/storage/encrypter.h"

namespace shoal::raft {

class RecordCodec {
 public:
  static constexpr uint8_t kFormatVersion = 1;
  static constexpr size_t kHeaderSize = 5;

  explicit RecordCodec(Encrypter* encrypter) : encrypter_(encrypter) {}

  // Seals and frames `plaintext`.
  absl::StatusOr<std::string> Encode(absl::string_view plaintext,
                                     absl::string_view associated_data) const;

  // Checks and opens a framed record. `name` (e.g. "entry 42") only goes into error messages.
  absl::StatusOr<std::string> Decode(absl::string_view framed, absl::string_view associated_data,
                                     absl::string_view name) const;

 private:
  Encrypter* encrypter_;  // not owned
};

// Big-endian encoding, used in keys and associated data so that byte order sorts numerically.
void AppendBigEndian64(std::string* out, uint64_t v);
uint64_t ReadBigEndian64(absl::string_view bytes);  // REQUIRES: bytes.size() >= 8
void AppendLittleEndian32(std::string* out, uint32_t v);
uint32_t ReadLittleEndian32(absl::string_view bytes);  // REQUIRES: bytes.size() >= 4
void AppendLittleEndian64(std::string* out, uint64_t v);
uint64_t ReadLittleEndian64(absl::string_view bytes);  // REQUIRES: bytes.size() >= 8

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_STORAGE_RECORD_H_
