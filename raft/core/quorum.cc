#include "raft/core/quorum.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace shoal::raft {

uint64_t MajorityCommittedIndex(const std::set<uint64_t>& voters,
                                const std::function<std::optional<uint64_t>(uint64_t)>& acked) {
  if (voters.empty()) return std::numeric_limits<uint64_t>::max();
  std::vector<uint64_t> idx;
  idx.reserve(voters.size());
  for (uint64_t id : voters) idx.push_back(acked(id).value_or(0));
  // Sorted descending, the (n/2+1)-th value is acknowledged by a majority.
  std::sort(idx.begin(), idx.end(), std::greater<uint64_t>());
  return idx[voters.size() / 2];
}

VoteResult TallyVotes(const std::set<uint64_t>& voters, const std::map<uint64_t, bool>& votes) {
  if (voters.empty()) return VoteResult::kWon;
  size_t granted = 0, missing = 0;
  for (uint64_t id : voters) {
    auto it = votes.find(id);
    if (it == votes.end()) {
      ++missing;
    } else if (it->second) {
      ++granted;
    }
  }
  const size_t q = voters.size() / 2 + 1;
  if (granted >= q) return VoteResult::kWon;
  if (granted + missing >= q) return VoteResult::kPending;
  return VoteResult::kLost;
}

}  // namespace shoal::raft
