#include "raft/core/raw_node.h"

#include <utility>

#include "raft/core/raft.h"

namespace shoal::raft {

using raftpb::Message;

namespace {

bool HardStateEqual(const raftpb::HardState& a, const raftpb::HardState& b) {
  return a.term() == b.term() && a.vote() == b.vote() && a.commit() == b.commit();
}

// Entries, and a changed term or vote, must be durable before messages that depend on them go
// out (§5: a node must never vote twice in a term or forget acknowledged entries). A commit
// index alone can be recovered, so it does not force a sync.
bool MustSync(const raftpb::HardState& st, const raftpb::HardState& prev, size_t num_entries) {
  return num_entries != 0 || st.vote() != prev.vote() || st.term() != prev.term();
}

}  // namespace

RawNode::RawNode(std::unique_ptr<Raft> raft) : raft_(std::move(raft)) {
  prev_soft_state_ = raft_->GetSoftState();
  prev_hard_state_ = raft_->GetHardState();
}

RawNode::~RawNode() = default;

absl::StatusOr<std::unique_ptr<RawNode>> RawNode::Create(const Config& config) {
  auto r = Raft::Create(config);
  if (!r.ok()) return r.status();
  return std::unique_ptr<RawNode>(new RawNode(*std::move(r)));
}

absl::Status RawNode::Bootstrap(const std::vector<uint64_t>& voters) {
  std::vector<raftpb::ConfChange> founders;
  for (uint64_t id : voters) {
    raftpb::ConfChange cc;
    cc.set_type(raftpb::CONF_CHANGE_TYPE_ADD_NODE);
    cc.set_node_id(id);
    founders.push_back(std::move(cc));
  }
  return Bootstrap(founders);
}

absl::Status RawNode::Bootstrap(const std::vector<raftpb::ConfChange>& founders) {
  if (founders.empty()) {
    return absl::InvalidArgumentError("raft: bootstrap needs at least one voter");
  }
  for (const raftpb::ConfChange& cc : founders) {
    if (cc.type() != raftpb::CONF_CHANGE_TYPE_ADD_NODE || cc.node_id() == kNone) {
      return absl::InvalidArgumentError("raft: bootstrap takes ADD_NODE changes of non-zero ids");
    }
  }
  RaftLog& log = raft_->raft_log();
  if (log.LastIndex() != 0 || raft_->term() != 0) {
    return absl::FailedPreconditionError("raft: can only bootstrap a fresh node");
  }
  std::vector<raftpb::Entry> ents;
  std::vector<raftpb::ConfChange> ccs;
  for (size_t i = 0; i < founders.size(); ++i) {
    const raftpb::ConfChange& cc = founders[i];
    raftpb::Entry e;
    e.set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
    e.set_term(1);
    e.set_index(i + 1);
    e.set_data(cc.SerializeAsString());
    ents.push_back(std::move(e));
    ccs.push_back(cc);
  }
  // Every founding member writes the same entries, so their logs agree from the start; they are
  // committed by construction. The membership takes effect now (the driver will apply the
  // entries again from the Ready; re-applying is harmless).
  raft_->BecomeFollower(1, kNone);
  log.Append(ents);
  log.CommitTo(ents.size());
  for (const auto& cc : ccs) raft_->ApplyConfChange(cc);
  return absl::OkStatus();
}

void RawNode::Tick() { raft_->Tick(); }

absl::Status RawNode::Campaign() {
  Message m;
  m.set_type(raftpb::MESSAGE_TYPE_HUP);
  return raft_->Step(m);
}

absl::Status RawNode::Propose(std::string data) {
  Message m;
  m.set_type(raftpb::MESSAGE_TYPE_PROP);
  m.set_from(raft_->id());
  m.add_entries()->set_data(std::move(data));
  return raft_->Step(m);
}

absl::Status RawNode::ProposeBatch(std::vector<std::string> data) {
  if (data.empty()) return absl::OkStatus();
  Message m;
  m.set_type(raftpb::MESSAGE_TYPE_PROP);
  m.set_from(raft_->id());
  for (std::string& d : data) m.add_entries()->set_data(std::move(d));
  return raft_->Step(m);
}

absl::Status RawNode::ProposeConfChange(const raftpb::ConfChange& cc) {
  Message m;
  m.set_type(raftpb::MESSAGE_TYPE_PROP);
  m.set_from(raft_->id());
  raftpb::Entry* e = m.add_entries();
  e->set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
  e->set_data(cc.SerializeAsString());
  return raft_->Step(m);
}

raftpb::ConfState RawNode::ApplyConfChange(const raftpb::ConfChange& cc) {
  return raft_->ApplyConfChange(cc);
}

absl::Status RawNode::Step(const Message& m) {
  if (IsLocalMessage(m.type())) {
    return absl::InvalidArgumentError("raft: cannot step raft local message");
  }
  if (raft_->tracker().Get(m.from()) == nullptr && IsResponseMessage(m.type())) {
    return absl::NotFoundError("raft: cannot step as peer not found");
  }
  return raft_->Step(m);
}

bool RawNode::HasReady() const {
  const Raft& r = *raft_;
  if (r.GetSoftState() != prev_soft_state_) return true;
  if (!HardStateEqual(r.GetHardState(), prev_hard_state_)) return true;
  const RaftLog& log = r.raft_log();
  if (log.UnstableSnapshot().has_value()) return true;
  if (!r.messages().empty() || !log.UnstableEntries().empty() || log.HasNextCommittedEntries()) {
    return true;
  }
  return !r.read_states().empty();
}

Ready RawNode::ReadyWithoutAccept() const {
  const Raft& r = *raft_;
  const RaftLog& log = r.raft_log();
  Ready rd;
  rd.entries = log.UnstableEntries();
  rd.committed_entries = log.NextCommittedEntries();
  rd.messages = r.messages();
  if (SoftState ss = r.GetSoftState(); ss != prev_soft_state_) rd.soft_state = ss;
  raftpb::HardState hs = r.GetHardState();
  if (!HardStateEqual(hs, prev_hard_state_)) rd.hard_state = hs;
  if (log.UnstableSnapshot()) rd.snapshot = *log.UnstableSnapshot();
  rd.read_states = r.read_states();
  rd.must_sync = MustSync(hs, prev_hard_state_, rd.entries.size());
  return rd;
}

Ready RawNode::GetReady() {
  Ready rd = ReadyWithoutAccept();
  if (rd.soft_state) prev_soft_state_ = *rd.soft_state;
  raft_->TakeMessages();
  raft_->TakeReadStates();
  return rd;
}

void RawNode::Advance(const Ready& rd) {
  if (rd.hard_state) prev_hard_state_ = *rd.hard_state;
  uint64_t applied = 0;
  if (!rd.committed_entries.empty()) {
    applied = rd.committed_entries.back().index();
  } else if (rd.snapshot.metadata().index() != 0) {
    applied = rd.snapshot.metadata().index();
  }
  raft_->Advance(applied, rd.committed_entries, rd.entries, rd.snapshot.metadata().index());
}

void RawNode::ReadIndex(std::string request_ctx) {
  Message m;
  m.set_type(raftpb::MESSAGE_TYPE_READ_INDEX);
  m.add_entries()->set_data(std::move(request_ctx));
  (void)raft_->Step(m);
}

void RawNode::TransferLeader(uint64_t transferee) {
  Message m;
  m.set_type(raftpb::MESSAGE_TYPE_TRANSFER_LEADER);
  m.set_from(transferee);
  (void)raft_->Step(m);
}

void RawNode::ReportUnreachable(uint64_t id) {
  Message m;
  m.set_type(raftpb::MESSAGE_TYPE_UNREACHABLE);
  m.set_from(id);
  (void)raft_->Step(m);
}

void RawNode::ReportSnapshot(uint64_t id, bool failed) {
  Message m;
  m.set_type(raftpb::MESSAGE_TYPE_SNAP_STATUS);
  m.set_from(id);
  m.set_reject(failed);
  (void)raft_->Step(m);
}

Status RawNode::GetStatus() const {
  const Raft& r = *raft_;
  Status s;
  s.id = r.id();
  s.hard_state = r.GetHardState();
  s.soft_state = r.GetSoftState();
  s.applied = r.raft_log().applied();
  s.lead_transferee = r.lead_transferee();
  s.conf_state = r.tracker().ConfState();
  if (r.state() == StateType::kLeader) {
    for (const auto& [id, pr] : r.tracker().progress()) {
      s.progress[id] =
          ProgressStatus{pr.match(), pr.next(), pr.state(), pr.recent_active(), pr.is_learner()};
    }
  }
  return s;
}

uint64_t RawNode::id() const { return raft_->id(); }

}  // namespace shoal::raft
