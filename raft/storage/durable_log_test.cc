// Tests of DurableLog: round trips, Raft log truncation, snapshots and compaction, recovery on
// reopen, sealing of every payload, and detection of corrupt, truncated, moved or foreign records.
#include "raft/storage/durable_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "raft/storage/aes_gcm_encrypter.h"
#include "raft/storage/encrypter.h"
#include "raft/storage/snapshot_files.h"
#include "raft/storage/test_key_ring.h"
#include "rocksdb/db.h"
#include "tests/harness/process.h"

namespace shoal::raft {
namespace {

namespace fs = std::filesystem;

constexpr absl::string_view kMarker = "PLAINTEXT-MARKER-9c41";

raftpb::Entry MakeEntry(uint64_t index, uint64_t term, std::string data = "") {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(data.empty() ? absl::StrCat("cmd-", index, "-", term) : std::move(data));
  return e;
}

std::vector<raftpb::Entry> MakeEntries(uint64_t lo, uint64_t hi, uint64_t term) {
  std::vector<raftpb::Entry> out;
  for (uint64_t i = lo; i <= hi; ++i) out.push_back(MakeEntry(i, term));
  return out;
}

raftpb::HardState MakeHardState(uint64_t term, uint64_t vote, uint64_t commit) {
  raftpb::HardState hs;
  hs.set_term(term);
  hs.set_vote(vote);
  hs.set_commit(commit);
  return hs;
}

raftpb::Snapshot MakeSnapshot(uint64_t index, uint64_t term, std::string data = "") {
  raftpb::Snapshot s;
  s.set_data(data.empty() ? absl::StrCat("state-at-", index) : std::move(data));
  s.mutable_metadata()->set_index(index);
  s.mutable_metadata()->set_term(term);
  s.mutable_metadata()->mutable_conf_state()->add_voters(1);
  s.mutable_metadata()->mutable_conf_state()->add_voters(2);
  s.mutable_metadata()->mutable_conf_state()->add_learners(3);
  return s;
}

template <typename Proto>
void ExpectProtoEq(const Proto& want, const Proto& got) {
  EXPECT_EQ(want.SerializeAsString(), got.SerializeAsString())
      << "want: " << want.ShortDebugString() << "\n got: " << got.ShortDebugString();
}

void ExpectEntries(const std::vector<raftpb::Entry>& want, const std::vector<raftpb::Entry>& got) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) ExpectProtoEq(want[i], got[i]);
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFileBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Wraps an Encrypter and records the associated data of every Seal().
class RecordingEncrypter : public Encrypter {
 public:
  explicit RecordingEncrypter(Encrypter* inner) : inner_(inner) {}
  absl::StatusOr<std::string> Seal(absl::string_view plaintext, absl::string_view ad) override {
    sealed_ads.insert(std::string(ad));
    return inner_->Seal(plaintext, ad);
  }
  absl::StatusOr<std::string> Open(absl::string_view sealed, absl::string_view ad) override {
    return inner_->Open(sealed, ad);
  }
  std::set<std::string> sealed_ads;

 private:
  Encrypter* inner_;
};

class DurableLogTest : public ::testing::Test {
 protected:
  DurableLogTest() : dir_(tmp_.path() + "/raft") {
    auto enc = AesGcmEncrypter::Create(AesGcmEncrypter::GenerateKey());
    EXPECT_TRUE(enc.ok());
    aes_ = std::move(*enc);
  }

  std::unique_ptr<DurableLog> OpenLog(Encrypter* enc = nullptr, DurableLogOptions options = {}) {
    auto log = DurableLog::Open(dir_, enc ? enc : aes_.get(), options);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  LoadedState MustLoad(DurableLog& log) {
    auto state = log.Load();
    EXPECT_TRUE(state.ok()) << state.status();
    return state.ok() ? *state : LoadedState();
  }

  std::string SnapshotPath(uint64_t term, uint64_t index) const {
    return dir_ + "/snap/" + SnapshotFiles::FileName({term, index});
  }

  // Direct access to the RocksDB underneath, for tampering. The DurableLog must be closed.
  std::unique_ptr<rocksdb::DB> OpenRawDb() {
    rocksdb::DB* db = nullptr;
    rocksdb::Options o;
    rocksdb::Status s = rocksdb::DB::Open(o, dir_ + "/db", &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return std::unique_ptr<rocksdb::DB>(db);
  }

  static std::string EntryKey(uint64_t index) {
    std::string key = "e";
    for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(index >> shift));
    return key;
  }

  ::shoal::testing::TempDir tmp_{"shoal-raftlog"};
  std::string dir_;
  std::unique_ptr<AesGcmEncrypter> aes_;
};

TEST_F(DurableLogTest, FreshLogIsEmpty) {
  auto log = OpenLog();
  LoadedState st = MustLoad(*log);
  ExpectProtoEq(raftpb::HardState(), st.hard_state);
  EXPECT_EQ(st.snapshot.metadata().index(), 0u);
  EXPECT_TRUE(st.entries.empty());
  EXPECT_EQ(log->LastIndex(), 0u);
  struct stat sb;
  ASSERT_EQ(::stat(dir_.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0700u);
}

TEST_F(DurableLogTest, RoundTripsAndSurvivesReopen) {
  const auto entries = MakeEntries(1, 5, 1);
  const auto hs = MakeHardState(1, 2, 3);
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(hs, entries, /*sync=*/true).ok());
    LoadedState st = MustLoad(*log);
    ExpectProtoEq(hs, st.hard_state);
    ExpectEntries(entries, st.entries);
    EXPECT_EQ(log->LastIndex(), 5u);
  }
  auto log = OpenLog();
  EXPECT_EQ(log->LastIndex(), 5u);
  LoadedState st = MustLoad(*log);
  ExpectProtoEq(hs, st.hard_state);
  ExpectEntries(entries, st.entries);
}

TEST_F(DurableLogTest, UnsyncedSavesAreKeptAcrossACleanClose) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 0, 0), MakeEntries(1, 3, 1), false).ok());
    ASSERT_TRUE(log->Save(std::nullopt, MakeEntries(4, 4, 1), false).ok());
    ASSERT_TRUE(log->Save(std::nullopt, {}, /*sync=*/true).ok());  // nothing new: just a sync
  }
  auto log = OpenLog();
  ExpectEntries(MakeEntries(1, 4, 1), MustLoad(*log).entries);
}

TEST_F(DurableLogTest, HardStateAloneLeavesEntries) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 0), MakeEntries(1, 3, 1), true).ok());
  ASSERT_TRUE(log->Save(MakeHardState(2, 0, 3), {}, true).ok());
  LoadedState st = MustLoad(*log);
  ExpectProtoEq(MakeHardState(2, 0, 3), st.hard_state);
  ExpectEntries(MakeEntries(1, 3, 1), st.entries);
}

TEST_F(DurableLogTest, ConflictingAppendTruncatesTheSuffix) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 2), MakeEntries(1, 6, 1), true).ok());
    // A new leader in term 2 overwrites from index 3 with a shorter log.
    ASSERT_TRUE(log->Save(MakeHardState(2, 1, 2), MakeEntries(3, 4, 2), true).ok());
    EXPECT_EQ(log->LastIndex(), 4u);
  }
  auto log = OpenLog();
  EXPECT_EQ(log->LastIndex(), 4u);
  auto want = MakeEntries(1, 2, 1);
  for (auto& e : MakeEntries(3, 4, 2)) want.push_back(e);
  ExpectEntries(want, MustLoad(*log).entries);
  // And appending right after the new end continues it.
  ASSERT_TRUE(log->Save(std::nullopt, MakeEntries(5, 5, 2), true).ok());
  want.push_back(MakeEntry(5, 2));
  ExpectEntries(want, MustLoad(*log).entries);
}

TEST_F(DurableLogTest, LongTruncationUsesOneRangeDeletion) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(std::nullopt, MakeEntries(1, 2000, 1), false).ok());
  ASSERT_TRUE(log->Save(std::nullopt, MakeEntries(2, 3, 2), true).ok());
  auto want = MakeEntries(1, 1, 1);
  for (auto& e : MakeEntries(2, 3, 2)) want.push_back(e);
  ExpectEntries(want, MustLoad(*log).entries);
  log.reset();
  ExpectEntries(want, MustLoad(*OpenLog()).entries);
}

TEST_F(DurableLogTest, RejectsMalformedAppendsWithoutWriting) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 0, 0), MakeEntries(1, 3, 1), true).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(log->Save(std::nullopt, MakeEntries(5, 6, 1), true)));
  std::vector<raftpb::Entry> holey = {MakeEntry(4, 1), MakeEntry(6, 1)};
  EXPECT_TRUE(absl::IsInvalidArgument(log->Save(std::nullopt, holey, true)));
  std::vector<raftpb::Entry> backwards = {MakeEntry(4, 2), MakeEntry(5, 1)};
  EXPECT_TRUE(absl::IsInvalidArgument(log->Save(std::nullopt, backwards, true)));
  EXPECT_TRUE(absl::IsInvalidArgument(log->Save(MakeHardState(1, 0, 9), {}, true)));
  // The log is still usable and unchanged.
  ExpectEntries(MakeEntries(1, 3, 1), MustLoad(*log).entries);
  ExpectProtoEq(MakeHardState(1, 0, 0), MustLoad(*log).hard_state);
  EXPECT_TRUE(log->Save(std::nullopt, MakeEntries(4, 4, 1), true).ok());
}

TEST_F(DurableLogTest, OwnSnapshotCompactsAndKeepsTheTail) {
  const auto snap = MakeSnapshot(5, 1, absl::StrCat("store-", kMarker));
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 8), MakeEntries(1, 10, 1), true).ok());
    ASSERT_TRUE(log->SaveSnapshot(snap).ok());
    EXPECT_EQ(log->SnapshotIndex(), 5u);
    EXPECT_EQ(log->LastIndex(), 10u);
  }
  EXPECT_TRUE(fs::exists(SnapshotPath(1, 5)));
  auto log = OpenLog();
  EXPECT_EQ(log->SnapshotIndex(), 5u);
  LoadedState st = MustLoad(*log);
  ExpectProtoEq(snap, st.snapshot);
  ExpectEntries(MakeEntries(6, 10, 1), st.entries);
  ExpectProtoEq(MakeHardState(1, 1, 8), st.hard_state);

  // Entries the snapshot covers are ignored when saved again; newer ones are appended.
  ASSERT_TRUE(log->Save(std::nullopt, MakeEntries(4, 11, 1), true).ok());
  ExpectEntries(MakeEntries(6, 11, 1), MustLoad(*log).entries);

  // Entries below the snapshot are gone from the database itself, not just skipped.
  log.reset();
  auto db = OpenRawDb();
  std::string value;
  for (uint64_t i = 1; i <= 5; ++i) {
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), EntryKey(i), &value).IsNotFound()) << i;
  }
  EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), EntryKey(6), &value).ok());
}

TEST_F(DurableLogTest, ReceivedSnapshotReplacesADivergentLog) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 2), MakeEntries(1, 10, 1), true).ok());
  // The leader's snapshot at 8 was taken in term 2: our entry 8 (term 1) is not its last entry,
  // so entries 9..10 belong to another history and must go.
  ASSERT_TRUE(log->SaveReady(MakeHardState(2, 0, 8), {}, MakeSnapshot(8, 2), false).ok());
  EXPECT_EQ(log->LastIndex(), 8u);
  LoadedState st = MustLoad(*log);
  EXPECT_TRUE(st.entries.empty());
  EXPECT_EQ(st.snapshot.metadata().index(), 8u);
  EXPECT_EQ(st.hard_state.commit(), 8u);
  // The log continues after the snapshot.
  ASSERT_TRUE(log->Save(std::nullopt, MakeEntries(9, 9, 2), true).ok());
  ExpectEntries(MakeEntries(9, 9, 2), MustLoad(*log).entries);
}

TEST_F(DurableLogTest, SnapshotBeyondTheLogAndEntriesInOneReady) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 2), MakeEntries(1, 3, 1), true).ok());
  ASSERT_TRUE(
      log->SaveReady(MakeHardState(3, 0, 20), MakeEntries(21, 22, 3), MakeSnapshot(20, 3), true)
          .ok());
  log.reset();
  log = OpenLog();
  LoadedState st = MustLoad(*log);
  EXPECT_EQ(st.snapshot.metadata().index(), 20u);
  ExpectEntries(MakeEntries(21, 22, 3), st.entries);
  ExpectProtoEq(MakeHardState(3, 0, 20), st.hard_state);
  EXPECT_EQ(log->LastIndex(), 22u);
}

TEST_F(DurableLogTest, OlderSnapshotIsRefused) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 6), MakeEntries(1, 6, 1), true).ok());
  ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(5, 1)).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(log->SaveSnapshot(MakeSnapshot(4, 1))));
  EXPECT_TRUE(absl::IsInvalidArgument(log->SaveSnapshot(MakeSnapshot(5, 2))));
  EXPECT_TRUE(log->SaveSnapshot(MakeSnapshot(5, 1)).ok());  // the same one again is harmless
  ExpectEntries(MakeEntries(6, 6, 1), MustLoad(*log).entries);
}

TEST_F(DurableLogTest, KeepsOnlyTheConfiguredNumberOfSnapshotFiles) {
  DurableLogOptions options;
  options.snapshots_to_keep = 2;
  auto log = OpenLog(nullptr, options);
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 10), MakeEntries(1, 10, 1), true).ok());
  for (uint64_t i : {2, 4, 6, 8}) ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(i, 1)).ok());
  EXPECT_FALSE(fs::exists(SnapshotPath(1, 2)));
  EXPECT_FALSE(fs::exists(SnapshotPath(1, 4)));
  EXPECT_TRUE(fs::exists(SnapshotPath(1, 6)));
  EXPECT_TRUE(fs::exists(SnapshotPath(1, 8)));
  ExpectEntries(MakeEntries(9, 10, 1), MustLoad(*log).entries);
}

TEST_F(DurableLogTest, CompactRefusesToOpenAGap) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 6), MakeEntries(1, 8, 1), true).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(log->Compact(3)));
  ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(5, 1)).ok());
  EXPECT_TRUE(log->Compact(6).ok());  // everything below the snapshot is already gone
  EXPECT_TRUE(absl::IsFailedPrecondition(log->Compact(7)));
  ExpectEntries(MakeEntries(6, 8, 1), MustLoad(*log).entries);
}

TEST_F(DurableLogTest, EveryPayloadIsSealed) {
  RecordingEncrypter recording(aes_.get());
  {
    auto log = OpenLog(&recording);
    std::vector<raftpb::Entry> entries;
    for (uint64_t i = 1; i <= 50; ++i) {
      entries.push_back(MakeEntry(i, 1, absl::StrCat(kMarker, "-entry-", i)));
    }
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 40), entries, true).ok());
    ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(40, 1, absl::StrCat(kMarker, "-snapshot"))).ok());
    // Loading opens them again: the marker is back in plaintext only in memory.
    LoadedState st = MustLoad(*log);
    EXPECT_TRUE(absl::StrContains(st.snapshot.data(), kMarker));
    ASSERT_EQ(st.entries.size(), 10u);
    EXPECT_TRUE(absl::StrContains(st.entries[0].data(), kMarker));
  }
  EXPECT_EQ(recording.sealed_ads.size(), 50u + 3u);  // entries, hard state, snapshot file+record

  auto grep_all = [&](const std::string& when) {
    int files = 0;
    for (const auto& f : fs::recursive_directory_iterator(dir_)) {
      if (!f.is_regular_file()) continue;
      ++files;
      EXPECT_FALSE(absl::StrContains(ReadFileBytes(f.path()), kMarker))
          << when << ": plaintext marker found in " << f.path();
    }
    EXPECT_GT(files, 3) << when;
  };
  grep_all("in the WAL");
  {
    // Push everything out of the WAL into SST files and compact, then look again.
    auto db = OpenRawDb();
    ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
    ASSERT_TRUE(db->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr).ok());
  }
  grep_all("in SST files");
  // Sanity check of the grep itself: without encryption the marker is visible.
  NoEncryption none;
  ::shoal::testing::TempDir plain_dir("shoal-raftlog-plain");
  {
    auto log = DurableLog::Open(plain_dir.path(), &none);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Save(std::nullopt, {MakeEntry(1, 1, std::string(kMarker))}, true).ok());
  }
  bool found = false;
  for (const auto& f : fs::recursive_directory_iterator(plain_dir.path())) {
    if (f.is_regular_file() && absl::StrContains(ReadFileBytes(f.path()), kMarker)) found = true;
  }
  EXPECT_TRUE(found);
}

TEST_F(DurableLogTest, CorruptSnapshotFileIsDataLoss) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 5), MakeEntries(1, 6, 1), true).ok());
    ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(5, 1, std::string(10000, 's'))).ok());
  }
  const std::string path = SnapshotPath(1, 5);
  const std::string good = ReadFileBytes(path);

  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x20;
  WriteFileBytes(path, flipped);
  {
    auto log = OpenLog();
    absl::Status s = log->Load().status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), path)) << s;
  }
  WriteFileBytes(path, good.substr(0, good.size() - 100));
  {
    absl::Status s = OpenLog()->Load().status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "truncated")) << s;
  }
  ASSERT_TRUE(fs::remove(path));
  {
    absl::Status s = OpenLog()->Load().status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "missing")) << s;
  }
  // Put back intact, it loads again: detection did not damage anything.
  WriteFileBytes(path, good);
  ExpectProtoEq(MakeSnapshot(5, 1, std::string(10000, 's')), MustLoad(*OpenLog()).snapshot);
}

TEST_F(DurableLogTest, SnapshotFileUnderAnotherNameDoesNotOpen) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 5), MakeEntries(1, 6, 1), true).ok());
    ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(4, 1, "old")).ok());
    ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(5, 1, "new")).ok());
  }
  fs::copy_file(SnapshotPath(1, 4), SnapshotPath(1, 5), fs::copy_options::overwrite_existing);
  absl::Status s = OpenLog()->Load().status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
}

TEST_F(DurableLogTest, TamperedRecordsAreDataLossNamingTheRecord) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 3), MakeEntries(1, 5, 1), true).ok());
  }
  std::string entry3, entry4;
  {
    auto db = OpenRawDb();
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), EntryKey(3), &entry3).ok());
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), EntryKey(4), &entry4).ok());
    std::string bad = entry3;
    bad[bad.size() - 1] ^= 0x01;  // bit rot: the CRC catches it
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), EntryKey(3), bad).ok());
  }
  {
    absl::Status s = OpenLog()->Load().status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "entry 3")) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "checksum")) << s;
  }
  {
    // An intact record moved to another key: only the seal's associated data can tell.
    auto db = OpenRawDb();
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), EntryKey(3), entry4).ok());
  }
  {
    absl::Status s = OpenLog()->Load().status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "entry 3")) << s;
  }
  {
    auto db = OpenRawDb();
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), EntryKey(3), entry3).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "h", "\x01garbage").ok());
  }
  {
    absl::Status s = OpenLog()->Load().status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "hard state")) << s;
  }
}

TEST_F(DurableLogTest, MovedRecordIsCaughtWithoutEncryptionToo) {
  NoEncryption none;
  {
    auto log = OpenLog(&none);
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 3), MakeEntries(1, 5, 1), true).ok());
  }
  {
    auto db = OpenRawDb();
    std::string entry4;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), EntryKey(4), &entry4).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), EntryKey(3), entry4).ok());
  }
  absl::Status s = OpenLog(&none)->Load().status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "entry 3")) << s;
}

TEST_F(DurableLogTest, StructuralDamageIsDataLoss) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 5), MakeEntries(1, 5, 1), true).ok());
  }
  {
    auto db = OpenRawDb();
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), EntryKey(3)).ok());
  }
  {
    absl::Status s = OpenLog()->Load().status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "gap")) << s;
  }
  {
    auto db = OpenRawDb();
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), EntryKey(4)).ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), EntryKey(5)).ok());
  }
  // Entries 1..2 remain but the hard state commits 5: acknowledged entries were lost.
  absl::Status s = OpenLog()->Load().status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "commit index 5")) << s;
}

// The WAL file of a closed log (RocksDB does not flush the memtable on close, so the saves
// are still only in the WAL).
std::string OnlyWalFile(const std::string& db_dir) {
  std::string found;
  for (const auto& f : fs::directory_iterator(db_dir)) {
    if (f.path().extension() == ".log" && fs::file_size(f.path()) > 0) {
      EXPECT_TRUE(found.empty()) << "several WAL files";
      found = f.path();
    }
  }
  EXPECT_FALSE(found.empty()) << "no WAL file in " << db_dir;
  return found;
}

TEST_F(DurableLogTest, TornWalTailEndsTheLogAtTheLastCompleteSave) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 1), MakeEntries(1, 3, 1), true).ok());
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 2), MakeEntries(4, 6, 1), true).ok());
  }
  const std::string wal = OnlyWalFile(dir_ + "/db");
  fs::resize_file(wal, fs::file_size(wal) - 10);  // the second save's record, cut short
  auto log = OpenLog();
  LoadedState st = MustLoad(*log);
  ExpectEntries(MakeEntries(1, 3, 1), st.entries);
  ExpectProtoEq(MakeHardState(1, 1, 1), st.hard_state);
  EXPECT_EQ(log->LastIndex(), 3u);
}

TEST_F(DurableLogTest, DamagedWalRecordIsDataLossNotASilentRollback) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 1), MakeEntries(1, 3, 1), true).ok());
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 2), MakeEntries(4, 6, 1), true).ok());
  }
  const std::string wal = OnlyWalFile(dir_ + "/db");
  std::string bytes = ReadFileBytes(wal);
  bytes[40] ^= 0x10;  // inside the first save's record; the second one after it is intact
  WriteFileBytes(wal, bytes);
  auto log = DurableLog::Open(dir_, aes_.get());
  EXPECT_TRUE(absl::IsDataLoss(log.status())) << log.status();
}

TEST_F(DurableLogTest, WrongKeyIsAnError) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 3), MakeEntries(1, 5, 1), true).ok());
  }
  auto other = AesGcmEncrypter::Create(AesGcmEncrypter::GenerateKey());
  {
    auto log = OpenLog(other->get());
    absl::Status s = log->Load().status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  }
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(3, 1)).ok());
  }
  // With a snapshot recorded, Open itself reads a sealed record and fails.
  auto log = DurableLog::Open(dir_, other->get());
  EXPECT_TRUE(absl::IsDataLoss(log.status())) << log.status();
  // No encryption at all is a wrong key too.
  NoEncryption none;
  EXPECT_FALSE(DurableLog::Open(dir_, &none).ok());
}

TEST_F(DurableLogTest, LeftoversOfInterruptedSnapshotWritesAreRemoved) {
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, 6), MakeEntries(1, 8, 1), true).ok());
    ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(3, 1)).ok());
    ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(5, 1)).ok());
  }
  // A crash mid-write leaves a truncated temp file; one after the rename but before the
  // metadata was recorded leaves a complete, never-recorded newer file.
  const std::string temp = SnapshotPath(1, 7) + ".tmp";
  WriteFileBytes(temp, "SHOALSNP\x10");
  fs::copy_file(SnapshotPath(1, 5), SnapshotPath(1, 7));
  WriteFileBytes(dir_ + "/snap/unrelated.txt", "left alone");

  auto log = OpenLog();
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(SnapshotPath(1, 7)));
  EXPECT_TRUE(fs::exists(SnapshotPath(1, 3)));  // kept: snapshots_to_keep = 2
  EXPECT_TRUE(fs::exists(SnapshotPath(1, 5)));
  EXPECT_TRUE(fs::exists(dir_ + "/snap/unrelated.txt"));
  LoadedState st = MustLoad(*log);
  EXPECT_EQ(st.snapshot.metadata().index(), 5u);
  ExpectEntries(MakeEntries(6, 8, 1), st.entries);
}

TEST_F(DurableLogTest, SnapshotFileWrittenAheadIsRecordedWithoutARewrite) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 10), MakeEntries(1, 12, 1), true).ok());
  const raftpb::Snapshot snap = MakeSnapshot(8, 1, "state-at-8, written ahead");
  // The file is written on another thread while the writer thread goes on saving entries and
  // recording (and pruning around) another snapshot.
  absl::Status written;
  std::thread writer([&] { written = log->WriteSnapshotFile(snap); });
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 12), MakeEntries(13, 14, 1), true).ok());
  ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(4, 1)).ok());
  writer.join();
  ASSERT_TRUE(written.ok()) << written;
  // Not current yet, and not pruned although newer than the current snapshot.
  ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(5, 1)).ok());
  EXPECT_TRUE(fs::exists(SnapshotPath(1, 8)));
  EXPECT_EQ(log->SnapshotIndex(), 5u);
  // Recording it does not write the file again: make it unreadable to tell.
  const auto mtime = fs::last_write_time(SnapshotPath(1, 8));
  ASSERT_TRUE(log->SaveSnapshot(snap).ok());
  EXPECT_EQ(fs::last_write_time(SnapshotPath(1, 8)), mtime);
  EXPECT_EQ(log->SnapshotIndex(), 8u);
  log.reset();
  log = OpenLog();
  LoadedState st = MustLoad(*log);
  ExpectProtoEq(snap, st.snapshot);
  ExpectEntries(MakeEntries(9, 14, 1), st.entries);
}

TEST_F(DurableLogTest, AbandonedOrUnrecordedSnapshotFilesGo) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 10), MakeEntries(1, 10, 1), true).ok());
  ASSERT_TRUE(log->WriteSnapshotFile(MakeSnapshot(9, 1)).ok());
  ASSERT_TRUE(log->WriteSnapshotFile(MakeSnapshot(10, 1)).ok());
  // Abandoned: the next prune removes it (it is newer than the current snapshot).
  log->AbandonSnapshotFile(MakeSnapshot(9, 1).metadata());
  ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(7, 1)).ok());
  EXPECT_FALSE(fs::exists(SnapshotPath(1, 9)));
  EXPECT_TRUE(fs::exists(SnapshotPath(1, 10)));  // still pinned
  // A crash before recording leaves an unrecorded file, removed at the next open.
  log.reset();
  log = OpenLog();
  EXPECT_FALSE(fs::exists(SnapshotPath(1, 10)));
  EXPECT_EQ(MustLoad(*log).snapshot.metadata().index(), 7u);
}

TEST_F(DurableLogTest, CommitBelowTheSnapshotIsRaisedToIt) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Save(MakeHardState(1, 1, 1), MakeEntries(1, 3, 1), true).ok());
  // A snapshot saved on its own, with the hard state that commits it never written.
  ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(10, 2)).ok());
  EXPECT_EQ(MustLoad(*log).hard_state.commit(), 10u);
}

TEST_F(DurableLogTest, SecondOpenOfTheSameDirectoryFails) {
  auto log = OpenLog();
  auto second = DurableLog::Open(dir_, aes_.get());
  EXPECT_FALSE(second.ok());
}

// ---- Key rotation: Reseal() ----

using ::shoal::raft::testing::TestKeyRing;

// Files under `dir` (recursively) whose bytes contain what `tag`'s seal leaves in the clear.
std::vector<std::string> FilesSealedBy(const std::string& dir, char tag) {
  std::vector<std::string> out;
  for (const auto& f : fs::recursive_directory_iterator(dir)) {
    if (f.is_regular_file() &&
        absl::StrContains(ReadFileBytes(f.path()), TestKeyRing::Marker(tag))) {
      out.push_back(f.path().string());
    }
  }
  return out;
}

void ExpectSameState(const LoadedState& want, const LoadedState& got) {
  ExpectProtoEq(want.hard_state, got.hard_state);
  ExpectProtoEq(want.snapshot, got.snapshot);
  ExpectEntries(want.entries, got.entries);
}

class DurableLogResealTest : public DurableLogTest {
 protected:
  // Under key A: an older and a current snapshot file, entries 151..last after the current
  // snapshot, and a hard state. Returns what Load() reads back.
  LoadedState Populate(DurableLog& log, uint64_t last) {
    EXPECT_TRUE(log.Save(MakeHardState(1, 1, 150), MakeEntries(1, 200, 1), true).ok());
    EXPECT_TRUE(log.SaveSnapshot(MakeSnapshot(100, 1, std::string(50000, 'o'))).ok());
    EXPECT_TRUE(log.SaveSnapshot(MakeSnapshot(150, 1, std::string(80000, 'n'))).ok());
    for (uint64_t lo = 201; lo <= last; lo += 500) {
      EXPECT_TRUE(log.Save(std::nullopt, MakeEntries(lo, std::min(last, lo + 499), 2), true).ok());
    }
    EXPECT_TRUE(log.Save(MakeHardState(2, 3, last - 10), {}, true).ok());
    return MustLoad(log);
  }

  // Reads every snapshot file on disk through `ring`.
  void ExpectSnapshotFilesOpenWith(Encrypter* ring) {
    RecordCodec codec(ring);
    auto files = SnapshotFiles::Open(dir_ + "/snap", &codec);
    ASSERT_TRUE(files.ok()) << files.status();
    auto ids = (*files)->List();
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(ids->size(), 2u);
    for (const SnapshotId& id : *ids) {
      EXPECT_TRUE((*files)->Read(id).ok()) << (*files)->Read(id).status();
    }
  }
};

TEST_F(DurableLogResealTest, ResealMovesEveryRecordToTheCurrentKey) {
  TestKeyRing ring("A");
  LoadedState want;
  {
    auto log = OpenLog(&ring);
    want = Populate(*log, 3456);  // several write batches of entries
    ASSERT_EQ(want.entries.size(), 3456u - 150);
    ASSERT_FALSE(FilesSealedBy(dir_, 'A').empty());

    ring.AddKeyAndMakeCurrent('B');
    ASSERT_TRUE(log->Reseal().ok());
    // Every entry, the hard state, the snapshot metadata, two snapshot files.
    EXPECT_EQ(ring.seals('B'), static_cast<int64_t>(want.entries.size()) + 2 + 2);
    // Nothing sealed by A is left anywhere in the directory: not as a live record, not in the
    // RocksDB WAL or table files, not in a snapshot file.
    EXPECT_EQ(FilesSealedBy(dir_, 'A'), std::vector<std::string>());

    ring.DropKey('A');
    ExpectSameState(want, MustLoad(*log));
    // Still writable afterwards, under the new key.
    ASSERT_TRUE(log->Save(MakeHardState(2, 3, 3456), MakeEntries(3457, 3460, 2), true).ok());
  }
  TestKeyRing only_b("B");
  auto log = OpenLog(&only_b);
  LoadedState got = MustLoad(*log);
  ExpectProtoEq(MakeHardState(2, 3, 3456), got.hard_state);
  ExpectProtoEq(want.snapshot, got.snapshot);
  ASSERT_EQ(got.entries.size(), want.entries.size() + 4);
  for (size_t i = 0; i < want.entries.size(); ++i) ExpectProtoEq(want.entries[i], got.entries[i]);
  ExpectSnapshotFilesOpenWith(&only_b);  // the older file too
}

TEST_F(DurableLogResealTest, ResealOfAnEmptyLogAndOfAnUnencryptedLog) {
  {
    TestKeyRing ring("AB");
    auto log = OpenLog(&ring);
    EXPECT_TRUE(log->Reseal().ok());
    EXPECT_TRUE(MustLoad(*log).entries.empty());
  }
  fs::remove_all(dir_);
  NoEncryption none;
  auto log = OpenLog(&none);
  LoadedState want = Populate(*log, 300);
  ASSERT_TRUE(log->Reseal().ok());
  ExpectSameState(want, MustLoad(*log));
}

TEST_F(DurableLogResealTest, InterruptedResealLoadsWithBothKeysAndASecondResealFinishes) {
  TestKeyRing ring("A");
  LoadedState want;
  {
    auto log = OpenLog(&ring);
    want = Populate(*log, 3500);  // 3350 entries: 4 batches
    ring.AddKeyAndMakeCurrent('B');
    // Two snapshot files and two full batches of entries go through; the third batch fails.
    ring.FailSealsAfter(2 + 2 * DurableLog::kResealBatchEntries + 500);
    absl::Status s = log->Reseal();
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    ring.FailSealsAfter(-1);
    // A failed Seal wrote nothing: the log is consistent and still takes writes.
    ExpectSameState(want, MustLoad(*log));
    ASSERT_TRUE(log->Save(std::nullopt, {}, /*sync=*/true).ok());
  }
  // The log is a mix: records sealed by A remain, so B alone cannot read it...
  EXPECT_FALSE(FilesSealedBy(dir_, 'A').empty());
  {
    TestKeyRing only_b("B");
    auto log = DurableLog::Open(dir_, &only_b);
    absl::Status s = log.ok() ? (*log)->Load().status() : log.status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "'A'")) << s;
  }
  // ...but with both keys it loads, identical, and a second Reseal finishes the job.
  {
    auto log = OpenLog(&ring);
    ExpectSameState(want, MustLoad(*log));
    ASSERT_TRUE(log->Reseal().ok());
  }
  EXPECT_EQ(FilesSealedBy(dir_, 'A'), std::vector<std::string>());
  ring.DropKey('A');
  auto log = OpenLog(&ring);
  ExpectSameState(want, MustLoad(*log));
  ExpectSnapshotFilesOpenWith(&ring);
}

TEST_F(DurableLogResealTest, DamagedOldSnapshotFileStopsTheResealAndIsNamed) {
  TestKeyRing ring("A");
  {
    auto log = OpenLog(&ring);
    Populate(*log, 300);
  }
  const std::string old_file = SnapshotPath(1, 100);
  std::string bytes = ReadFileBytes(old_file);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFileBytes(old_file, bytes);
  auto log = OpenLog(&ring);
  ring.AddKeyAndMakeCurrent('B');
  absl::Status s = log->Reseal();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), old_file)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "remove it")) << s;
  // Following the advice finishes the rotation.
  ASSERT_TRUE(fs::remove(old_file));
  EXPECT_TRUE(log->Reseal().ok());
  EXPECT_EQ(FilesSealedBy(dir_, 'A'), std::vector<std::string>());
}

TEST_F(DurableLogResealTest, ResealsTenThousandEntriesQuickly) {
  TestKeyRing ring("A");
  auto log = OpenLog(&ring);
  ASSERT_TRUE(log->SaveSnapshot(MakeSnapshot(1, 1, std::string(1 << 20, 's'))).ok());
  for (uint64_t lo = 2; lo < 10002; lo += 1000) {
    std::vector<raftpb::Entry> entries;
    for (uint64_t i = lo; i < lo + 1000; ++i)
      entries.push_back(MakeEntry(i, 1, std::string(200, 'd')));
    ASSERT_TRUE(log->Save(MakeHardState(1, 1, lo), entries, true).ok());
  }
  ring.AddKeyAndMakeCurrent('B');
  const absl::Time start = absl::Now();
  ASSERT_TRUE(log->Reseal().ok());
  const absl::Duration took = absl::Now() - start;
  std::cout << "reseal of 10000 entries of 200 bytes and a 1 MiB snapshot took " << took
            << std::endl;
  ::testing::Test::RecordProperty("reseal_10k_ms", std::to_string(absl::ToInt64Milliseconds(took)));
  // Generous: this is a shared machine. Measured well under a second (see the report).
  EXPECT_LT(took, absl::Seconds(10));
  ring.DropKey('A');
  EXPECT_EQ(MustLoad(*log).entries.size(), 10000u);
}

TEST(SnapshotFilesTest, NamesRoundTrip) {
  const SnapshotId id{0x12, 0xabcdef};
  EXPECT_EQ(SnapshotFiles::FileName(id), "0000000000000012-0000000000abcdef.snap");
  EXPECT_TRUE(SnapshotFiles::ParseFileName(SnapshotFiles::FileName(id)) == id);
  EXPECT_FALSE(SnapshotFiles::ParseFileName("0000000000000012-0000000000abcdef.snap.tmp"));
  EXPECT_FALSE(SnapshotFiles::ParseFileName("0000000000000012-0000000000ABCDEF.snap"));
  EXPECT_FALSE(SnapshotFiles::ParseFileName("db"));
}

}  // namespace
}  // namespace shoal::raft
