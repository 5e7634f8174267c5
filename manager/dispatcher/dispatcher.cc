#include "manager/dispatcher/dispatcher.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/ids.h"
#include "google/protobuf/util/message_differencer.h"
#include "manager/cluster_object.h"
#include "pki/grpc_tls.h"
#include "spdlog/spdlog.h"

namespace shoal::manager {
namespace {

constexpr int64_t kManagerWeight = 10;

absl::Status UpdateWithRetry(store::MemoryStore& store,
                             const std::function<absl::Status(store::WriteTx&)>& fn) {
  absl::Status status;
  for (int attempt = 0; attempt < 10; ++attempt) {
    status = store.Update(fn);
    if (status.code() != absl::StatusCode::kAborted) return status;
  }
  return status;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
}

// The roots a node must trust: the cluster's, plus the new root during a rotation.
std::string TrustedRoots(const api::RootCA& root_ca) {
  std::string pem = root_ca.ca_cert();
  if (root_ca.has_root_rotation() && !root_ca.root_rotation().ca_cert().empty()) {
    if (!pem.empty() && pem.back() != '\n') pem += '\n';
    pem += root_ca.root_rotation().ca_cert();
  }
  return pem;
}

grpc::Status ToGrpc(const absl::Status& status) { return pki::ToGrpcStatus(status); }

bool SameMembers(const std::vector<ManagerMember>& a, const std::vector<ManagerMember>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].node_id != b[i].node_id || a[i].addr != b[i].addr) return false;
  }
  return true;
}

// Whether two versions of a task differ in more than their status (and store metadata): what
// the agent needs to hear about. Its own status reports are not echoed back. A task's spec and
// annotations are written once, when an orchestrator creates it (an update replaces the task),
// so they are not compared; everything a manager may change later is.
bool DiffersBeyondStatus(const api::Task& a, const api::Task& b) {
  using google::protobuf::util::MessageDifferencer;
  if (a.desired_state() != b.desired_state() || a.node_id() != b.node_id() ||
      a.service_id() != b.service_id() || a.slot() != b.slot() ||
      a.spec_version().index() != b.spec_version().index() ||
      a.job_iteration().index() != b.job_iteration().index() ||
      a.networks_size() != b.networks_size() ||
      a.assigned_generic_resources_size() != b.assigned_generic_resources_size()) {
    return true;
  }
  for (int i = 0; i < a.networks_size(); ++i) {
    if (!MessageDifferencer::Equals(a.networks(i), b.networks(i))) return true;
  }
  for (int i = 0; i < a.assigned_generic_resources_size(); ++i) {
    if (!MessageDifferencer::Equals(a.assigned_generic_resources(i),
                                    b.assigned_generic_resources(i))) {
      return true;
    }
  }
  return !MessageDifferencer::Equals(a.endpoint(), b.endpoint()) ||
         !MessageDifferencer::Equals(a.log_driver(), b.log_driver());
}

// Whether a session message says nothing new: the node's store metadata alone (e.g. the
// registration being committed) is not news to the agent.
bool SameSessionMessage(const api::SessionMessage& a, const api::SessionMessage& b) {
  google::protobuf::util::MessageDifferencer differ;
  differ.IgnoreField(api::Node::descriptor()->FindFieldByName("meta"));
  return differ.Compare(a, b);
}

bool Assignable(const api::Task& task, const std::string& node_id) {
  return task.node_id() == node_id && task.desired_state() < api::TASK_STATE_REMOVE;
}

void AddReferences(const api::Task& task, std::set<std::string>* secrets,
                   std::set<std::string>* configs) {
  const api::ContainerSpec& spec = task.spec().container_spec();
  for (const api::SecretReference& ref : spec.secrets()) secrets->insert(ref.secret_id());
  for (const api::ConfigReference& ref : spec.configs()) configs->insert(ref.config_id());
}

}  // namespace

std::string PeerIp(absl::string_view grpc_peer) {
  std::string peer = absl::StrReplaceAll(grpc_peer, {{"%5B", "["}, {"%5D", "]"}, {"%25", "%"}});
  absl::string_view rest(peer);
  if (absl::ConsumePrefix(&rest, "ipv4:")) {
    const size_t colon = rest.rfind(':');
    return std::string(colon == absl::string_view::npos ? rest : rest.substr(0, colon));
  }
  if (absl::ConsumePrefix(&rest, "ipv6:")) {
    if (absl::ConsumePrefix(&rest, "[")) {
      const size_t close = rest.find(']');
      return close == absl::string_view::npos ? "" : std::string(rest.substr(0, close));
    }
    const size_t colon = rest.rfind(':');
    return std::string(colon == absl::string_view::npos ? rest : rest.substr(0, colon));
  }
  return "";
}

Dispatcher::Dispatcher(store::MemoryStore* store, RaftControl* raft, DispatcherOptions options)
    : store_(store),
      raft_(raft),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : &RealClock()),
      batcher_(store),
      hub_(store) {}

Dispatcher::~Dispatcher() { Stop(); }

// ---------------------------------------------------------------------------------------------
// Leadership, sessions, liveness
// ---------------------------------------------------------------------------------------------

grpc::Status Dispatcher::NotLeader() const {
  for (const ManagerMember& m : raft_->Members()) {
    if (m.leader && !m.addr.empty()) {
      return grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("this manager is not the leader; the leader is at ", m.addr));
    }
  }
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      "this manager is not the leader, and no leader is known right now (an "
                      "election may be under way); retry shortly or try another manager");
}

grpc::Status Dispatcher::Admit(const grpc::ServerContext& context, std::string* node_id) const {
  pki::NodeIdentity caller;
  grpc::Status auth =
      AuthorizeNode(context, {pki::Role::kWorker, pki::Role::kManager}, *store_, &caller);
  if (!auth.ok()) return auth;
  if (!raft_->IsLeader()) return NotLeader();
  *node_id = caller.node_id;
  return grpc::Status::OK;
}

absl::Duration Dispatcher::HeartbeatPeriod() const {
  absl::Duration period = options_.default_heartbeat_period;
  store_->View([&](const store::ReadTx& tx) {
    const api::Cluster* cluster = FindCluster(tx);
    if (cluster == nullptr) return;
    const absl::Duration configured = FromProto(cluster->spec().dispatcher().heartbeat_period());
    if (configured > absl::ZeroDuration()) period = configured;
  });
  return period;
}

absl::StatusOr<std::shared_ptr<Dispatcher::SessionState>> Dispatcher::FindSession(
    absl::string_view session_id, absl::string_view node_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end() || it->second->node_id != node_id) {
    return absl::NotFoundError(absl::StrCat("unknown session '", session_id,
                                            "' (it expired or was replaced, or this manager "
                                            "became leader since); open a new session"));
  }
  return it->second;
}

void Dispatcher::EndSessionLocked(const std::shared_ptr<SessionState>& session, absl::Status why) {
  if (session->ended.ok()) session->ended = std::move(why);
  sessions_.erase(session->id);
  auto it = node_session_.find(session->node_id);
  if (it != node_session_.end() && it->second == session->id) node_session_.erase(it);
}

grpc::Status Dispatcher::StreamMustEnd(const SessionState& session,
                                       const grpc::ServerContext& context) const {
  {
    absl::MutexLock lock(&mu_);
    if (!session.ended.ok()) return ToGrpc(session.ended);
  }
  if (context.IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "the agent closed the stream");
  }
  if (!raft_->IsLeader()) return NotLeader();
  return grpc::Status::OK;
}

size_t Dispatcher::session_count() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

void Dispatcher::Start() {
  const absl::Duration grace = HeartbeatPeriod() * options_.grace_multiplier;
  std::vector<std::string> ready;
  store_->View([&](const store::ReadTx& tx) {
    for (const api::Node* n : tx.List<api::Node>()) {
      if (n->status().state() == api::NodeStatus::READY) ready.push_back(n->id());
    }
  });
  absl::MutexLock lock(&mu_);
  if (running_) return;
  running_ = true;
  stopping_ = false;
  const absl::Time deadline = clock_->Now() + grace;
  for (const std::string& id : ready) {
    if (!node_session_.contains(id)) grace_[id] = deadline;
  }
  for (auto& [id, session] : sessions_) session->expiry = std::max(session->expiry, deadline);
  liveness_thread_ = std::thread([this] { LivenessLoop(); });
}

void Dispatcher::Stop() {
  std::thread thread;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    running_ = false;
    thread = std::move(liveness_thread_);
    std::vector<std::shared_ptr<SessionState>> all;
    for (auto& [id, session] : sessions_) all.push_back(session);
    for (auto& session : all) {
      EndSessionLocked(
          session, absl::UnavailableError("this manager's dispatcher stopped (it is no longer the "
                                          "leader); reconnect to the current leader"));
    }
    grace_.clear();
  }
  if (thread.joinable()) thread.join();
}

void Dispatcher::LivenessLoop() {
  absl::Time next_check = clock_->Now();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      while (!stopping_) {
        const absl::Duration left = next_check - clock_->Now();
        if (left <= absl::ZeroDuration()) break;
        mu_.AwaitWithTimeout(absl::Condition(&stopping), std::min(left, options_.poll_interval));
      }
      if (stopping_) return;
    }
    CheckLiveness();
    next_check = clock_->Now() + options_.liveness_check_interval;
  }
}

void Dispatcher::CheckLiveness() {
  // Only the leader decides liveness: a former leader's stale sessions say nothing about the
  // nodes, which have moved to the new leader.
  if (!raft_->IsLeader()) return;
  const absl::Time now = clock_->Now();
  OrphanTasksOfLongDownNodes(now);
  std::vector<std::string> down;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::shared_ptr<SessionState>> expired;
    for (auto& [id, session] : sessions_) {
      if (session->expiry <= now) expired.push_back(session);
    }
    for (auto& session : expired) {
      EndSessionLocked(session, absl::NotFoundError(absl::StrCat(
                                    "session '", session->id,
                                    "' expired: no heartbeat came in time; open a new session")));
      down.push_back(session->node_id);
    }
    for (auto it = grace_.begin(); it != grace_.end();) {
      if (it->second <= now) {
        if (!node_session_.contains(it->first)) down.push_back(it->first);
        grace_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  if (down.empty()) return;
  std::vector<std::string> marked;
  absl::Status s = UpdateWithRetry(*store_, [&](store::WriteTx& tx) -> absl::Status {
    marked.clear();
    for (const std::string& id : down) {
      {
        absl::MutexLock lock(&mu_);
        if (node_session_.contains(id)) continue;  // reconnected meanwhile
      }
      const api::Node* node = tx.Get<api::Node>(id);
      if (node == nullptr || node->status().state() == api::NodeStatus::DOWN) continue;
      api::Node updated = *node;
      updated.mutable_status()->set_state(api::NodeStatus::DOWN);
      updated.mutable_status()->set_message("heartbeat failure");
      if (absl::Status u = tx.Update(std::move(updated)); !u.ok()) return u;
      marked.push_back(id);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) {
    spdlog::warn("dispatcher: marking {} node(s) down failed: {}", down.size(), s.ToString());
    // Try again on the next check.
    absl::MutexLock lock(&mu_);
    for (const std::string& id : down) {
      if (!node_session_.contains(id)) grace_[id] = now;
    }
    return;
  }
  for (const std::string& id : marked)
    spdlog::info("dispatcher: node {} is down (heartbeat failure)", id);
}

void Dispatcher::OrphanTasksOfLongDownNodes(absl::Time now) {
  std::vector<std::string> orphan;
  store_->View([&](const store::ReadTx& tx) {
    for (const api::Node* n : tx.List<api::Node>()) {
      if (n->status().state() != api::NodeStatus::DOWN) continue;
      // The node's last update is at or after the moment it went down: never too early.
      const google::protobuf::Timestamp& ts = n->meta().updated_at();
      const absl::Time since = absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
      if (now - since < options_.orphan_after) continue;
      for (const api::Task* t : tx.FindTasksByNode(n->id())) {
        if (t->status().state() <= api::TASK_STATE_RUNNING) {
          orphan.push_back(n->id());
          break;
        }
      }
    }
  });
  if (orphan.empty()) return;
  const std::string why = absl::StrCat("the node has been down for more than ",
                                       absl::FormatDuration(options_.orphan_after),
                                       "; what became of the task is unknown");
  size_t marked = 0;
  absl::Status s = UpdateWithRetry(*store_, [&](store::WriteTx& tx) -> absl::Status {
    marked = 0;
    for (const std::string& node_id : orphan) {
      const api::Node* node = tx.Get<api::Node>(node_id);
      if (node == nullptr || node->status().state() != api::NodeStatus::DOWN) continue;
      for (const api::Task* t : tx.FindTasksByNode(node_id)) {
        if (t->status().state() > api::TASK_STATE_RUNNING) continue;
        api::Task updated = *t;
        updated.mutable_status()->set_state(api::TASK_STATE_ORPHANED);
        updated.mutable_status()->set_message(why);
        ToProto(now, updated.mutable_status()->mutable_timestamp());
        if (absl::Status u = tx.Update(std::move(updated)); !u.ok()) return u;
        ++marked;
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) {
    spdlog::warn("dispatcher: marking tasks of long-down nodes orphaned failed: {}", s.ToString());
  } else if (marked > 0) {
    spdlog::info("dispatcher: {} task(s) on {} long-down node(s) marked orphaned", marked,
                 orphan.size());
  }
}

// ---------------------------------------------------------------------------------------------
// Session and Heartbeat
// ---------------------------------------------------------------------------------------------

grpc::Status Dispatcher::Session(grpc::ServerContext* context, const api::SessionRequest* request,
                                 grpc::ServerWriter<api::SessionMessage>* writer) {
  std::string node_id;
  if (grpc::Status s = Admit(*context, &node_id); !s.ok()) return s;
  const absl::Duration period = HeartbeatPeriod();

  auto session = std::make_shared<SessionState>();
  session->id = NewId();
  session->node_id = node_id;
  session->expiry = clock_->Now() + period * options_.grace_multiplier;
  {
    absl::MutexLock lock(&mu_);
    auto old = node_session_.find(node_id);
    if (old != node_session_.end()) {
      auto it = sessions_.find(old->second);
      if (it != sessions_.end()) {
        EndSessionLocked(it->second, absl::AbortedError(absl::StrCat(
                                         "session '", old->second,
                                         "' was replaced by a newer session of node ", node_id)));
      }
    }
    sessions_[session->id] = session;
    node_session_[node_id] = session->id;
    grace_.erase(node_id);
  }
  auto forget = [&](absl::Status why) {
    absl::MutexLock lock(&mu_);
    EndSessionLocked(session, std::move(why));
  };

  // The registration is committed with other nodes' writes; the stream does not wait for it.
  const std::string addr = PeerIp(context->peer());
  struct Registration {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::Status status ABSL_GUARDED_BY(mu);
  };
  auto registration = std::make_shared<Registration>();
  batcher_.WriteAsync(
      [node_id, addr, description = request->description()](store::WriteTx& tx) -> absl::Status {
        const api::Node* node = tx.Get<api::Node>(node_id);
        if (node == nullptr) {
          return absl::PermissionDeniedError(absl::StrCat(
              "node ", node_id,
              " is not a member of this swarm (it was removed); join again with a join token"));
        }
        api::Node updated = *node;
        *updated.mutable_description() = description;
        updated.mutable_status()->set_state(api::NodeStatus::READY);
        updated.mutable_status()->clear_message();
        updated.mutable_status()->set_addr(addr);
        return tx.Update(std::move(updated));
      },
      [registration](absl::Status s) {
        absl::MutexLock lock(&registration->mu);
        registration->done = true;
        registration->status = std::move(s);
      });
  auto registration_failed = [&]() -> absl::Status {
    absl::MutexLock lock(&registration->mu);
    return registration->done ? registration->status : absl::OkStatus();
  };
  auto registration_pending = [&]() {
    absl::MutexLock lock(&registration->mu);
    return !registration->done;
  };

  // The node and the cluster, watched from here on.
  std::optional<api::Node> node;
  std::optional<api::Cluster> cluster;
  auto read = [&](const store::ReadTx& tx) {
    const api::Node* n = tx.Get<api::Node>(node_id);
    node = n ? std::optional<api::Node>(*n) : std::nullopt;
    const api::Cluster* c = FindCluster(tx);
    cluster = c ? std::optional<api::Cluster>(*c) : std::nullopt;
  };
  store::WatchFilter filter;
  filter.kinds = {api::OBJECT_KIND_NODE, api::OBJECT_KIND_CLUSTER};
  filter.predicate = [node_id](const api::StoreObject& o) {
    return !o.has_node() || o.node().id() == node_id;
  };
  std::unique_ptr<store::Watcher> watcher = store_->ViewAndWatch(read, filter);

  std::vector<ManagerMember> members = raft_->Members();
  absl::Time next_members_check = clock_->Now() + period;
  std::optional<api::SessionMessage> last_sent;
  bool dirty = true;
  while (true) {
    if (!node.has_value()) {
      absl::Status removed = absl::PermissionDeniedError(absl::StrCat(
          "node ", node_id, " was removed from the swarm; join again with a join token"));
      forget(removed);
      return ToGrpc(removed);
    }
    if (dirty) {
      dirty = false;
      api::SessionMessage message;
      message.set_session_id(session->id);
      *message.mutable_node() = *node;
      if (registration_pending()) {
        // What the registration on its way will store.
        api::Node* n = message.mutable_node();
        *n->mutable_description() = request->description();
        n->mutable_status()->set_state(api::NodeStatus::READY);
        n->mutable_status()->clear_message();
        n->mutable_status()->set_addr(addr);
      }
      for (const ManagerMember& m : members) {
        api::WeightedPeer* peer = message.add_managers();
        peer->mutable_peer()->set_node_id(m.node_id);
        peer->mutable_peer()->set_addr(m.addr);
        peer->set_weight(kManagerWeight);
      }
      if (cluster.has_value()) {
        *message.mutable_network_bootstrap_keys() = cluster->network_bootstrap_keys();
        message.set_root_ca(TrustedRoots(cluster->root_ca()));
      }
      if (!last_sent.has_value() || !SameSessionMessage(*last_sent, message)) {
        if (!writer->Write(message)) {
          return grpc::Status(grpc::StatusCode::CANCELLED, "the agent closed the stream");
        }
        last_sent = std::move(message);
      }
    }
    if (grpc::Status end = StreamMustEnd(*session, *context); !end.ok()) return end;
    if (absl::Status failed = registration_failed(); !failed.ok()) {
      spdlog::warn("dispatcher: registering node {} failed: {}", node_id, failed.ToString());
      forget(failed);
      return ToGrpc(failed);
    }

    auto change = watcher->Next(absl::Now() + options_.poll_interval);
    if (change.ok()) {
      do {
        for (const store::StoreEvent& event : change->events) {
          if (event.kind() == api::OBJECT_KIND_NODE) {
            if (event.action == api::StoreAction::REMOVE) {
              node.reset();
            } else {
              node = event.object->node();
            }
          } else if (event.kind() == api::OBJECT_KIND_CLUSTER) {
            if (event.action == api::StoreAction::REMOVE) {
              cluster.reset();
            } else {
              cluster = event.object->cluster();
            }
          }
        }
        change = watcher->Next(absl::InfinitePast());
      } while (change.ok());
      dirty = true;
    }
    if (!change.ok() && change.status().code() != absl::StatusCode::kDeadlineExceeded) {
      // Fell behind or the store was restored: start over from a fresh view.
      watcher = store_->ViewAndWatch(read, filter);
      dirty = true;
    }
    if (clock_->Now() >= next_members_check) {
      next_members_check = clock_->Now() + HeartbeatPeriod();
      std::vector<ManagerMember> now_members = raft_->Members();
      if (!SameMembers(now_members, members)) {
        members = std::move(now_members);
        dirty = true;
      }
    }
  }
}

grpc::Status Dispatcher::Heartbeat(grpc::ServerContext* context,
                                   const api::HeartbeatRequest* request,
                                   api::HeartbeatResponse* response) {
  std::string node_id;
  if (grpc::Status s = Admit(*context, &node_id); !s.ok()) return s;
  const absl::Duration period = HeartbeatPeriod();
  auto session = FindSession(request->session_id(), node_id);
  if (!session.ok()) return ToGrpc(session.status());
  {
    absl::MutexLock lock(&mu_);
    if (!(*session)->ended.ok()) return ToGrpc((*session)->ended);
    (*session)->expiry =
        std::max((*session)->expiry, clock_->Now() + period * options_.grace_multiplier);
  }
  ToProto(period, response->mutable_period());
  return grpc::Status::OK;
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

grpc::Status Dispatcher::UpdateTaskStatus(grpc::ServerContext* context,
                                          const api::UpdateTaskStatusRequest* request,
                                          api::UpdateTaskStatusResponse*) {
  std::string node_id;
  if (grpc::Status s = Admit(*context, &node_id); !s.ok()) return s;
  if (auto session = FindSession(request->session_id(), node_id); !session.ok()) {
    return ToGrpc(session.status());
  }
  if (request->updates().empty()) return grpc::Status::OK;
  absl::Status s = batcher_.Write([&](store::WriteTx& tx) -> absl::Status {
    const absl::Time now = clock_->Now();
    for (const auto& update : request->updates()) {
      const api::Task* task = tx.Get<api::Task>(update.task_id());
      // Only the node's own tasks, and only forward.
      if (task == nullptr || task->node_id() != node_id) continue;
      if (update.status().state() < task->status().state()) continue;
      api::Task updated = *task;
      *updated.mutable_status() = update.status();
      updated.mutable_status()->set_applied_by(node_id);
      ToProto(now, updated.mutable_status()->mutable_applied_at());
      if (absl::Status u = tx.Update(std::move(updated)); !u.ok()) return u;
    }
    return absl::OkStatus();
  });
  return ToGrpc(s);
}

grpc::Status Dispatcher::Assignments(grpc::ServerContext* context,
                                     const api::AssignmentsRequest* request,
                                     grpc::ServerWriter<api::AssignmentsMessage>* writer) {
  std::string node_id;
  if (grpc::Status s = Admit(*context, &node_id); !s.ok()) return s;
  auto found = FindSession(request->session_id(), node_id);
  if (!found.ok()) return ToGrpc(found.status());
  std::shared_ptr<SessionState> session = *found;
  const grpc::Status agent_gone(grpc::StatusCode::CANCELLED, "the agent closed the stream");

  // What the node holds, as this stream told it: the store's own immutable task objects.
  std::map<std::string, store::ObjectPtr> tasks;
  std::set<std::string> secrets;
  std::set<std::string> configs;
  uint64_t sequence = 0;

  // Events from here on are queued for this node; a view then says where they start.
  std::unique_ptr<AssignmentHub::Handle> subscription = hub_.Subscribe(node_id);

  // The full set, from a fresh view.
  auto send_complete = [&]() {
    api::AssignmentsMessage complete;
    complete.set_type(api::AssignmentsMessage::COMPLETE);
    tasks.clear();
    secrets.clear();
    configs.clear();
    uint64_t version = 0;
    store_->View([&](const store::ReadTx& tx) {
      version = tx.version();
      for (const api::Task* t : tx.FindTasksByNode(node_id)) {
        if (!Assignable(*t, node_id)) continue;
        AddReferences(*t, &secrets, &configs);
        tasks[t->id()] = std::make_shared<const api::StoreObject>(store::Wrap(*t));
      }
      for (const auto& [id, task] : tasks) {
        *complete.add_changes()->mutable_assignment()->mutable_task() = task->task();
      }
      for (const std::string& id : secrets) {
        if (const api::Secret* s = tx.Get<api::Secret>(id)) {
          *complete.add_changes()->mutable_assignment()->mutable_secret() = *s;
        }
      }
      for (const std::string& id : configs) {
        if (const api::Config* c = tx.Get<api::Config>(id)) {
          *complete.add_changes()->mutable_assignment()->mutable_config() = *c;
        }
      }
    });
    (*subscription)->SkipThrough(version);
    complete.set_results_in(std::to_string(++sequence));
    return writer->Write(complete);
  };

  if (!send_complete()) return agent_gone;
  std::vector<store::StoreEvent> events;
  while (true) {
    if (grpc::Status end = StreamMustEnd(*session, *context); !end.ok()) return end;
    absl::Status next = (*subscription)->Next(absl::Now() + options_.poll_interval, &events);
    if (absl::IsCancelled(next)) return NotLeader();
    if (!next.ok()) {
      // Events were dropped (the hub or this stream fell behind): a new full set.
      if (!send_complete()) return agent_gone;
      continue;
    }
    if (events.empty()) continue;

    api::AssignmentsMessage message;
    message.set_type(api::AssignmentsMessage::INCREMENTAL);
    std::set<std::string> changed_secrets, changed_configs, removed_secrets, removed_configs;
    for (const store::StoreEvent& event : events) {
      switch (event.kind()) {
        case api::OBJECT_KIND_TASK: {
          const api::Task& t = event.object->task();
          auto held = tasks.find(t.id());
          if (event.action == api::StoreAction::REMOVE || !Assignable(t, node_id)) {
            if (held != tasks.end()) {
              tasks.erase(held);
              api::AssignmentChange* c = message.add_changes();
              c->set_action(api::AssignmentChange::REMOVE);
              c->mutable_assignment()->mutable_task()->set_id(t.id());
            }
          } else if (held == tasks.end() || DiffersBeyondStatus(held->second->task(), t)) {
            tasks[t.id()] = event.object;
            api::AssignmentChange* c = message.add_changes();
            c->set_action(api::AssignmentChange::UPDATE);
            *c->mutable_assignment()->mutable_task() = t;
          } else {
            held->second = event.object;  // a status-only change: keep it current, send nothing
          }
          break;
        }
        case api::OBJECT_KIND_SECRET: {
          const std::string& id = event.object->secret().id();
          if (!secrets.count(id)) break;
          (event.action == api::StoreAction::REMOVE ? removed_secrets : changed_secrets).insert(id);
          break;
        }
        case api::OBJECT_KIND_CONFIG: {
          const std::string& id = event.object->config().id();
          if (!configs.count(id)) break;
          (event.action == api::StoreAction::REMOVE ? removed_configs : changed_configs).insert(id);
          break;
        }
        default:
          break;
      }
    }

    // Secrets and configs follow the task set: newly referenced ones are sent, no longer
    // referenced ones removed.
    std::set<std::string> want_secrets, want_configs;
    for (const auto& [id, task] : tasks) {
      AddReferences(task->task(), &want_secrets, &want_configs);
    }
    const bool references_changed = want_secrets != secrets || want_configs != configs ||
                                    !changed_secrets.empty() || !changed_configs.empty() ||
                                    !removed_secrets.empty() || !removed_configs.empty();
    if (references_changed) {
      store_->View([&](const store::ReadTx& tx) {
        for (const std::string& id : want_secrets) {
          if (removed_secrets.count(id)) continue;
          if (secrets.count(id) && !changed_secrets.count(id)) continue;
          if (const api::Secret* s = tx.Get<api::Secret>(id)) {
            api::AssignmentChange* c = message.add_changes();
            c->set_action(api::AssignmentChange::UPDATE);
            *c->mutable_assignment()->mutable_secret() = *s;
          }
        }
        for (const std::string& id : want_configs) {
          if (removed_configs.count(id)) continue;
          if (configs.count(id) && !changed_configs.count(id)) continue;
          if (const api::Config* c = tx.Get<api::Config>(id)) {
            api::AssignmentChange* ch = message.add_changes();
            ch->set_action(api::AssignmentChange::UPDATE);
            *ch->mutable_assignment()->mutable_config() = *c;
          }
        }
      });
      for (const std::string& id : secrets) {
        if (!want_secrets.count(id) || removed_secrets.count(id)) {
          api::AssignmentChange* c = message.add_changes();
          c->set_action(api::AssignmentChange::REMOVE);
          c->mutable_assignment()->mutable_secret()->set_id(id);
        }
      }
      for (const std::string& id : configs) {
        if (!want_configs.count(id) || removed_configs.count(id)) {
          api::AssignmentChange* c = message.add_changes();
          c->set_action(api::AssignmentChange::REMOVE);
          c->mutable_assignment()->mutable_config()->set_id(id);
        }
      }
      secrets.clear();
      for (const std::string& id : want_secrets) {
        if (!removed_secrets.count(id)) secrets.insert(id);
      }
      configs.clear();
      for (const std::string& id : want_configs) {
        if (!removed_configs.count(id)) configs.insert(id);
      }
    }

    if (message.changes_size() > 0) {
      message.set_applies_to(std::to_string(sequence));
      message.set_results_in(std::to_string(++sequence));
      if (!writer->Write(message)) return agent_gone;
    }
  }
}

}  // namespace shoal::manager
