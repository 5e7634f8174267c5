#include "raft/node/raft_node.h"

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "raft/core/raft.h"
#include "spdlog/spdlog.h"

namespace shoal::raft {
namespace {

constexpr size_t kIdBytes = 8;

std::string FrameEntry(uint64_t proposal_id, const std::string& payload) {
  std::string out(kIdBytes + payload.size(), '\0');
  for (size_t i = 0; i < kIdBytes; ++i) out[i] = static_cast<char>(proposal_id >> (8 * i));
  std::memcpy(out.data() + kIdBytes, payload.data(), payload.size());
  return out;
}

// Splits a NORMAL entry's data into (proposal ID, payload). False for foreign or empty data.
bool UnframeEntry(const std::string& data, uint64_t* proposal_id, std::string* payload) {
  if (data.size() < kIdBytes) return false;
  uint64_t id = 0;
  for (size_t i = 0; i < kIdBytes; ++i)
    id |= static_cast<uint64_t>(static_cast<uint8_t>(data[i])) << (8 * i);
  *proposal_id = id;
  payload->assign(data, kIdBytes, std::string::npos);
  return true;
}

// Leader-to-follower messages a leader may send before its own disk write completes.
bool SafeToSendBeforePersist(const raftpb::Message& m) {
  switch (m.type()) {
    case raftpb::MESSAGE_TYPE_APP:
    case raftpb::MESSAGE_TYPE_HEARTBEAT:
    case raftpb::MESSAGE_TYPE_SNAP:
      return true;
    default:
      return false;
  }
}

}  // namespace

RaftNode::RaftNode(RaftNodeOptions options, StateMachine* sm, Transport* transport)
    : options_(std::move(options)),
      sm_(sm),
      transport_(transport),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock()) {}

RaftNode::~RaftNode() { Stop(); }

absl::StatusOr<std::unique_ptr<RaftNode>> RaftNode::Start(RaftNodeOptions options,
                                                          StateMachine* state_machine,
                                                          Transport* transport) {
  if (options.id == 0) return absl::InvalidArgumentError("raft node id must be non-zero");
  if (options.dir.empty()) return absl::InvalidArgumentError("raft node needs a directory");
  std::unique_ptr<RaftNode> node(new RaftNode(std::move(options), state_machine, transport));
  if (absl::Status s = node->Init(); !s.ok()) return s;
  node->loop_ = std::thread([n = node.get()] { n->Loop(); });
  return node;
}

absl::Status RaftNode::Init() {
  Encrypter* enc = options_.encrypter;
  if (enc == nullptr) {
    no_encryption_ = std::make_unique<NoEncryption>();
    enc = no_encryption_.get();
  }
  absl::StatusOr<std::unique_ptr<DurableLog>> durable = DurableLog::Open(options_.dir, enc);
  if (!durable.ok()) return durable.status();
  durable_ = std::move(*durable);
  absl::StatusOr<LoadedState> loaded = durable_->Load();
  if (!loaded.ok()) return loaded.status();

  const bool fresh = loaded->snapshot.metadata().index() == 0 && loaded->entries.empty() &&
                     loaded->hard_state.term() == 0;
  if (options_.force_new_cluster && !fresh) {
    if (absl::Status s = ForceNewCluster(&*loaded); !s.ok()) return s;
  }
  for (const api::RaftMember& m : options_.join_members) members_[m.raft_id()] = m;
  if (loaded->snapshot.metadata().index() != 0) {
    if (absl::Status s = storage_.ApplySnapshot(loaded->snapshot); !s.ok()) return s;
    if (absl::Status s = RestoreSnapshot(loaded->snapshot); !s.ok()) return s;
  }
  if (absl::Status s = storage_.Append(loaded->entries); !s.ok()) return s;
  if (absl::Status s = storage_.SetHardState(loaded->hard_state); !s.ok()) return s;

  Config config;
  config.id = options_.id;
  config.election_tick = options_.election_tick;
  config.heartbeat_tick = options_.heartbeat_tick;
  config.storage = &storage_;
  config.applied = applied_;
  config.max_size_per_msg = options_.max_size_per_msg;
  config.max_inflight_msgs = options_.max_inflight_msgs;
  config.check_quorum = true;
  config.pre_vote = true;
  absl::StatusOr<std::unique_ptr<RawNode>> raw = RawNode::Create(config);
  if (!raw.ok()) return raw.status();
  raw_ = std::move(*raw);

  if (fresh && !options_.bootstrap_members.empty()) {
    // Each founder's address travels in its conf change, so a restart relearns it from the log.
    std::vector<raftpb::ConfChange> founders;
    for (const api::RaftMember& m : options_.bootstrap_members) {
      raftpb::ConfChange cc;
      cc.set_type(raftpb::CONF_CHANGE_TYPE_ADD_NODE);
      cc.set_node_id(m.raft_id());
      cc.set_context(m.SerializeAsString());
      founders.push_back(std::move(cc));
    }
    if (absl::Status s = raw_->Bootstrap(founders); !s.ok()) return s;
  }
  UpdatePeers();
  next_tick_ = clock_->Now() + options_.tick_interval;
  PublishInfo();
  spdlog::info(
      "raft {}: started at term {}, commit {}, applied {}{}", options_.id,
      loaded->hard_state.term(), loaded->hard_state.commit(), applied_,
      fresh ? (options_.bootstrap_members.empty() ? " (new, joining)" : " (bootstrapped)") : "");
  return absl::OkStatus();
}

absl::Status RaftNode::ForceNewCluster(LoadedState* loaded) {
  const uint64_t commit = loaded->hard_state.commit();
  std::vector<raftpb::Entry> kept;
  for (raftpb::Entry& e : loaded->entries) {
    if (e.index() <= commit) kept.push_back(std::move(e));
  }
  const size_t dropped = loaded->entries.size() - kept.size();
  // The membership as of the last committed entry.
  std::set<uint64_t> ids;
  const raftpb::ConfState& cs = loaded->snapshot.metadata().conf_state();
  ids.insert(cs.voters().begin(), cs.voters().end());
  ids.insert(cs.learners().begin(), cs.learners().end());
  for (const raftpb::Entry& e : kept) {
    if (e.type() != raftpb::ENTRY_TYPE_CONF_CHANGE) continue;
    raftpb::ConfChange cc;
    if (!cc.ParseFromString(e.data())) {
      return absl::DataLossError(absl::StrCat("unreadable conf change at index ", e.index()));
    }
    if (cc.type() == raftpb::CONF_CHANGE_TYPE_REMOVE_NODE) {
      ids.erase(cc.node_id());
    } else {
      ids.insert(cc.node_id());
    }
  }
  if (ids.count(options_.id) == 0) {
    return absl::FailedPreconditionError(
        "--force-new-cluster: this manager is not a member of the Raft group its log describes "
        "(it was removed); it cannot restart the cluster alone");
  }
  uint64_t last_index = kept.empty() ? loaded->snapshot.metadata().index() : kept.back().index();
  const uint64_t last_term = kept.empty() ? loaded->snapshot.metadata().term() : kept.back().term();
  std::vector<raftpb::Entry> appended;
  for (uint64_t id : ids) {
    if (id == options_.id) continue;
    raftpb::ConfChange cc;
    cc.set_type(raftpb::CONF_CHANGE_TYPE_REMOVE_NODE);
    cc.set_node_id(id);
    raftpb::Entry e;
    e.set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
    e.set_term(last_term);
    e.set_index(++last_index);
    e.set_data(cc.SerializeAsString());
    appended.push_back(std::move(e));
  }
  // An empty entry (the kind a new leader appends) so that the write below always replaces the
  // uncommitted suffix, even when there is no other member to remove.
  raftpb::Entry noop;
  noop.set_term(last_term);
  noop.set_index(++last_index);
  appended.push_back(std::move(noop));
  loaded->hard_state.set_commit(last_index);
  // One synced write: the appended entries replace the uncommitted suffix (if any).
  if (absl::Status s = durable_->Save(loaded->hard_state, appended, /*sync=*/true); !s.ok()) {
    return s;
  }
  spdlog::warn(
      "raft {}: forcing a new cluster: dropped {} uncommitted entries, removing {} other "
      "members at indexes up to {}",
      options_.id, dropped, appended.size(), last_index);
  for (raftpb::Entry& e : appended) kept.push_back(std::move(e));
  loaded->entries = std::move(kept);
  return absl::OkStatus();
}

void RaftNode::Stop() {
  // Concurrent callers all return once the loop has exited.
  std::call_once(stop_once_, [this] {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (loop_.joinable()) loop_.join();
    // Close the log now, not at destruction: a successor member in this process (a restarted
    // role) may open the same directory while something still holds this object.
    durable_.reset();
  });
}

// --- Mailbox --------------------------------------------------------------------------------

void RaftNode::Receive(raftpb::Message m) {
  absl::MutexLock lock(&mu_);
  if (!stopping_) inbound_.push_back(std::move(m));
}

void RaftNode::ReceiveBatch(std::vector<raftpb::Message> msgs) {
  // One lock, so the loop is woken once for the whole batch.
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  for (raftpb::Message& m : msgs) inbound_.push_back(std::move(m));
}

void RaftNode::ReportUnreachable(uint64_t peer) {
  absl::MutexLock lock(&mu_);
  unreachable_.push_back(peer);
}

void RaftNode::ReportSnapshot(uint64_t peer, bool failed) {
  absl::MutexLock lock(&mu_);
  snapshot_reports_.emplace_back(peer, failed);
}

std::shared_ptr<RaftNode::Waiter> RaftNode::Enqueue(PendingProposal p, Callback done) {
  auto waiter = std::make_shared<Waiter>();
  waiter->callback = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      p.id = (options_.id << 40) ^ ++next_proposal_id_;
      if (p.kind == PendingProposal::Kind::kEntry) p.data = FrameEntry(p.id, p.data);
      p.waiter = waiter;
      proposals_.push_back(std::move(p));
      return waiter;
    }
  }
  Finish(waiter, absl::CancelledError("raft node is stopping"));  // no lock: it may call back
  return waiter;
}

void RaftNode::Complete(const std::shared_ptr<Waiter>& w, absl::StatusOr<std::string> result) {
  completions_.emplace_back(w, std::move(result));
}

void RaftNode::Finish(const std::shared_ptr<Waiter>& w, absl::StatusOr<std::string> result) {
  {
    absl::MutexLock lock(&w->mu);
    if (w->done) return;
    w->done = true;
    if (!w->callback) {
      w->result = std::move(result);
      return;
    }
  }
  w->callback(std::move(result));
}

absl::StatusOr<std::string> RaftNode::Await(const std::shared_ptr<Waiter>& w, absl::Time deadline) {
  absl::MutexLock lock(&w->mu);
  // The deadline is wall-clock: callers are real clients, whatever clock drives the ticks.
  w->mu.AwaitWithDeadline(absl::Condition(&w->done), deadline);
  if (!w->done) {
    return absl::DeadlineExceededError(
        "raft: timed out waiting for the entry to be applied; it may still commit");
  }
  return w->result;
}

absl::StatusOr<std::string> RaftNode::Propose(std::string data, absl::Time deadline) {
  PendingProposal p;
  p.data = std::move(data);
  return Await(Enqueue(std::move(p)), deadline);
}

void RaftNode::ProposeAsync(std::string data, Callback done) {
  PendingProposal p;
  p.data = std::move(data);
  Enqueue(std::move(p), std::move(done));
}

void RaftNode::EnqueueRead(std::shared_ptr<Waiter> waiter) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::CancelledError("raft node is stopping");
    } else if (info_.leader == 0) {
      refused = absl::UnavailableError("raft: no leader known; retry");
    } else {
      read_requests_.push_back(std::move(waiter));
      return;
    }
  }
  Finish(waiter, refused);
}

absl::Status RaftNode::LinearizableRead(absl::Time deadline) {
  auto waiter = std::make_shared<Waiter>();
  EnqueueRead(waiter);
  return Await(waiter, deadline).status();
}

void RaftNode::LinearizableReadAsync(Callback done) {
  auto waiter = std::make_shared<Waiter>();
  waiter->callback = std::move(done);
  EnqueueRead(std::move(waiter));
}

absl::Status RaftNode::AddMember(const api::RaftMember& member, bool as_learner,
                                 absl::Time deadline) {
  PendingProposal p;
  p.kind = PendingProposal::Kind::kConfChange;
  p.cc.set_type(as_learner ? raftpb::CONF_CHANGE_TYPE_ADD_LEARNER_NODE
                           : raftpb::CONF_CHANGE_TYPE_ADD_NODE);
  p.cc.set_node_id(member.raft_id());
  p.cc.set_context(member.SerializeAsString());
  return Await(Enqueue(std::move(p)), deadline).status();
}

absl::Status RaftNode::RemoveMember(uint64_t id, absl::Time deadline) {
  PendingProposal p;
  p.kind = PendingProposal::Kind::kConfChange;
  p.cc.set_type(raftpb::CONF_CHANGE_TYPE_REMOVE_NODE);
  p.cc.set_node_id(id);
  return Await(Enqueue(std::move(p)), deadline).status();
}

absl::Status RaftNode::TransferLeadership(uint64_t to, absl::Time deadline) {
  PendingProposal p;
  p.kind = PendingProposal::Kind::kTransferLeader;
  p.transfer_to = to;
  absl::Status s = Await(Enqueue(std::move(p)), deadline).status();
  if (!s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto led_by_target = [this, to]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return info_.leader == to || stopping_;
  };
  mu_.AwaitWithDeadline(absl::Condition(&led_by_target), deadline);
  if (info_.leader != to) {
    return absl::DeadlineExceededError(
        absl::StrCat("raft: leadership did not move to ", to, " before the deadline"));
  }
  return absl::OkStatus();
}

absl::Status RaftNode::Reseal(absl::Time deadline) {
  auto waiter = std::make_shared<Waiter>();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("raft node is stopping");
    reseal_requests_.push_back(waiter);
  }
  absl::Status s = Await(waiter, deadline).status();
  if (absl::IsDeadlineExceeded(s)) {
    return absl::DeadlineExceededError(
        "raft: the log's reseal did not finish before the deadline; it may still complete. Call "
        "Reseal again and keep the old key until one returns OK");
  }
  return s;
}

RaftNode::Info RaftNode::GetInfo() const {
  absl::MutexLock lock(&mu_);
  return info_;
}

uint64_t RaftNode::WaitForLeader(absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto has_leader = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return info_.leader != 0; };
  mu_.AwaitWithDeadline(absl::Condition(&has_leader), deadline);
  return info_.leader;
}

// --- The loop -------------------------------------------------------------------------------

void RaftNode::Loop() {
  while (true) {
    std::deque<raftpb::Message> inbound;
    std::deque<PendingProposal> proposals;
    std::vector<std::shared_ptr<Waiter>> reads;
    std::vector<std::shared_ptr<Waiter>> reseals;
    std::vector<std::pair<uint64_t, bool>> snapshot_reports;
    std::vector<uint64_t> unreachable;
    std::optional<WrittenSnapshot> written;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !inbound_.empty() || !proposals_.empty() || !read_requests_.empty() ||
               !reseal_requests_.empty() || !snapshot_reports_.empty() || !unreachable_.empty() ||
               snapshot_written_.has_value();
      };
      // Wake for work, or for the next tick. The tick deadline is read from the injected
      // clock; the wait itself is bounded in real time so a manual clock's progress is noticed.
      const absl::Duration until_tick = next_tick_ - clock_->Now();
      if (until_tick > absl::ZeroDuration()) {
        mu_.AwaitWithTimeout(absl::Condition(&has_work), until_tick);
      }
      if (stopping_) break;
      inbound.swap(inbound_);
      proposals.swap(proposals_);
      reads.swap(read_requests_);
      reseals.swap(reseal_requests_);
      snapshot_reports.swap(snapshot_reports_);
      unreachable.swap(unreachable_);
      written.swap(snapshot_written_);
    }
    int ticks = 0;
    const absl::Time now = clock_->Now();
    while (now >= next_tick_) {
      ++ticks;
      next_tick_ += options_.tick_interval;
    }
    if (ticks > 3 * options_.election_tick) {
      // A stalled process (or a clock jump): don't fire many elections' worth of ticks at once.
      ticks = 1;
      next_tick_ = now + options_.tick_interval;
    }
    if (!reads.empty()) {
      const std::string ctx = absl::StrCat(options_.id, "/", next_read_ctx_++);
      reads_by_ctx_[ctx] = std::move(reads);
      raw_->ReadIndex(ctx);
    }
    const absl::Time iteration_start = absl::Now();
    slow_ = SlowParts{};
    if (written) {
      // Not joined here: the thread, though it has posted, may still be releasing the captured
      // state (the last reference to an old version of a large store takes a second to free).
      // The next snapshot, or the drain at a reseal or stop, joins it.
      FinishSnapshot(std::move(*written));
      slow_.snapshot = absl::Now() - iteration_start;
    }
    Process(std::move(inbound), std::move(proposals), std::move(snapshot_reports),
            std::move(unreachable), ticks);
    // Every Ready of this iteration is handled and advanced: nothing of the loop's is being
    // written, so the reseal runs alone.
    if (!reseals.empty()) {
      // A snapshot file being sealed meanwhile might miss the new key: finish it first.
      DrainSnapshot();
      RunReseal(std::move(reseals));
    }
    PublishInfo();
    if (const absl::Duration took = absl::Now() - iteration_start; took > absl::Milliseconds(500)) {
      // Longer than half the shortest election timeout: peers may have given up on this member.
      spdlog::warn(
          "raft {}: one loop iteration took {} ms (persist {} ms, apply {} ms of {} entries, "
          "snapshot {} ms)",
          options_.id, absl::ToInt64Milliseconds(took), absl::ToInt64Milliseconds(slow_.persist),
          absl::ToInt64Milliseconds(slow_.apply), slow_.applied,
          absl::ToInt64Milliseconds(slow_.snapshot));
    }
    // Callers wake only now, so that what they read from GetInfo() includes their entry.
    for (auto& [waiter, result] : completions_) Finish(waiter, std::move(result));
    completions_.clear();
  }
  DrainSnapshot();
  for (auto& [waiter, result] : completions_) Finish(waiter, std::move(result));
  completions_.clear();
  FailAll(absl::CancelledError("raft node is stopping"));
  std::deque<PendingProposal> proposals;
  std::vector<std::shared_ptr<Waiter>> reads;
  {
    absl::MutexLock lock(&mu_);
    proposals.swap(proposals_);
    reads.swap(read_requests_);
    reads.insert(reads.end(), reseal_requests_.begin(), reseal_requests_.end());
    reseal_requests_.clear();
  }
  for (auto& p : proposals) Finish(p.waiter, absl::CancelledError("raft node is stopping"));
  for (auto& w : reads) Finish(w, absl::CancelledError("raft node is stopping"));
}

void RaftNode::Process(std::deque<raftpb::Message> inbound, std::deque<PendingProposal> proposals,
                       std::vector<std::pair<uint64_t, bool>> snapshot_reports,
                       std::vector<uint64_t> unreachable, int ticks) {
  for (int i = 0; i < ticks; ++i) raw_->Tick();
  for (const auto& [peer, failed] : snapshot_reports) raw_->ReportSnapshot(peer, failed);
  for (uint64_t peer : unreachable) raw_->ReportUnreachable(peer);
  for (raftpb::Message& m : inbound) {
    if (spdlog::should_log(spdlog::level::trace)) {
      spdlog::trace(
          "raft {}: recv {} from {} term {} index {} log_term {} entries {} commit {} reject {}",
          options_.id, raftpb::MessageType_Name(m.type()), m.from(), m.term(), m.index(),
          m.log_term(), m.entries_size(), m.commit(), m.reject());
    }
    absl::Status s = raw_->Step(m);
    if (!s.ok())
      spdlog::debug("raft {}: dropped message from {}: {}", options_.id, m.from(),
                    std::string(s.message()));
  }
  // Consecutive entries go to the core as one batch: one append, replicated in shared messages.
  std::vector<PendingProposal*> batch;
  for (PendingProposal& p : proposals) {
    if (p.kind == PendingProposal::Kind::kEntry) {
      batch.push_back(&p);
      continue;
    }
    ProposeBatch(batch);
    batch.clear();
    ProposeOne(p);
  }
  ProposeBatch(batch);

  while (raw_->HasReady()) {
    Ready rd = raw_->GetReady();
    if (absl::Status s = HandleReady(rd); !s.ok()) {
      // The durable log refuses further writes after a failure: this member cannot go on
      // safely. Stop participating; the operator restarts it (it recovers from disk).
      spdlog::critical("raft {}: {}; stopping this member", options_.id, std::string(s.message()));
      FailAll(absl::InternalError(absl::StrCat("raft: storage failure: ", s.message())));
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      return;
    }
    raw_->Advance(rd);
  }

  // Leadership changes: entries proposed on a leader that lost its term may be gone.
  const uint64_t lead = raw_->raft().lead();
  if (lead != last_lead_) {
    last_lead_ = lead;
    // Reads waiting on a ReadIndex that the old leader will never answer: fail them, the caller
    // retries (reads change nothing, so this is always safe).
    for (auto& [ctx, waiters] : reads_by_ctx_) {
      for (auto& w : waiters) {
        Finish(w, absl::UnavailableError("raft: leader changed during the read; retry"));
      }
    }
    reads_by_ctx_.clear();
  }
  MaybeSnapshot();
}

void RaftNode::ProposeBatch(const std::vector<PendingProposal*>& batch) {
  if (batch.empty()) return;
  std::vector<std::string> data;
  data.reserve(batch.size());
  for (PendingProposal* p : batch) data.push_back(std::move(p->data));
  const bool is_leader = raw_->raft().state() == StateType::kLeader;
  absl::Status s = raw_->ProposeBatch(std::move(data));
  if (!s.ok()) {
    const absl::Status refused = absl::UnavailableError(
        absl::StrCat("raft: proposal not accepted (", std::string(s.message()), "); retry"));
    for (PendingProposal* p : batch) Finish(p->waiter, refused);
    return;
  }
  // On the leader the entries took the last batch.size() indexes of the log.
  const uint64_t first = is_leader ? raw_->raft().raft_log().LastIndex() - batch.size() + 1 : 0;
  const uint64_t term = is_leader ? raw_->raft().term() : 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    InFlight f;
    f.waiter = std::move(batch[i]->waiter);
    f.index = is_leader ? first + i : 0;
    f.term = term;
    if (is_leader) leader_proposals_[f.index] = batch[i]->id;
    in_flight_[batch[i]->id] = std::move(f);
  }
}

void RaftNode::ProposeOne(PendingProposal& p) {
  const bool is_leader = raw_->raft().state() == StateType::kLeader;
  const uint64_t lead = raw_->raft().lead();
  switch (p.kind) {
    case PendingProposal::Kind::kTransferLeader:
      if (!is_leader) {
        Finish(p.waiter,
               absl::FailedPreconditionError(absl::StrCat("raft: not the leader (leader is ", lead,
                                                          "); transfer leadership on the leader")));
      } else {
        raw_->TransferLeader(p.transfer_to);
        Finish(p.waiter, std::string());
      }
      return;
    case PendingProposal::Kind::kConfChange:
      if (!is_leader) {
        Finish(p.waiter,
               absl::FailedPreconditionError(absl::StrCat(
                   "raft: membership changes are made on the leader (leader is ", lead, ")")));
        return;
      }
      break;
    case PendingProposal::Kind::kEntry:
      break;
  }
  absl::Status s = p.kind == PendingProposal::Kind::kConfChange ? raw_->ProposeConfChange(p.cc)
                                                                : raw_->Propose(p.data);
  if (!s.ok()) {
    Finish(p.waiter, absl::UnavailableError(absl::StrCat("raft: proposal not accepted (",
                                                         std::string(s.message()), "); retry")));
    return;
  }
  InFlight f;
  f.waiter = std::move(p.waiter);
  if (is_leader) {
    f.index = raw_->raft().raft_log().LastIndex();
    f.term = raw_->raft().term();
  }
  if (is_leader) leader_proposals_[f.index] = p.id;
  in_flight_[p.id] = std::move(f);
}

absl::Status RaftNode::HandleReady(Ready& rd) {
  // Leader optimisation: replicate while our own write is in progress (see the header).
  std::vector<raftpb::Message> after;
  std::vector<raftpb::Message> before;
  const bool leader = raw_->raft().state() == StateType::kLeader;
  for (raftpb::Message& m : rd.messages) {
    (leader && SafeToSendBeforePersist(m) ? before : after).push_back(std::move(m));
  }
  if (!before.empty()) transport_->Send(std::move(before));
  const absl::Time persist_start = absl::Now();
  if (absl::Status s = Persist(rd); !s.ok()) return s;
  slow_.persist += absl::Now() - persist_start;
  if (!after.empty()) transport_->Send(std::move(after));

  if (rd.snapshot.metadata().index() != 0) {
    if (absl::Status s = RestoreSnapshot(rd.snapshot); !s.ok()) return s;
    // Proposals in flight below the snapshot are lost to this node's view; their fate is unknown
    // here, but they will time out; those proposed as leader are settled by index below.
  }
  const absl::Time apply_start = absl::Now();
  ApplyEntries(rd.committed_entries);
  slow_.apply += absl::Now() - apply_start;
  slow_.applied += rd.committed_entries.size();
  ResolveReads(rd.read_states);
  // Reads whose index is now applied.
  while (!reads_by_index_.empty() && reads_by_index_.begin()->first <= applied_) {
    Complete(reads_by_index_.begin()->second, std::string());
    reads_by_index_.erase(reads_by_index_.begin());
  }
  return absl::OkStatus();
}

absl::Status RaftNode::Persist(const Ready& rd) {
  if (rd.hard_state.has_value() || !rd.entries.empty() || rd.snapshot.metadata().index() != 0) {
    if (absl::Status s = durable_->SaveReady(rd.hard_state, rd.entries, rd.snapshot, rd.must_sync);
        !s.ok()) {
      return s;
    }
  }
  if (rd.snapshot.metadata().index() != 0) {
    if (absl::Status s = storage_.ApplySnapshot(rd.snapshot); !s.ok()) return s;
  }
  if (!rd.entries.empty()) {
    if (absl::Status s = storage_.Append(rd.entries); !s.ok()) return s;
  }
  if (rd.hard_state.has_value()) {
    if (absl::Status s = storage_.SetHardState(*rd.hard_state); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void RaftNode::ApplyEntries(const std::vector<raftpb::Entry>& entries) {
  for (const raftpb::Entry& e : entries) {
    if (e.index() <= applied_) continue;
    if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
      ApplyConfChange(e);
    } else if (!e.data().empty()) {
      uint64_t id = 0;
      std::string payload;
      if (UnframeEntry(e.data(), &id, &payload)) {
        bytes_since_snapshot_ += e.data().size();
        std::string result = sm_->Apply(e.index(), payload);
        auto it = in_flight_.find(id);
        if (it != in_flight_.end()) {
          Complete(it->second.waiter, std::move(result));
          in_flight_.erase(it);
        }
      } else {
        spdlog::error("raft {}: entry {} has malformed data ({} bytes); skipped", options_.id,
                      e.index(), e.data().size());
      }
    }
    applied_ = e.index();
    // Proposals made as leader whose index is now applied by someone else's entry were lost
    // in a leader change: tell their callers definitively.
    while (!leader_proposals_.empty() && leader_proposals_.begin()->first <= applied_) {
      auto it = in_flight_.find(leader_proposals_.begin()->second);
      leader_proposals_.erase(leader_proposals_.begin());
      if (it == in_flight_.end()) continue;  // already answered
      Complete(it->second.waiter,
               absl::AbortedError("raft: the entry was discarded by a leader change; retry"));
      in_flight_.erase(it);
    }
  }
}

void RaftNode::ApplyConfChange(const raftpb::Entry& entry) {
  raftpb::ConfChange cc;
  if (!cc.ParseFromString(entry.data())) {
    spdlog::error("raft {}: conf change at {} does not parse; skipped", options_.id, entry.index());
    return;
  }
  conf_state_ = raw_->ApplyConfChange(cc);
  if (cc.type() == raftpb::CONF_CHANGE_TYPE_REMOVE_NODE) {
    members_.erase(cc.node_id());
    removed_.push_back(cc.node_id());
  } else if (!cc.context().empty()) {
    api::RaftMember m;
    if (m.ParseFromString(cc.context())) members_[cc.node_id()] = m;
  } else if (members_.count(cc.node_id()) == 0) {
    api::RaftMember m;
    m.set_raft_id(cc.node_id());
    members_[cc.node_id()] = m;
  }
  UpdatePeers();
  // A conf change proposed here: its waiter is the in-flight entry with this index and term.
  auto by_index = leader_proposals_.find(entry.index());
  if (by_index != leader_proposals_.end()) {
    auto it = in_flight_.find(by_index->second);
    if (it != in_flight_.end() && it->second.term == entry.term()) {
      Complete(it->second.waiter, std::string());
      in_flight_.erase(it);
      leader_proposals_.erase(by_index);
    }
  }
  spdlog::info("raft {}: membership now {} voters, {} learners (after {} of {})", options_.id,
               conf_state_.voters_size(), conf_state_.learners_size(),
               raftpb::ConfChangeType_Name(cc.type()), cc.node_id());
}

void RaftNode::UpdatePeers() {
  for (const auto& [id, m] : members_) {
    if (id == options_.id || m.addr().empty()) continue;
    absl::StatusOr<std::string> known = transport_->PeerAddress(id);
    if (!known.ok()) {
      (void)transport_->AddPeer(id, m.addr());
    } else if (*known != m.addr()) {
      (void)transport_->UpdatePeer(id, m.addr());
    }
  }
  for (uint64_t id : removed_) {
    if (id != options_.id && transport_->PeerAddress(id).ok()) (void)transport_->RemovePeer(id);
  }
}

absl::Status RaftNode::RestoreSnapshot(const raftpb::Snapshot& snap) {
  api::RaftSnapshotEnvelope env;
  if (!env.ParseFromString(snap.data())) {
    return absl::DataLossError(
        absl::StrCat("raft snapshot at index ", snap.metadata().index(), " does not parse"));
  }
  if (absl::Status s = sm_->Restore(env.app_data()); !s.ok()) return s;
  members_.clear();
  for (const api::RaftMember& m : env.members()) members_[m.raft_id()] = m;
  removed_.assign(env.removed_members().begin(), env.removed_members().end());
  conf_state_ = snap.metadata().conf_state();
  applied_ = snap.metadata().index();
  snapshot_index_ = snap.metadata().index();
  UpdatePeers();
  return absl::OkStatus();
}

std::function<std::string()> StateMachine::CaptureSnapshot() {
  auto data = std::make_shared<std::string>(Snapshot());
  return [data] { return std::move(*data); };
}

void RaftNode::MaybeSnapshot() {
  if (snapshot_in_flight_ || applied_ <= snapshot_index_) return;
  const bool by_count = applied_ >= snapshot_index_ + options_.snapshot_interval;
  const bool by_size =
      bytes_since_snapshot_ >= std::max<uint64_t>(options_.snapshot_bytes, last_snapshot_bytes_);
  if (!by_count && !by_size) return;
  absl::StatusOr<uint64_t> term = storage_.Term(applied_);
  if (!term.ok()) {
    spdlog::warn("raft {}: no snapshot at {}: {}", options_.id, applied_,
                 std::string(term.status().message()));
    return;
  }
  // Everything about the applied state is captured here, on the loop thread; the rest — the
  // serialisation, the sealing and the file's fsyncs, seconds for a large store — runs on the
  // snapshot thread, so that heartbeats and appends go on meanwhile.
  auto env = std::make_shared<api::RaftSnapshotEnvelope>();
  for (const auto& [id, m] : members_) *env->add_members() = m;
  for (uint64_t id : removed_) env->add_removed_members(id);
  raftpb::SnapshotMetadata meta;
  meta.set_index(applied_);
  meta.set_term(*term);
  *meta.mutable_conf_state() = conf_state_;
  std::function<std::string()> serialise = sm_->CaptureSnapshot();
  snapshot_in_flight_ = true;
  bytes_since_snapshot_ = 0;
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
  DurableLog* durable = durable_.get();
  snapshot_thread_ =
      std::thread([this, env, meta, serialise = std::move(serialise), durable]() mutable {
        WrittenSnapshot w;
        env->set_app_data(serialise());
        w.snapshot.set_data(env->SerializeAsString());
        env.reset();
        *w.snapshot.mutable_metadata() = meta;
        w.status = durable->WriteSnapshotFile(w.snapshot);
        // Released here rather than when the thread ends: what it holds (the store as it was)
        // is freed off the loop thread either way, and before the result is posted.
        serialise = nullptr;
        absl::MutexLock lock(&mu_);
        snapshot_written_ = std::move(w);
      });
}

void RaftNode::DrainSnapshot() {
  if (snapshot_thread_.joinable()) snapshot_thread_.join();  // also a finished one's
  if (!snapshot_in_flight_) return;
  std::optional<WrittenSnapshot> written;
  {
    absl::MutexLock lock(&mu_);
    written.swap(snapshot_written_);
  }
  if (written) FinishSnapshot(std::move(*written));
}

void RaftNode::FinishSnapshot(WrittenSnapshot w) {
  snapshot_in_flight_ = false;
  const raftpb::SnapshotMetadata meta = w.snapshot.metadata();
  if (!w.status.ok()) {
    spdlog::warn("raft {}: writing the snapshot at {} failed: {}", options_.id, meta.index(),
                 std::string(w.status.message()));
    durable_->AbandonSnapshotFile(meta);
    return;
  }
  if (meta.index() <= snapshot_index_) {
    // A snapshot from the leader superseded it while it was being written.
    durable_->AbandonSnapshotFile(meta);
    return;
  }
  const uint64_t size = w.snapshot.data().size();
  // Recorded first (the file is written already: this is the record and the log's compaction),
  // then handed to the in-memory storage, without a copy of the data (it may be 100 MB, and
  // this runs on the loop thread).
  if (absl::Status s = durable_->SaveSnapshot(w.snapshot); !s.ok()) {
    spdlog::error("raft {}: saving snapshot at {} failed: {}", options_.id, meta.index(),
                  std::string(s.message()));
    durable_->AbandonSnapshotFile(meta);
    return;
  }
  absl::StatusOr<raftpb::SnapshotMetadata> snap = storage_.CreateSnapshot(
      meta.index(), &meta.conf_state(), std::move(*w.snapshot.mutable_data()));
  if (!snap.ok()) {
    // Recorded on disk but not in memory: the next snapshot supersedes both.
    spdlog::warn("raft {}: snapshot at {} failed: {}", options_.id, meta.index(),
                 std::string(snap.status().message()));
    return;
  }
  snapshot_index_ = meta.index();
  last_snapshot_bytes_ = size;
  if (snapshot_index_ > options_.log_entries_for_slow_followers) {
    (void)storage_.Compact(snapshot_index_ - options_.log_entries_for_slow_followers);
  }
  spdlog::debug("raft {}: snapshot at {} ({} bytes)", options_.id, snapshot_index_, size);
}

void RaftNode::ResolveReads(const std::vector<ReadState>& states) {
  for (const ReadState& rs : states) {
    auto it = reads_by_ctx_.find(rs.request_ctx);
    if (it == reads_by_ctx_.end()) continue;
    for (auto& w : it->second) {
      if (rs.index <= applied_) {
        Complete(w, std::string());
      } else {
        reads_by_index_.emplace(rs.index, std::move(w));
      }
    }
    reads_by_ctx_.erase(it);
  }
}

void RaftNode::RunReseal(std::vector<std::shared_ptr<Waiter>> waiters) {
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;  // e.g. a storage failure in this iteration's Readys
  }
  if (stopping) {
    for (auto& w : waiters) Complete(w, absl::CancelledError("raft node is stopping"));
    return;
  }
  const absl::Time clock_start = clock_->Now();
  const absl::Time start = absl::Now();
  absl::Status s = durable_->Reseal();
  const absl::Duration took = absl::Now() - start;
  // The pause is not election time: shift the tick schedule past it, so that this member does
  // not fire a burst of ticks before it has read the messages that arrived meanwhile (a leader
  // would otherwise fail its quorum check, a follower start an election).
  next_tick_ += clock_->Now() - clock_start;
  if (s.ok()) {
    spdlog::info("raft {}: log resealed under the current key ({} entries, {} ms)", options_.id,
                 durable_->LastIndex() - durable_->SnapshotIndex(),
                 absl::ToInt64Milliseconds(took));
  } else {
    spdlog::error("raft {}: resealing the log failed after {} ms: {}", options_.id,
                  absl::ToInt64Milliseconds(took), std::string(s.message()));
  }
  for (auto& w : waiters) {
    if (s.ok()) {
      Complete(w, std::string());
    } else {
      Complete(w, s);
    }
  }
}

void RaftNode::FailAll(const absl::Status& status) {
  for (auto& [id, f] : in_flight_) Finish(f.waiter, status);
  in_flight_.clear();
  leader_proposals_.clear();
  for (auto& [ctx, waiters] : reads_by_ctx_) {
    for (auto& w : waiters) Finish(w, status);
  }
  reads_by_ctx_.clear();
  for (auto& [index, w] : reads_by_index_) Finish(w, status);
  reads_by_index_.clear();
}

void RaftNode::PublishInfo() {
  Info info;
  const Raft& r = raw_->raft();
  info.id = options_.id;
  info.term = r.term();
  info.leader = r.lead();
  info.state = r.state();
  info.commit = r.raft_log().committed();
  info.applied = applied_;
  info.snapshot_index = snapshot_index_;
  for (const auto& [id, m] : members_) info.members.push_back(m);
  info.conf_state = conf_state_;
  info.last_index = r.raft_log().LastIndex();
  if (r.state() == StateType::kLeader) {
    for (const auto& [id, pr] : r.tracker().progress()) {
      if (id == options_.id) continue;
      info.progress[id] = Info::PeerProgress{pr.match(), pr.recent_active(), pr.is_learner()};
    }
  }
  absl::MutexLock lock(&mu_);
  leader_.store(info.leader, std::memory_order_release);
  term_.store(info.term, std::memory_order_release);
  info_ = std::move(info);
}

}  // namespace shoal::raft
