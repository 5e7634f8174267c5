// DurableLog: one manager's Raft log on disk — entries, hard state and snapshots — under
// <state-dir>/raft/.
//
// Layout:
//   <dir>/db/    RocksDB. Keys: "e" + big-endian index -> raftpb::Entry; "h" -> raftpb::HardState;
//                "s" -> raftpb::SnapshotMetadata of the current snapshot.
//   <dir>/snap/  one sealed file per snapshot (snapshot_files.h).
// Every value is sealed by the Encrypter and framed with a CRC (record.h); associated data binds
// each value to its key, so records cannot be swapped unnoticed.
//
// How the node driver uses it:
//   start:    Open(); Load(); MemoryStorage: ApplySnapshot(snapshot) if its index != 0,
//             SetHardState(hard_state), Append(entries).
//   each Ready, BEFORE sending rd.messages:
//             SaveReady(rd.hard_state, rd.entries, rd.snapshot, rd.must_sync)
//   That is one RocksDB write batch, so one WAL fdatasync when must_sync (plus the snapshot
//   file's own fsyncs in the rare Ready that carries a snapshot).
//   own snapshot of the applied state: SaveSnapshot(snapshot).
//   key rotation (new key made current in the Encrypter): Reseal(), between two Readys.
//
// Guarantees:
//  - Atomic and ordered: after a crash at any point the log is as after some prefix of the
//    completed saves — every save that returned OK with sync (and every save before it) included.
//    Unsynced saves survive a process crash (they are in the kernel's page cache), not a power
//    failure.
//  - Integrity: nothing read back is returned unless its CRC, its seal and the log's structure
//    (contiguous indexes, non-decreasing terms, commit within the log) check out; otherwise
//    DATA_LOSS naming the record. Corruption is reported, never repaired by dropping data.
//  - After a save fails, the outcome on disk is unknown (a failed fsync may or may not have
//    written), so every later save fails with FAILED_PRECONDITION: close, reopen and Load().
//
// Threading: not thread-safe. One thread — the node driver's — makes every call (except
// WriteSnapshotFile, see there); Load() is meant for startup, before the first save.
#ifndef SHOAL_RAFT_STORAGE_DURABLE_LOG_H_
#define SHOAL_RAFT_STORAGE_DURABLE_LOG_H_

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
#include "raft/storage/encrypter.h"
#include "raft/storage/record.h"
#include "raft/storage/snapshot_files.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace shoal::raft {

struct DurableLogOptions {
  // Snapshot files kept on disk, counting the current one (older ones are for manual recovery
  // only: the log behind them is gone). At least 1.
  int snapshots_to_keep = 2;
  // RocksDB memtable size. The live log is small (entries behind a snapshot are deleted), so a
  // small memtable keeps memory and the WAL short.
  size_t memtable_bytes = 8 << 20;
};

// Everything needed to rebuild the in-memory log after a restart.
struct LoadedState {
  raftpb::HardState hard_state;        // all zero if none was ever saved
  raftpb::Snapshot snapshot;           // metadata().index() == 0 if there is none
  std::vector<raftpb::Entry> entries;  // contiguous, starting at snapshot index + 1
};

class DurableLog {
 public:
  using Options = DurableLogOptions;

  // Opens (creating if missing, mode 0700) the log in `dir`. `encrypter` is not owned and must
  // outlive the log; it must be the one the log was written with, else reads fail with
  // DATA_LOSS. Removes leftovers of interrupted snapshot writes. Fails with DATA_LOSS when the
  // snapshot record is corrupt.
  static absl::StatusOr<std::unique_ptr<DurableLog>> Open(const std::string& dir,
                                                          Encrypter* encrypter,
                                                          const Options& options = {});
  ~DurableLog();
  DurableLog(const DurableLog&) = delete;
  DurableLog& operator=(const DurableLog&) = delete;

  // Reads and verifies everything: hard state, current snapshot (with data), entries after it.
  // If the stored commit index is below the snapshot index (possible only if the snapshot and
  // the hard state were saved in separate calls), it is raised to the snapshot index — a
  // snapshot only ever holds committed state.
  absl::StatusOr<LoadedState> Load();

  // Saves, in one atomic write: `hard_state` if set, and `entries`. Entries must have
  // consecutive indexes; the first may be at most LastIndex() + 1, and appending at index i
  // first deletes every stored entry >= i (the conflicting suffix Raft replaces). Entries at or
  // below the snapshot index are ignored (already covered). The hard state's commit index may
  // not exceed the resulting last index. `sync` makes this and every earlier
  // save durable before returning (one fdatasync of the WAL).
  absl::Status Save(const std::optional<raftpb::HardState>& hard_state,
                    const std::vector<raftpb::Entry>& entries, bool sync);

  // Records `snapshot` as current: writes its file atomically, then (one synced write) its
  // metadata, deleting entries at or below its index. Entries after it are kept if the log has
  // the snapshot's last entry (same index and term: this node's own snapshot); otherwise the
  // log diverged from or is behind the snapshot (one received from the leader) and all
  // entries go. Keeps Options::snapshots_to_keep files. FAILED_PRECONDITION if older than the
  // current snapshot.
  absl::Status SaveSnapshot(const raftpb::Snapshot& snapshot);

  // The slow half of saving a large snapshot, ahead of SaveSnapshot and off the writer thread:
  // seals and writes `snapshot`'s file (complete and fsynced under its final name). It may run
  // on any thread while the writer thread goes on with its saves — but not during Reseal(), nor
  // concurrently with another WriteSnapshotFile. The file is not current until SaveSnapshot()
  // records it (a crash before that leaves an unrecorded file, which the next Open() removes);
  // SaveSnapshot() of the same snapshot (same metadata) then only writes the record. Until then
  // the file is safe from pruning; AbandonSnapshotFile() gives it up (e.g. when a snapshot from
  // the leader superseded it meanwhile).
  absl::Status WriteSnapshotFile(const raftpb::Snapshot& snapshot);
  void AbandonSnapshotFile(const raftpb::SnapshotMetadata& metadata);

  // A Ready's worth of state: `snapshot` (if its index != 0) as SaveSnapshot(), then `entries`
  // and `hard_state` as Save() — all in ONE RocksDB write batch, so a crash cannot separate a
  // received snapshot from the hard state that commits it. `sync` is forced on with a snapshot.
  absl::Status SaveReady(const std::optional<raftpb::HardState>& hard_state,
                         const std::vector<raftpb::Entry>& entries,
                         const raftpb::Snapshot& snapshot, bool sync);

  // Deletes stored entries below `index`. REQUIRES: index <= snapshot index + 1 (anything more
  // would open a gap between the snapshot and the log: FAILED_PRECONDITION). SaveSnapshot()
  // already compacts, so this is for callers that manage compaction themselves.
  absl::Status Compact(uint64_t index);

  // Key rotation: rewrites every record this log keeps — each stored entry, the hard state, the
  // snapshot metadata, and every snapshot file on disk (the current one and the older ones kept)
  // — with the same plaintext, sealed again by the Encrypter as it is now. Then it flushes and
  // compacts RocksDB so that the superseded copies in its WAL and table files are deleted too,
  // and removes leftover snapshot temp files. (Deleted files are not scrubbed from the device.)
  //
  // A data-encryption-key rotation: (1) make the new key current in the Encrypter while the old
  // one stays readable; (2) Reseal(); (3) only after it returned OK, drop the old key. Once
  // Reseal() returns OK, no record in this log's directory is sealed by a key other than the one
  // current when Reseal() started (later records are sealed by whatever is current then).
  //
  // Crash safety: entries are rewritten in synced RocksDB write batches of at most
  // kResealBatchEntries entries (and about kResealBatchBytes bytes); the hard state and the
  // snapshot metadata go in the last batch; each snapshot file is replaced atomically (complete
  // temp file, fsync, rename, fsync of the directory). So at every moment each record is whole,
  // in either its old or its new seal, and a Reseal() cut short by a crash or an error leaves a
  // log that loads as long as both keys are readable. Calling Reseal() again finishes the job.
  //
  // Errors: DATA_LOSS when a record fails its checks (nothing is repaired or dropped: a corrupt
  // non-current snapshot file must be removed by hand; the message names it); the Encrypter's
  // error when Seal() fails; a failed RocksDB write makes later saves fail as after any failed
  // save. Any error means the old key may still be needed.
  //
  // Cost: one fsync per batch plus the sealing, the snapshot files' rewrite, and one flush and
  // full compaction of the (small) live log. Like every other call it runs on the single
  // writer thread, between saves; it takes no other lock.
  static constexpr size_t kResealBatchEntries = 1000;
  static constexpr size_t kResealBatchBytes = 4 << 20;
  absl::Status Reseal();

  // Index of the current snapshot (0 if none) and of the last stored entry (the snapshot index
  // when the log after it is empty).
  uint64_t SnapshotIndex() const { return snapshot_.index; }
  uint64_t LastIndex() const { return last_index_; }
  const std::string& dir() const { return dir_; }

 private:
  // The state a write batch leads to; adopted only once the batch is written.
  struct Plan;

  DurableLog(std::string dir, Encrypter* encrypter, Options options);

  absl::Status Init();
  absl::Status PlanSnapshot(const raftpb::Snapshot& snapshot, Plan* plan);
  absl::Status PlanEntries(const std::vector<raftpb::Entry>& entries, Plan* plan);
  absl::Status PlanHardState(const raftpb::HardState& hard_state, Plan* plan);
  absl::Status Commit(Plan* plan, bool sync);
  absl::Status CheckWritable() const;
  void ForgetPrewritten(const SnapshotId& id);
  // Reads one value; nullopt when the key is absent.
  absl::StatusOr<std::optional<std::string>> Get(const std::string& key,
                                                 const std::string& associated_data,
                                                 const std::string& name);
  absl::StatusOr<raftpb::Entry> ReadEntry(uint64_t index);
  // Reseal() steps.
  absl::Status ResealSnapshotFiles();
  absl::Status ResealDatabase();
  absl::Status WriteResealBatch(rocksdb::WriteBatch* batch);
  absl::Status PurgeSupersededCopies();

  const std::string dir_;
  const Options options_;
  RecordCodec codec_;
  std::unique_ptr<SnapshotFiles> snapshots_;
  std::unique_ptr<rocksdb::DB> db_;

  SnapshotId snapshot_;       // the current snapshot; index 0 = none
  uint64_t first_entry_ = 0;  // lowest stored entry index; 0 = no entries
  uint64_t last_index_ = 0;   // highest stored entry index, or snapshot_.index if higher
  absl::Status broken_;       // set by a failed save; blocks further saves

  // Files written by WriteSnapshotFile and not yet recorded or abandoned: id -> the serialized
  // metadata they hold (pinned in snapshots_ meanwhile).
  absl::Mutex prewritten_mu_;
  std::map<SnapshotId, std::string> prewritten_ ABSL_GUARDED_BY(prewritten_mu_);
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_STORAGE_DURABLE_LOG_H_
