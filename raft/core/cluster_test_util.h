// Cluster: a deterministic in-process cluster of RawNodes driven exactly as the node driver
// drives them (persist, send, apply, Advance), with crash/restart from Storage, partitions,
// snapshots with log compaction, membership changes, and continuous safety checks:
//   - at most one leader per term;
//   - state-machine safety: every member applies the same entry at a given index;
//   - leader completeness: a new leader's log holds every entry committed before;
//   - log matching (CheckLogMatching): same index and term => same prefix.
// Randomness (message order, drops) comes only from the seed given by the test.
#ifndef SHOAL_RAFT_CORE_CLUSTER_TEST_UTIL_H_
#define SHOAL_RAFT_CORE_CLUSTER_TEST_UTIL_H_

#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "raft/core/raft.h"
#include "raft/core/raw_node.h"
#include "raft/core/test_util.h"

namespace shoal::raft::testing {

class Cluster {
 public:
  struct Options {
    int size = 3;
    ConfigTweak tweak = nullptr;
    // Take a snapshot and compact the log every this many applied entries (0 = never).
    uint64_t snapshot_every = 0;
    // Keep this many entries before the snapshot index when compacting.
    uint64_t compaction_slack = 0;
    // Found the cluster with RawNode::Bootstrap (CONF_CHANGE entries) instead of storage.
    bool bootstrap_with_entries = false;
    std::vector<uint64_t> learners;  // founding learners (ids size+1...)
  };

  struct Node {
    uint64_t id = 0;
    std::unique_ptr<MemoryStorage> storage;
    std::unique_ptr<RawNode> rn;
    std::vector<std::string> state;  // applied non-empty normal entries, in order
    uint64_t applied = 0;
    raftpb::ConfState conf_state;
    std::vector<ReadState> read_states;
    bool up = false;
  };

  explicit Cluster(Options o) : opts_(std::move(o)) {
    std::vector<uint64_t> voters = Ids(opts_.size);
    for (uint64_t id : voters) NewMember(id, voters, opts_.learners);
    for (uint64_t id : opts_.learners) NewMember(id, voters, opts_.learners);
  }

  // A fresh member that joins an existing cluster (after a conf change adds it). Its storage
  // holds only what the founders started from — the founding membership (or nothing, when the
  // founders wrote it into the log with Bootstrap) — and it learns the rest from the leader.
  void AddEmptyMember(uint64_t id) {
    Node& n = nodes_[id];
    n.id = id;
    n.storage = std::make_unique<MemoryStorage>();
    if (!opts_.bootstrap_with_entries) {
      n.conf_state = CS(Ids(opts_.size), opts_.learners);
      EXPECT_TRUE(n.storage->SetInitialConfState(n.conf_state).ok());
    }
    Start(n, 0);
  }

  Node& node(uint64_t id) { return nodes_.at(id); }
  RawNode& rn(uint64_t id) { return *nodes_.at(id).rn; }
  Raft& raft(uint64_t id) { return nodes_.at(id).rn->raft(); }
  std::map<uint64_t, Node>& nodes() { return nodes_; }
  bool up(uint64_t id) const { return nodes_.count(id) && nodes_.at(id).up; }

  void Tick(uint64_t id) {
    if (up(id)) rn(id).Tick();
  }
  void TickAll() {
    for (auto& [id, n] : nodes_) Tick(id);
  }

  // Persists, sends, applies and advances one Ready of node id. False if it had none.
  bool ProcessReady(uint64_t id) {
    Node& n = nodes_.at(id);
    if (!n.up || !n.rn->HasReady()) return false;
    Ready rd = n.rn->GetReady();
    if (rd.soft_state && rd.soft_state->raft_state == StateType::kLeader) OnNewLeader(n);
    if (rd.snapshot.metadata().index() != 0) {
      EXPECT_TRUE(n.storage->ApplySnapshot(rd.snapshot).ok());
      n.state = Decode(rd.snapshot.data());
      n.applied = rd.snapshot.metadata().index();
      n.conf_state = rd.snapshot.metadata().conf_state();
    }
    EXPECT_TRUE(n.storage->Append(rd.entries).ok());
    if (rd.hard_state) {
      EXPECT_TRUE(n.storage->SetHardState(*rd.hard_state).ok());
    }
    if (!rd.entries.empty() || (rd.hard_state && rd.hard_state->vote() != prev_vote_[id])) {
      EXPECT_TRUE(rd.must_sync) << "entries or a new vote must be synced";
    }
    if (rd.hard_state) prev_vote_[id] = rd.hard_state->vote();
    for (auto& m : rd.messages) inflight_.push_back(std::move(m));
    for (const auto& e : rd.committed_entries) Apply(n, e);
    for (auto& rs : rd.read_states) n.read_states.push_back(std::move(rs));
    n.rn->Advance(rd);
    MaybeSnapshot(n);
    return true;
  }

  // Delivers one in-flight message (the oldest, or a random one with rng).
  void DeliverOne(std::mt19937_64* rng = nullptr) {
    if (inflight_.empty()) return;
    size_t i = 0;
    if (rng != nullptr) i = std::uniform_int_distribution<size_t>(0, inflight_.size() - 1)(*rng);
    Message m = std::move(inflight_[i]);
    inflight_.erase(inflight_.begin() + i);
    Deliver(m, rng);
  }

  // Processes readies and delivers messages until nothing moves.
  void Stabilize(int max_rounds = 10000) {
    for (int round = 0; round < max_rounds; ++round) {
      bool moved = false;
      for (auto& [id, n] : nodes_) moved |= ProcessReady(id);
      if (!inflight_.empty()) {
        moved = true;
        while (!inflight_.empty()) DeliverOne();
      }
      if (!moved) return;
    }
    ADD_FAILURE() << "cluster did not stabilize";
  }

  // Ticks everyone until some member is leader and the cluster is quiet; returns the leader.
  uint64_t WaitForLeader(int max_ticks = 1000) {
    for (int t = 0; t < max_ticks; ++t) {
      Stabilize();
      if (uint64_t l = Leader(); l != kNone) return l;
      TickAll();
    }
    return kNone;
  }

  void Campaign(uint64_t id) {
    EXPECT_TRUE(rn(id).Campaign().ok());
    Stabilize();
  }

  // The up leader with the highest term (kNone if none).
  uint64_t Leader() {
    uint64_t best = kNone, term = 0;
    for (auto& [id, n] : nodes_) {
      if (n.up && n.rn->raft().state() == StateType::kLeader && n.rn->raft().term() >= term) {
        best = id;
        term = n.rn->raft().term();
      }
    }
    return best;
  }

  // Crash: the process dies; only Storage survives. keep_state_machine: the application's state
  // is durable too (restart with Config::applied = its applied index); otherwise it restarts
  // from the storage's snapshot.
  void Crash(uint64_t id) {
    Node& n = nodes_.at(id);
    n.rn.reset();
    n.up = false;
  }
  void Restart(uint64_t id, bool keep_state_machine = false) {
    Node& n = nodes_.at(id);
    ASSERT_FALSE(n.up);
    if (!keep_state_machine) {
      auto snap = n.storage->GetSnapshot();
      n.state = Decode(snap->data());
      n.applied = snap->metadata().index();
      n.conf_state = snap->metadata().conf_state();
    }
    Start(n, n.applied);
  }

  // Partitions: messages between the groups are dropped.
  void Isolate(uint64_t id) { isolated_.insert(id); }
  void Cut(uint64_t a, uint64_t b) {
    cut_.insert({a, b});
    cut_.insert({b, a});
  }
  void Heal() {
    isolated_.clear();
    cut_.clear();
  }
  void set_drop_rate(double r) { drop_rate_ = r; }
  size_t inflight() const { return inflight_.size(); }

  absl::Status Propose(uint64_t id, const std::string& data) {
    absl::Status s = rn(id).Propose(data);
    return s;
  }

  // Log matching over all up members' logs.
  void CheckLogMatching() {
    std::map<uint64_t, std::map<uint64_t, std::pair<uint64_t, std::string>>> logs;
    for (auto& [id, n] : nodes_) {
      if (!n.up) continue;
      for (const auto& e : n.rn->raft().raft_log().AllEntries()) {
        logs[id][e.index()] = {e.term(), e.data()};
      }
    }
    for (auto& [a, la] : logs) {
      for (auto& [b, lb] : logs) {
        if (a >= b) continue;
        // The highest index where both have the same term: everything before must match.
        uint64_t top = 0;
        for (auto& [idx, te] : la) {
          auto it = lb.find(idx);
          if (it != lb.end() && it->second.first == te.first) top = std::max(top, idx);
        }
        for (auto& [idx, te] : la) {
          if (idx > top) break;
          auto it = lb.find(idx);
          if (it == lb.end()) continue;
          EXPECT_EQ(it->second, te)
              << "log matching violated at " << idx << " between " << a << " and " << b;
        }
      }
    }
  }

  const std::map<uint64_t, std::pair<uint64_t, std::string>>& committed() const {
    return committed_;
  }
  int leaders_elected() const { return static_cast<int>(leaders_.size()); }
  int conf_changes_applied() const { return static_cast<int>(conf_change_indexes_.size()); }

  static std::string Encode(const std::vector<std::string>& state) {
    return absl::StrJoin(state, "\x1f");
  }
  static std::vector<std::string> Decode(const std::string& data) {
    if (data.empty()) return {};
    return absl::StrSplit(data, '\x1f');
  }

 private:
  void NewMember(uint64_t id, const std::vector<uint64_t>& voters,
                 const std::vector<uint64_t>& learners) {
    Node& n = nodes_[id];
    n.id = id;
    n.storage = std::make_unique<MemoryStorage>();
    if (!opts_.bootstrap_with_entries) {
      EXPECT_TRUE(n.storage->SetInitialConfState(CS(voters, learners)).ok());
      n.conf_state = CS(voters, learners);
    }
    Start(n, 0);
    if (opts_.bootstrap_with_entries) {
      EXPECT_TRUE(n.rn->Bootstrap(voters).ok());
    }
  }

  void Start(Node& n, uint64_t applied) {
    Config c;
    c.id = n.id;
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.storage = n.storage.get();
    c.applied = applied;
    if (opts_.tweak) opts_.tweak(c);
    auto rn = RawNode::Create(c);
    ASSERT_TRUE(rn.ok()) << rn.status();
    n.rn = *std::move(rn);
    n.up = true;
    prev_vote_[n.id] = n.rn->raft().vote();
  }

  bool Blocked(const Message& m) const {
    if (isolated_.count(m.from()) || isolated_.count(m.to())) return true;
    return cut_.count({m.from(), m.to()}) > 0;
  }

  void Deliver(const Message& m, std::mt19937_64* rng) {
    bool drop = !up(m.to()) || Blocked(m);
    if (!drop && rng != nullptr && drop_rate_ > 0) {
      drop = std::uniform_real_distribution<double>(0, 1)(*rng) < drop_rate_;
    }
    if (drop) {
      if (m.type() == kSnap && up(m.from())) rn(m.from()).ReportSnapshot(m.to(), true);
      return;
    }
    (void)rn(m.to()).Step(m);
    if (m.type() == kSnap && up(m.from())) rn(m.from()).ReportSnapshot(m.to(), false);
  }

  void Apply(Node& n, const Entry& e) {
    // State-machine safety: the same entry at an index everywhere.
    auto [it, inserted] = committed_.emplace(e.index(), std::make_pair(e.term(), e.data()));
    if (!inserted) {
      EXPECT_EQ(it->second.first, e.term())
          << "member " << n.id << " applied a different entry at " << e.index();
      EXPECT_EQ(it->second.second, e.data()) << "at index " << e.index();
    }
    EXPECT_EQ(e.index(), n.applied + 1) << "member " << n.id << " applied out of order";
    if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
      conf_change_indexes_.insert(e.index());
      raftpb::ConfChange cc;
      EXPECT_TRUE(cc.ParseFromString(e.data()));
      n.conf_state = n.rn->ApplyConfChange(cc);
    } else if (!e.data().empty()) {
      n.state.push_back(e.data());
    }
    n.applied = e.index();
  }

  void MaybeSnapshot(Node& n) {
    if (opts_.snapshot_every == 0) return;
    const uint64_t snap_index = n.storage->FirstIndex() - 1;
    if (n.applied < snap_index + opts_.snapshot_every) return;
    auto s = n.storage->CreateSnapshot(n.applied, &n.conf_state, Encode(n.state));
    ASSERT_TRUE(s.ok()) << s.status();
    if (n.applied > opts_.compaction_slack) {
      const uint64_t compact = n.applied - opts_.compaction_slack;
      if (compact > snap_index) {
        ASSERT_TRUE(n.storage->Compact(compact).ok());
      }
    }
  }

  void OnNewLeader(Node& n) {
    const Raft& r = n.rn->raft();
    // At most one leader per term.
    auto [it, inserted] = leaders_.emplace(r.term(), n.id);
    EXPECT_TRUE(inserted || it->second == n.id)
        << "two leaders in term " << r.term() << ": " << it->second << " and " << n.id;
    // Leader completeness: every committed entry is in the new leader's log.
    const RaftLog& log = r.raft_log();
    for (const auto& [idx, te] : committed_) {
      if (idx < log.FirstIndex() - 1) continue;  // covered by its snapshot
      auto t = log.Term(idx);
      EXPECT_TRUE(t.ok() && *t == te.first)
          << "leader " << n.id << " of term " << r.term() << " lacks committed entry " << idx;
    }
  }

  Options opts_;
  std::map<uint64_t, Node> nodes_;
  std::deque<Message> inflight_;
  std::set<uint64_t> isolated_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  double drop_rate_ = 0;
  std::map<uint64_t, std::pair<uint64_t, std::string>> committed_;
  std::map<uint64_t, uint64_t> leaders_;
  std::map<uint64_t, uint64_t> prev_vote_;
  std::set<uint64_t> conf_change_indexes_;
};

}  // namespace shoal::raft::testing

#endif  // SHOAL_RAFT_CORE_CLUSTER_TEST_UTIL_H_
