#include "raft/storage/durable_log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"

namespace shoal::raft {
namespace {

constexpr char kEntryPrefix = 'e';
constexpr char kEntryPrefixEnd = 'f';  // exclusive upper bound of the entry keys
const char kHardStateKey[] = "h";
const char kSnapshotKey[] = "s";
const char kHardStateAd[] = "shoal.raft/hard-state";
const char kSnapshotAd[] = "shoal.raft/snapshot-metadata";

// Below this many entries a deletion is written as point deletes; above it as one range
// tombstone. Point deletes keep reads simple for the common short truncation; a range tombstone
// keeps a large compaction O(1) in the write batch.
constexpr uint64_t kMaxPointDeletes = 256;

std::string EntryKey(uint64_t index) {
  std::string key(1, kEntryPrefix);
  AppendBigEndian64(&key, index);
  return key;
}

std::string EntryAd(uint64_t index) {
  std::string ad = "shoal.raft/entry/";
  AppendBigEndian64(&ad, index);
  return ad;
}

std::string EntryName(uint64_t index) { return absl::StrCat("entry ", index); }

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  return absl::InternalError(msg);
}

rocksdb::Options DbOptions(const DurableLogOptions& options) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.paranoid_checks = true;
  // A log of already-compact protobufs, mostly sealed (random-looking) bytes: compression
  // would cost CPU and gain nothing.
  o.compression = rocksdb::kNoCompression;
  o.write_buffer_size = options.memtable_bytes;
  o.max_write_buffer_number = 2;
  // Old WALs are released once their memtable is flushed; cap them so a quiet log with a big
  // memtable does not keep much WAL around.
  o.max_total_wal_size = 4 * options.memtable_bytes;
  // fdatasync, not fsync: the WAL's data and size are what recovery needs.
  o.use_fsync = false;
  // Every write reaches the WAL file at once (no user-space buffering), so a process crash
  // loses nothing that Write() acknowledged, synced or not.
  o.manual_wal_flush = false;
  // WAL damage: a record cut short at the end of the log (a crash mid-append) is dropped
  // quietly — it was never acknowledged as synced. A record that is complete but fails its
  // checksum makes Open() fail instead: it may hold synced saves, and a Raft member that
  // silently forgets an acknowledged vote or entry breaks the cluster's safety, which is worse
  // than a member that refuses to start. (kPointInTimeRecovery, RocksDB's default, would stop
  // at such a record and carry on without the saves after it.) WAL recycling needs the
  // corruption-tolerant modes, so it stays off: see durable_log_benchmark.cc for its cost.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  o.recycle_log_file_num = 0;
  o.keep_log_file_num = 2;
  o.max_log_file_size = 1 << 20;
  o.max_background_jobs = 2;
  rocksdb::BlockBasedTableOptions table;
  table.checksum = rocksdb::kCRC32c;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

rocksdb::ReadOptions VerifyingReads() {
  rocksdb::ReadOptions r;
  r.verify_checksums = true;
  r.fill_cache = false;  // reads are rare (startup, snapshots); keep the cache for nobody
  return r;
}

}  // namespace

struct DurableLog::Plan {
  rocksdb::WriteBatch batch;
  SnapshotId snapshot;
  uint64_t first_entry = 0;
  uint64_t last_index = 0;
  bool snapshot_changed = false;
  // The snapshot's file was written by WriteSnapshotFile.
  std::optional<SnapshotId> prewritten;

  void DeleteEntries(uint64_t lo, uint64_t hi) {  // inclusive
    if (lo > hi) return;
    if (hi - lo < kMaxPointDeletes) {
      for (uint64_t i = lo; i <= hi; ++i) batch.Delete(EntryKey(i));
    } else {
      batch.DeleteRange(EntryKey(lo), EntryKey(hi + 1));
    }
  }
};

DurableLog::DurableLog(std::string dir, Encrypter* encrypter, Options options)
    : dir_(std::move(dir)), options_(options), codec_(encrypter) {}

DurableLog::~DurableLog() {
  if (db_) {
    // Close() reports errors that the destructor would swallow silently; there is no one to
    // report them to here, but closing explicitly keeps shutdown ordered before members go.
    db_->Close().PermitUncheckedError();
  }
}

absl::StatusOr<std::unique_ptr<DurableLog>> DurableLog::Open(const std::string& dir,
                                                             Encrypter* encrypter,
                                                             const Options& options) {
  if (encrypter == nullptr) return absl::InvalidArgumentError("DurableLog needs an Encrypter");
  if (options.snapshots_to_keep < 1) {
    return absl::InvalidArgumentError("DurableLogOptions.snapshots_to_keep must be at least 1");
  }
  std::unique_ptr<DurableLog> log(new DurableLog(dir, encrypter, options));
  if (absl::Status s = log->Init(); !s.ok()) return s;
  return log;
}

absl::Status DurableLog::Init() {
  if (absl::Status s = EnsureDirectory(dir_, 0700); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<SnapshotFiles>> snapshots =
      SnapshotFiles::Open(absl::StrCat(dir_, "/snap"), &codec_);
  if (!snapshots.ok()) return snapshots.status();
  snapshots_ = std::move(*snapshots);

  const std::string db_path = absl::StrCat(dir_, "/db");
  rocksdb::DB* db = nullptr;
  if (absl::Status s = FromRocks(rocksdb::DB::Open(DbOptions(options_), db_path, &db),
                                 absl::StrCat("cannot open the raft log database ", db_path));
      !s.ok()) {
    return s;
  }
  db_.reset(db);

  absl::StatusOr<std::optional<std::string>> meta_bytes =
      Get(kSnapshotKey, kSnapshotAd, "snapshot metadata");
  if (!meta_bytes.ok()) return meta_bytes.status();
  std::optional<SnapshotId> current;
  if (meta_bytes->has_value()) {
    raftpb::SnapshotMetadata meta;
    if (!meta.ParseFromString(**meta_bytes)) {
      return absl::DataLossError("raft storage record snapshot metadata does not parse");
    }
    snapshot_ = {meta.term(), meta.index()};
    current = snapshot_;
  }

  // The stored entry range, from the keys alone (Load() verifies the values).
  const std::string lower = std::string(1, kEntryPrefix);
  const std::string upper = std::string(1, kEntryPrefixEnd);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro = VerifyingReads();
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  it->Seek(lower);
  if (it->Valid()) {
    if (it->key().size() != 9) return absl::DataLossError("raft log has a malformed entry key");
    first_entry_ = ReadBigEndian64(absl::string_view(it->key().data() + 1, 8));
    it->SeekToLast();
    if (it->Valid()) {
      if (it->key().size() != 9) return absl::DataLossError("raft log has a malformed entry key");
      last_index_ = ReadBigEndian64(absl::string_view(it->key().data() + 1, 8));
    }
  }
  if (absl::Status s = FromRocks(it->status(), "cannot scan the raft log"); !s.ok()) return s;
  last_index_ = std::max(last_index_, snapshot_.index);

  // Leftovers of a SaveSnapshot() that crashed before recording its metadata go now.
  return snapshots_->Prune(current, options_.snapshots_to_keep);
}

absl::StatusOr<std::optional<std::string>> DurableLog::Get(const std::string& key,
                                                           const std::string& associated_data,
                                                           const std::string& name) {
  std::string framed;
  rocksdb::Status s = db_->Get(VerifyingReads(), key, &framed);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (absl::Status st = FromRocks(s, absl::StrCat("cannot read raft storage record ", name));
      !st.ok()) {
    return st;
  }
  absl::StatusOr<std::string> plain = codec_.Decode(framed, associated_data, name);
  if (!plain.ok()) return plain.status();
  return std::optional<std::string>(std::move(*plain));
}

absl::StatusOr<raftpb::Entry> DurableLog::ReadEntry(uint64_t index) {
  absl::StatusOr<std::optional<std::string>> bytes =
      Get(EntryKey(index), EntryAd(index), EntryName(index));
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) {
    return absl::DataLossError(absl::StrCat("raft log is missing ", EntryName(index)));
  }
  raftpb::Entry entry;
  if (!entry.ParseFromString(**bytes) || entry.index() != index) {
    return absl::DataLossError(
        absl::StrCat("raft storage record ", EntryName(index), " does not hold that entry"));
  }
  return entry;
}

absl::StatusOr<LoadedState> DurableLog::Load() {
  LoadedState state;

  absl::StatusOr<std::optional<std::string>> hs = Get(kHardStateKey, kHardStateAd, "hard state");
  if (!hs.ok()) return hs.status();
  if (hs->has_value() && !state.hard_state.ParseFromString(**hs)) {
    return absl::DataLossError("raft storage record hard state does not parse");
  }

  absl::StatusOr<std::optional<std::string>> meta_bytes =
      Get(kSnapshotKey, kSnapshotAd, "snapshot metadata");
  if (!meta_bytes.ok()) return meta_bytes.status();
  if (meta_bytes->has_value()) {
    raftpb::SnapshotMetadata meta;
    if (!meta.ParseFromString(**meta_bytes)) {
      return absl::DataLossError("raft storage record snapshot metadata does not parse");
    }
    const SnapshotId id{meta.term(), meta.index()};
    absl::StatusOr<raftpb::Snapshot> snapshot = snapshots_->Read(id);
    if (absl::IsNotFound(snapshot.status())) {
      return absl::DataLossError(
          absl::StrCat("the current snapshot's file ", snapshots_->PathOf(id), " is missing"));
    }
    if (!snapshot.ok()) return snapshot.status();
    if (snapshot->metadata().SerializeAsString() != meta.SerializeAsString()) {
      return absl::DataLossError(absl::StrCat("snapshot file ", snapshots_->PathOf(id),
                                              " does not match the recorded snapshot metadata"));
    }
    state.snapshot = std::move(*snapshot);
  }
  const uint64_t snap_index = state.snapshot.metadata().index();
  const uint64_t snap_term = state.snapshot.metadata().term();

  const std::string upper = std::string(1, kEntryPrefixEnd);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro = VerifyingReads();
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  uint64_t prev_term = snap_term;
  for (it->Seek(EntryKey(snap_index + 1)); it->Valid(); it->Next()) {
    const uint64_t expected = snap_index + 1 + state.entries.size();
    if (it->key().size() != 9) return absl::DataLossError("raft log has a malformed entry key");
    const uint64_t index = ReadBigEndian64(absl::string_view(it->key().data() + 1, 8));
    if (index != expected) {
      return absl::DataLossError(absl::StrCat("raft log has a gap: ", EntryName(expected),
                                              " is missing (next stored is ", index, ")"));
    }
    absl::StatusOr<std::string> plain =
        codec_.Decode(absl::string_view(it->value().data(), it->value().size()), EntryAd(index),
                      EntryName(index));
    if (!plain.ok()) return plain.status();
    raftpb::Entry& entry = state.entries.emplace_back();
    if (!entry.ParseFromString(*plain) || entry.index() != index) {
      return absl::DataLossError(
          absl::StrCat("raft storage record ", EntryName(index), " does not hold that entry"));
    }
    if (entry.term() < prev_term) {
      return absl::DataLossError(absl::StrCat("raft log is inconsistent: ", EntryName(index),
                                              " has term ", entry.term(),
                                              ", below the term before it (", prev_term, ")"));
    }
    prev_term = entry.term();
  }
  if (absl::Status s = FromRocks(it->status(), "cannot read the raft log"); !s.ok()) return s;

  const uint64_t last = snap_index + state.entries.size();
  if (state.hard_state.commit() > last) {
    return absl::DataLossError(absl::StrCat("raft log is inconsistent: commit index ",
                                            state.hard_state.commit(), " is beyond its last entry ",
                                            last));
  }
  if (state.hard_state.commit() < snap_index) state.hard_state.set_commit(snap_index);
  return state;
}

absl::Status DurableLog::CheckWritable() const {
  if (broken_.ok()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("raft log ", dir_, " refuses writes after an earlier write failed (",
                   broken_.message(), "); reopen it to learn what reached the disk"));
}

absl::Status DurableLog::PlanSnapshot(const raftpb::Snapshot& snapshot, Plan* plan) {
  const SnapshotId id{snapshot.metadata().term(), snapshot.metadata().index()};
  if (id.index == 0) return absl::InvalidArgumentError("a snapshot needs a non-zero index");
  if (id.index < plan->snapshot.index) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot at index ", id.index,
                                                      " is older than the current one at ",
                                                      plan->snapshot.index));
  }
  if (id.index == plan->snapshot.index && id.term != plan->snapshot.term) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot at index ", id.index, " term ", id.term,
        " contradicts the current snapshot at the same index with term ", plan->snapshot.term));
  }
  // The entries after the snapshot stay only if they continue it: the log holds the
  // snapshot's last entry (Raft's log matching then vouches for everything before it).
  bool keep_tail = id.index == plan->snapshot.index;
  if (!keep_tail && plan->first_entry != 0 && id.index >= plan->first_entry &&
      id.index <= plan->last_index) {
    absl::StatusOr<raftpb::Entry> entry = ReadEntry(id.index);
    if (!entry.ok()) return entry.status();
    keep_tail = entry->term() == id.term;
  }

  // The file must be complete before any record names it. WriteSnapshotFile may have written
  // it already (then it is pinned, and unpinned once this plan commits or fails).
  bool prewritten = false;
  {
    absl::MutexLock lock(&prewritten_mu_);
    auto it = prewritten_.find(id);
    prewritten = it != prewritten_.end() && it->second == snapshot.metadata().SerializeAsString();
  }
  if (prewritten) {
    plan->prewritten = id;
  } else if (absl::Status s = snapshots_->Write(snapshot); !s.ok()) {
    return s;
  }

  if (plan->first_entry != 0) {
    plan->DeleteEntries(plan->first_entry, keep_tail ? id.index : plan->last_index);
  }
  if (keep_tail && plan->last_index > id.index) {
    plan->first_entry = id.index + 1;
  } else {
    plan->first_entry = 0;
    plan->last_index = id.index;
  }
  absl::StatusOr<std::string> framed =
      codec_.Encode(snapshot.metadata().SerializeAsString(), kSnapshotAd);
  if (!framed.ok()) return framed.status();
  plan->batch.Put(kSnapshotKey, *framed);
  plan->snapshot = id;
  plan->snapshot_changed = true;
  return absl::OkStatus();
}

absl::Status DurableLog::PlanEntries(const std::vector<raftpb::Entry>& entries, Plan* plan) {
  for (size_t k = 1; k < entries.size(); ++k) {
    if (entries[k].index() != entries[k - 1].index() + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("entries to save are not consecutive: ", entries[k - 1].index(), " then ",
                       entries[k].index()));
    }
    if (entries[k].term() < entries[k - 1].term()) {
      return absl::InvalidArgumentError(
          absl::StrCat("entries to save go back in term at index ", entries[k].index()));
    }
  }
  // Entries the snapshot already covers are not stored again.
  auto begin = std::find_if(entries.begin(), entries.end(), [&](const raftpb::Entry& e) {
    return e.index() > plan->snapshot.index;
  });
  if (begin == entries.end()) return absl::OkStatus();
  const uint64_t first = begin->index();
  if (first > plan->last_index + 1) {
    return absl::InvalidArgumentError(absl::StrCat("entries to save start at ", first,
                                                   ", leaving a gap after the last stored index ",
                                                   plan->last_index));
  }
  if (plan->first_entry != 0 && first <= plan->last_index) {
    plan->DeleteEntries(std::max(first, plan->first_entry), plan->last_index);
  }
  for (auto e = begin; e != entries.end(); ++e) {
    absl::StatusOr<std::string> framed = codec_.Encode(e->SerializeAsString(), EntryAd(e->index()));
    if (!framed.ok()) return framed.status();
    plan->batch.Put(EntryKey(e->index()), *framed);
  }
  if (plan->first_entry == 0 || first < plan->first_entry) plan->first_entry = first;
  plan->last_index = entries.back().index();
  return absl::OkStatus();
}

absl::Status DurableLog::PlanHardState(const raftpb::HardState& hard_state, Plan* plan) {
  absl::StatusOr<std::string> framed = codec_.Encode(hard_state.SerializeAsString(), kHardStateAd);
  if (!framed.ok()) return framed.status();
  plan->batch.Put(kHardStateKey, *framed);
  return absl::OkStatus();
}

absl::Status DurableLog::Commit(Plan* plan, bool sync) {
  rocksdb::Status s;
  if (plan->batch.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    s = db_->Write(wo, &plan->batch);
  } else if (sync) {
    // Nothing new, but the caller asked for everything so far to be durable.
    s = db_->SyncWAL();
  }
  if (!s.ok()) {
    broken_ = FromRocks(s, absl::StrCat("cannot write the raft log ", dir_));
    return broken_;
  }
  if (plan->prewritten) ForgetPrewritten(*plan->prewritten);
  snapshot_ = plan->snapshot;
  first_entry_ = plan->first_entry;
  last_index_ = plan->last_index;
  if (plan->snapshot_changed) {
    // Best effort: the snapshot is already durable, and whatever is left over now is removed by
    // the next snapshot or the next Open().
    snapshots_->Prune(snapshot_, options_.snapshots_to_keep).IgnoreError();
  }
  return absl::OkStatus();
}

absl::Status DurableLog::SaveReady(const std::optional<raftpb::HardState>& hard_state,
                                   const std::vector<raftpb::Entry>& entries,
                                   const raftpb::Snapshot& snapshot, bool sync) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  Plan plan;
  plan.snapshot = snapshot_;
  plan.first_entry = first_entry_;
  plan.last_index = last_index_;
  const bool has_snapshot = snapshot.metadata().index() != 0;
  if (has_snapshot) {
    if (absl::Status s = PlanSnapshot(snapshot, &plan); !s.ok()) return s;
  }
  if (absl::Status s = PlanEntries(entries, &plan); !s.ok()) return s;
  if (hard_state) {
    // Raft never commits past its log; storing such a state would only fail at the next Load().
    if (hard_state->commit() > plan.last_index) {
      return absl::InvalidArgumentError(
          absl::StrCat("hard state commits index ", hard_state->commit(),
                       " beyond the last log index ", plan.last_index));
    }
    if (absl::Status s = PlanHardState(*hard_state, &plan); !s.ok()) return s;
  }
  return Commit(&plan, sync || has_snapshot);
}

absl::Status DurableLog::Save(const std::optional<raftpb::HardState>& hard_state,
                              const std::vector<raftpb::Entry>& entries, bool sync) {
  return SaveReady(hard_state, entries, raftpb::Snapshot(), sync);
}

absl::Status DurableLog::WriteSnapshotFile(const raftpb::Snapshot& snapshot) {
  const SnapshotId id{snapshot.metadata().term(), snapshot.metadata().index()};
  if (id.index == 0) return absl::InvalidArgumentError("a snapshot needs a non-zero index");
  snapshots_->Pin(id);
  if (absl::Status s = snapshots_->Write(snapshot); !s.ok()) {
    snapshots_->Unpin(id);
    return s;
  }
  absl::MutexLock lock(&prewritten_mu_);
  if (!prewritten_.emplace(id, snapshot.metadata().SerializeAsString()).second) {
    snapshots_->Unpin(id);  // written twice: one pin is enough
  }
  return absl::OkStatus();
}

void DurableLog::AbandonSnapshotFile(const raftpb::SnapshotMetadata& metadata) {
  ForgetPrewritten(SnapshotId{metadata.term(), metadata.index()});
}

void DurableLog::ForgetPrewritten(const SnapshotId& id) {
  absl::MutexLock lock(&prewritten_mu_);
  if (prewritten_.erase(id) > 0) snapshots_->Unpin(id);
}

absl::Status DurableLog::SaveSnapshot(const raftpb::Snapshot& snapshot) {
  if (snapshot.metadata().index() == 0) {
    return absl::InvalidArgumentError("a snapshot needs a non-zero index");
  }
  return SaveReady(std::nullopt, {}, snapshot, /*sync=*/true);
}

absl::Status DurableLog::Reseal() {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  if (absl::Status s = ResealSnapshotFiles(); !s.ok()) return s;
  if (absl::Status s = ResealDatabase(); !s.ok()) return s;
  return PurgeSupersededCopies();
}

absl::Status DurableLog::ResealSnapshotFiles() {
  // Leftovers (temp files, unrecorded newer files, surplus older ones) hold sealed bytes too:
  // they go rather than being resealed.
  std::optional<SnapshotId> current;
  if (snapshot_.index != 0) current = snapshot_;
  if (absl::Status s = snapshots_->Prune(current, options_.snapshots_to_keep); !s.ok()) return s;
  absl::StatusOr<std::vector<SnapshotId>> ids = snapshots_->List();
  if (!ids.ok()) return ids.status();
  for (const SnapshotId& id : *ids) {
    if (absl::Status s = snapshots_->Reseal(id); !s.ok()) {
      if (current && id == *current) return s;
      return absl::Status(
          s.code(), absl::StrCat("cannot reseal the old snapshot file ", snapshots_->PathOf(id),
                                 " (kept for manual recovery only; remove it if it is damaged "
                                 "and retry): ",
                                 s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status DurableLog::WriteResealBatch(rocksdb::WriteBatch* batch) {
  if (batch->Count() == 0) return absl::OkStatus();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Write(wo, batch);
  if (!s.ok()) {
    broken_ = FromRocks(s, absl::StrCat("cannot write the raft log ", dir_));
    return broken_;
  }
  batch->Clear();
  return absl::OkStatus();
}

absl::Status DurableLog::ResealDatabase() {
  // Every stored entry, whatever its index: the scan covers the whole key range, not just what
  // Load() would return. The iterator reads the state as of its creation; the batches only put
  // the same plaintexts under the same keys, so what it sees stays right.
  const std::string lower(1, kEntryPrefix);
  const std::string upper(1, kEntryPrefixEnd);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro = VerifyingReads();
  ro.iterate_upper_bound = &upper_slice;
  rocksdb::WriteBatch batch;
  size_t batch_bytes = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    for (it->Seek(lower); it->Valid(); it->Next()) {
      if (it->key().size() != 9) return absl::DataLossError("raft log has a malformed entry key");
      const uint64_t index = ReadBigEndian64(absl::string_view(it->key().data() + 1, 8));
      const std::string ad = EntryAd(index);
      absl::StatusOr<std::string> plain = codec_.Decode(
          absl::string_view(it->value().data(), it->value().size()), ad, EntryName(index));
      if (!plain.ok()) return plain.status();
      absl::StatusOr<std::string> framed = codec_.Encode(*plain, ad);
      if (!framed.ok()) return framed.status();
      batch.Put(it->key(), *framed);
      batch_bytes += it->key().size() + framed->size();
      if (batch.Count() >= kResealBatchEntries || batch_bytes >= kResealBatchBytes) {
        if (absl::Status s = WriteResealBatch(&batch); !s.ok()) return s;
        batch_bytes = 0;
      }
    }
    if (absl::Status s = FromRocks(it->status(), "cannot read the raft log"); !s.ok()) return s;
  }
  // The hard state and the snapshot metadata, with the last entries.
  const struct {
    const char* key;
    const char* ad;
    const char* name;
  } singles[] = {{kHardStateKey, kHardStateAd, "hard state"},
                 {kSnapshotKey, kSnapshotAd, "snapshot metadata"}};
  for (const auto& single : singles) {
    absl::StatusOr<std::optional<std::string>> plain = Get(single.key, single.ad, single.name);
    if (!plain.ok()) return plain.status();
    if (!plain->has_value()) continue;
    absl::StatusOr<std::string> framed = codec_.Encode(**plain, single.ad);
    if (!framed.ok()) return framed.status();
    batch.Put(single.key, *framed);
  }
  return WriteResealBatch(&batch);
}

absl::Status DurableLog::PurgeSupersededCopies() {
  // The old seals are still in the WAL (until the memtable holding the new ones is flushed) and
  // in table files (until compaction drops the overwritten versions). Flushing makes the old
  // WAL files obsolete; a forced compaction of the whole range rewrites every table file with
  // only the newest version of each key. RocksDB deletes obsolete files as these jobs finish.
  const auto fail = [this](const rocksdb::Status& s, absl::string_view step) {
    return absl::Status(
        FromRocks(s, "").code(),
        absl::StrCat("raft log ", dir_, ": every record is resealed, but ", step,
                     " failed, so copies under the previous key may remain on disk (keep that "
                     "key and call Reseal again): ",
                     s.ToString()));
  };
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (rocksdb::Status s = db_->Flush(fo); !s.ok()) return fail(s, "flushing the memtable");
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  if (rocksdb::Status s = db_->CompactRange(co, nullptr, nullptr); !s.ok()) {
    return fail(s, "compacting the database");
  }
  // A background job deletes the files it made obsolete just before it counts itself finished,
  // and the calls above may return slightly earlier: wait until no flush or compaction runs.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    uint64_t flushes = 0, compactions = 0;
    if (!db_->GetIntProperty("rocksdb.num-running-flushes", &flushes) ||
        !db_->GetIntProperty("rocksdb.num-running-compactions", &compactions)) {
      return fail(rocksdb::Status::NotSupported("no running-job properties"),
                  "waiting for obsolete files to be deleted");
    }
    if (flushes == 0 && compactions == 0) return absl::OkStatus();
    if (absl::Now() > deadline) {
      return fail(rocksdb::Status::TimedOut("background jobs still running after 30 s"),
                  "waiting for obsolete files to be deleted");
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

absl::Status DurableLog::Compact(uint64_t index) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  if (index > snapshot_.index + 1) {
    return absl::FailedPreconditionError(absl::StrCat("cannot compact the raft log to ", index,
                                                      ": entries after the snapshot at ",
                                                      snapshot_.index, " are the only copy"));
  }
  if (first_entry_ == 0 || index <= first_entry_) return absl::OkStatus();
  Plan plan;
  plan.snapshot = snapshot_;
  plan.DeleteEntries(first_entry_, index - 1);
  plan.first_entry = index <= last_index_ ? index : 0;
  plan.last_index = last_index_;
  // Dropping entries the snapshot covers need not be durable at once: if it is lost, they are
  // simply dropped again.
  return Commit(&plan, /*sync=*/false);
}

}  // namespace shoal::raft
