// CRC-32C (Castagnoli), the checksum in every record the Raft storage writes.
//
// Chosen over CRC-32 because x86-64 computes it in hardware (SSE4.2), which matters for
// multi-megabyte snapshot files; a table-driven fallback covers other CPUs. Pure functions,
// safe from any thread.
#ifndef SHOAL_RAFT_STORAGE_CRC32C_H_
#define SHOAL_RAFT_STORAGE_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace shoal::raft {

// The CRC-32C of `data` continued from `crc` (the CRC of the bytes before it; 0 to start).
uint32_t Crc32cExtend(uint32_t crc, absl::string_view data);
inline uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data); }

// The portable implementation, exposed so tests can check it against the hardware one.
uint32_t Crc32cExtendPortable(uint32_t crc, absl::string_view data);

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_STORAGE_CRC32C_H_
