#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "raft/sim/sim_internal.h"

namespace shoal::raft::sim::internal {

const char* MsgName(raftpb::MessageType t) {
  switch (t) {
    case raftpb::MESSAGE_TYPE_HUP:
      return "HUP";
    case raftpb::MESSAGE_TYPE_BEAT:
      return "BEAT";
    case raftpb::MESSAGE_TYPE_PROP:
      return "PROP";
    case raftpb::MESSAGE_TYPE_APP:
      return "APP";
    case raftpb::MESSAGE_TYPE_APP_RESP:
      return "APP_RESP";
    case raftpb::MESSAGE_TYPE_VOTE:
      return "VOTE";
    case raftpb::MESSAGE_TYPE_VOTE_RESP:
      return "VOTE_RESP";
    case raftpb::MESSAGE_TYPE_PRE_VOTE:
      return "PRE_VOTE";
    case raftpb::MESSAGE_TYPE_PRE_VOTE_RESP:
      return "PRE_VOTE_RESP";
    case raftpb::MESSAGE_TYPE_SNAP:
      return "SNAP";
    case raftpb::MESSAGE_TYPE_HEARTBEAT:
      return "HEARTBEAT";
    case raftpb::MESSAGE_TYPE_HEARTBEAT_RESP:
      return "HEARTBEAT_RESP";
    case raftpb::MESSAGE_TYPE_UNREACHABLE:
      return "UNREACHABLE";
    case raftpb::MESSAGE_TYPE_SNAP_STATUS:
      return "SNAP_STATUS";
    case raftpb::MESSAGE_TYPE_CHECK_QUORUM:
      return "CHECK_QUORUM";
    case raftpb::MESSAGE_TYPE_TRANSFER_LEADER:
      return "TRANSFER_LEADER";
    case raftpb::MESSAGE_TYPE_TIMEOUT_NOW:
      return "TIMEOUT_NOW";
    case raftpb::MESSAGE_TYPE_READ_INDEX:
      return "READ_INDEX";
    case raftpb::MESSAGE_TYPE_READ_INDEX_RESP:
      return "READ_INDEX_RESP";
    default:
      return "?";
  }
}

const char* StateName(StateType s) {
  switch (s) {
    case StateType::kFollower:
      return "follower";
    case StateType::kCandidate:
      return "candidate";
    case StateType::kLeader:
      return "leader";
    case StateType::kPreCandidate:
      return "pre-candidate";
  }
  return "?";
}

std::string FormatMessage(const raftpb::Message& m) {
  std::string s = absl::StrFormat("%d->%d %s t%d", m.from(), m.to(), MsgName(m.type()), m.term());
  switch (m.type()) {
    case raftpb::MESSAGE_TYPE_APP:
      absl::StrAppendFormat(&s, " prev %d/t%d n%d commit %d", m.index(), m.log_term(),
                            m.entries_size(), m.commit());
      if (m.entries_size() > 0) {
        absl::StrAppendFormat(&s, " [%d..%d]", m.entries(0).index(),
                              m.entries(m.entries_size() - 1).index());
      }
      break;
    case raftpb::MESSAGE_TYPE_APP_RESP:
      absl::StrAppendFormat(&s, " index %d%s", m.index(),
                            m.reject() ? absl::StrCat(" REJECT hint ", m.reject_hint()) : "");
      break;
    case raftpb::MESSAGE_TYPE_VOTE:
    case raftpb::MESSAGE_TYPE_PRE_VOTE:
      absl::StrAppendFormat(&s, " last %d/t%d", m.index(), m.log_term());
      break;
    case raftpb::MESSAGE_TYPE_VOTE_RESP:
    case raftpb::MESSAGE_TYPE_PRE_VOTE_RESP:
      s += m.reject() ? " rejected" : " granted";
      break;
    case raftpb::MESSAGE_TYPE_HEARTBEAT:
      absl::StrAppendFormat(&s, " commit %d", m.commit());
      break;
    case raftpb::MESSAGE_TYPE_SNAP:
      absl::StrAppendFormat(&s, " snap %d/t%d", m.snapshot().metadata().index(),
                            m.snapshot().metadata().term());
      break;
    default:
      break;
  }
  return s;
}

std::string FormatConf(const raftpb::ConfState& cs) {
  return absl::StrCat("voters {", absl::StrJoin(cs.voters(), ","), "} learners {",
                      absl::StrJoin(cs.learners(), ","), "}");
}

Member& Sim::AddMember(uint64_t id, bool founding) {
  auto m = std::make_unique<Member>();
  m->id = id;
  m->founding = founding;
  m->tick_factor = 1.0 + scenario_.clock_skew * (2 * rng_.UniformDouble() - 1);
  Member& ref = *m;
  members_[id] = std::move(m);
  next_member_id_ = std::max(next_member_id_, id + 1);
  return ref;
}

void Sim::StartMember(Member& m) {
  Config c;
  c.id = m.id;
  c.election_tick = scenario_.election_tick;
  c.heartbeat_tick = scenario_.heartbeat_tick;
  c.storage = m.storage.get();
  auto snap = m.storage->GetSnapshot();
  // The state machine is rebuilt from the snapshot, so everything after it is applied again.
  c.applied = snap.ok() ? snap->metadata().index() : 0;
  c.max_size_per_msg = scenario_.max_size_per_msg;
  c.max_inflight_msgs = scenario_.max_inflight_msgs;
  c.check_quorum = scenario_.check_quorum;
  c.pre_vote = scenario_.pre_vote;
  c.read_only_option = scenario_.lease_reads ? ReadOnlyOption::kLeaseBased : ReadOnlyOption::kSafe;
  c.max_uncommitted_entries_size = scenario_.max_uncommitted_entries_size;
  c.random_seed = rng_.Next() | 1;
  if (scenario_.durable_state_machine && m.durable_applied > c.applied) {
    c.applied = m.durable_applied;
  }
  auto node = RawNode::Create(c);
  if (!node.ok()) {
    Fail("driver",
         absl::StrCat("RawNode::Create for member ", m.id, " failed: ", node.status().ToString()));
    return;
  }
  m.node = *std::move(node);
  m.up = true;
  ++m.incarnation;
  m.unsynced_hs.reset();
  m.last_hs = m.storage->hard_state();
  m.armed = CrashPoint::kNone;
  if (scenario_.bootstrap_via_log && m.founding && m.storage->LastIndex() == 0 &&
      m.last_hs.term() == 0) {
    if (absl::Status s = m.node->Bootstrap(founders_); !s.ok()) {
      Fail("driver", absl::StrCat("Bootstrap of member ", m.id, " failed: ", s.ToString()));
      return;
    }
  }
  auto initial = m.storage->GetInitialState();
  m.kv = KvStateMachine();
  m.kv.set_dedupe(options_.inject != InjectedBug::kNoDedupe);
  const uint64_t snap_index = snap.ok() ? snap->metadata().index() : 0;
  const bool from_durable_kv = c.applied > snap_index;
  const std::string kv_data = from_durable_kv ? m.durable_kv : snap.ok() ? snap->data() : "";
  if (!kv_data.empty()) {
    if (absl::Status s = m.kv.Restore(kv_data); !s.ok()) {
      Fail("driver", absl::StrCat("member ", m.id, " cannot restore its state: ", s.ToString()));
      return;
    }
  }
  m.applied = c.applied;
  m.last_snapshot = snap_index;
  // The core rebuilt the membership as of `applied` (snapshot + conf changes up to it).
  m.conf = from_durable_kv ? m.node->GetStatus().conf_state
                           : (initial.ok() ? initial->conf_state : raftpb::ConfState());
  Trace(absl::StrFormat(
      "m%d start (incarnation %d): snapshot %d, term %d vote %d commit %d, "
      "log (%d..%d], %s",
      m.id, m.incarnation, m.applied, m.last_hs.term(), m.last_hs.vote(), m.last_hs.commit(),
      m.storage->FirstIndex() - 1, m.storage->LastIndex(), FormatConf(m.conf)));
  checker_.ObserveRestart(m.id, m.last_hs.commit(), m.applied, m.durable);
  if (m.applied > 0) {
    auto term = m.storage->Term(m.applied);
    checker_.ObserveSnapshotState(m.id, m.applied, term.ok() ? *term : 0, StableHash(kv_data),
                                  /*restored=*/true);
  }
  ScheduleTick(m);
  MaybeScheduleReady(m);
}

void Sim::Crash(Member& m, const std::string& why) {
  ++stats_.crashes;
  if (m.ready_in_progress) ++stats_.crashes_mid_ready;
  Trace(absl::StrFormat(
      "m%d CRASH %s%s", m.id, why,
      m.unsynced_hs ? absl::StrFormat(" (loses unsynced commit %d)", m.unsynced_hs->commit())
                    : ""));
  Stop(m);
  if (phase_ == Phase::kFaults) {
    const uint64_t id = m.id;
    queue_.After(rng_.Range(10 * kMillisecond, kSecond), [this, id] {
      Member* r = Find(id);
      if (r != nullptr && !r->up && !r->removed && !failed()) StartMember(*r);
    });
  }
}

void Sim::Stop(Member& m) {
  m.up = false;
  ++m.incarnation;
  m.node.reset();
  m.kv = KvStateMachine();
  m.unsynced_hs.reset();
  m.ready_scheduled = m.ready_in_progress = false;
  m.ready = Ready();
  m.inbox.clear();
  m.waiting.clear();
  m.reads.clear();
  m.armed = CrashPoint::kNone;
  checker_.ObserveCrash(m.id);
}

void Sim::ScheduleTick(Member& m) {
  const double jitter = 1.0 + 0.25 * scenario_.clock_skew * (2 * rng_.UniformDouble() - 1);
  const SimTime period =
      std::max<SimTime>(1, static_cast<SimTime>(scenario_.tick_interval * m.tick_factor * jitter));
  const uint64_t id = m.id, inc = m.incarnation;
  queue_.After(period, [this, id, inc] {
    Member* t = Find(id);
    if (!Alive(t, inc)) return;
    Interact(*t, [t] { t->node->Tick(); });
    ScheduleTick(*t);
  });
}

void Sim::Interact(Member& m, std::function<void()> fn) {
  if (!m.up) return;
  if (!scenario_.step_during_ready && m.ready_in_progress) {
    m.inbox.push_back(std::move(fn));
    return;
  }
  fn();
  MaybeScheduleReady(m);
}

void Sim::MaybeScheduleReady(Member& m) {
  if (!m.up || m.ready_scheduled || m.ready_in_progress || !m.node->HasReady()) return;
  m.ready_scheduled = true;
  const uint64_t id = m.id, inc = m.incarnation;
  queue_.After(rng_.Range(0, 20), [this, id, inc] { ReadyStart(id, inc); });
}

void Sim::ReadyStart(uint64_t id, uint64_t inc) {
  Member* m = Find(id);
  if (!Alive(m, inc)) return;
  m->ready_scheduled = false;
  if (!m->node->HasReady()) return;
  m->ready = m->node->GetReady();
  m->ready_in_progress = true;
  const Ready& rd = m->ready;
  if (rd.soft_state) {
    Trace(absl::StrFormat("m%d is %s, leader %d, term %d", id, StateName(rd.soft_state->raft_state),
                          rd.soft_state->lead, m->node->raft().term()));
  }
  // Writing takes time, longer when it must reach the disk.
  if (options_.inject == InjectedBug::kSendBeforePersist) {
    // The planted bug: messages leave while the write is still on its way to the disk.
    for (const raftpb::Message& msg : rd.messages) SendRaft(*m, msg);
  }
  const SimTime latency = rd.must_sync || rd.snapshot.metadata().index() != 0
                              ? rng_.Range(100, 2000)
                              : rng_.Range(5, 50);
  queue_.After(latency, [this, id, inc] { ReadyPersist(id, inc); });
}

void Sim::ReadyPersist(uint64_t id, uint64_t inc) {
  Member* mp = Find(id);
  if (!Alive(mp, inc)) return;
  Member& m = *mp;
  if (m.armed == CrashPoint::kBeforePersist) {
    Crash(m, "before persisting its Ready");
    return;
  }
  const Ready& rd = m.ready;
  const uint64_t snap_index = rd.snapshot.metadata().index();
  if (!rd.must_sync) {
    if (!rd.entries.empty()) {
      Fail("driver", absl::StrFormat("m%d: Ready with %d entries has must_sync = false", id,
                                     rd.entries.size()));
      return;
    }
    if (rd.hard_state &&
        (rd.hard_state->term() != m.last_hs.term() || rd.hard_state->vote() != m.last_hs.vote())) {
      Fail("driver", absl::StrFormat("m%d: Ready changes term/vote (%d/%d -> %d/%d) but has "
                                     "must_sync = false",
                                     id, m.last_hs.term(), m.last_hs.vote(), rd.hard_state->term(),
                                     rd.hard_state->vote()));
      return;
    }
  }
  // A snapshot write is always made durable (with everything before it).
  const bool sync = rd.must_sync || snap_index != 0;
  if (snap_index != 0) {
    if (absl::Status s = m.storage->ApplySnapshot(rd.snapshot); !s.ok()) {
      Fail("driver",
           absl::StrFormat("m%d: storing snapshot %d failed: %s", id, snap_index, s.ToString()));
      return;
    }
  }
  if (!rd.entries.empty()) {
    const Raft& r = m.node->raft();
    const uint64_t leader_term = r.state() == StateType::kLeader ? r.term() : 0;
    checker_.ObserveBeforeStore(id, leader_term, rd.entries, m.durable);
    if (absl::Status s = m.storage->Append(rd.entries); !s.ok()) {
      Fail("driver",
           absl::StrFormat("m%d: appending entries [%d..%d] failed: %s", id,
                           rd.entries.front().index(), rd.entries.back().index(), s.ToString()));
      return;
    }
    checker_.ObserveStored(id, rd.entries, m.durable);
  }
  if (rd.hard_state) {
    m.last_hs = *rd.hard_state;
    if (sync && options_.inject == InjectedBug::kUnsyncedHardState) {
      // The bug: only the commit index reaches the disk with the entries.
      raftpb::HardState hs = m.storage->hard_state();
      hs.set_commit(
          std::max(hs.commit(), std::min(rd.hard_state->commit(), m.storage->LastIndex())));
      (void)m.storage->SetHardState(hs);
      m.unsynced_hs.reset();
    } else if (sync) {
      (void)m.storage->SetHardState(*rd.hard_state);
      m.unsynced_hs.reset();
    } else {
      m.unsynced_hs = *rd.hard_state;
    }
  } else if (sync && m.unsynced_hs) {
    (void)m.storage->SetHardState(*m.unsynced_hs);
    m.unsynced_hs.reset();
  }
  storage_changed_ = true;
  if (snap_index != 0 || !rd.entries.empty() || rd.hard_state || !rd.messages.empty()) {
    std::string line = absl::StrFormat("m%d persist%s:", id, sync ? "+sync" : "");
    if (snap_index != 0) {
      absl::StrAppendFormat(&line, " snapshot %d/t%d", snap_index, rd.snapshot.metadata().term());
    }
    if (!rd.entries.empty()) {
      absl::StrAppendFormat(&line, " entries [%d..%d] t%d", rd.entries.front().index(),
                            rd.entries.back().index(), rd.entries.back().term());
    }
    if (rd.hard_state) {
      absl::StrAppendFormat(&line, " hs(t%d v%d c%d)", rd.hard_state->term(), rd.hard_state->vote(),
                            rd.hard_state->commit());
    }
    absl::StrAppendFormat(&line, "; send %d", rd.messages.size());
    Trace(std::move(line));
  }
  if (options_.inject != InjectedBug::kSendBeforePersist) {
    for (const raftpb::Message& msg : rd.messages) SendRaft(m, msg);
  }
  if (m.armed == CrashPoint::kAfterPersist) {
    Crash(m, "after persisting and sending, before applying");
    return;
  }
  queue_.After(rng_.Range(5, 200), [this, id, inc] { ReadyApply(id, inc); });
}

void Sim::ReadyApply(uint64_t id, uint64_t inc) {
  Member* mp = Find(id);
  if (!Alive(mp, inc)) return;
  Member& m = *mp;
  const Ready& rd = m.ready;
  if (const uint64_t snap_index = rd.snapshot.metadata().index(); snap_index != 0) {
    if (absl::Status s = m.kv.Restore(rd.snapshot.data()); !s.ok()) {
      Fail("driver", absl::StrCat("m", id, ": snapshot data unusable: ", s.ToString()));
      return;
    }
    m.applied = snap_index;
    m.last_snapshot = snap_index;
    m.conf = rd.snapshot.metadata().conf_state();
    m.durable_kv.clear();
    m.durable_applied = 0;  // Now older than the snapshot; the next apply step rewrites it.
    ++stats_.snapshots_installed;
    Trace(absl::StrFormat("m%d installs snapshot %d/t%d, %s", id, snap_index,
                          rd.snapshot.metadata().term(), FormatConf(m.conf)));
    checker_.ObserveSnapshotState(id, snap_index, rd.snapshot.metadata().term(),
                                  StableHash(rd.snapshot.data()), /*restored=*/true);
  }
  if (!rd.committed_entries.empty()) {
    Trace(absl::StrFormat("m%d apply [%d..%d]", id, rd.committed_entries.front().index(),
                          rd.committed_entries.back().index()));
  }
  for (const raftpb::Entry& e : rd.committed_entries) {
    ApplyEntry(m, e);
    if (failed()) return;
  }
  for (const ReadState& rs : rd.read_states) {
    auto it = m.reads.find(rs.request_ctx);
    if (it != m.reads.end()) it->second.index = rs.index;
  }
  ServeReads(m);
  if (scenario_.durable_state_machine && m.applied > m.durable_applied) {
    // The store commits its state with its applied index. The hard state goes to disk first so
    // that the durable commit index never trails the durable applied index.
    if (m.unsynced_hs) {
      (void)m.storage->SetHardState(*m.unsynced_hs);
      m.unsynced_hs.reset();
    }
    m.durable_kv = m.kv.Serialize();
    m.durable_applied = m.applied;
  }
  if (m.armed == CrashPoint::kAfterApply) {
    Crash(m, "after applying, before Advance");
    return;
  }
  m.node->Advance(rd);
  m.ready_in_progress = false;
  m.ready = Ready();
  MaybeSnapshot(m);
  std::vector<std::function<void()>> inbox = std::move(m.inbox);
  m.inbox.clear();
  for (auto& fn : inbox) {
    if (!m.up || failed()) break;
    fn();
  }
  MaybeScheduleReady(m);
}

void Sim::ApplyEntry(Member& m, const raftpb::Entry& e) {
  checker_.ObserveApplied(m.id, e);
  m.applied = e.index();
  if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
    raftpb::ConfChange cc;
    if (!cc.ParseFromString(e.data())) {
      Fail("driver",
           absl::StrFormat("m%d: entry %d is an unreadable conf change", m.id, e.index()));
      return;
    }
    m.conf = m.node->ApplyConfChange(cc);
    // Bootstrap entries are exempt: founding members take the whole founding membership at
    // once (RawNode::Bootstrap), a member replaying them gets there one entry at a time.
    const bool bootstrap_entry =
        scenario_.bootstrap_via_log && e.index() <= static_cast<uint64_t>(founders_.size());
    const std::string conf = m.conf.SerializeAsString();
    auto [it, fresh] = conf_at_.emplace(e.index(), conf);
    if (!fresh && it->second != conf && !bootstrap_entry) {
      Fail("invariant: state-machine safety",
           absl::StrFormat("membership after conf change %d differs between members: m%d has %s",
                           e.index(), m.id, FormatConf(m.conf)));
      return;
    }
    if (fresh) {
      Trace(absl::StrFormat("m%d applies conf change %d (type %d node %d) -> %s", m.id, e.index(),
                            cc.type(), cc.node_id(), FormatConf(m.conf)));
    }
    if (e.index() > latest_conf_index_) {
      latest_conf_index_ = e.index();
      latest_conf_ = m.conf;
      storage_changed_ = true;  // The voters changed.
      if (!bootstrap_entry) ++stats_.conf_changes;
      OnConfCommitted(cc);
    }
    return;
  }
  if (e.data().empty()) return;  // A new leader's empty entry.
  std::optional<KvCommand> cmd = KvCommand::Decode(e.data());
  if (!cmd.has_value()) {
    Fail("driver", absl::StrFormat("m%d: entry %d holds no KV command", m.id, e.index()));
    return;
  }
  KvResult result;
  const KvStateMachine::Outcome outcome = m.kv.Apply(*cmd, &result);
  auto w = m.waiting.find(cmd->client);
  if (w != m.waiting.end() && w->second == cmd->seq && outcome != KvStateMachine::Outcome::kStale) {
    m.waiting.erase(w);
    ClientReply r;
    r.client = cmd->client;
    r.seq = cmd->seq;
    r.ok = true;
    r.result = result;
    Reply(m, r);
  }
}

void Sim::ServeReads(Member& m) {
  for (auto it = m.reads.begin(); it != m.reads.end();) {
    if (!it->second.index.has_value() || *it->second.index > m.applied) {
      ++it;
      continue;
    }
    ClientReply r;
    r.client = it->second.client;
    r.seq = it->second.seq;
    r.ok = true;
    r.result.value = m.kv.Get(it->second.key);
    ++stats_.read_index_reads;
    Reply(m, r);
    it = m.reads.erase(it);
  }
}

void Sim::MaybeSnapshot(Member& m) {
  if (scenario_.snapshot_every == 0 ||
      m.applied < m.last_snapshot + static_cast<uint64_t>(scenario_.snapshot_every)) {
    return;
  }
  // The snapshot is written durably, and with it everything written before (so the durable
  // commit index is never below the snapshot).
  if (m.unsynced_hs) {
    (void)m.storage->SetHardState(*m.unsynced_hs);
    m.unsynced_hs.reset();
  }
  std::string data = m.kv.Serialize();
  const uint64_t hash = StableHash(data);
  auto snap = m.storage->CreateSnapshot(m.applied, &m.conf, std::move(data));
  if (!snap.ok()) {
    Fail("driver", absl::StrFormat("m%d: CreateSnapshot(%d) failed: %s", m.id, m.applied,
                                   snap.status().ToString()));
    return;
  }
  const uint64_t keep = static_cast<uint64_t>(scenario_.snapshot_keep);
  const uint64_t compact = m.applied > keep ? m.applied - keep : 0;
  if (compact > m.storage->FirstIndex() - 1) {
    if (absl::Status s = m.storage->Compact(compact); !s.ok()) {
      Fail("driver", absl::StrFormat("m%d: Compact(%d) failed: %s", m.id, compact, s.ToString()));
      return;
    }
  }
  m.last_snapshot = m.applied;
  storage_changed_ = true;
  ++stats_.snapshots_taken;
  Trace(absl::StrFormat("m%d snapshot at %d, log now (%d..%d]", m.id, m.applied,
                        m.storage->FirstIndex() - 1, m.storage->LastIndex()));
  checker_.ObserveSnapshotState(m.id, m.applied, snap->term(), hash,
                                /*restored=*/false);
}

void Sim::LaterOnSender(uint64_t from, uint64_t inc, std::function<void(Member&)> fn) {
  queue_.After(rng_.Range(kMillisecond, 10 * kMillisecond), [this, from, inc, fn] {
    Member* m = Find(from);
    if (!Alive(m, inc)) return;
    Interact(*m, [m, fn] { fn(*m); });
  });
}

void Sim::SendRaft(Member& m, const raftpb::Message& msg) {
  const uint64_t from = m.id, to = msg.to(), inc = m.incarnation;
  const bool snap = msg.type() == raftpb::MESSAGE_TYPE_SNAP;
  net_.Send(
      from, to,
      [this, msg, from, inc, snap] {
        DeliverRaft(msg);
        // The transport learns that the snapshot arrived, and tells the sender's core.
        if (snap) {
          const uint64_t to = msg.to();
          LaterOnSender(from, inc, [to](Member& s) { s.node->ReportSnapshot(to, false); });
        }
      },
      [this, from, to, inc, snap](bool blocked) {
        if (snap) {
          LaterOnSender(from, inc, [to](Member& s) { s.node->ReportSnapshot(to, true); });
        } else if (blocked && rng_.Bernoulli(0.2)) {
          LaterOnSender(from, inc, [to](Member& s) { s.node->ReportUnreachable(to); });
        }
      });
}

void Sim::DeliverRaft(const raftpb::Message& msg) {
  Member* m = Find(msg.to());
  if (m == nullptr || !m->up) return;
  Trace(absl::StrCat("deliver ", FormatMessage(msg)));
  const uint64_t id = m->id;
  Interact(*m, [this, m, id, msg] {
    absl::Status s = m->node->Step(msg);
    if (!s.ok()) Trace(absl::StrFormat("m%d Step(%s): %s", id, MsgName(msg.type()), s.ToString()));
  });
}

}  // namespace shoal::raft::sim::internal
