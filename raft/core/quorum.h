// Quorum arithmetic over a set of voters (simple majorities; joint consensus is not supported,
// membership changes one node at a time).
#ifndef SHOAL_RAFT_CORE_QUORUM_H_
#define SHOAL_RAFT_CORE_QUORUM_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>

namespace shoal::raft {

enum class VoteResult {
  kPending,  // neither side has a majority yet
  kWon,
  kLost,
};

// The largest index that a majority of `voters` has acknowledged, where acked(id) returns a
// voter's acknowledged index (nullopt = unknown, counts as 0). An empty voter set returns
// UINT64_MAX so that it never constrains anything (as etcd does; callers treat a config without
// voters specially).
uint64_t MajorityCommittedIndex(const std::set<uint64_t>& voters,
                                const std::function<std::optional<uint64_t>(uint64_t)>& acked);

// Tallies votes (true = granted) cast by `voters`; votes by non-voters are ignored. An empty
// voter set wins (by convention, so a single node can elect itself without any config).
VoteResult TallyVotes(const std::set<uint64_t>& voters, const std::map<uint64_t, bool>& votes);

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_QUORUM_H_
