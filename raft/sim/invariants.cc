#include "raft/sim/invariants.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "raft/sim/kv_state_machine.h"

namespace shoal::raft::sim {

uint64_t EntryHash(const raftpb::Entry& e) {
  uint64_t h = StableHash(e.data());
  const uint64_t fields[] = {e.term(), e.index(), static_cast<uint64_t>(e.type())};
  for (uint64_t f : fields) {
    h = StableHash(absl::string_view(reinterpret_cast<const char*>(&f), sizeof(f)), h);
  }
  return h == 0 ? 1 : h;  // 0 means "hash unknown" in the committed record.
}

void InvariantChecker::Fail(std::string invariant, std::string detail) {
  if (violation_.has_value()) return;
  violation_ = Violation{std::move(invariant), std::move(detail)};
}

void InvariantChecker::ObserveLeader(uint64_t member, uint64_t term, const LogView& log) {
  auto [it, inserted] = leader_of_term_.emplace(term, member);
  if (!inserted && it->second != member) {
    Fail("election safety", absl::StrFormat("members %d and %d were both leader of term %d",
                                            it->second, member, term));
    return;
  }
  if (!leader_checked_.emplace(std::make_pair(member, term), true).second) return;
  // Leader completeness: everything committed before this leader was seen must be in its log.
  for (auto c = committed_.upper_bound(log.SnapshotIndex()); c != committed_.end(); ++c) {
    const uint64_t index = c->first;
    const std::optional<uint64_t> t = log.Term(index);
    if (!t.has_value() || *t != c->second.term) {
      Fail("leader completeness",
           absl::StrFormat("member %d became leader of term %d without committed entry %d "
                           "(term %d, first applied by member %d); its log has %s there "
                           "(snapshot %d, last %d)",
                           member, term, index, c->second.term, c->second.first_member,
                           t.has_value() ? absl::StrCat("term ", *t) : "nothing",
                           log.SnapshotIndex(), log.LastIndex()));
      return;
    }
    const std::optional<uint64_t> h = log.Hash(index);
    if (c->second.hash != 0 && h.has_value() && *h != c->second.hash) {
      Fail("leader completeness",
           absl::StrFormat("member %d became leader of term %d with a different entry at "
                           "committed index %d (same term %d)",
                           member, term, index, *t));
      return;
    }
  }
}

void InvariantChecker::ObserveBeforeStore(uint64_t member, uint64_t leader_term,
                                          const std::vector<raftpb::Entry>& entries,
                                          const LogView& log) {
  if (leader_term == 0 || entries.empty()) return;
  for (const raftpb::Entry& e : entries) {
    if (e.index() > log.LastIndex()) break;
    // Only entries of its own term are the leader's: older ones may still be replaced by a
    // Ready prepared before it won the election.
    const std::optional<uint64_t> t = log.Term(e.index());
    if (t.has_value() && *t == leader_term && e.term() != leader_term) {
      Fail("leader append-only",
           absl::StrFormat("member %d, leader of term %d, overwrote its entry %d (term %d) with "
                           "one of term %d",
                           member, leader_term, e.index(), *t, e.term()));
      return;
    }
  }
}

void InvariantChecker::ObserveStored(uint64_t member, const std::vector<raftpb::Entry>& entries,
                                     const LogView& log) {
  for (const raftpb::Entry& e : entries) {
    if (e.index() <= log.SnapshotIndex()) continue;
    const std::optional<uint64_t> prev = log.Term(e.index() - 1);
    if (!prev.has_value()) {
      Fail("log matching",
           absl::StrFormat("member %d stored entry %d without its predecessor", member, e.index()));
      return;
    }
    const PairRecord rec{EntryHash(e), *prev, member};
    auto [it, inserted] = pairs_.emplace(std::make_pair(e.index(), e.term()), rec);
    if (inserted) continue;
    if (it->second.hash != rec.hash || it->second.prev_term != rec.prev_term) {
      Fail("log matching",
           absl::StrFormat("entry (index %d, term %d) differs between members %d and %d: hash "
                           "%016x vs %016x, predecessor term %d vs %d",
                           e.index(), e.term(), it->second.member, member, it->second.hash,
                           rec.hash, it->second.prev_term, rec.prev_term));
      return;
    }
  }
}

void InvariantChecker::ObserveApplied(uint64_t member, const raftpb::Entry& e) {
  const uint64_t expected = applied_[member] + 1;
  if (e.index() != expected) {
    Fail("state-machine safety",
         absl::StrFormat("member %d applied entry %d but its next index to apply was %d", member,
                         e.index(), expected));
    return;
  }
  applied_[member] = e.index();
  const uint64_t h = EntryHash(e);
  auto [it, inserted] = committed_.emplace(e.index(), CommittedEntry{e.term(), h, member});
  if (inserted) return;
  CommittedEntry& c = it->second;
  if (c.term != e.term() || (c.hash != 0 && c.hash != h)) {
    Fail("state-machine safety",
         absl::StrFormat("member %d applied entry %d (term %d, hash %016x) but member %d applied "
                         "(term %d, hash %016x) there",
                         member, e.index(), e.term(), h, c.first_member, c.term, c.hash));
    return;
  }
  if (c.hash == 0) c.hash = h;
}

void InvariantChecker::ObserveSnapshotState(uint64_t member, uint64_t index, uint64_t term,
                                            uint64_t state_hash, bool restored) {
  if (restored) {
    auto it = applied_.find(member);
    if (it != applied_.end() && index < it->second) {
      Fail("state-machine safety",
           absl::StrFormat("member %d restored a snapshot at %d after applying up to %d", member,
                           index, it->second));
      return;
    }
    applied_[member] = index;
  } else if (applied_[member] != index) {
    Fail("state-machine safety",
         absl::StrFormat("member %d took a snapshot at %d but had applied %d", member, index,
                         applied_[member]));
    return;
  }
  if (index == 0) return;
  auto [c, inserted] = committed_.emplace(index, CommittedEntry{term, 0, member});
  if (!inserted && c->second.term != term) {
    Fail("state-machine safety",
         absl::StrFormat("member %d has a snapshot at %d of term %d; the entry committed there "
                         "has term %d",
                         member, index, term, c->second.term));
    return;
  }
  auto [s, fresh] = state_at_.emplace(index, std::make_pair(state_hash, member));
  if (!fresh && s->second.first != state_hash) {
    Fail("state-machine safety",
         absl::StrFormat("state after index %d differs between members %d and %d", index,
                         s->second.second, member));
  }
}

void InvariantChecker::ObserveCommit(uint64_t member, uint64_t commit) {
  uint64_t& c = commit_[member];
  if (commit < c) {
    Fail("no committed entry lost",
         absl::StrFormat("member %d's commit index went back from %d to %d while it ran", member, c,
                         commit));
    return;
  }
  c = commit;
}

void InvariantChecker::ObserveCrash(uint64_t member) {
  applied_.erase(member);
  commit_.erase(member);
}

void InvariantChecker::ObserveRestart(uint64_t member, uint64_t commit, uint64_t snapshot_index,
                                      const LogView& log) {
  if (commit < snapshot_index || commit > log.LastIndex()) {
    Fail("no committed entry lost",
         absl::StrFormat("member %d restarted with commit index %d outside its durable state "
                         "(snapshot %d, last log index %d)",
                         member, commit, snapshot_index, log.LastIndex()));
    return;
  }
  for (auto c = committed_.upper_bound(log.SnapshotIndex());
       c != committed_.end() && c->first <= commit; ++c) {
    const std::optional<uint64_t> t = log.Term(c->first);
    const std::optional<uint64_t> h = log.Hash(c->first);
    if (t != c->second.term || (c->second.hash != 0 && h != c->second.hash)) {
      Fail("no committed entry lost",
           absl::StrFormat("member %d restarted with a durable log that differs from committed "
                           "entry %d (term %d) at or below its commit index %d",
                           member, c->first, c->second.term, commit));
      return;
    }
  }
  applied_[member] = snapshot_index;
  commit_[member] = commit;
}

void InvariantChecker::CheckCommittedDurable(
    const std::vector<uint64_t>& voters,
    const std::function<const LogView*(uint64_t)>& durable_log) {
  if (committed_.empty() || voters.empty()) return;
  const uint64_t index = committed_.rbegin()->first;
  const uint64_t term = committed_.rbegin()->second.term;
  size_t holders = 0;
  for (uint64_t v : voters) {
    const LogView* log = durable_log(v);
    if (log == nullptr) continue;
    if (log->SnapshotIndex() >= index || log->Term(index) == term) ++holders;
  }
  const size_t needed = voters.size() - (voters.size() / 2 + 1) + 1;
  if (holders < needed) {
    Fail("no committed entry lost",
         absl::StrFormat("committed entry %d (term %d) is durable on only %d of %d voters; a "
                         "quorum without it could elect a leader that lacks it",
                         index, term, holders, voters.size()));
  }
}

void InvariantChecker::CheckLogs(const std::map<uint64_t, const LogView*>& logs) {
  for (auto a = logs.begin(); a != logs.end() && ok(); ++a) {
    const LogView& la = *a->second;
    // Against the committed record: the same (index, term) must be the same entry.
    for (auto c = committed_.upper_bound(la.SnapshotIndex());
         c != committed_.end() && c->first <= la.LastIndex(); ++c) {
      if (la.Term(c->first) != c->second.term || c->second.hash == 0) continue;
      if (la.Hash(c->first) != c->second.hash) {
        Fail("log matching",
             absl::StrFormat("member %d stores a different entry at committed index %d (term %d)",
                             a->first, c->first, c->second.term));
        return;
      }
    }
    for (auto b = std::next(a); b != logs.end(); ++b) {
      const LogView& lb = *b->second;
      const uint64_t lo = std::max(la.SnapshotIndex(), lb.SnapshotIndex()) + 1;
      const uint64_t hi = std::min(la.LastIndex(), lb.LastIndex());
      uint64_t match = 0;  // Highest common index with equal terms.
      for (uint64_t i = hi; i >= lo && i > 0; --i) {
        if (la.Term(i) == lb.Term(i)) {
          match = i;
          break;
        }
      }
      for (uint64_t i = lo; i <= match; ++i) {
        if (la.Hash(i) != lb.Hash(i)) {
          Fail("log matching",
               absl::StrFormat("members %d and %d agree on (index %d, term %d) but differ at "
                               "index %d",
                               a->first, b->first, match, *la.Term(match), i));
          return;
        }
      }
    }
  }
}

}  // namespace shoal::raft::sim
