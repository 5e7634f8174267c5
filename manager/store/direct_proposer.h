// DirectProposer: a Proposer without consensus — each proposal is applied at once to the given
// state machine (normally a MemoryStore) as the next Raft index, as a one-manager cluster would
// do. For tests of the store and of everything built on it (orchestrators, scheduler, ...).
//
// It also records every entry it applied, so that a test can replay them into another store,
// and can be told to fail proposals the way Raft does (UNAVAILABLE, ABORTED, ...).
//
// Threading: any thread; proposals are applied one at a time, in the order they are taken.
#ifndef SHOAL_MANAGER_STORE_DIRECT_PROPOSER_H_
#define SHOAL_MANAGER_STORE_DIRECT_PROPOSER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "manager/store/proposer.h"
#include "raft/node/raft_node.h"

namespace shoal::manager::store {

class DirectProposer : public Proposer {
 public:
  struct Entry {
    uint64_t index;
    std::string data;
  };

  // The state machine may be attached after construction (the store needs the proposer first).
  void Attach(raft::StateMachine* sm) {
    absl::MutexLock lock(&mu_);
    sm_ = sm;
  }

  absl::StatusOr<std::string> Propose(std::string data, absl::Time) override {
    absl::MutexLock lock(&mu_);
    if (!fail_with_.ok()) {
      absl::Status s = fail_with_;
      if (fail_once_) fail_with_ = absl::OkStatus();
      return s;
    }
    if (sm_ == nullptr) return absl::UnavailableError("no state machine attached");
    // Leave gaps now and then, as Raft's own entries (leader no-ops, membership) do.
    index_ += skip_;
    const uint64_t index = ++index_;
    std::string result = sm_->Apply(index, data);
    entries_.push_back(Entry{index, std::move(data)});
    return result;
  }

  // Every following proposal fails with `status` (OK: none); `once`: only the next one.
  void FailWith(absl::Status status, bool once = false) {
    absl::MutexLock lock(&mu_);
    fail_with_ = std::move(status);
    fail_once_ = once;
  }
  // Raft indexes skipped before each entry (default 0: consecutive indexes).
  void SetIndexGap(uint64_t skip) {
    absl::MutexLock lock(&mu_);
    skip_ = skip;
  }

  // The next proposal gets index `index` + 1 (+ the gap), e.g. to continue after a Restore.
  void SetLastIndex(uint64_t index) {
    absl::MutexLock lock(&mu_);
    index_ = index;
  }

  uint64_t last_index() const {
    absl::MutexLock lock(&mu_);
    return index_;
  }
  std::vector<Entry> entries() const {
    absl::MutexLock lock(&mu_);
    return entries_;
  }

 private:
  mutable absl::Mutex mu_;
  raft::StateMachine* sm_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t index_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t skip_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_with_ ABSL_GUARDED_BY(mu_);
  bool fail_once_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_DIRECT_PROPOSER_H_
