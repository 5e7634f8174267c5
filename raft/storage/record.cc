#include "raft/storage/record.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "raft/storage/crc32c.h"

namespace shoal::raft {

void AppendBigEndian64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

uint64_t ReadBigEndian64(absl::string_view bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

void AppendLittleEndian32(std::string* out, uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) out->push_back(static_cast<char>(v >> shift));
}

uint32_t ReadLittleEndian32(absl::string_view bytes) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

void AppendLittleEndian64(std::string* out, uint64_t v) {
  for (int shift = 0; shift < 64; shift += 8) out->push_back(static_cast<char>(v >> shift));
}

uint64_t ReadLittleEndian64(absl::string_view bytes) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}

absl::StatusOr<std::string> RecordCodec::Encode(absl::string_view plaintext,
                                                absl::string_view associated_data) const {
  absl::StatusOr<std::string> sealed = encrypter_->Seal(plaintext, associated_data);
  if (!sealed.ok()) return sealed.status();
  std::string out;
  out.reserve(kHeaderSize + sealed->size());
  out.push_back(static_cast<char>(kFormatVersion));
  AppendLittleEndian32(&out, Crc32c(*sealed));
  out.append(*sealed);
  return out;
}

absl::StatusOr<std::string> RecordCodec::Decode(absl::string_view framed,
                                                absl::string_view associated_data,
                                                absl::string_view name) const {
  if (framed.size() < kHeaderSize) {
    return absl::DataLossError(
        absl::StrCat("raft storage record ", name, " is truncated (", framed.size(), " bytes)"));
  }
  const uint8_t version = static_cast<uint8_t>(framed[0]);
  if (version != kFormatVersion) {
    return absl::DataLossError(
        absl::StrCat("raft storage record ", name, " has unknown format version ", version));
  }
  const uint32_t stored = ReadLittleEndian32(framed.substr(1, 4));
  const absl::string_view sealed = framed.substr(kHeaderSize);
  const uint32_t computed = Crc32c(sealed);
  if (stored != computed) {
    return absl::DataLossError(
        absl::StrFormat("raft storage record %s is corrupt: checksum mismatch (stored %08x, "
                        "computed %08x over %d bytes)",
                        std::string(name), stored, computed, sealed.size()));
  }
  absl::StatusOr<std::string> plain = encrypter_->Open(sealed, associated_data);
  if (!plain.ok()) {
    return absl::DataLossError(absl::StrCat("raft storage record ", name,
                                            " cannot be opened: ", plain.status().message()));
  }
  return plain;
}

}  // namespace shoal::raft
