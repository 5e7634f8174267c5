// SnapshotFiles: the snapshot directory of the Raft storage, one sealed file per snapshot.
//
// Files are named <term>-<index>.snap (16 hex digits each) and hold
//   ["SHOALSNP"][8-byte little-endian length of the rest][framed record (record.h)]
// where the record is the whole serialized raftpb::Snapshot (data and metadata), sealed with
// associated data naming the term and index, so a file renamed to another snapshot's name does
// not open.
//
// A file appears under its final name only once complete and fsynced (write to <name>.tmp,
// fsync, rename, fsync the directory), so a crash leaves either no file or a whole one, plus
// perhaps a .tmp that Prune() removes. Which snapshot is current is recorded by DurableLog, not
// by the directory listing.
//
// Thread-safety: owned by one DurableLog. Its writer thread makes every call, except that a file
// may be written (Write) from another thread while it does, provided that file's id is pinned
// for the duration: Prune leaves pinned ids (and their .tmp files) alone. Pin, Unpin and Prune
// may be called from any thread.
#ifndef SHOAL_RAFT_STORAGE_SNAPSHOT_FILES_H_
#define SHOAL_RAFT_STORAGE_SNAPSHOT_FILES_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "raft.pb.h"
#include "raft/storage/record.h"

namespace shoal::raft {

struct SnapshotId {
  uint64_t term = 0;
  uint64_t index = 0;
  bool operator==(const SnapshotId& o) const { return term == o.term && index == o.index; }
  bool operator<(const SnapshotId& o) const {
    return index != o.index ? index < o.index : term < o.term;
  }
};

class SnapshotFiles {
 public:
  // Creates `dir` (mode 0700) if it is missing. `codec` is not owned and must outlive this.
  static absl::StatusOr<std::unique_ptr<SnapshotFiles>> Open(const std::string& dir,
                                                             const RecordCodec* codec);

  // Writes `snapshot` durably under its final name; replaces a file of the same name.
  absl::Status Write(const raftpb::Snapshot& snapshot);

  // Reads and verifies a snapshot file. DATA_LOSS (naming the file) when it is truncated,
  // corrupt, unopenable, or its contents are not the snapshot its name says; NOT_FOUND when
  // there is no such file.
  absl::StatusOr<raftpb::Snapshot> Read(const SnapshotId& id) const;

  // Re-seals an existing snapshot file with the codec's Encrypter as it is now (for a key
  // rotation): reads and verifies it as Read() does, then replaces it as Write() does — the new
  // file is complete and fsynced under <name>.tmp before a rename switches to it, and the
  // directory is fsynced before this returns — so a crash leaves either the old or the new file,
  // both whole. The plaintext is rewritten byte for byte. Errors as Read() and Write().
  absl::Status Reseal(const SnapshotId& id);

  // The complete snapshot files present, by ascending index (then term).
  absl::StatusOr<std::vector<SnapshotId>> List() const;

  // Removes leftover .tmp files, snapshot files newer than `current` (written but never
  // recorded: a SaveSnapshot interrupted by a crash), and all but the newest `keep` files at or
  // before `current` (`current` itself is always kept). `current` = nullopt means no snapshot is
  // recorded. Files with names it does not recognise are left alone.
  // Pinned ids are never removed, whatever `current` says.
  absl::Status Prune(const std::optional<SnapshotId>& current, int keep);

  // Protects the file `id` (complete or being written) from Prune until Unpin(id). Pins nest.
  void Pin(const SnapshotId& id);
  void Unpin(const SnapshotId& id);

  std::string PathOf(const SnapshotId& id) const;
  const std::string& dir() const { return dir_; }

  static std::string FileName(const SnapshotId& id);
  // The id a file name denotes, or nullopt for names that are not complete snapshot files.
  static std::optional<SnapshotId> ParseFileName(const std::string& name);

 private:
  SnapshotFiles(std::string dir, const RecordCodec* codec) : dir_(std::move(dir)), codec_(codec) {}

  // Read() without the final parse: the verified plaintext (a serialized raftpb::Snapshot) and,
  // in `parsed`, the snapshot it holds.
  absl::StatusOr<std::string> ReadPlaintext(const SnapshotId& id, raftpb::Snapshot* parsed) const;
  // Seals `plaintext` (a serialized snapshot `id`) and writes it durably under its final name.
  absl::Status WritePlaintext(const SnapshotId& id, absl::string_view plaintext);

  bool Pinned(const SnapshotId& id) const;

  std::string dir_;
  const RecordCodec* codec_;
  mutable absl::Mutex mu_;
  std::map<SnapshotId, int> pins_ ABSL_GUARDED_BY(mu_);
};

// Durability helpers shared by the storage: fsync a directory so that entries created, renamed
// or removed in it survive a crash; create a directory with `mode` if it is missing.
absl::Status FsyncDirectory(const std::string& dir);
absl::Status EnsureDirectory(const std::string& dir, unsigned mode);

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_STORAGE_SNAPSHOT_FILES_H_
