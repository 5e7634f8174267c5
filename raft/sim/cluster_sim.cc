#include "raft/sim/cluster_sim.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "raft/sim/sim_internal.h"

namespace shoal::raft::sim {
namespace internal {
namespace {

thread_local Sim* g_current_sim = nullptr;  // For the abort handler: this thread's run.

}  // namespace

SimScenario DrawScenario(SimRng& rng) {
  SimScenario s;
  const uint64_t size = rng.Uniform(100);
  s.voters = size < 5 ? 1 : size < 55 ? 3 : size < 65 ? 4 : 5;
  s.duration = rng.Range(2, 4) * kSecond;
  s.settle = 3 * kSecond;
  s.clients = static_cast<int>(rng.Range(2, 8));
  s.keys = static_cast<int>(rng.Range(1, 4));
  s.client_timeout = rng.Range(200, 800) * kMillisecond;
  NetworkOptions& n = s.network;
  n.min_delay = rng.Range(50, 500);
  n.max_delay = n.min_delay + rng.Range(1, 20) * kMillisecond;
  const double slow[] = {0.0, 0.02, 0.1};
  n.slow_probability = slow[rng.Uniform(3)];
  // Sometimes very late messages: stale terms and old appends arriving long after the fact.
  n.slow_max_delay = rng.Range(50, rng.Bernoulli(0.2) ? 2000 : 300) * kMillisecond;
  const double drops[] = {0.0, 0.01, 0.05, 0.2};
  n.drop_probability = drops[rng.Uniform(4)];
  const double dups[] = {0.0, 0.01, 0.05};
  n.duplicate_probability = dups[rng.Uniform(3)];
  s.tick_interval = 10 * kMillisecond;
  const double skews[] = {0.0, 0.2, 0.2, 0.5};
  s.clock_skew = skews[rng.Uniform(4)];
  s.election_tick = static_cast<int>(rng.Range(5, 20));
  s.heartbeat_tick = static_cast<int>(rng.Range(1, std::min(3, s.election_tick - 1)));
  s.pre_vote = rng.Bernoulli(0.7);
  s.check_quorum = rng.Bernoulli(0.7);
  const uint64_t sizes[] = {0, 300, 1 << 20};
  s.max_size_per_msg = sizes[rng.Uniform(3)];
  const int inflight[] = {1, 4, 256};
  s.max_inflight_msgs = inflight[rng.Uniform(3)];
  s.step_during_ready = rng.Bernoulli(0.5);
  s.membership_changes = s.voters >= 3 && rng.Bernoulli(0.3);
  s.bootstrap_via_log = s.membership_changes || rng.Bernoulli(0.5);
  s.max_voters = 5;
  const int every[] = {0, 5, 10, 30, 100};
  s.snapshot_every = every[rng.Uniform(5)];
  const int keep[] = {0, 1, 5, 20};
  s.snapshot_keep = keep[rng.Uniform(4)];
  s.read_index_gets = rng.Bernoulli(0.5);
  s.lease_reads = s.read_index_gets && s.check_quorum && s.clock_skew == 0 && rng.Bernoulli(0.5);
  s.durable_state_machine = rng.Bernoulli(0.3);
  s.max_uncommitted_entries_size = rng.Bernoulli(0.2) ? 200 : 0;
  s.client_max_timeouts = rng.Bernoulli(0.5) ? 0 : static_cast<int>(rng.Range(1, 4));
  s.follower_proposals = rng.Bernoulli(0.5);
  s.cas = rng.Bernoulli(0.5);
  s.leader_transfers = s.voters > 1 && rng.Bernoulli(0.3);
  const SimTime crashes[] = {0, 300 * kMillisecond, kSecond, 2 * kSecond};
  s.crash_interval = crashes[rng.Uniform(4)];
  const SimTime partitions[] = {0, 300 * kMillisecond, kSecond};
  s.partition_interval = partitions[rng.Uniform(3)];
  // Pre-vote off with heavy skew used to be left out of the mix: a stale, fast-clocked member
  // kept the others from timing out. Fixed in the core (a refused vote no longer restarts the
  // election timer; docs/raft.md), so the mix covers it again.
  return s;
}

void Sim::Trace(std::string line) {
  std::string full =
      absl::StrFormat("%3d.%06d %s", queue_.now() / kSecond, queue_.now() % kSecond, line);
  if (options_.print_trace) std::fprintf(stderr, "%s\n", full.c_str());
  ring_[ring_next_] = std::move(full);
  ring_next_ = (ring_next_ + 1) % ring_.size();
  ++ring_count_;
}

void Sim::DumpTraceForAbort() const {
  std::fprintf(stderr, "\n*** raft core aborted during simulation seed %llu\n*** %s\n",
               static_cast<unsigned long long>(options_.seed), scenario_.Describe().c_str());
  const size_t n = std::min<uint64_t>(ring_count_, ring_.size());
  std::fprintf(stderr, "*** last %zu events:\n", n);
  for (size_t i = 0; i < n; ++i) {
    const size_t at = (ring_next_ + ring_.size() - n + i) % ring_.size();
    std::fprintf(stderr, "  %s\n", ring_[at].c_str());
  }
  std::fprintf(stderr, "*** %s\n", ReplayHint(options_.seed).c_str());
}

void Sim::Fail(std::string kind, std::string detail) {
  if (failure_.has_value()) return;
  failure_ = std::make_pair(std::move(kind), std::move(detail));
  failure_time_ = queue_.now();
}

Member* Sim::CurrentLeader() {
  Member* best = nullptr;
  for (auto& [id, m] : members_) {
    if (!m->up || m->node->raft().state() != StateType::kLeader) continue;
    if (best == nullptr || m->node->raft().term() > best->node->raft().term()) best = m.get();
  }
  return best;
}

std::vector<uint64_t> Sim::ClientTargets() const {
  std::vector<uint64_t> out;
  for (uint64_t v : latest_conf_.voters()) out.push_back(v);
  for (uint64_t l : latest_conf_.learners()) out.push_back(l);
  if (out.empty()) out = founders_;
  std::sort(out.begin(), out.end());
  return out;
}

void Sim::ScheduleCrashes() {
  if (scenario_.crash_interval == 0) return;
  const SimTime i = scenario_.crash_interval;
  queue_.After(rng_.Range(i / 2, i + i / 2), [this] {
    if (phase_ != Phase::kFaults) return;
    std::vector<Member*> up;
    for (auto& [id, m] : members_) {
      if (m->up && !m->removed) up.push_back(m.get());
    }
    if (!up.empty() && rng_.Bernoulli(scenario_.power_cut_probability)) {
      // A power cut: every member at once, before durable state had a chance to spread.
      for (Member* m : up) Crash(*m, "(power cut)");
    } else if (!up.empty()) {
      Member& m = *up[rng_.Uniform(up.size())];
      const uint64_t how = rng_.Uniform(4);
      if (how == 0) {
        Crash(m, "(random time)");
      } else {
        m.armed = how == 1   ? CrashPoint::kBeforePersist
                  : how == 2 ? CrashPoint::kAfterPersist
                             : CrashPoint::kAfterApply;
        const uint64_t id = m.id, inc = m.incarnation;
        // If no Ready comes along soon, crash anyway.
        queue_.After(300 * kMillisecond, [this, id, inc] {
          Member* t = Find(id);
          if (Alive(t, inc) && t->armed != CrashPoint::kNone && phase_ == Phase::kFaults) {
            Crash(*t, "(armed, no Ready came)");
          }
        });
      }
    }
    ScheduleCrashes();
  });
}

void Sim::SchedulePartitions() {
  if (scenario_.partition_interval == 0) return;
  const SimTime i = scenario_.partition_interval;
  queue_.After(rng_.Range(i / 2, i + i / 2), [this] {
    if (phase_ != Phase::kFaults) return;
    std::vector<uint64_t> ids;
    for (auto& [id, m] : members_) {
      if (!m->removed) ids.push_back(id);
    }
    const uint64_t r = rng_.Uniform(100);
    if (r < 35 || ids.size() < 2) {
      net_.Heal();
      Trace("network heals");
    } else if (r < 70) {
      for (size_t k = ids.size(); k > 1; --k) std::swap(ids[k - 1], ids[rng_.Uniform(k)]);
      const size_t cut = 1 + rng_.Uniform(ids.size() - 1);
      std::vector<uint64_t> a(ids.begin(), ids.begin() + cut), b(ids.begin() + cut, ids.end());
      net_.Partition({a, b});
      ++stats_.partitions;
      Trace(
          absl::StrCat("partition {", absl::StrJoin(a, ","), "} | {", absl::StrJoin(b, ","), "}"));
    } else if (r < 85) {
      Member* leader = CurrentLeader();
      if (leader != nullptr) {
        std::vector<uint64_t> rest;
        for (uint64_t id : ids) {
          if (id != leader->id) rest.push_back(id);
        }
        net_.Partition({{leader->id}, rest});
        ++stats_.partitions;
        Trace(absl::StrFormat("partition: leader m%d isolated", leader->id));
      }
    } else {
      net_.Heal();
      const uint64_t cuts = rng_.Range(1, 3);
      std::string line = "one-way cuts:";
      for (uint64_t k = 0; k < cuts; ++k) {
        const uint64_t from = ids[rng_.Uniform(ids.size())], to = ids[rng_.Uniform(ids.size())];
        if (from == to) continue;
        net_.CutOneWay(from, to);
        absl::StrAppendFormat(&line, " %d->%d", from, to);
      }
      ++stats_.partitions;
      Trace(line);
    }
    SchedulePartitions();
  });
}

void Sim::ScheduleOperator() {
  if (!scenario_.membership_changes) return;
  queue_.After(rng_.Range(300 * kMillisecond, 900 * kMillisecond), [this] {
    if (phase_ != Phase::kFaults) return;
    OperatorStep();
    ScheduleOperator();
  });
}

void Sim::OperatorStep() {
  if (cc_in_flight_ && queue_.now() < cc_deadline_) return;
  Member* leader = CurrentLeader();
  if (leader == nullptr) return;
  const std::vector<uint64_t> voters(latest_conf_.voters().begin(), latest_conf_.voters().end());
  const std::vector<uint64_t> learners(latest_conf_.learners().begin(),
                                       latest_conf_.learners().end());
  raftpb::ConfChange cc;
  if (!learners.empty()) {
    // Promote a learner once it has caught up.
    const uint64_t id = learners.front();
    const Status st = leader->node->GetStatus();
    auto p = st.progress.find(id);
    if (p == st.progress.end() || p->second.match + 10 < st.hard_state.commit()) return;
    cc.set_type(raftpb::CONF_CHANGE_TYPE_ADD_NODE);
    cc.set_node_id(id);
  } else if (static_cast<int>(voters.size()) < scenario_.max_voters &&
             (voters.size() <= 3 || rng_.Bernoulli(0.5))) {
    const uint64_t id = next_member_id_;
    Member& fresh = AddMember(id, /*founding=*/false);
    StartMember(fresh);
    cc.set_type(raftpb::CONF_CHANGE_TYPE_ADD_LEARNER_NODE);
    cc.set_node_id(id);
  } else if (voters.size() > 3) {
    cc.set_type(raftpb::CONF_CHANGE_TYPE_REMOVE_NODE);
    cc.set_node_id(voters[rng_.Uniform(voters.size())]);
  } else {
    return;
  }
  cc.set_context(absl::StrCat("cc", ++cc_counter_));
  cc_in_flight_ = true;
  cc_deadline_ = queue_.now() + 2 * kSecond;
  Trace(absl::StrFormat("operator proposes conf change %s: type %d node %d via leader m%d",
                        cc.context(), cc.type(), cc.node_id(), leader->id));
  const uint64_t lid = leader->id;
  Interact(*leader, [this, leader, lid, cc] {
    if (absl::Status s = leader->node->ProposeConfChange(cc); !s.ok()) {
      Trace(absl::StrFormat("m%d refuses conf change: %s", lid, s.ToString()));
    }
  });
}

void Sim::OnConfCommitted(const raftpb::ConfChange& cc) {
  cc_in_flight_ = false;
  if (cc.type() != raftpb::CONF_CHANGE_TYPE_REMOVE_NODE) return;
  const uint64_t id = cc.node_id();
  // The removed member is shut down a little later (it may still be leading).
  queue_.After(rng_.Range(50 * kMillisecond, 500 * kMillisecond), [this, id] {
    Member* m = Find(id);
    if (m == nullptr || m->removed) return;
    Trace(absl::StrFormat("m%d shut down after its removal", id));
    m->removed = true;
    if (m->up) Stop(*m);
  });
}

void Sim::ScheduleTransfers() {
  if (!scenario_.leader_transfers) return;
  queue_.After(rng_.Range(500 * kMillisecond, 1500 * kMillisecond), [this] {
    if (phase_ != Phase::kFaults) return;
    Member* leader = CurrentLeader();
    if (leader != nullptr) {
      std::vector<uint64_t> others;
      for (uint64_t v : latest_conf_.voters()) {
        if (v != leader->id) others.push_back(v);
      }
      if (!others.empty()) {
        const uint64_t to = others[rng_.Uniform(others.size())];
        ++stats_.transfers;
        Trace(absl::StrFormat("operator asks leader m%d to transfer to m%d", leader->id, to));
        Interact(*leader, [leader, to] { leader->node->TransferLeader(to); });
      }
    }
    ScheduleTransfers();
  });
}

void Sim::Settle() {
  phase_ = Phase::kSettle;
  net_.Heal();
  NetworkOptions o = scenario_.network;
  o.drop_probability = std::min(o.drop_probability, 0.01);
  net_.set_options(o);
  Trace("=== settle: network healed, faults stop, crashed members restart ===");
  for (auto& [id, m] : members_) {
    m->armed = CrashPoint::kNone;
    if (!m->up && !m->removed && !failed()) StartMember(*m);
  }
  Client& probe = clients_[kProbeClient];
  probe.id = kProbeClient;
  std::vector<uint64_t> targets = ClientTargets();
  probe.target = targets[rng_.Uniform(targets.size())];
  ClientIssue(probe);
}

void Sim::AfterEvent() {
  for (auto& [id, m] : members_) {
    if (!m->up) continue;
    const Raft& r = m->node->raft();
    if (r.state() == StateType::kLeader) {
      CoreLogView view(&r.raft_log());
      checker_.ObserveLeader(id, r.term(), view);
    }
    checker_.ObserveCommit(id, r.raft_log().committed());
  }
  std::vector<uint64_t> voters(latest_conf_.voters().begin(), latest_conf_.voters().end());
  if (voters.empty()) voters = founders_;
  // Bootstrap entries are not replicated: every founding member writes them itself (again after
  // a crash that lost them), so they are exempt from the durability count.
  const uint64_t bootstrap_entries = scenario_.bootstrap_via_log ? founders_.size() : 0;
  // Only worth checking when a log or the committed record changed.
  const uint64_t committed = checker_.max_committed();
  if (committed > bootstrap_entries && (storage_changed_ || committed != durable_checked_at_)) {
    storage_changed_ = false;
    durable_checked_at_ = committed;
    checker_.CheckCommittedDurable(voters, [this](uint64_t id) -> const LogView* {
      Member* m = Find(id);
      return m == nullptr ? nullptr : &m->durable;
    });
  }
  if (stats_.events % kFullLogCheckEvery == 0) CheckAllLogs();
  if (!checker_.ok() && !failed()) {
    Fail("invariant: " + checker_.violation()->invariant, checker_.violation()->detail);
  }
}

void Sim::CheckAllLogs() {
  std::map<uint64_t, const LogView*> logs;
  for (auto& [id, m] : members_) logs[id] = &m->durable;
  checker_.CheckLogs(logs);
}

SimResult Sim::Run() {
  g_current_sim = this;
  for (int i = 1; i <= scenario_.voters; ++i) founders_.push_back(static_cast<uint64_t>(i));
  raftpb::ConfState initial;
  for (uint64_t v : founders_) initial.add_voters(v);
  latest_conf_ = initial;
  Trace(absl::StrCat("seed ", options_.seed, ": ", scenario_.Describe()));
  for (uint64_t id : founders_) {
    Member& m = AddMember(id, /*founding=*/true);
    if (!scenario_.bootstrap_via_log) (void)m.storage->SetInitialConfState(initial);
  }
  for (uint64_t id : founders_) StartMember(*members_[id]);
  for (int i = 1; i <= scenario_.clients; ++i) {
    Client& c = clients_[kClientBase + i];
    c.id = kClientBase + i;
    c.target = founders_[rng_.Uniform(founders_.size())];
    const uint64_t id = c.id;
    queue_.After(rng_.Range(0, 100 * kMillisecond), [this, id] { ClientIssue(clients_[id]); });
  }
  ScheduleCrashes();
  SchedulePartitions();
  ScheduleOperator();
  ScheduleTransfers();
  queue_.At(scenario_.duration, [this] { Settle(); });

  const SimTime end = scenario_.duration + scenario_.settle;
  while (!failed() && !queue_.empty() && queue_.next_time() <= end) {
    queue_.RunNext();
    ++stats_.events;
    if (!failed()) AfterEvent();
  }
  if (!failed()) CheckAllLogs();
  if (!failed() && !checker_.ok()) {
    Fail("invariant: " + checker_.violation()->invariant, checker_.violation()->detail);
  }
  if (!failed() && options_.check_liveness && clients_[kProbeClient].busy) {
    Fail("liveness", absl::StrFormat("the probe write issued when the network healed did not "
                                     "commit within %d ms",
                                     scenario_.settle / kMillisecond));
  }
  for (const KvOperation& op : history_) {
    if (!op.return_time.has_value()) ++stats_.client_ops_timed_out;
  }
  if (!failed() && options_.check_linearizability) {
    const LinearizabilityResult lin = CheckKvLinearizability(history_);
    stats_.lin_steps = lin.steps;
    if (!lin.ok()) {
      Fail(lin.verdict == LinearizabilityResult::Verdict::kUnknown ? "linearizability (unknown)"
                                                                   : "linearizability",
           lin.explanation);
    }
  }
  stats_.committed = checker_.max_committed();
  stats_.leaders = checker_.leaders_seen();
  stats_.network = net_.stats();
  g_current_sim = nullptr;

  SimResult result;
  result.seed = options_.seed;
  result.scenario = scenario_;
  result.stats = stats_;
  if (failed()) {
    result.ok = false;
    result.failure = failure_->first;
    std::string& rep = result.report;
    rep = absl::StrFormat("SIMULATION FAILURE seed=%d at t=%d.%06d: %s\n%s\nscenario: %s\n",
                          options_.seed, failure_time_ / kSecond, failure_time_ % kSecond,
                          failure_->first, failure_->second, scenario_.Describe());
    const size_t n = std::min<uint64_t>(ring_count_, ring_.size());
    absl::StrAppendFormat(&rep, "last %d events:\n", n);
    for (size_t i = 0; i < n; ++i) {
      absl::StrAppend(&rep, "  ", ring_[(ring_next_ + ring_.size() - n + i) % ring_.size()], "\n");
    }
    absl::StrAppend(&rep, ReplayHint(options_.seed), "\n");
  }
  return result;
}

}  // namespace internal

namespace {

extern "C" void OnAbortSignal(int sig) {
  if (internal::g_current_sim != nullptr) internal::g_current_sim->DumpTraceForAbort();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

std::string SimScenario::Describe() const {
  return absl::StrFormat(
      "%d voters (max %d), %dms + %dms settle, %d clients on %d keys, timeout %dms; "
      "net delay %d..%dus slow %.2f<=%dms drop %.2f dup %.2f; tick %dus skew %.2f election %d "
      "heartbeat %d; pre_vote %d check_quorum %d max_msg %d inflight %d; step_during_ready %d "
      "bootstrap_via_log %d snapshot_every %d keep %d; read_index %d follower_proposals %d cas "
      "%d membership %d transfers %d; lease_reads %d durable_sm %d max_uncommitted %d "
      "client_max_timeouts %d; crash every %dms (power cuts %.2f), partition every %dms",
      voters, max_voters, duration / kMillisecond, settle / kMillisecond, clients, keys,
      client_timeout / kMillisecond, network.min_delay, network.max_delay, network.slow_probability,
      network.slow_max_delay / kMillisecond, network.drop_probability,
      network.duplicate_probability, tick_interval, clock_skew, election_tick, heartbeat_tick,
      pre_vote, check_quorum, max_size_per_msg, max_inflight_msgs, step_during_ready,
      bootstrap_via_log, snapshot_every, snapshot_keep, read_index_gets, follower_proposals, cas,
      membership_changes, leader_transfers, lease_reads, durable_state_machine,
      max_uncommitted_entries_size, client_max_timeouts, crash_interval / kMillisecond,
      power_cut_probability, partition_interval / kMillisecond);
}

absl::Status SetScenarioField(SimScenario& s, const std::string& name, const std::string& value) {
  double v = 0;
  if (!absl::SimpleAtod(value, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("not a number: ", value));
  }
  const auto i = static_cast<int64_t>(v);
  const bool b = v != 0;
  if (name == "voters") {
    s.voters = static_cast<int>(i);
  } else if (name == "duration_ms") {
    s.duration = i * kMillisecond;
  } else if (name == "settle_ms") {
    s.settle = i * kMillisecond;
  } else if (name == "clients") {
    s.clients = static_cast<int>(i);
  } else if (name == "keys") {
    s.keys = static_cast<int>(i);
  } else if (name == "skew") {
    s.clock_skew = v;
  } else if (name == "crash_ms") {
    s.crash_interval = i * kMillisecond;
  } else if (name == "partition_ms") {
    s.partition_interval = i * kMillisecond;
  } else if (name == "drop") {
    s.network.drop_probability = v;
  } else if (name == "dup") {
    s.network.duplicate_probability = v;
  } else if (name == "slow") {
    s.network.slow_probability = v;
  } else if (name == "slow_max_ms") {
    s.network.slow_max_delay = i * kMillisecond;
  } else if (name == "election_tick") {
    s.election_tick = static_cast<int>(i);
  } else if (name == "heartbeat_tick") {
    s.heartbeat_tick = static_cast<int>(i);
  } else if (name == "pre_vote") {
    s.pre_vote = b;
  } else if (name == "check_quorum") {
    s.check_quorum = b;
  } else if (name == "step_during_ready") {
    s.step_during_ready = b;
  } else if (name == "snapshot_every") {
    s.snapshot_every = static_cast<int>(i);
  } else if (name == "snapshot_keep") {
    s.snapshot_keep = static_cast<int>(i);
  } else if (name == "read_index") {
    s.read_index_gets = b;
  } else if (name == "lease_reads") {
    s.lease_reads = b;
  } else if (name == "durable_sm") {
    s.durable_state_machine = b;
  } else if (name == "follower_proposals") {
    s.follower_proposals = b;
  } else if (name == "cas") {
    s.cas = b;
  } else if (name == "membership") {
    s.membership_changes = b;
    if (b) s.bootstrap_via_log = true;  // Joining members learn the founders from the log.
  } else if (name == "transfers") {
    s.leader_transfers = b;
  } else if (name == "power_cut") {
    s.power_cut_probability = v;
  } else if (name == "client_max_timeouts") {
    s.client_max_timeouts = static_cast<int>(i);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown scenario field: ", name));
  }
  return absl::OkStatus();
}

SimScenario ScenarioForSeed(uint64_t seed) {
  SimRng rng(seed);
  return internal::DrawScenario(rng);
}

SimResult RunSimulation(const SimOptions& options) {
  internal::Sim sim(options);
  return sim.Run();
}

std::string ReplayHint(uint64_t seed) {
  return absl::StrCat("replay with SHOAL_SIM_SEEDS=1 SHOAL_SIM_SEED_BASE=", seed);
}

void InstallAbortReporter() {
  std::signal(SIGABRT, OnAbortSignal);
  std::signal(SIGSEGV, OnAbortSignal);
}

}  // namespace shoal::raft::sim
