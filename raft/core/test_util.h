// Test helpers for the Raft core: building members over MemoryStorage, messages and entries in
// one line, and Network — a deterministic in-process network of Raft instances that delivers
// messages until quiescence and can drop, cut and isolate.
//
// Modelled on the approach of etcd's raft tests: Raft instances are stepped directly and their
// outgoing messages routed by the test. Nothing here uses time or threads. Any randomness
// (message drop percentages) comes from a fixed seed.
#ifndef SHOAL_RAFT_CORE_TEST_UTIL_H_
#define SHOAL_RAFT_CORE_TEST_UTIL_H_

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "raft.pb.h"
#include "raft/core/raft.h"
#include "raft/core/raw_node.h"
#include "raft/core/storage.h"

namespace shoal::raft::testing {

using raftpb::Entry;
using raftpb::HardState;
using raftpb::Message;
using raftpb::MessageType;

inline constexpr MessageType kHup = raftpb::MESSAGE_TYPE_HUP;
inline constexpr MessageType kBeat = raftpb::MESSAGE_TYPE_BEAT;
inline constexpr MessageType kProp = raftpb::MESSAGE_TYPE_PROP;
inline constexpr MessageType kApp = raftpb::MESSAGE_TYPE_APP;
inline constexpr MessageType kAppResp = raftpb::MESSAGE_TYPE_APP_RESP;
inline constexpr MessageType kVote = raftpb::MESSAGE_TYPE_VOTE;
inline constexpr MessageType kVoteResp = raftpb::MESSAGE_TYPE_VOTE_RESP;
inline constexpr MessageType kPreVote = raftpb::MESSAGE_TYPE_PRE_VOTE;
inline constexpr MessageType kPreVoteResp = raftpb::MESSAGE_TYPE_PRE_VOTE_RESP;
inline constexpr MessageType kSnap = raftpb::MESSAGE_TYPE_SNAP;
inline constexpr MessageType kHeartbeat = raftpb::MESSAGE_TYPE_HEARTBEAT;
inline constexpr MessageType kHeartbeatResp = raftpb::MESSAGE_TYPE_HEARTBEAT_RESP;
inline constexpr MessageType kUnreachable = raftpb::MESSAGE_TYPE_UNREACHABLE;
inline constexpr MessageType kSnapStatus = raftpb::MESSAGE_TYPE_SNAP_STATUS;
inline constexpr MessageType kCheckQuorum = raftpb::MESSAGE_TYPE_CHECK_QUORUM;
inline constexpr MessageType kTransferLeader = raftpb::MESSAGE_TYPE_TRANSFER_LEADER;
inline constexpr MessageType kTimeoutNow = raftpb::MESSAGE_TYPE_TIMEOUT_NOW;
inline constexpr MessageType kReadIndex = raftpb::MESSAGE_TYPE_READ_INDEX;
inline constexpr MessageType kReadIndexResp = raftpb::MESSAGE_TYPE_READ_INDEX_RESP;

inline Entry Ent(uint64_t index, uint64_t term, std::string data = "") {
  Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(std::move(data));
  return e;
}

inline std::vector<Entry> Ents(std::initializer_list<std::pair<uint64_t, uint64_t>> index_terms) {
  std::vector<Entry> out;
  for (auto [i, t] : index_terms) out.push_back(Ent(i, t));
  return out;
}

inline Message Msg(uint64_t from, uint64_t to, MessageType type, uint64_t term = 0) {
  Message m;
  m.set_from(from);
  m.set_to(to);
  m.set_type(type);
  m.set_term(term);
  return m;
}

inline Message Prop(uint64_t id, std::string data = "somedata") {
  Message m = Msg(id, id, kProp);
  m.add_entries()->set_data(std::move(data));
  return m;
}

inline Message Hup(uint64_t id) { return Msg(id, id, kHup); }
inline Message Beat(uint64_t id) { return Msg(id, id, kBeat); }

inline HardState HS(uint64_t term, uint64_t vote, uint64_t commit) {
  HardState hs;
  hs.set_term(term);
  hs.set_vote(vote);
  hs.set_commit(commit);
  return hs;
}

inline raftpb::ConfState CS(std::vector<uint64_t> voters, std::vector<uint64_t> learners = {}) {
  raftpb::ConfState cs;
  for (auto v : voters) cs.add_voters(v);
  for (auto l : learners) cs.add_learners(l);
  return cs;
}

inline raftpb::ConfChange CC(raftpb::ConfChangeType t, uint64_t id) {
  raftpb::ConfChange cc;
  cc.set_type(t);
  cc.set_node_id(id);
  return cc;
}

inline Entry ConfEntry(const raftpb::ConfChange& cc) {
  Entry e;
  e.set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
  e.set_data(cc.SerializeAsString());
  return e;
}

inline raftpb::Snapshot Snap(uint64_t index, uint64_t term, raftpb::ConfState cs,
                             std::string data = "") {
  raftpb::Snapshot s;
  s.mutable_metadata()->set_index(index);
  s.mutable_metadata()->set_term(term);
  *s.mutable_metadata()->mutable_conf_state() = std::move(cs);
  s.set_data(std::move(data));
  return s;
}

// A storage holding the initial membership.
inline std::unique_ptr<MemoryStorage> NewStorage(std::vector<uint64_t> voters,
                                                 std::vector<uint64_t> learners = {}) {
  auto s = std::make_unique<MemoryStorage>();
  EXPECT_TRUE(s->SetInitialConfState(CS(voters, learners)).ok());
  return s;
}

// The test configuration: no pre-vote, no check quorum, no size limits (as in the paper tests);
// tweak() adjusts it.
inline Config NewConfig(uint64_t id, int election, int heartbeat, Storage* s) {
  Config c;
  c.id = id;
  c.election_tick = election;
  c.heartbeat_tick = heartbeat;
  c.storage = s;
  c.max_size_per_msg = kNoLimit;
  c.max_committed_size_per_ready = kNoLimit;
  c.max_inflight_msgs = 256;
  c.check_quorum = false;
  c.pre_vote = false;
  return c;
}

inline std::unique_ptr<Raft> NewRaft(const Config& c) {
  auto r = Raft::Create(c);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

// A member with its own storage.
struct Peer {
  std::unique_ptr<MemoryStorage> storage;
  std::unique_ptr<Raft> raft;
};

using ConfigTweak = std::function<void(Config&)>;

inline Peer NewPeer(uint64_t id, std::vector<uint64_t> voters, int election = 10, int heartbeat = 1,
                    const ConfigTweak& tweak = nullptr, std::vector<uint64_t> learners = {}) {
  Peer p;
  p.storage = NewStorage(std::move(voters), std::move(learners));
  Config c = NewConfig(id, election, heartbeat, p.storage.get());
  if (tweak) tweak(c);
  p.raft = NewRaft(c);
  return p;
}

inline std::vector<uint64_t> Ids(int n) {
  std::vector<uint64_t> ids;
  for (int i = 1; i <= n; ++i) ids.push_back(i);
  return ids;
}

// Persists r's unstable entries (and snapshot) into s and marks committed entries applied, as a
// driver would after a Ready. Returns the committed entries that were applied.
inline std::vector<Entry> Stabilize(Raft& r, MemoryStorage& s) {
  RaftLog& log = r.raft_log();
  uint64_t snap_index = 0;
  if (log.UnstableSnapshot()) {
    snap_index = log.UnstableSnapshot()->metadata().index();
    EXPECT_TRUE(s.ApplySnapshot(*log.UnstableSnapshot()).ok());
  }
  std::vector<Entry> persisted = log.UnstableEntries();
  EXPECT_TRUE(s.Append(persisted).ok());
  std::vector<Entry> committed = log.NextCommittedEntries();
  uint64_t applied = !committed.empty() ? committed.back().index() : snap_index;
  r.Advance(applied, committed, persisted, snap_index);
  return committed;
}

// Messages r sent since the last call (taken).
inline std::vector<Message> ReadMessages(Raft& r) { return r.TakeMessages(); }

// A deterministic network of Raft members addressed by id. Members may be "black holes"
// (absent: messages to them vanish).
class Network {
 public:
  // n members with ids 1..n, each over its own storage with the full membership.
  explicit Network(int n, const ConfigTweak& tweak = nullptr, int election = 10,
                   int heartbeat = 1) {
    for (uint64_t id : Ids(n)) AddPeer(id, NewPeer(id, Ids(n), election, heartbeat, tweak));
  }
  // Prebuilt members; a Peer with a null raft is a black hole. peers[i] gets id i+1.
  explicit Network(std::vector<Peer> peers) {
    uint64_t id = 1;
    for (auto& p : peers) {
      if (p.raft) {
        AddPeer(id, std::move(p));
      } else {
        black_holes_.insert(id);
      }
      ++id;
    }
  }

  void AddPeer(uint64_t id, Peer p) { peers_[id] = std::move(p); }

  // Delivers msgs and every message they cause, until nothing is left in flight.
  void Send(std::vector<Message> msgs) {
    std::vector<Message> queue = std::move(msgs);
    size_t head = 0;
    while (head < queue.size()) {
      Message m = queue[head++];
      auto it = peers_.find(m.to());
      if (it == peers_.end()) continue;
      (void)it->second.raft->Step(m);
      for (Message& out : Filter(it->second.raft->TakeMessages())) queue.push_back(out);
      if (head > 4096) {  // keep the queue small
        queue.erase(queue.begin(), queue.begin() + head);
        head = 0;
      }
    }
  }
  void Send(Message m) { Send(std::vector<Message>{std::move(m)}); }

  // Delivers the messages a member has queued (e.g. after Tick()).
  void Flush(uint64_t id) { Send(Filter(raft(id).TakeMessages())); }

  void Drop(uint64_t from, uint64_t to, double perc) { drop_[{from, to}] = perc; }
  void Cut(uint64_t a, uint64_t b) {
    Drop(a, b, 2.0);
    Drop(b, a, 2.0);
  }
  void Isolate(uint64_t id) {
    for (auto& [other, p] : peers_) {
      if (other != id) Cut(id, other);
    }
    for (uint64_t other : black_holes_) Cut(id, other);
  }
  void Ignore(MessageType t) { ignore_.insert(t); }
  void Recover() {
    drop_.clear();
    ignore_.clear();
  }
  // Called on every message in flight; returning false drops it.
  std::function<bool(const Message&)> msg_hook;

  Raft& raft(uint64_t id) { return *peers_.at(id).raft; }
  MemoryStorage& storage(uint64_t id) { return *peers_.at(id).storage; }
  bool Has(uint64_t id) const { return peers_.count(id) > 0; }
  std::map<uint64_t, Peer>& peers() { return peers_; }

 private:
  std::vector<Message> Filter(std::vector<Message> msgs) {
    std::vector<Message> out;
    for (Message& m : msgs) {
      if (ignore_.count(m.type()) > 0) continue;
      RAFT_TEST_CHECK_NOT_LOCAL(m);
      auto d = drop_.find({m.from(), m.to()});
      if (d != drop_.end()) {
        std::uniform_real_distribution<double> u(0, 1);
        if (u(rng_) < d->second) continue;
      }
      if (msg_hook && !msg_hook(m)) continue;
      out.push_back(std::move(m));
    }
    return out;
  }
  static void RAFT_TEST_CHECK_NOT_LOCAL(const Message& m) {
    // A HUP must never leave a member.
    EXPECT_NE(m.type(), kHup) << "local message sent over the network";
  }

  std::map<uint64_t, Peer> peers_;
  std::set<uint64_t> black_holes_;
  std::map<std::pair<uint64_t, uint64_t>, double> drop_;
  std::set<MessageType> ignore_;
  std::mt19937_64 rng_{42};
};

// Entries from the stable and unstable log, for comparing members' logs.
inline std::vector<std::pair<uint64_t, uint64_t>> LogIndexTerms(const Raft& r) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& e : r.raft_log().AllEntries()) out.emplace_back(e.index(), e.term());
  return out;
}

inline std::vector<std::string> LogData(const Raft& r) {
  std::vector<std::string> out;
  for (const auto& e : r.raft_log().AllEntries()) out.push_back(e.data());
  return out;
}

// Lets a follower's leader lease run out (check quorum) without it campaigning itself.
inline void ExpireLease(Raft& r) {
  const int saved = r.randomized_election_timeout();
  r.set_randomized_election_timeout(1 << 20);
  for (int i = 0; i < r.election_timeout(); ++i) r.Tick();
  r.TakeMessages();
  r.set_randomized_election_timeout(saved);
}

// Advances a member's clock until it campaigns (past its randomized timeout).
inline void TickUntilElection(Raft& r) {
  for (int i = 0; i < 2 * r.election_timeout() + 1; ++i) r.Tick();
}

// Makes a leader-of-one-term commit its election no-op by acknowledging it from every peer,
// and persists it; clears outgoing messages.
inline void CommitNoopEntry(Raft& r, MemoryStorage& s) {
  ASSERT_EQ(r.state(), StateType::kLeader);
  r.TakeMessages();
  for (auto& [id, pr] : r.tracker().progress()) {
    if (id == r.id()) continue;
    Message m = Msg(id, r.id(), kAppResp, r.term());
    m.set_index(r.raft_log().LastIndex());
    (void)r.Step(m);
  }
  r.TakeMessages();
  Stabilize(r, s);
}

// The response of a follower that accepts `m` (an APP).
inline Message AcceptAndReply(const Message& m) {
  Message r = Msg(m.to(), m.from(), kAppResp, m.term());
  r.set_index(m.index() + m.entries_size());
  return r;
}

// Plays every APP that `r` sends to a member of `followers` against an always-accepting
// follower, until the leader has nothing more to send them. Other messages are discarded.
inline void AckAppendsFrom(Raft& r, const std::set<uint64_t>& followers) {
  for (int round = 0; round < 1000; ++round) {
    bool any = false;
    for (const Message& m : r.TakeMessages()) {
      if (m.type() == kApp && followers.count(m.to()) > 0) {
        (void)r.Step(AcceptAndReply(m));
        any = true;
      }
    }
    if (!any) return;
  }
}

// Messages of one type, in order.
inline std::vector<Message> OfType(const std::vector<Message>& msgs, MessageType t) {
  std::vector<Message> out;
  for (const auto& m : msgs) {
    if (m.type() == t) out.push_back(m);
  }
  return out;
}

}  // namespace shoal::raft::testing

#endif  // SHOAL_RAFT_CORE_TEST_UTIL_H_
