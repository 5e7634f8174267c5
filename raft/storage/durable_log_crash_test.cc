// Crash test of DurableLog: a writer process appends, truncates and snapshots while reporting
// every save it starts and every save that returned; the test SIGKILLs it at seeded random
// moments, reopens the log and checks that it holds exactly the acknowledged saves — plus, at
// most, the one save that was in flight — and that leftover snapshot temp files are cleaned up.
//
// The writer is this same binary re-executed with --writer (fork + exec, not a bare fork: the
// parent has RocksDB's background threads running, and a forked copy of a threaded process may
// only call async-signal-safe functions). Reports travel over a pipe as text lines:
//   "O"                 the writer opened and loaded the log
//   "B <op fields>"     it is about to save this
//   "A"                 the save it announced returned OK
//
// What this proves and what it does not: SIGKILL tests process crashes (the kernel keeps what
// was written), i.e. atomicity and ordering of saves, torn snapshot writes, recovery code. It
// cannot simulate power loss, so it does not prove that synced data was really fsynced.
//
// A second test kills a process in the middle of DurableLog::Reseal() (a key rotation from key A
// to key B): the log must then load, identical, with both keys on the ring; a Reseal() that
// reported success must leave a log that loads with B alone; and after an interrupted one, a
// second Reseal() must finish the rotation. Its reports: "S" (about to reseal), "R <micros>"
// (Reseal returned OK, and how long it took).
//
// Replay: the test prints its seed; run with --test_env=SHOAL_CRASH_TEST_SEED=<seed>. The
// writer's operations replay exactly; the kill moment within an operation depends on timing.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "raft/storage/aes_gcm_encrypter.h"
#include "raft/storage/durable_log.h"
#include "raft/storage/test_key_ring.h"
#include "tests/harness/process.h"

namespace shoal::raft {
namespace {

constexpr int kRounds = 20;
constexpr int kReportFd = 3;
const std::string kKey(AesGcmEncrypter::kKeySize, 'K');  // both processes must use one key

// ---- Deterministic payloads, so reports need only carry indexes and terms. ----

std::string EntryData(uint64_t index, uint64_t term) {
  std::string d = absl::StrCat("crash-entry-", index, "-", term, "-");
  d.append((index * 31 + term * 17) % 300, static_cast<char>('a' + (index + term) % 26));
  return d;
}

std::string SnapshotData(uint64_t index, uint64_t term) {
  std::string d = absl::StrCat("crash-snapshot-", index, "-", term, "-");
  d.append(32 * 1024 + (index * 7919) % (192 * 1024), static_cast<char>('A' + index % 26));
  return d;
}

raftpb::Snapshot MakeSnapshot(uint64_t index, uint64_t term) {
  raftpb::Snapshot s;
  s.set_data(SnapshotData(index, term));
  s.mutable_metadata()->set_index(index);
  s.mutable_metadata()->set_term(term);
  s.mutable_metadata()->mutable_conf_state()->add_voters(1);
  return s;
}

// One save, as reported: an optional snapshot, an optional run of entries in one term, an
// optional hard state.
struct Op {
  uint64_t snap_index = 0, snap_term = 0;  // snap_index 0: no snapshot
  bool has_hs = false;
  uint64_t hs_term = 0, hs_vote = 0, hs_commit = 0;
  uint64_t first = 0, last = 0, term = 0;  // first 0: no entries
  bool sync = true;

  std::string Encode() const {
    return absl::StrCat("B ", snap_index, " ", snap_term, " ", has_hs, " ", hs_term, " ", hs_vote,
                        " ", hs_commit, " ", first, " ", last, " ", term, " ", sync);
  }
  static std::optional<Op> Decode(const std::string& line) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() != 11 || f[0] != "B") return std::nullopt;
    uint64_t v[10];
    for (int i = 0; i < 10; ++i) {
      if (!absl::SimpleAtoi(f[i + 1], &v[i])) return std::nullopt;
    }
    Op op;
    op.snap_index = v[0], op.snap_term = v[1], op.has_hs = v[2], op.hs_term = v[3];
    op.hs_vote = v[4], op.hs_commit = v[5], op.first = v[6], op.last = v[7], op.term = v[8];
    op.sync = v[9];
    return op;
  }
};

// What the log should hold: the intended semantics of DurableLog, written independently of it.
struct Model {
  uint64_t snap_index = 0, snap_term = 0;
  raftpb::HardState hs;
  std::map<uint64_t, uint64_t> terms;  // index -> term of the entries after the snapshot

  uint64_t LastIndex() const { return terms.empty() ? snap_index : terms.rbegin()->first; }
  uint64_t LastTerm() const { return terms.empty() ? snap_term : terms.rbegin()->second; }

  void Apply(const Op& op) {
    if (op.snap_index != 0) {
      auto it = terms.find(op.snap_index);
      const bool continues =
          op.snap_index == snap_index || (it != terms.end() && it->second == op.snap_term);
      if (continues) {
        terms.erase(terms.begin(), terms.upper_bound(op.snap_index));
      } else {
        terms.clear();
      }
      snap_index = op.snap_index;
      snap_term = op.snap_term;
    }
    if (op.first != 0) {
      terms.erase(terms.lower_bound(op.first), terms.end());
      for (uint64_t i = std::max(op.first, snap_index + 1); i <= op.last; ++i) terms[i] = op.term;
    }
    if (op.has_hs) {
      hs.set_term(op.hs_term);
      hs.set_vote(op.hs_vote);
      hs.set_commit(op.hs_commit);
    }
  }

  static Model FromLoaded(const LoadedState& st) {
    Model m;
    m.snap_index = st.snapshot.metadata().index();
    m.snap_term = st.snapshot.metadata().term();
    m.hs = st.hard_state;
    for (const raftpb::Entry& e : st.entries) m.terms[e.index()] = e.term();
    return m;
  }

  // Empty when `st` is exactly this model, else what differs.
  std::string Diff(const LoadedState& st) const {
    if (st.hard_state.SerializeAsString() != hs.SerializeAsString()) {
      return absl::StrCat("hard state ", st.hard_state.ShortDebugString(), " want ",
                          hs.ShortDebugString());
    }
    if (st.snapshot.metadata().index() != snap_index ||
        st.snapshot.metadata().term() != snap_term) {
      return absl::StrCat("snapshot ", st.snapshot.metadata().index(), "/",
                          st.snapshot.metadata().term(), " want ", snap_index, "/", snap_term);
    }
    if (snap_index != 0 && st.snapshot.SerializeAsString() !=
                               MakeSnapshot(snap_index, snap_term).SerializeAsString()) {
      return "snapshot contents differ";
    }
    if (st.entries.size() != terms.size()) {
      return absl::StrCat(st.entries.size(), " entries, want ", terms.size(), " (last ",
                          st.entries.empty() ? 0 : st.entries.back().index(), " want ", LastIndex(),
                          ")");
    }
    auto it = terms.begin();
    for (const raftpb::Entry& e : st.entries) {
      if (e.index() != it->first || e.term() != it->second ||
          e.data() != EntryData(e.index(), e.term())) {
        return absl::StrCat("entry ", e.index(), "/", e.term(), " want ", it->first, "/",
                            it->second);
      }
      ++it;
    }
    return "";
  }
};

// ---- The writer (child process). ----

void Report(const std::string& line) {
  const std::string l = line + "\n";
  if (::write(kReportFd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) _exit(4);
}

int RunWriter(const std::string& dir, uint64_t seed) {
  auto enc = AesGcmEncrypter::Create(kKey);
  auto log = DurableLog::Open(dir, enc->get());
  if (!log.ok()) {
    std::cerr << "writer: open: " << log.status() << "\n";
    return 2;
  }
  auto loaded = (*log)->Load();
  if (!loaded.ok()) {
    std::cerr << "writer: load: " << loaded.status() << "\n";
    return 2;
  }
  Model m = Model::FromLoaded(*loaded);
  Report("O");
  std::mt19937_64 rng(seed);
  auto uniform = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  uint64_t term = std::max<uint64_t>({m.hs.term(), m.LastTerm(), 1});
  for (int n = 0; n < 100000; ++n) {
    Op op;
    const uint64_t last = m.LastIndex();
    const uint64_t commit = m.hs.commit();
    const uint64_t dice = uniform(0, 99);
    if (dice < 10 && last > commit) {
      // A new leader overwrites the uncommitted tail.
      ++term;
      op.first = uniform(commit + 1, last);
      op.last = op.first + uniform(0, 4);
    } else if (dice < 18 && commit > m.snap_index) {
      // This node snapshots its applied (= committed) state.
      op.snap_index = uniform(m.snap_index + 1, commit);
      op.snap_term = m.terms.at(op.snap_index);
    } else if (dice < 22) {
      // A snapshot from the leader, ahead of this log, with the entries after it.
      ++term;
      op.snap_index = last + uniform(1, 5);
      op.snap_term = term;
      op.first = op.snap_index + 1;
      op.last = op.first + uniform(0, 2);
    } else {
      op.first = last + 1;
      op.last = last + uniform(1, 8);
      op.sync = uniform(0, 9) != 0;  // some unsynced saves (as when only the commit moved)
    }
    op.term = op.first != 0 ? term : 0;
    op.has_hs = true;
    op.hs_term = term;
    op.hs_vote = uniform(0, 3);
    const uint64_t new_last = op.first != 0 ? op.last : std::max(last, op.snap_index);
    op.hs_commit = std::max({commit, op.snap_index, new_last > 3 ? new_last - 3 : 0});
    if (op.snap_index != 0 && op.first == 0) op.has_hs = false;  // own snapshot: no hs change

    std::vector<raftpb::Entry> entries;
    for (uint64_t i = op.first; op.first != 0 && i <= op.last; ++i) {
      raftpb::Entry& e = entries.emplace_back();
      e.set_index(i);
      e.set_term(op.term);
      e.set_data(EntryData(i, op.term));
    }
    std::optional<raftpb::HardState> hs;
    if (op.has_hs) {
      hs.emplace();
      hs->set_term(op.hs_term);
      hs->set_vote(op.hs_vote);
      hs->set_commit(op.hs_commit);
    }
    raftpb::Snapshot snap;
    if (op.snap_index != 0) snap = MakeSnapshot(op.snap_index, op.snap_term);

    Report(op.Encode());
    absl::Status s = (*log)->SaveReady(hs, entries, snap, op.sync);
    if (!s.ok()) {
      std::cerr << "writer: save " << op.Encode() << ": " << s << "\n";
      return 3;
    }
    m.Apply(op);
    Report("A");
  }
  return 0;
}

// ---- The resealer (child process of the Reseal crash test). ----

int RunResealer(const std::string& dir) {
  testing::TestKeyRing ring("AB");  // B current, A still readable
  auto log = DurableLog::Open(dir, &ring);
  if (!log.ok()) {
    std::cerr << "resealer: open: " << log.status() << "\n";
    return 2;
  }
  Report("S");
  const absl::Time start = absl::Now();
  absl::Status s = (*log)->Reseal();
  if (!s.ok()) {
    std::cerr << "resealer: reseal: " << s << "\n";
    return 3;
  }
  Report(absl::StrCat("R ", absl::ToInt64Microseconds(absl::Now() - start)));
  return 0;
}

// ---- The test (parent process). ----

// The writer process and the read end of its report pipe; killed and reaped when this goes.
class Writer {
 public:
  static Writer Start(const std::string& dir, uint64_t seed) {
    return Spawn({"--writer", dir, absl::StrCat(seed)});
  }
  // The Reseal() child (RunResealer).
  static Writer StartResealer(const std::string& dir) { return Spawn({"--resealer", dir}); }

  static Writer Spawn(const std::vector<std::string>& args) {
    Writer w;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return w;
    // Everything exec needs is built before fork: the child may only call async-signal-safe
    // functions until exec.
    std::vector<const char*> argv = {"/proc/self/exe"};
    for (const std::string& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::dup2(fds[1], kReportFd) < 0) _exit(5);
      ::execv(argv[0], const_cast<char* const*>(argv.data()));
      _exit(6);
    }
    ::close(fds[1]);
    w.pid_ = pid;
    w.fd_ = fds[0];
    return w;
  }
  Writer(Writer&& o) noexcept : pid_(std::exchange(o.pid_, -1)), fd_(std::exchange(o.fd_, -1)) {}
  ~Writer() {
    Kill();
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return pid_ > 0; }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  // Next report line; nullopt at end of stream. Fails the test on a deadline.
  std::optional<std::string> ReadLine(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left <= 0) {
        ADD_FAILURE() << "writer sent nothing for " << timeout;
        return std::nullopt;
      }
      struct pollfd p = {fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, n);
    }
  }

 private:
  Writer() = default;
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
};

uint64_t TestSeed() {
  uint64_t seed = 0;
  const char* env = std::getenv("SHOAL_CRASH_TEST_SEED");
  if (env != nullptr && absl::SimpleAtoi(env, &seed)) return seed;
  return std::random_device()() ^ (static_cast<uint64_t>(std::random_device()()) << 32);
}

int CountTempFiles(const std::string& snap_dir) {
  int n = 0;
  if (!std::filesystem::exists(snap_dir)) return 0;
  for (const auto& f : std::filesystem::directory_iterator(snap_dir)) {
    if (f.path().extension() == ".tmp") ++n;
  }
  return n;
}

TEST(DurableLogCrashTest, KilledWriterLosesNoAcknowledgedSave) {
  const uint64_t seed = TestSeed();
  std::cout << "crash test seed " << seed << " (replay: --test_env=SHOAL_CRASH_TEST_SEED=" << seed
            << ")" << std::endl;
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto uniform = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };

  ::shoal::testing::TempDir tmp("shoal-raftcrash");
  const std::string dir = tmp.path() + "/raft";
  auto enc = AesGcmEncrypter::Create(kKey);
  Model model;  // everything acknowledged so far
  int with_inflight = 0, temp_files_seen = 0, acked_total = 0;

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    const uint64_t writer_seed = rng();
    // Kill after the writer announced this many saves (0: while it is still opening), then
    // after a further random delay, so the kill lands anywhere inside a save.
    const uint64_t kill_after = uniform(0, 9) == 0 ? 0 : uniform(1, 40);
    const absl::Duration delay = absl::Microseconds(uniform(0, 1500));

    Writer writer = Writer::Start(dir, writer_seed);
    ASSERT_TRUE(writer.ok());
    std::optional<Op> inflight;
    uint64_t begun = 0;
    bool killed = false;
    auto handle = [&](const std::string& line) {
      if (line == "O") return;
      if (line == "A") {
        ASSERT_TRUE(inflight.has_value()) << "ack without a save";
        model.Apply(*inflight);
        inflight.reset();
        ++acked_total;
        return;
      }
      std::optional<Op> op = Op::Decode(line);
      ASSERT_TRUE(op.has_value()) << "bad report: " << line;
      ASSERT_FALSE(inflight.has_value()) << "two saves in flight";
      inflight = op;
      ++begun;
    };
    if (kill_after == 0) {
      // A random moment during startup (the writer takes a few ms to exec and open).
      absl::SleepFor(delay * 20);  // choosing the kill moment, not waiting for anything
      writer.Kill();
      killed = true;
    }
    while (!killed) {
      std::optional<std::string> line = writer.ReadLine(absl::Seconds(30));
      ASSERT_TRUE(line.has_value()) << "writer exited early (see its stderr above)";
      handle(*line);
      if (begun == kill_after) {
        absl::SleepFor(delay);  // choosing the kill moment, not waiting for anything
        writer.Kill();
        killed = true;
      }
    }
    // Reports written before the kill are still in the pipe: they count.
    while (std::optional<std::string> line = writer.ReadLine(absl::Seconds(30))) handle(*line);

    temp_files_seen += CountTempFiles(dir + "/snap");
    auto log = DurableLog::Open(dir, enc->get());
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_EQ(CountTempFiles(dir + "/snap"), 0) << "snapshot temp files survived Open";
    auto loaded = (*log)->Load();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    const std::string diff = model.Diff(*loaded);
    if (!diff.empty()) {
      ASSERT_TRUE(inflight.has_value()) << "acknowledged state not recovered: " << diff;
      Model with = model;
      with.Apply(*inflight);
      const std::string diff2 = with.Diff(*loaded);
      ASSERT_EQ(diff2, "") << "recovered state is neither the acknowledged one (" << diff
                           << ") nor that plus the save in flight " << inflight->Encode();
      model = with;
      ++with_inflight;
    }
  }
  std::cout << kRounds << " rounds, " << acked_total << " acknowledged saves, " << with_inflight
            << " rounds recovered the in-flight save too, " << temp_files_seen
            << " snapshot temp files left by kills and cleaned; final log: snapshot "
            << model.snap_index << ", last index " << model.LastIndex() << std::endl;
}

// Reseal crash test.

// Every file under `dir` that holds bytes sealed by key `tag`.
int FilesSealedBy(const std::string& dir, char tag) {
  const std::string marker = testing::TestKeyRing::Marker(tag);
  int n = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (bytes.find(marker) != std::string::npos) ++n;
  }
  return n;
}

// Loads `dir` with `ring`; the serialized state, or the error.
absl::StatusOr<std::string> LoadSerialized(const std::string& dir, Encrypter* ring) {
  auto log = DurableLog::Open(dir, ring);
  if (!log.ok()) return log.status();
  auto st = (*log)->Load();
  if (!st.ok()) return st.status();
  std::string out = st->hard_state.SerializeAsString() + "|" + st->snapshot.SerializeAsString();
  for (const raftpb::Entry& e : st->entries) absl::StrAppend(&out, "|", e.SerializeAsString());
  // The older snapshot file is kept on disk too and must stay readable.
  RecordCodec codec(ring);
  auto files = SnapshotFiles::Open(dir + "/snap", &codec);
  if (!files.ok()) return files.status();
  auto ids = (*files)->List();
  if (!ids.ok()) return ids.status();
  for (const SnapshotId& id : *ids) {
    auto snap = (*files)->Read(id);
    if (!snap.ok()) return snap.status();
    absl::StrAppend(&out, "|file ", id.term, "/", id.index);
  }
  return out;
}

TEST(DurableLogCrashTest, KilledResealLeavesALogThatLoadsWithBothKeys) {
  const uint64_t seed = TestSeed();
  std::cout << "reseal crash test seed " << seed
            << " (replay: --test_env=SHOAL_CRASH_TEST_SEED=" << seed << ")" << std::endl;
  std::mt19937_64 rng(seed);
  ::shoal::testing::TempDir tmp("shoal-resealcrash");

  // The log every round starts from, all under key A: an older and a current snapshot file,
  // 6,000 entries after the current snapshot (six write batches of Reseal), a hard state.
  const std::string original = tmp.path() + "/original";
  std::string want;
  {
    testing::TestKeyRing ring("A");
    auto log = DurableLog::Open(original, &ring);
    ASSERT_TRUE(log.ok()) << log.status();
    std::vector<raftpb::Entry> entries;
    auto flush = [&](bool sync) {
      ASSERT_TRUE((*log)->Save(std::nullopt, entries, sync).ok());
      entries.clear();
    };
    for (uint64_t i = 1; i <= 6150; ++i) {
      raftpb::Entry& e = entries.emplace_back();
      e.set_index(i);
      e.set_term(i <= 150 ? 1 : 2);
      e.set_data(EntryData(i, e.term()));
      if (i == 150 || i % 1000 == 0) flush(false);
      if (i == 150) {
        ASSERT_TRUE((*log)->SaveSnapshot(MakeSnapshot(100, 1)).ok());
        ASSERT_TRUE((*log)->SaveSnapshot(MakeSnapshot(150, 1)).ok());
      }
    }
    flush(true);
    raftpb::HardState hs;
    hs.set_term(2);
    hs.set_vote(1);
    hs.set_commit(6100);
    ASSERT_TRUE((*log)->Save(hs, {}, true).ok());
  }
  {
    testing::TestKeyRing ring("A");
    absl::StatusOr<std::string> loaded = LoadSerialized(original, &ring);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    want = *loaded;
  }

  absl::Duration reseal_time = absl::ZeroDuration();  // measured by the first, unkilled round
  int finished = 0, mixed = 0, untouched = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    const std::string dir = absl::StrCat(tmp.path(), "/round-", round);
    std::filesystem::copy(original, dir, std::filesystem::copy_options::recursive);
    // Round 0 calibrates; later rounds kill at a random moment up to 20% past the expected end.
    const bool kill = round > 0;
    const absl::Duration delay = kill ? absl::Microseconds(std::uniform_int_distribution<int64_t>(
                                            0, absl::ToInt64Microseconds(reseal_time) * 6 / 5)(rng))
                                      : absl::ZeroDuration();

    Writer child = Writer::StartResealer(dir);
    ASSERT_TRUE(child.ok());
    bool done = false;
    auto handle = [&](const std::string& line) {
      if (line == "S") return;
      ASSERT_EQ(line.substr(0, 2), "R ") << "bad report: " << line;
      int64_t micros = 0;
      ASSERT_TRUE(absl::SimpleAtoi(line.substr(2), &micros)) << line;
      if (round == 0) reseal_time = absl::Microseconds(micros);
      done = true;
    };
    std::optional<std::string> line = child.ReadLine(absl::Seconds(30));
    ASSERT_EQ(line, std::optional<std::string>("S")) << "resealer failed (see its stderr above)";
    if (kill) {
      absl::SleepFor(delay);  // choosing the kill moment, not waiting for anything
      child.Kill();
    }
    while (std::optional<std::string> l = child.ReadLine(absl::Seconds(30))) handle(*l);
    child.Kill();
    if (round == 0) {
      ASSERT_TRUE(done) << "the calibration round's Reseal did not finish";
      std::cout << "a Reseal of this log takes " << reseal_time << std::endl;
    }

    // With both keys, the log always loads and holds exactly what it held.
    testing::TestKeyRing both("AB");
    absl::StatusOr<std::string> got = LoadSerialized(dir, &both);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(*got == want) << "the log changed";

    const int sealed_by_a = FilesSealedBy(dir, 'A');
    if (done) {
      ++finished;
      EXPECT_EQ(sealed_by_a, 0) << "Reseal returned OK but files still hold key A's records";
    } else if (FilesSealedBy(dir, 'B') > 0) {
      ++mixed;
    } else {
      ++untouched;
    }
    if (!done) {
      // A second Reseal finishes what the killed one started.
      auto log = DurableLog::Open(dir, &both);
      ASSERT_TRUE(log.ok()) << log.status();
      ASSERT_TRUE((*log)->Reseal().ok());
    }
    EXPECT_EQ(FilesSealedBy(dir, 'A'), 0);
    testing::TestKeyRing only_b("B");
    got = LoadSerialized(dir, &only_b);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(*got == want) << "the log changed";
    std::filesystem::remove_all(dir);
  }
  std::cout << kRounds << " rounds: " << finished << " reseals finished before the kill, " << mixed
            << " killed midway (records under both keys), " << untouched
            << " killed before the first write" << std::endl;
}

}  // namespace
}  // namespace shoal::raft

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--resealer") {
    return shoal::raft::RunResealer(argv[2]);
  }
  if (argc == 4 && std::string(argv[1]) == "--writer") {
    uint64_t seed = 0;
    if (!absl::SimpleAtoi(argv[3], &seed)) return 2;
    return shoal::raft::RunWriter(argv[2], seed);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
