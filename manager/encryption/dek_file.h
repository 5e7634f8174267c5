// DekFile: a manager's Raft data-encryption keys on disk, <state-dir>/raft/dek.pem.
//
// Autolock off, the file is one PEM block in the clear:
//
//   -----BEGIN SHOAL RAFT DEK-----
//   <base64 of the body below>
//   -----END SHOAL RAFT DEK-----
//
// Autolock on, that whole text is wrapped with the KEK (the unlock key) by pki::WrapKey, so the
// file is a "SHOAL ENCRYPTED PRIVATE KEY" block and `head -1 dek.pem` tells the two apart.
//
// Body, all integers big-endian:
//   version (1 byte) = 1
//   current key ID (4 bytes)
//   key count (4 bytes), then per key: ID (4 bytes), length (4 bytes), key bytes
//
// Saves are atomic (dek.pem.tmp written with mode 0600, fsynced, renamed over dek.pem, the
// directory fsynced): a crash leaves the old file or the new one. A leftover dek.pem.tmp from an
// interrupted save is never read, and the next save replaces it.
//
// Thread-safety: none. The manager's encryption setup is the one user of a state dir's file.
#ifndef SHOAL_MANAGER_ENCRYPTION_DEK_FILE_H_
#define SHOAL_MANAGER_ENCRYPTION_DEK_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "manager/encryption/data_key.h"

namespace shoal::manager::encryption {

class DekFile {
 public:
  static constexpr char kDirName[] = "raft";
  static constexpr char kFileName[] = "dek.pem";
  static constexpr char kPemType[] = "SHOAL RAFT DEK";
  static constexpr unsigned char kFormatVersion = 1;

  // <state_dir>/raft/dek.pem
  static std::string Path(const std::string& state_dir);

  // Reads the keys back, unwrapping them with `kek` (32 raw bytes) when the file is wrapped; a
  // file in the clear loads whatever `kek` is. Errors:
  //   NOT_FOUND            no DEK file (a new manager: create one with NewDekState + Save);
  //   FAILED_PRECONDITION  the file is wrapped and `kek` is empty: "the swarm is locked ...";
  //   INVALID_ARGUMENT     `kek` does not unwrap the file: "invalid unlock key: ...";
  //   DATA_LOSS            the file is not a DEK file, is corrupt, or holds an invalid key set.
  static absl::StatusOr<DekState> Load(const std::string& state_dir, absl::string_view kek);

  // Atomically replaces the file with `state`, wrapped with `kek` unless it is empty. Creates
  // <state_dir>/raft (mode 0700) if missing; FAILED_PRECONDITION if state_dir itself is missing.
  // INVALID_ARGUMENT for an invalid state (ValidateDekState) or a KEK that is not 32 bytes.
  static absl::Status Save(const std::string& state_dir, const DekState& state,
                           absl::string_view kek);

  // Whether the file is wrapped with a KEK. NOT_FOUND when there is no file.
  static absl::StatusOr<bool> IsWrapped(const std::string& state_dir);

  // A KEK change touches two files (this one and the node key), which cannot change in one step.
  // The protocol: SaveStaged (dek.pem.new under the new KEK), then re-wrap the node key (the
  // commit point), then CommitStaged (rename over dek.pem). Load finishes or discards an
  // interrupted change: it uses dek.pem.new when the KEK it is given opens it, else dek.pem.
  static std::string StagedPath(const std::string& state_dir);
  static absl::Status SaveStaged(const std::string& state_dir, const DekState& state,
                                 absl::string_view kek);
  static absl::Status CommitStaged(const std::string& state_dir);
  static void DiscardStaged(const std::string& state_dir);

  // Re-stores the keys under `new_kek` ("" = in the clear): autolock switched on or off, or the
  // unlock key rotated. `old_kek` must unwrap the file if it is wrapped.
  static absl::Status ChangeKek(const std::string& state_dir, absl::string_view old_kek,
                                absl::string_view new_kek);

  // The file's contents for `state` (exposed for tests and tools); Parse is its inverse for
  // unwrapped contents.
  static absl::StatusOr<std::string> Serialize(const DekState& state);
  static absl::StatusOr<DekState> LoadFrom(const std::string& path, absl::string_view kek);
  static absl::Status SaveTo(const std::string& state_dir, const std::string& path,
                             const DekState& state, absl::string_view kek);
  static absl::StatusOr<DekState> Parse(absl::string_view pem);
};

}  // namespace shoal::manager::encryption

#endif  // SHOAL_MANAGER_ENCRYPTION_DEK_FILE_H_
