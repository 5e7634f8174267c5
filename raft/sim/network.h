// The simulation's virtual time, event queue and network.
//
// EventQueue is the simulation's only scheduler: every future happening (a message arriving, a
// member's tick, a disk write completing, a client timing out, a crash) is an action queued at a
// virtual time in microseconds. Actions run one at a time in (time, sequence number) order, the
// sequence number breaking ties in scheduling order, so a run is a pure function of its seed.
//
// Network carries opaque deliveries between endpoints (Raft members and clients, identified by
// uint64 IDs) and decides each one's fate with the shared SimRng: a random delay (so messages are
// reordered), a drop probability, duplication, and links cut by partitions — arbitrary groups or
// single directions (asymmetric). A message crosses only if its link is up both when it is sent
// and when it would arrive.
//
// Thread-safety: none; a simulation is single-threaded.
#ifndef SHOAL_RAFT_SIM_NETWORK_H_
#define SHOAL_RAFT_SIM_NETWORK_H_

#include <cstdint>
#include <functional>
#include <set>
#include <utility>
#include <vector>

#include "raft/sim/rng.h"

namespace shoal::raft::sim {

using SimTime = int64_t;  // Virtual microseconds since the start of the run.

inline constexpr SimTime kMillisecond = 1000;
inline constexpr SimTime kSecond = 1000 * kMillisecond;

class EventQueue {
 public:
  using Action = std::function<void()>;

  SimTime now() const { return now_; }
  // REQUIRES: at >= now().
  void At(SimTime at, Action action);
  void After(SimTime delay, Action action) { At(now_ + delay, std::move(action)); }
  // Runs the earliest action, advancing now() to its time. False if nothing is queued.
  bool RunNext();
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  // Time of the earliest queued action. REQUIRES: !empty().
  SimTime next_time() const { return heap_.front().at; }

 private:
  struct Item {
    SimTime at;
    uint64_t seq;
    Action action;
  };
  // Min-heap on (at, seq) via std::push_heap with an inverted comparison.
  static bool Later(const Item& a, const Item& b) {
    return a.at != b.at ? a.at > b.at : a.seq > b.seq;
  }

  SimTime now_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<Item> heap_;
};

struct NetworkOptions {
  // Delay: uniform in [min_delay, max_delay]; with slow_probability, uniform up to slow_max_delay
  // instead (a long tail that reorders messages across heartbeats).
  SimTime min_delay = 200;
  SimTime max_delay = 3 * kMillisecond;
  double slow_probability = 0.02;
  SimTime slow_max_delay = 50 * kMillisecond;
  double drop_probability = 0.01;
  double duplicate_probability = 0.01;
};

struct NetworkStats {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  uint64_t dropped = 0;  // Random loss.
  uint64_t blocked = 0;  // Cut by a partition (at send or at arrival).
  uint64_t duplicated = 0;
};

class Network {
 public:
  // A delivery runs at the receiver when (if) the message arrives; it may run twice (duplicate).
  using Delivery = std::function<void()>;
  // Runs when a copy of the message is lost — at send time for a random drop or a cut link, at
  // arrival time if the link was cut in flight — so a sender can model a transport that notices
  // failures (snapshot reports, unreachable peers). `blocked`: lost to a partition.
  using LostNotice = std::function<void(bool blocked)>;

  Network(EventQueue* queue, SimRng* rng, NetworkOptions options)
      : queue_(queue), rng_(rng), options_(options) {}

  void Send(uint64_t from, uint64_t to, Delivery deliver, LostNotice on_lost = nullptr);

  // Cuts every link between endpoints in different groups (both directions). Endpoints in no
  // group keep their links. Replaces any previous cuts.
  void Partition(const std::vector<std::vector<uint64_t>>& groups);
  // Cuts one direction only (from -> to), in addition to existing cuts.
  void CutOneWay(uint64_t from, uint64_t to) { cut_.insert({from, to}); }
  void Heal() { cut_.clear(); }
  bool LinkUp(uint64_t from, uint64_t to) const { return cut_.count({from, to}) == 0; }
  bool partitioned() const { return !cut_.empty(); }

  const NetworkOptions& options() const { return options_; }
  void set_options(const NetworkOptions& o) { options_ = o; }
  const NetworkStats& stats() const { return stats_; }

 private:
  SimTime RandomDelay();
  void Schedule(uint64_t from, uint64_t to, const Delivery& deliver, const LostNotice& on_lost);

  EventQueue* queue_;
  SimRng* rng_;
  NetworkOptions options_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
  NetworkStats stats_;
};

}  // namespace shoal::raft::sim

#endif  // SHOAL_RAFT_SIM_NETWORK_H_
