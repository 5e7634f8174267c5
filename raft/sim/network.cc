#include "raft/sim/network.h"

#include <algorithm>
#include <cassert>

namespace shoal::raft::sim {

void EventQueue::At(SimTime at, Action action) {
  assert(at >= now_);
  heap_.push_back(Item{std::max(at, now_), next_seq_++, std::move(action)});
  std::push_heap(heap_.begin(), heap_.end(), Later);
}

bool EventQueue::RunNext() {
  if (heap_.empty()) return false;
  std::pop_heap(heap_.begin(), heap_.end(), Later);
  Item item = std::move(heap_.back());
  heap_.pop_back();
  now_ = item.at;
  item.action();
  return true;
}

SimTime Network::RandomDelay() {
  if (rng_->Bernoulli(options_.slow_probability)) {
    return rng_->Range(options_.min_delay, options_.slow_max_delay);
  }
  return rng_->Range(options_.min_delay, options_.max_delay);
}

void Network::Schedule(uint64_t from, uint64_t to, const Delivery& deliver,
                       const LostNotice& on_lost) {
  queue_->After(RandomDelay(), [this, from, to, deliver, on_lost] {
    if (!LinkUp(from, to)) {
      ++stats_.blocked;
      if (on_lost) on_lost(true);
      return;
    }
    ++stats_.delivered;
    deliver();
  });
}

void Network::Send(uint64_t from, uint64_t to, Delivery deliver, LostNotice on_lost) {
  ++stats_.sent;
  if (!LinkUp(from, to)) {
    ++stats_.blocked;
    if (on_lost) on_lost(true);
    return;
  }
  if (rng_->Bernoulli(options_.drop_probability)) {
    ++stats_.dropped;
    if (on_lost) on_lost(false);
    return;
  }
  if (rng_->Bernoulli(options_.duplicate_probability)) {
    ++stats_.duplicated;
    Schedule(from, to, deliver, on_lost);
  }
  Schedule(from, to, deliver, on_lost);
}

void Network::Partition(const std::vector<std::vector<uint64_t>>& groups) {
  cut_.clear();
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t h = 0; h < groups.size(); ++h) {
      if (g == h) continue;
      for (uint64_t a : groups[g]) {
        for (uint64_t b : groups[h]) cut_.insert({a, b});
      }
    }
  }
}

}  // namespace shoal::raft::sim
