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
#include "pki/authorization.h"
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

absl::Status DispatcherStoppedError() {
  return absl::UnavailableError(
      "this manager's dispatcher stopped (it is no longer the leader); reconnect to the current "
      "leader");
}
grpc::Status DispatcherStopped() { return ToGrpc(DispatcherStoppedError()); }

const grpc::Status& AgentGone() {
  static const grpc::Status* const kGone =
      new grpc::Status(grpc::StatusCode::CANCELLED, "the agent closed the stream");
  return *kGone;
}

// The reactor of a stream refused before it started: finishes at once with `status`.
template <class Message>
class Refused : public grpc::ServerWriteReactor<Message> {
 public:
  explicit Refused(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

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

// ---------------------------------------------------------------------------------------------
// Streams: reactors with at most one write in flight
// ---------------------------------------------------------------------------------------------

// One open server stream. It owns itself (self_) from registration until gRPC's OnDone, and is
// shared with whoever works on it meanwhile (a worker, the router, a store callback).
//
// At most one write is in flight, and Work() (the subclass building its next message) runs on
// one worker at a time, never while a write is in flight. End() records why the stream must end
// (the first reason wins); Finish goes out as soon as neither a write nor a worker holds the
// stream, so that OnDone (after which gRPC frees the call) can race with neither. OnDone
// unregisters the stream: the last time it touches the dispatcher.
class Dispatcher::Stream : public std::enable_shared_from_this<Stream> {
 public:
  Stream(Dispatcher* dispatcher, grpc::CallbackServerContext* context, std::string node_id,
         std::shared_ptr<SessionState> session)
      : dispatcher_(dispatcher),
        context_(context),
        node_id_(std::move(node_id)),
        session_(std::move(session)) {}
  virtual ~Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  const std::string& node_id() const { return node_id_; }
  const std::shared_ptr<SessionState>& session() const { return session_; }
  virtual SessionStream* AsSession() { return nullptr; }

  // Owns itself until OnDone. Called once, when registered.
  void Own() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    self_ = shared_from_this();
  }

  // Ends the stream with `why` (unless it is already ending) as soon as it can.
  void End(grpc::Status why) ABSL_LOCKS_EXCLUDED(mu_) {
    grpc::Status finish_with;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || done_) return;
      if (!ending_) {
        ending_ = true;
        end_status_ = std::move(why);
      }
      if (!CanFinishLocked()) return;  // the write in flight or the worker finishes it
      finished_ = true;
      finish_with = end_status_;
    }
    GrpcFinish(std::move(finish_with));
  }

  // Has a worker run Work() (once any write in flight is done).
  void Schedule() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    ScheduleLocked();
  }

  // Cancels the call (Stop's last resort for an agent that does not read).
  void Cancel() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      ++cancelling_;  // OnDone waits: the context lives until OnDone returns
    }
    context_->TryCancel();
    absl::MutexLock lock(&mu_);
    --cancelling_;
  }

  // A worker's turn.
  void RunWork() ABSL_LOCKS_EXCLUDED(mu_) {
    bool work = false;
    {
      absl::MutexLock lock(&mu_);
      if (done_ || finished_ || run_ != Run::kQueued) return;
      run_ = Run::kRunning;
      work = !ending_ && !write_in_flight_;
    }
    if (work) Work();
    grpc::Status finish_with;
    {
      absl::MutexLock lock(&mu_);
      const bool again = run_ == Run::kRunningAgain;
      run_ = Run::kIdle;
      if (!CanFinishLocked()) {
        if (again) ScheduleLocked();
        return;
      }
      finished_ = true;
      finish_with = end_status_;
    }
    GrpcFinish(std::move(finish_with));
  }

 protected:
  // Builds the next message, if there is one to send, and starts writing it with BeginWrite().
  // Runs on a worker; never while a write is in flight.
  virtual void Work() = 0;
  // StartWrite of the message BeginWrite was called for; Finish.
  virtual void GrpcWrite() = 0;
  virtual void GrpcFinish(grpc::Status status) = 0;
  // Gives back what the stream holds elsewhere (its hub subscription), on OnDone.
  virtual void Release() {}

  // From Work(): starts the write, unless the stream is ending (then false).
  bool BeginWrite() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (ending_ || finished_) return false;
      write_in_flight_ = true;
    }
    GrpcWrite();
    return true;
  }

  // The reactions.
  void WriteDone(bool ok) ABSL_LOCKS_EXCLUDED(mu_) {
    grpc::Status finish_with;
    {
      absl::MutexLock lock(&mu_);
      write_in_flight_ = false;
      if (!ok && !ending_) {
        ending_ = true;
        end_status_ = AgentGone();
      }
      if (!CanFinishLocked()) {
        if (!ending_) ScheduleLocked();  // whatever came in meanwhile
        return;
      }
      finished_ = true;
      finish_with = end_status_;
    }
    GrpcFinish(std::move(finish_with));
  }
  void Done() ABSL_LOCKS_EXCLUDED(mu_) {
    std::shared_ptr<Stream> self;  // may be the last reference: released on return
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      self = std::move(self_);
      auto not_cancelling = [this]()
                                ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return cancelling_ == 0; };
      mu_.Await(absl::Condition(&not_cancelling));
    }
    Release();
    dispatcher_->Unregister(this);
  }

  Dispatcher* const dispatcher_;
  grpc::CallbackServerContext* const context_;
  const std::string node_id_;
  const std::shared_ptr<SessionState> session_;
  absl::Mutex mu_;

 private:
  enum class Run { kIdle, kQueued, kRunning, kRunningAgain };

  bool CanFinishLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return ending_ && !finished_ && !write_in_flight_ &&
           (run_ == Run::kIdle || run_ == Run::kQueued);
  }
  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (done_ || finished_) return;
    if (run_ == Run::kIdle) {
      run_ = Run::kQueued;
      dispatcher_->Enqueue(shared_from_this());
    } else if (run_ == Run::kRunning) {
      run_ = Run::kRunningAgain;
    }
  }

  std::shared_ptr<Stream> self_ ABSL_GUARDED_BY(mu_);
  Run run_ ABSL_GUARDED_BY(mu_) = Run::kIdle;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called
  bool done_ ABSL_GUARDED_BY(mu_) = false;      // OnDone ran
  int cancelling_ ABSL_GUARDED_BY(mu_) = 0;     // Cancel() calls using context_
};

// A Session stream: the newest state (node, cluster, managers, registration) is kept, and the
// next message is built from it once the write in flight is done, so a newer state supersedes
// an unsent one.
class Dispatcher::SessionStream final : public Stream,
                                        public grpc::ServerWriteReactor<api::SessionMessage> {
 public:
  SessionStream(Dispatcher* dispatcher, grpc::CallbackServerContext* context, std::string node_id,
                std::shared_ptr<SessionState> session, std::string addr,
                api::NodeDescription description,
                std::shared_ptr<const std::vector<ManagerMember>> members)
      : Stream(dispatcher, context, std::move(node_id), std::move(session)),
        addr_(std::move(addr)),
        description_(std::move(description)),
        members_(std::move(members)) {}

  SessionStream* AsSession() override { return this; }

  // The node and the cluster as of store version `version`; older news than what the stream
  // has are ignored, unless `force` (a fresh view after the router's watcher was closed).
  void SetView(uint64_t version, std::shared_ptr<const api::Node> node,
               std::shared_ptr<const api::Cluster> cluster, bool force) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      viewed_ = true;
      if (force || version >= node_version_) {
        node_ = std::move(node);
        node_version_ = version;
      }
      if (force || version >= cluster_version_) {
        cluster_ = std::move(cluster);
        cluster_version_ = version;
      }
      dirty_ = true;
    }
    Schedule();
  }
  void SetNode(uint64_t version, std::shared_ptr<const api::Node> node) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (version <= node_version_) return;
      node_ = std::move(node);
      node_version_ = version;
      dirty_ = true;
    }
    Schedule();
  }
  void SetCluster(uint64_t version, std::shared_ptr<const api::Cluster> cluster)
      ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (version <= cluster_version_) return;
      cluster_ = std::move(cluster);
      cluster_version_ = version;
      dirty_ = true;
    }
    Schedule();
  }
  void SetMembers(std::shared_ptr<const std::vector<ManagerMember>> members)
      ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      members_ = std::move(members);
      dirty_ = true;
    }
    Schedule();
  }
  // The registration's commit result; `store_version` is the store's version when it came (the
  // commit's or later).
  void Registered(absl::Status status, uint64_t store_version) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      registered_ = true;
      registration_ = std::move(status);
      registered_at_ = store_version;
    }
    Schedule();
  }

  void OnWriteDone(bool ok) override { WriteDone(ok); }
  void OnCancel() override { End(AgentGone()); }
  void OnDone() override { Done(); }

 private:
  void Work() override {
    enum { kNothing, kRemoved, kFailed, kWrite } next = kNothing;
    absl::Status failed;
    {
      absl::MutexLock lock(&mu_);
      if (!viewed_) return;
      if (node_ == nullptr) {
        next = kRemoved;
      } else if (registered_ && !registration_.ok()) {
        next = kFailed;
        failed = registration_;
      } else if (dirty_) {
        dirty_ = false;
        api::SessionMessage message;
        message.set_session_id(session_->id);
        *message.mutable_node() = *node_;
        if (!registered_ || node_version_ < registered_at_) {
          // What the registration on its way (or committed, but not yet in node_) stores.
          api::Node* n = message.mutable_node();
          *n->mutable_description() = description_;
          n->mutable_status()->set_state(api::NodeStatus::READY);
          n->mutable_status()->clear_message();
          n->mutable_status()->set_addr(addr_);
        }
        for (const ManagerMember& m : *members_) {
          api::WeightedPeer* peer = message.add_managers();
          peer->mutable_peer()->set_node_id(m.node_id);
          peer->mutable_peer()->set_addr(m.addr);
          peer->set_weight(kManagerWeight);
        }
        if (cluster_ != nullptr) {
          *message.mutable_network_bootstrap_keys() = cluster_->network_bootstrap_keys();
          message.set_root_ca(TrustedRoots(cluster_->root_ca()));
        }
        if (!last_sent_.has_value() || !SameSessionMessage(*last_sent_, message)) {
          out_ = message;
          last_sent_ = std::move(message);
          next = kWrite;
        }
      }
    }
    switch (next) {
      case kNothing:
        return;
      case kRemoved: {
        const absl::Status removed = absl::PermissionDeniedError(absl::StrCat(
            "node ", node_id_, " was removed from the swarm; join again with a join token"));
        End(ToGrpc(removed));
        dispatcher_->EndSession(session_, removed);
        return;
      }
      case kFailed:
        spdlog::warn("dispatcher: registering node {} failed: {}", node_id_, failed.ToString());
        End(ToGrpc(failed));
        dispatcher_->EndSession(session_, failed);
        return;
      case kWrite:
        BeginWrite();
        return;
    }
  }
  void GrpcWrite() override { StartWrite(&out_); }
  void GrpcFinish(grpc::Status status) override { Finish(std::move(status)); }

  const std::string addr_;
  const api::NodeDescription description_;
  bool viewed_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const api::Node> node_ ABSL_GUARDED_BY(mu_);  // null: not in the store
  uint64_t node_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const api::Cluster> cluster_ ABSL_GUARDED_BY(mu_);
  uint64_t cluster_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const std::vector<ManagerMember>> members_ ABSL_GUARDED_BY(mu_);
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status registration_ ABSL_GUARDED_BY(mu_);
  uint64_t registered_at_ ABSL_GUARDED_BY(mu_) = 0;
  bool dirty_ ABSL_GUARDED_BY(mu_) = true;
  std::optional<api::SessionMessage> last_sent_ ABSL_GUARDED_BY(mu_);
  api::SessionMessage out_;  // the message being written (Work only, no write in flight)
};

// ---------------------------------------------------------------------------------------------
// The router: node and cluster changes to the session streams, leadership, managers
// ---------------------------------------------------------------------------------------------

std::shared_ptr<store::Watcher> Dispatcher::WatchSessions(bool resync) {
  std::vector<std::string> node_ids;
  if (resync) {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, streams] : session_streams_) node_ids.push_back(id);
  }
  uint64_t version = 0;
  std::shared_ptr<const api::Cluster> cluster;
  absl::flat_hash_map<std::string, std::shared_ptr<const api::Node>> nodes;
  store::WatchFilter filter;
  filter.kinds = {api::OBJECT_KIND_NODE, api::OBJECT_KIND_CLUSTER};
  std::shared_ptr<store::Watcher> watcher = store_->ViewAndWatch(
      [&](const store::ReadTx& tx) {
        version = tx.version();
        if (!resync) return;
        if (const api::Cluster* c = FindCluster(tx)) {
          cluster = std::make_shared<const api::Cluster>(*c);
        }
        for (const std::string& id : node_ids) {
          if (const api::Node* n = tx.Get<api::Node>(id)) {
            nodes[id] = std::make_shared<const api::Node>(*n);
          }
        }
      },
      filter);
  if (resync) {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, streams] : session_streams_) {
      auto n = nodes.find(id);
      for (SessionStream* s : streams) {
        s->SetView(version, n == nodes.end() ? nullptr : n->second, cluster, /*force=*/true);
      }
    }
  }
  return watcher;
}

void Dispatcher::RouteSessionChange(const store::StoreChange& change) {
  absl::MutexLock lock(&mu_);
  for (const store::StoreEvent& event : change.events) {
    const bool removed = event.action == api::StoreAction::REMOVE;
    if (event.kind() == api::OBJECT_KIND_NODE) {
      auto it = session_streams_.find(event.object->node().id());
      if (it == session_streams_.end()) continue;
      std::shared_ptr<const api::Node> node;
      if (!removed) node = std::shared_ptr<const api::Node>(event.object, &event.object->node());
      for (SessionStream* s : it->second) s->SetNode(change.version, node);
    } else if (event.kind() == api::OBJECT_KIND_CLUSTER) {
      std::shared_ptr<const api::Cluster> cluster;
      if (!removed) {
        cluster = std::shared_ptr<const api::Cluster>(event.object, &event.object->cluster());
      }
      for (const auto& [id, streams] : session_streams_) {
        for (SessionStream* s : streams) s->SetCluster(change.version, cluster);
      }
    }
  }
}

void Dispatcher::RouterLoop() {
  std::shared_ptr<store::Watcher> watcher;
  {
    absl::MutexLock lock(&mu_);
    watcher = router_watcher_;
  }
  absl::Time next_members_check = absl::InfinitePast();
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (router_stopping_) return;
    }
    absl::StatusOr<store::StoreChange> change = watcher->Next(absl::Now() + options_.poll_interval);
    while (change.ok()) {
      RouteSessionChange(*change);
      change = watcher->Next(absl::InfinitePast());
    }
    if (change.status().code() != absl::StatusCode::kDeadlineExceeded) {
      // Fell behind, or the store was restored (or this is shutdown): start over.
      {
        absl::MutexLock lock(&mu_);
        if (router_stopping_) return;
      }
      watcher = WatchSessions(/*resync=*/true);
      absl::MutexLock lock(&mu_);
      if (router_stopping_) return;
      router_watcher_ = watcher;
    }
    // Only the leader serves the streams: elsewhere the agents must reconnect.
    if (!raft_->IsLeader()) EndAllStreams(NotLeader());
    if (clock_->Now() >= next_members_check) {
      next_members_check = clock_->Now() + HeartbeatPeriod();
      std::vector<ManagerMember> now_members = raft_->Members();
      absl::MutexLock lock(&mu_);
      if (members_ == nullptr || !SameMembers(*members_, now_members)) {
        members_ = std::make_shared<const std::vector<ManagerMember>>(std::move(now_members));
        for (const auto& [id, streams] : session_streams_) {
          for (SessionStream* s : streams) s->SetMembers(members_);
        }
      }
    }
  }
}

Dispatcher::Dispatcher(store::MemoryStore* store, RaftControl* raft, DispatcherOptions options)
    : store_(store),
      raft_(raft),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : &RealClock()),
      batcher_(store),
      hub_(store) {
  // The router's watcher exists before any session stream takes its view: a stream's view is
  // never older than the changes the router has still to deliver.
  router_watcher_ = WatchSessions(/*resync=*/false);
  router_thread_ = std::thread([this] { RouterLoop(); });
  for (int i = 0; i < std::max(1, options_.stream_workers); ++i) {
    workers_.emplace_back([this] { WorkLoop(); });
  }
}

Dispatcher::~Dispatcher() {
  {
    absl::MutexLock lock(&mu_);
    destroying_ = true;
  }
  Stop();  // every stream has finished: nothing calls back into the dispatcher any more
  std::shared_ptr<store::Watcher> watcher;
  {
    absl::MutexLock lock(&mu_);
    router_stopping_ = true;
    watcher = router_watcher_;
  }
  if (watcher != nullptr) watcher->Close();
  router_thread_.join();
  {
    absl::MutexLock lock(&work_mu_);
    work_stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

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

grpc::Status Dispatcher::Admit(const grpc::ServerContextBase& context, std::string* node_id) const {
  // manager::AuthorizeNode for any server context (it takes the sync API's grpc::ServerContext):
  // a node certificate of this cluster, a worker or manager, not removed.
  std::string cluster_id;
  std::vector<std::string> denied;
  store_->View([&](const store::ReadTx& tx) {
    const api::Cluster* cluster = FindCluster(tx);
    if (cluster == nullptr) return;
    cluster_id = cluster->id();
    for (const auto& [id, unused] : cluster->denied_certificates()) denied.push_back(id);
  });
  if (cluster_id.empty()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this manager has not loaded the swarm's state yet; retry shortly");
  }
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (!auth) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no TLS on this call");
  absl::StatusOr<pki::NodeIdentity> caller = pki::PeerIdentity(*auth);
  if (!caller.ok()) return ToGrpc(caller.status());
  const pki::IsRemovedFn is_removed = [&denied](absl::string_view id) {
    return std::find(denied.begin(), denied.end(), id) != denied.end();
  };
  if (absl::Status s = pki::AuthorizeRole(*caller, {pki::Role::kWorker, pki::Role::kManager},
                                          cluster_id, is_removed);
      !s.ok()) {
    return ToGrpc(s);
  }
  if (!raft_->IsLeader()) return NotLeader();
  *node_id = caller->node_id;
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

void Dispatcher::EndSessionLocked(
    std::shared_ptr<SessionState> session, absl::Status why,
    std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>>* streams) {
  if (session->ended.ok()) session->ended = std::move(why);
  sessions_.erase(session->id);
  auto it = node_session_.find(session->node_id);
  if (it != node_session_.end() && it->second == session->id) node_session_.erase(it);
  for (Stream* stream : session->streams) {
    auto found = streams_.find(stream);
    if (found == streams_.end()) continue;
    if (std::shared_ptr<Stream> s = found->second.lock()) {
      streams->emplace_back(std::move(s), ToGrpc(session->ended));
    }
  }
}

void Dispatcher::EndSession(const std::shared_ptr<SessionState>& session, absl::Status why) {
  std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>> streams;
  {
    absl::MutexLock lock(&mu_);
    EndSessionLocked(session, std::move(why), &streams);
  }
  EndStreams(std::move(streams));
}

void Dispatcher::EndStreams(std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>> streams) {
  for (auto& [stream, why] : streams) stream->End(std::move(why));
}

void Dispatcher::EndAllStreams(const grpc::Status& why) {
  std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>> streams;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [raw, weak] : streams_) {
      if (std::shared_ptr<Stream> s = weak.lock()) streams.emplace_back(std::move(s), why);
    }
  }
  EndStreams(std::move(streams));
}

grpc::Status Dispatcher::RegisterLocked(Stream* stream) {
  if (!accepting_) return DispatcherStopped();
  if (!stream->session()->ended.ok()) return ToGrpc(stream->session()->ended);
  streams_[stream] = stream->weak_from_this();
  stream->session()->streams.push_back(stream);
  if (SessionStream* s = stream->AsSession()) session_streams_[stream->node_id()].push_back(s);
  return grpc::Status::OK;
}

void Dispatcher::Unregister(Stream* stream) {
  absl::MutexLock lock(&mu_);
  if (streams_.erase(stream) == 0) return;
  std::vector<Stream*>& of_session = stream->session()->streams;
  of_session.erase(std::remove(of_session.begin(), of_session.end(), stream), of_session.end());
  if (SessionStream* s = stream->AsSession()) {
    auto it = session_streams_.find(stream->node_id());
    if (it != session_streams_.end()) {
      it->second.erase(std::remove(it->second.begin(), it->second.end(), s), it->second.end());
      if (it->second.empty()) session_streams_.erase(it);
    }
  }
}

size_t Dispatcher::stream_count() const {
  absl::MutexLock lock(&mu_);
  return streams_.size();
}

void Dispatcher::Enqueue(std::shared_ptr<Stream> stream) {
  absl::MutexLock lock(&work_mu_);
  work_.push_back(std::move(stream));
}

void Dispatcher::WorkLoop() {
  for (;;) {
    std::shared_ptr<Stream> stream;
    {
      absl::MutexLock lock(&work_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_) {
        return work_stopping_ || !work_.empty();
      };
      work_mu_.Await(absl::Condition(&ready));
      if (work_.empty()) return;  // stopping, and nothing left
      stream = std::move(work_.front());
      work_.pop_front();
    }
    stream->RunWork();
  }
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
  std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>> streams;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    running_ = false;
    accepting_ = false;
    thread = std::move(liveness_thread_);
    std::vector<std::shared_ptr<SessionState>> all;
    for (auto& [id, session] : sessions_) all.push_back(session);
    for (auto& session : all) {
      EndSessionLocked(session, DispatcherStoppedError(), &streams);
    }
    grace_.clear();
  }
  if (thread.joinable()) thread.join();
  EndStreams(std::move(streams));
  EndAllStreams(DispatcherStopped());
  // Every stream finishes once its write in flight completes; one whose agent stopped reading
  // never would, so after the grace the calls still open are cancelled.
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return streams_.empty(); };
  std::vector<std::shared_ptr<Stream>> stuck;
  {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&none), options_.stop_grace)) {
      for (auto& [raw, weak] : streams_) {
        if (std::shared_ptr<Stream> s = weak.lock()) stuck.push_back(std::move(s));
      }
    }
  }
  if (!stuck.empty()) {
    spdlog::warn("dispatcher: cancelling {} stream(s) that did not finish within {}", stuck.size(),
                 absl::FormatDuration(options_.stop_grace));
    for (const auto& s : stuck) s->Cancel();
    stuck.clear();
  }
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&none));
  accepting_ = !destroying_;
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
  std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>> streams;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::shared_ptr<SessionState>> expired;
    for (auto& [id, session] : sessions_) {
      if (session->expiry <= now) expired.push_back(session);
    }
    for (auto& session : expired) {
      EndSessionLocked(session,
                       absl::NotFoundError(absl::StrCat(
                           "session '", session->id,
                           "' expired: no heartbeat came in time; open a new session")),
                       &streams);
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
  EndStreams(std::move(streams));
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

grpc::ServerWriteReactor<api::SessionMessage>* Dispatcher::Session(
    grpc::CallbackServerContext* context, const api::SessionRequest* request) {
  std::string node_id;
  if (grpc::Status s = Admit(*context, &node_id); !s.ok()) {
    return new Refused<api::SessionMessage>(std::move(s));
  }
  const absl::Duration period = HeartbeatPeriod();

  auto session = std::make_shared<SessionState>();
  session->id = NewId();
  session->node_id = node_id;
  session->expiry = clock_->Now() + period * options_.grace_multiplier;
  const std::string addr = PeerIp(context->peer());
  auto stream = std::make_shared<SessionStream>(
      this, context, node_id, session, addr, request->description(),
      std::make_shared<const std::vector<ManagerMember>>(raft_->Members()));
  std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>> replaced;
  grpc::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (!accepting_) {
      refused = DispatcherStopped();
    } else {
      auto old = node_session_.find(node_id);
      if (old != node_session_.end()) {
        auto it = sessions_.find(old->second);
        if (it != sessions_.end()) {
          EndSessionLocked(it->second,
                           absl::AbortedError(absl::StrCat("session '", old->second,
                                                           "' was replaced by a newer session of "
                                                           "node ",
                                                           node_id)),
                           &replaced);
        }
      }
      sessions_[session->id] = session;
      node_session_[node_id] = session->id;
      grace_.erase(node_id);
      // From here on the router hands the stream every change of its node and the cluster.
      refused = RegisterLocked(stream.get());
      if (refused.ok()) stream->Own();
    }
  }
  EndStreams(std::move(replaced));
  if (!refused.ok()) return new Refused<api::SessionMessage>(std::move(refused));

  // The registration is committed with other nodes' writes; the stream does not wait for it.
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
      [stream, store = store_](absl::Status s) {
        stream->Registered(std::move(s), store->version());
      });

  // The node and the cluster now; the router delivers what changes after this view.
  uint64_t version = 0;
  std::shared_ptr<const api::Node> node;
  std::shared_ptr<const api::Cluster> cluster;
  store_->View([&](const store::ReadTx& tx) {
    version = tx.version();
    if (const api::Node* n = tx.Get<api::Node>(node_id)) node = std::make_shared<api::Node>(*n);
    if (const api::Cluster* c = FindCluster(tx)) cluster = std::make_shared<api::Cluster>(*c);
  });
  stream->SetView(version, std::move(node), std::move(cluster), /*force=*/false);
  return stream.get();
}

grpc::ServerUnaryReactor* Dispatcher::Heartbeat(grpc::CallbackServerContext* context,
                                                const api::HeartbeatRequest* request,
                                                api::HeartbeatResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(DoHeartbeat(*context, *request, response));
  return reactor;
}

grpc::Status Dispatcher::DoHeartbeat(const grpc::ServerContextBase& context,
                                     const api::HeartbeatRequest& request,
                                     api::HeartbeatResponse* response) {
  std::string node_id;
  if (grpc::Status s = Admit(context, &node_id); !s.ok()) return s;
  const absl::Duration period = HeartbeatPeriod();
  auto session = FindSession(request.session_id(), node_id);
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

grpc::ServerUnaryReactor* Dispatcher::UpdateTaskStatus(grpc::CallbackServerContext* context,
                                                       const api::UpdateTaskStatusRequest* request,
                                                       api::UpdateTaskStatusResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::string node_id;
  if (grpc::Status s = Admit(*context, &node_id); !s.ok()) {
    reactor->Finish(s);
    return reactor;
  }
  if (auto session = FindSession(request->session_id(), node_id); !session.ok()) {
    reactor->Finish(ToGrpc(session.status()));
    return reactor;
  }
  if (request->updates().empty()) {
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  // The request lives until the reactor finishes, which is after the function last runs.
  Clock* const clock = clock_;
  batcher_.WriteAsync(
      [request, node_id, clock](store::WriteTx& tx) -> absl::Status {
        const absl::Time now = clock->Now();
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
      },
      [reactor](absl::Status s) { reactor->Finish(ToGrpc(s)); });
  return reactor;
}

// ---------------------------------------------------------------------------------------------
// Assignments
// ---------------------------------------------------------------------------------------------

// An Assignments stream: a COMPLETE set, then INCREMENTAL changes built from the node's hub
// subscription. The hub calls back when the subscription has something; a worker then takes
// the pending events and writes one message. While that write is in flight nothing is taken:
// further changes coalesce, by object, in the subscription's pending set.
class Dispatcher::AssignmentsStream final
    : public Stream,
      public grpc::ServerWriteReactor<api::AssignmentsMessage> {
 public:
  using Stream::Stream;

  // Starts the stream: from now on every change for the node is kept for it.
  void Subscribe(AssignmentHub* hub) ABSL_LOCKS_EXCLUDED(mu_) {
    std::weak_ptr<Stream> weak = weak_from_this();
    std::unique_ptr<AssignmentHub::Handle> handle = hub->Subscribe(node_id_, [weak] {
      // On the hub's thread, under its lock: only queue the stream for a worker.
      if (std::shared_ptr<Stream> stream = weak.lock()) stream->Schedule();
    });
    {
      absl::MutexLock lock(&mu_);
      subscription_ = std::move(handle);
    }
    Schedule();
  }

  void OnWriteDone(bool ok) override { WriteDone(ok); }
  void OnCancel() override { End(AgentGone()); }
  void OnDone() override { Done(); }

 private:
  void Work() override {
    AssignmentHub::Handle* subscription = nullptr;
    {
      absl::MutexLock lock(&mu_);
      subscription = subscription_.get();  // reset only by OnDone, which cannot run meanwhile
    }
    if (subscription == nullptr) return;
    api::AssignmentsMessage message;
    if (sequence_ == 0) {
      Complete(*subscription, &message);
    } else {
      absl::Status next = (*subscription)->Take(&events_);
      if (absl::IsCancelled(next)) {
        End(dispatcher_->NotLeader());
        return;
      }
      if (!next.ok()) {
        // Events were dropped (the hub or this stream fell behind): a new full set.
        Complete(*subscription, &message);
      } else {
        if (events_.empty()) return;
        Incremental(events_, &message);
        events_.clear();
        if (message.changes_size() == 0) return;
        message.set_applies_to(std::to_string(sequence_));
        message.set_results_in(std::to_string(++sequence_));
      }
    }
    out_ = std::move(message);
    BeginWrite();
  }

  // The full set, from a fresh view.
  void Complete(AssignmentHub::Handle& subscription, api::AssignmentsMessage* complete) {
    complete->set_type(api::AssignmentsMessage::COMPLETE);
    tasks_.clear();
    secrets_.clear();
    configs_.clear();
    uint64_t version = 0;
    dispatcher_->store_->View([&](const store::ReadTx& tx) {
      version = tx.version();
      for (const api::Task* t : tx.FindTasksByNode(node_id_)) {
        if (!Assignable(*t, node_id_)) continue;
        AddReferences(*t, &secrets_, &configs_);
        tasks_[t->id()] = std::make_shared<const api::StoreObject>(store::Wrap(*t));
      }
      for (const auto& [id, task] : tasks_) {
        *complete->add_changes()->mutable_assignment()->mutable_task() = task->task();
      }
      for (const std::string& id : secrets_) {
        if (const api::Secret* s = tx.Get<api::Secret>(id)) {
          *complete->add_changes()->mutable_assignment()->mutable_secret() = *s;
        }
      }
      for (const std::string& id : configs_) {
        if (const api::Config* c = tx.Get<api::Config>(id)) {
          *complete->add_changes()->mutable_assignment()->mutable_config() = *c;
        }
      }
    });
    subscription->SkipThrough(version);
    complete->set_results_in(std::to_string(++sequence_));
  }

  // The changes `events` make to what the node holds.
  void Incremental(const std::vector<store::StoreEvent>& events, api::AssignmentsMessage* message) {
    message->set_type(api::AssignmentsMessage::INCREMENTAL);
    std::set<std::string> changed_secrets, changed_configs, removed_secrets, removed_configs;
    for (const store::StoreEvent& event : events) {
      switch (event.kind()) {
        case api::OBJECT_KIND_TASK: {
          const api::Task& t = event.object->task();
          auto held = tasks_.find(t.id());
          if (event.action == api::StoreAction::REMOVE || !Assignable(t, node_id_)) {
            if (held != tasks_.end()) {
              tasks_.erase(held);
              api::AssignmentChange* c = message->add_changes();
              c->set_action(api::AssignmentChange::REMOVE);
              c->mutable_assignment()->mutable_task()->set_id(t.id());
            }
          } else if (held == tasks_.end() || DiffersBeyondStatus(held->second->task(), t)) {
            tasks_[t.id()] = event.object;
            api::AssignmentChange* c = message->add_changes();
            c->set_action(api::AssignmentChange::UPDATE);
            *c->mutable_assignment()->mutable_task() = t;
          } else {
            held->second = event.object;  // a status-only change: keep it current, send nothing
          }
          break;
        }
        case api::OBJECT_KIND_SECRET: {
          const std::string& id = event.object->secret().id();
          if (!secrets_.count(id)) break;
          (event.action == api::StoreAction::REMOVE ? removed_secrets : changed_secrets).insert(id);
          break;
        }
        case api::OBJECT_KIND_CONFIG: {
          const std::string& id = event.object->config().id();
          if (!configs_.count(id)) break;
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
    for (const auto& [id, task] : tasks_) {
      AddReferences(task->task(), &want_secrets, &want_configs);
    }
    const bool references_changed = want_secrets != secrets_ || want_configs != configs_ ||
                                    !changed_secrets.empty() || !changed_configs.empty() ||
                                    !removed_secrets.empty() || !removed_configs.empty();
    if (references_changed) {
      dispatcher_->store_->View([&](const store::ReadTx& tx) {
        for (const std::string& id : want_secrets) {
          if (removed_secrets.count(id)) continue;
          if (secrets_.count(id) && !changed_secrets.count(id)) continue;
          if (const api::Secret* s = tx.Get<api::Secret>(id)) {
            api::AssignmentChange* c = message->add_changes();
            c->set_action(api::AssignmentChange::UPDATE);
            *c->mutable_assignment()->mutable_secret() = *s;
          }
        }
        for (const std::string& id : want_configs) {
          if (removed_configs.count(id)) continue;
          if (configs_.count(id) && !changed_configs.count(id)) continue;
          if (const api::Config* c = tx.Get<api::Config>(id)) {
            api::AssignmentChange* ch = message->add_changes();
            ch->set_action(api::AssignmentChange::UPDATE);
            *ch->mutable_assignment()->mutable_config() = *c;
          }
        }
      });
      for (const std::string& id : secrets_) {
        if (!want_secrets.count(id) || removed_secrets.count(id)) {
          api::AssignmentChange* c = message->add_changes();
          c->set_action(api::AssignmentChange::REMOVE);
          c->mutable_assignment()->mutable_secret()->set_id(id);
        }
      }
      for (const std::string& id : configs_) {
        if (!want_configs.count(id) || removed_configs.count(id)) {
          api::AssignmentChange* c = message->add_changes();
          c->set_action(api::AssignmentChange::REMOVE);
          c->mutable_assignment()->mutable_config()->set_id(id);
        }
      }
      secrets_.clear();
      for (const std::string& id : want_secrets) {
        if (!removed_secrets.count(id)) secrets_.insert(id);
      }
      configs_.clear();
      for (const std::string& id : want_configs) {
        if (!removed_configs.count(id)) configs_.insert(id);
      }
    }
  }

  void GrpcWrite() override { StartWrite(&out_); }
  void GrpcFinish(grpc::Status status) override { Finish(std::move(status)); }
  void Release() override {
    std::unique_ptr<AssignmentHub::Handle> subscription;
    {
      absl::MutexLock lock(&mu_);
      subscription = std::move(subscription_);
    }
    // Unsubscribes (outside mu_: the hub's callback takes it under the hub's lock).
  }

  std::unique_ptr<AssignmentHub::Handle> subscription_ ABSL_GUARDED_BY(mu_);
  // The rest is the worker's (Work runs on one worker at a time).
  // What the node holds, as this stream told it: the store's own immutable task objects.
  std::map<std::string, store::ObjectPtr> tasks_;
  std::set<std::string> secrets_;
  std::set<std::string> configs_;
  uint64_t sequence_ = 0;  // of the last message sent; 0 before the COMPLETE set
  std::vector<store::StoreEvent> events_;
  api::AssignmentsMessage out_;  // the message being written
};

grpc::ServerWriteReactor<api::AssignmentsMessage>* Dispatcher::Assignments(
    grpc::CallbackServerContext* context, const api::AssignmentsRequest* request) {
  std::string node_id;
  if (grpc::Status s = Admit(*context, &node_id); !s.ok()) {
    return new Refused<api::AssignmentsMessage>(std::move(s));
  }
  auto found = FindSession(request->session_id(), node_id);
  if (!found.ok()) return new Refused<api::AssignmentsMessage>(ToGrpc(found.status()));
  auto stream = std::make_shared<AssignmentsStream>(this, context, node_id, *found);
  grpc::Status refused;
  {
    absl::MutexLock lock(&mu_);
    refused = RegisterLocked(stream.get());
    if (refused.ok()) stream->Own();
  }
  if (!refused.ok()) return new Refused<api::AssignmentsMessage>(std::move(refused));
  stream->Subscribe(&hub_);
  return stream.get();
}

}  // namespace shoal::manager
