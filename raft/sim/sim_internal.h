// Internals of the cluster simulation (cluster_sim.h), shared by its implementation files:
//   cluster_sim.cc  the run: scenario, event loop, invariant checks, faults, operator;
//   sim_member.cc   the members: the Ready pipeline (persist, send, apply, Advance), crashes
//                   and restarts, snapshots, the Raft transport;
//   sim_clients.cc  the KV clients and how members serve them.
// Not part of the public API.
//
// Thread-safety: none; one Sim runs on one thread.
#ifndef SHOAL_RAFT_SIM_SIM_INTERNAL_H_
#define SHOAL_RAFT_SIM_SIM_INTERNAL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "raft.pb.h"
#include "raft/core/raft.h"
#include "raft/core/raw_node.h"
#include "raft/core/storage.h"
#include "raft/sim/cluster_sim.h"
#include "raft/sim/invariants.h"
#include "raft/sim/kv_state_machine.h"
#include "raft/sim/linearizability.h"
#include "raft/sim/network.h"
#include "raft/sim/rng.h"

namespace shoal::raft::sim::internal {

constexpr uint64_t kClientBase = 1000;
constexpr uint64_t kProbeClient = 1999;
constexpr uint64_t kFullLogCheckEvery = 4096;

// Where an armed crash strikes in the handling of the member's next Ready.
enum class CrashPoint { kNone, kBeforePersist, kAfterPersist, kAfterApply };

const char* MsgName(raftpb::MessageType t);
const char* StateName(StateType s);
std::string FormatMessage(const raftpb::Message& m);
std::string FormatConf(const raftpb::ConfState& cs);

// A member's stored (durable) log.
class StorageView : public LogView {
 public:
  explicit StorageView(const MemoryStorage* s) : s_(s) {}
  uint64_t SnapshotIndex() const override { return s_->FirstIndex() - 1; }
  uint64_t LastIndex() const override { return s_->LastIndex(); }
  std::optional<uint64_t> Term(uint64_t index) const override {
    auto t = s_->Term(index);
    if (!t.ok()) return std::nullopt;
    return *t;
  }
  std::optional<uint64_t> Hash(uint64_t index) const override {
    if (index <= SnapshotIndex() || index > LastIndex()) return std::nullopt;
    auto e = s_->Entries(index, index + 1, kNoLimit);
    if (!e.ok() || e->empty()) return std::nullopt;
    return EntryHash(e->front());
  }

 private:
  const MemoryStorage* s_;
};

// A running member's log as its core sees it (stable and unstable entries).
class CoreLogView : public LogView {
 public:
  explicit CoreLogView(const RaftLog* l) : l_(l) {}
  uint64_t SnapshotIndex() const override { return l_->FirstIndex() - 1; }
  uint64_t LastIndex() const override { return l_->LastIndex(); }
  std::optional<uint64_t> Term(uint64_t index) const override {
    if (index < SnapshotIndex() || index > LastIndex()) return std::nullopt;
    auto t = l_->Term(index);
    if (!t.ok()) return std::nullopt;
    return *t;
  }
  std::optional<uint64_t> Hash(uint64_t index) const override {
    if (index <= SnapshotIndex() || index > LastIndex()) return std::nullopt;
    auto e = l_->Slice(index, index + 1, kNoLimit);
    if (!e.ok() || e->empty()) return std::nullopt;
    return EntryHash(e->front());
  }

 private:
  const RaftLog* l_;
};

struct ClientRequest {
  uint64_t client = 0;
  uint64_t seq = 0;
  uint64_t attempt = 0;
  KvCommand cmd;
  bool read_index = false;
};

struct ClientReply {
  uint64_t client = 0;
  uint64_t seq = 0;
  uint64_t attempt = 0;
  bool ok = false;
  uint64_t leader_hint = 0;  // When !ok.
  KvResult result;
};

struct Member {
  uint64_t id = 0;
  bool founding = false;
  bool removed = false;  // Shut down for good after its removal committed.
  double tick_factor = 1.0;
  // Durable: survives crashes.
  std::unique_ptr<MemoryStorage> storage = std::make_unique<MemoryStorage>();
  StorageView durable{storage.get()};
  // Volatile: lost on crash.
  std::optional<raftpb::HardState> unsynced_hs;  // Written without fsync.
  raftpb::HardState last_hs;                     // Latest the core handed over.
  bool up = false;
  uint64_t incarnation = 0;
  std::unique_ptr<RawNode> node;
  KvStateMachine kv;
  uint64_t applied = 0;
  uint64_t last_snapshot = 0;
  raftpb::ConfState conf;
  // The durable state machine (scenario.durable_state_machine): KV state and applied index as of
  // the last completed apply step.
  std::string durable_kv;
  uint64_t durable_applied = 0;
  bool ready_scheduled = false;
  bool ready_in_progress = false;
  Ready ready;
  std::vector<std::function<void()>> inbox;  // Held back while a Ready is handled.
  std::map<uint64_t, uint64_t> waiting;      // client -> seq to answer when applied here.
  struct PendingRead {
    uint64_t client = 0;
    uint64_t seq = 0;
    std::string key;
    std::optional<uint64_t> index;  // Set when the ReadState arrives.
  };
  std::map<std::string, PendingRead> reads;  // By ReadIndex context.
  uint64_t read_counter = 0;
  CrashPoint armed = CrashPoint::kNone;
};

struct Client {
  uint64_t id = 0;
  bool busy = false;
  uint64_t seq = 0;
  uint64_t attempt = 0;
  KvCommand cmd;
  bool read_index = false;
  size_t history_index = 0;
  uint64_t target = 0;
  int timeouts = 0;                              // For the current operation.
  std::map<std::string, std::string> last_seen;  // What this client last saw per key.
};

SimScenario DrawScenario(SimRng& rng);

class Sim {
 public:
  explicit Sim(const SimOptions& options)
      : options_(options),
        rng_(options.seed),
        scenario_(DrawScenario(rng_)),
        net_(&queue_, &rng_, NetworkOptions{}),
        ring_(std::max<size_t>(options.trace_events, 1)) {
    if (options_.adjust) options_.adjust(scenario_);
    net_.set_options(scenario_.network);
  }

  SimResult Run();
  void DumpTraceForAbort() const;

 private:
  enum class Phase { kFaults, kSettle };

  // ---- Bookkeeping ----
  void Trace(std::string line);
  void Fail(std::string kind, std::string detail);
  bool failed() const { return failure_.has_value(); }
  Member* Find(uint64_t id) {
    auto it = members_.find(id);
    return it == members_.end() ? nullptr : it->second.get();
  }
  static bool Alive(const Member* m, uint64_t inc) {
    return m != nullptr && m->up && m->incarnation == inc;
  }
  Member* CurrentLeader();
  std::vector<uint64_t> ClientTargets() const;
  void AfterEvent();
  void CheckAllLogs();

  // ---- Members and the Ready pipeline ----
  Member& AddMember(uint64_t id, bool founding);
  void StartMember(Member& m);
  void Crash(Member& m, const std::string& why);
  void Stop(Member& m);
  void ScheduleTick(Member& m);
  // Runs `fn` against m's core now, or after the Ready in progress if the scenario holds
  // deliveries back while a Ready is handled; then looks for a new Ready.
  void Interact(Member& m, std::function<void()> fn);
  void MaybeScheduleReady(Member& m);
  void ReadyStart(uint64_t id, uint64_t inc);
  void ReadyPersist(uint64_t id, uint64_t inc);
  void ReadyApply(uint64_t id, uint64_t inc);
  void ApplyEntry(Member& m, const raftpb::Entry& e);
  void ServeReads(Member& m);
  void MaybeSnapshot(Member& m);
  void SendRaft(Member& m, const raftpb::Message& msg);
  void DeliverRaft(const raftpb::Message& msg);
  void LaterOnSender(uint64_t from, uint64_t inc, std::function<void(Member&)> fn);

  // ---- Clients ----
  void ClientIssue(Client& c);
  void ClientSend(Client& c);
  void ClientRetry(Client& c, uint64_t target, SimTime backoff);
  void OnClientRequest(uint64_t member, const ClientRequest& req);
  void HandleClientRequest(Member& m, const ClientRequest& req);
  void Reply(Member& m, const ClientReply& r);
  void OnClientReply(const ClientReply& r);

  // ---- Faults and operator ----
  void ScheduleCrashes();
  void SchedulePartitions();
  void ScheduleOperator();
  void ScheduleTransfers();
  void OperatorStep();
  void OnConfCommitted(const raftpb::ConfChange& cc);
  void Settle();

  SimOptions options_;
  SimRng rng_;
  SimScenario scenario_;
  EventQueue queue_;
  Network net_;
  InvariantChecker checker_;
  Phase phase_ = Phase::kFaults;
  std::map<uint64_t, std::unique_ptr<Member>> members_;
  std::vector<uint64_t> founders_;
  uint64_t next_member_id_ = 1;
  std::map<uint64_t, Client> clients_;
  std::vector<KvOperation> history_;
  raftpb::ConfState latest_conf_;  // Membership after the newest committed conf change.
  uint64_t latest_conf_index_ = 0;
  std::map<uint64_t, std::string> conf_at_;  // index -> serialized ConfState after it.
  bool cc_in_flight_ = false;
  SimTime cc_deadline_ = 0;
  uint64_t cc_counter_ = 0;
  SimStats stats_;
  bool storage_changed_ = true;      // Some member's durable log changed since the last check.
  uint64_t durable_checked_at_ = 0;  // Committed index of the last durability check.
  std::vector<std::string> ring_;
  size_t ring_next_ = 0;
  uint64_t ring_count_ = 0;
  std::optional<std::pair<std::string, std::string>> failure_;  // (kind, detail)
  SimTime failure_time_ = 0;
};

}  // namespace shoal::raft::sim::internal

#endif  // SHOAL_RAFT_SIM_SIM_INTERNAL_H_
