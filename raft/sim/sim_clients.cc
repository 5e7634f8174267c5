#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "raft/sim/sim_internal.h"

namespace shoal::raft::sim::internal {

void Sim::ClientIssue(Client& c) {
  if (failed() || (phase_ != Phase::kFaults && c.id != kProbeClient)) return;
  c.busy = true;
  ++c.seq;
  c.attempt = 0;
  c.timeouts = 0;
  KvCommand cmd;
  cmd.client = c.id;
  cmd.seq = c.seq;
  c.read_index = false;
  KvOperation op;
  if (c.id == kProbeClient) {
    cmd.kind = KvCommand::Kind::kPut;
    cmd.key = "probe";
    cmd.value = "done";
  } else {
    cmd.key = absl::StrCat("k", rng_.Uniform(scenario_.keys));
    cmd.value = absl::StrCat("c", c.id, "-", c.seq);
    const uint64_t r = rng_.Uniform(100);
    if (scenario_.cas && r < 15) {
      cmd.kind = KvCommand::Kind::kCas;
      auto seen = c.last_seen.find(cmd.key);
      if (seen != c.last_seen.end() && rng_.Bernoulli(0.8)) cmd.expected = seen->second;
    } else if (r < 55) {
      cmd.kind = KvCommand::Kind::kPut;
    } else {
      cmd.kind = KvCommand::Kind::kGet;
      c.read_index = scenario_.read_index_gets;
    }
  }
  switch (cmd.kind) {
    case KvCommand::Kind::kPut:
      op = MakePut(c.id, cmd.key, cmd.value, queue_.now(), std::nullopt);
      break;
    case KvCommand::Kind::kGet:
      op = MakeGet(c.id, cmd.key, std::nullopt, queue_.now(), std::nullopt);
      break;
    case KvCommand::Kind::kCas:
      op = MakeCas(c.id, cmd.key, cmd.expected, cmd.value, false, queue_.now(), std::nullopt);
      break;
  }
  c.cmd = cmd;
  c.history_index = history_.size();
  history_.push_back(op);
  ++stats_.client_ops;
  Trace(absl::StrFormat("client %d issues #%d %s%s to m%d", c.id, c.seq, FormatOperation(op),
                        c.read_index ? " (ReadIndex)" : "", c.target));
  ClientSend(c);
}

void Sim::ClientSend(Client& c) {
  ClientRequest req;
  req.client = c.id;
  req.seq = c.seq;
  req.attempt = c.attempt;
  req.cmd = c.cmd;
  req.read_index = c.read_index;
  const uint64_t target = c.target;
  net_.Send(c.id, target, [this, target, req] { OnClientRequest(target, req); });
  const uint64_t id = c.id, seq = c.seq, attempt = c.attempt;
  queue_.After(scenario_.client_timeout, [this, id, seq, attempt] {
    Client& cl = clients_[id];
    if (!cl.busy || cl.seq != seq || cl.attempt != attempt) return;
    if (scenario_.client_max_timeouts > 0 && ++cl.timeouts >= scenario_.client_max_timeouts &&
        id != kProbeClient) {
      // Give up: the operation stays open-ended in the history (it may still take effect).
      Trace(absl::StrFormat("client %d gives up on #%d", id, seq));
      cl.busy = false;
      queue_.After(rng_.Range(0, 20 * kMillisecond), [this, id] { ClientIssue(clients_[id]); });
      return;
    }
    // No answer: try another member with the same (client, seq).
    std::vector<uint64_t> targets = ClientTargets();
    uint64_t next = targets[rng_.Uniform(targets.size())];
    if (next == cl.target && targets.size() > 1) next = targets[rng_.Uniform(targets.size())];
    Trace(absl::StrFormat("client %d times out on #%d at m%d, retries at m%d", id, seq, cl.target,
                          next));
    ClientRetry(cl, next, 0);
  });
}

void Sim::ClientRetry(Client& c, uint64_t target, SimTime backoff) {
  ++c.attempt;
  ++stats_.client_retries;
  c.target = target;
  const uint64_t id = c.id, seq = c.seq, attempt = c.attempt;
  queue_.After(backoff, [this, id, seq, attempt] {
    Client& cl = clients_[id];
    if (cl.busy && cl.seq == seq && cl.attempt == attempt) ClientSend(cl);
  });
}

void Sim::OnClientRequest(uint64_t member, const ClientRequest& req) {
  Member* m = Find(member);
  if (m == nullptr || !m->up) return;
  Interact(*m, [this, m, req] { HandleClientRequest(*m, req); });
}

void Sim::HandleClientRequest(Member& m, const ClientRequest& req) {
  const Raft& r = m.node->raft();
  ClientReply refuse;
  refuse.client = req.client;
  refuse.seq = req.seq;
  refuse.attempt = req.attempt;
  refuse.ok = false;
  refuse.leader_hint = r.lead();
  if (options_.inject == InjectedBug::kLocalReads && req.cmd.kind == KvCommand::Kind::kGet) {
    ClientReply local;
    local.client = req.client;
    local.seq = req.seq;
    local.ok = true;
    local.result.value = m.kv.Get(req.cmd.key);
    Reply(m, local);
    return;
  }
  if (req.read_index) {
    if (r.lead() == kNone) {
      Reply(m, refuse);
      return;
    }
    const std::string ctx = absl::StrCat("r", m.id, ".", m.incarnation, ".", ++m.read_counter);
    m.reads[ctx] = Member::PendingRead{req.client, req.seq, req.cmd.key, std::nullopt};
    m.node->ReadIndex(ctx);
    return;
  }
  const bool leader = r.state() == StateType::kLeader;
  if (!leader && !(scenario_.follower_proposals && r.lead() != kNone)) {
    Reply(m, refuse);
    return;
  }
  if (absl::Status s = m.node->Propose(req.cmd.Encode()); !s.ok()) {
    Trace(absl::StrFormat("m%d refuses #%d of client %d: %s", m.id, req.seq, req.client,
                          s.ToString()));
    Reply(m, refuse);
    return;
  }
  m.waiting[req.client] = req.seq;
}

void Sim::Reply(Member& m, const ClientReply& r) {
  net_.Send(m.id, r.client, [this, r] { OnClientReply(r); });
}

void Sim::OnClientReply(const ClientReply& r) {
  auto it = clients_.find(r.client);
  if (it == clients_.end()) return;
  Client& c = it->second;
  if (!c.busy || r.seq != c.seq) return;
  if (!r.ok) {
    if (r.attempt != c.attempt) return;  // A stale refusal; a newer attempt is under way.
    std::vector<uint64_t> targets = ClientTargets();
    const bool hint_ok = r.leader_hint != kNone && r.leader_hint != c.target &&
                         std::find(targets.begin(), targets.end(), r.leader_hint) != targets.end();
    const uint64_t next = hint_ok ? r.leader_hint : targets[rng_.Uniform(targets.size())];
    ClientRetry(
        c, next,
        hint_ok ? rng_.Range(100, kMillisecond) : rng_.Range(10 * kMillisecond, 50 * kMillisecond));
    return;
  }
  KvOperation& op = history_[c.history_index];
  op.return_time = queue_.now();
  if (op.kind == KvOpKind::kGet) {
    op.read = r.result.value;
    if (r.result.value) c.last_seen[op.key] = *r.result.value;
  } else if (op.kind == KvOpKind::kCas) {
    op.cas_succeeded = r.result.cas_succeeded;
    if (op.cas_succeeded) c.last_seen[op.key] = op.value;
  } else {
    c.last_seen[op.key] = op.value;
  }
  c.busy = false;
  ++stats_.client_ops_completed;
  Trace(absl::StrFormat("client %d done #%d: %s", c.id, c.seq, FormatOperation(op)));
  if (c.id == kProbeClient) return;
  const uint64_t id = c.id;
  queue_.After(rng_.Range(0, 20 * kMillisecond), [this, id] { ClientIssue(clients_[id]); });
}

}  // namespace shoal::raft::sim::internal
