#include "manager/logbroker/log_broker.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "manager/cluster_object.h"
#include "manager/store/read_tx.h"
#include "manager/store/watch.h"
#include "pki/authorization.h"
#include "pki/grpc_tls.h"
#include "spdlog/spdlog.h"

namespace shoal::manager {
namespace {

// What must happen once the broker's mutex is released: gRPC operations (StartWrite, StartRead,
// Finish) are never started while it is held.
using Actions = std::vector<std::function<void()>>;

void Run(Actions& actions) {
  for (auto& a : actions) a();
  actions.clear();
}

constexpr char kStoppedLeading[] =
    "this manager stopped leading the swarm; subscribe again through any manager (the new leader "
    "serves logs)";

std::string NodeLabel(const std::string& node_id, const std::string& hostname) {
  if (hostname.empty()) return node_id;
  return absl::StrCat(hostname, " (", node_id, ")");
}

// Finishes at once with an error: for calls refused before any stream state exists.
template <class Response>
class RefusedWriter final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RefusedWriter(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

template <class Request>
class RefusedReader final : public grpc::ServerReadReactor<Request> {
 public:
  explicit RefusedReader(grpc::Status status) { this->Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Impl: everything below is guarded by Impl::mu_.
// ---------------------------------------------------------------------------------------------

class LogBroker::Impl : public std::enable_shared_from_this<Impl> {
 public:
  class Subscriber;
  class Listener;
  class Publisher;

  class LogsService final : public api::Logs::CallbackService {
   public:
    explicit LogsService(Impl* impl) : impl_(impl) {}
    grpc::ServerWriteReactor<api::SubscribeLogsMessage>* SubscribeLogs(
        grpc::CallbackServerContext* context, const api::SubscribeLogsRequest* request) override {
      return impl_->Subscribe(context, *request);
    }

   private:
    Impl* const impl_;
  };

  class BrokerService final : public api::LogBroker::CallbackService {
   public:
    explicit BrokerService(Impl* impl) : impl_(impl) {}
    grpc::ServerWriteReactor<api::SubscriptionMessage>* ListenSubscriptions(
        grpc::CallbackServerContext* context, const api::ListenSubscriptionsRequest*) override {
      return impl_->Listen(context);
    }
    grpc::ServerReadReactor<api::PublishLogsMessage>* PublishLogs(
        grpc::CallbackServerContext* context, api::PublishLogsResponse*) override {
      return impl_->Publish(context);
    }

   private:
    Impl* const impl_;
  };

  Impl(store::MemoryStore* store, RaftControl* raft, LogBrokerOptions options)
      : store_(store), raft_(raft), options_(options), logs_service_(this), broker_service_(this) {}

  // Per subscription and node.
  struct NodeState {
    std::set<std::string> tasks;
    std::string label;    // "hostname (id)" for messages
    bool sent = false;    // the node's listener got the subscription
    bool closed = false;  // the node sent close
    bool failed = false;  // it cannot serve the subscription (non-follow only)
    // Involved only once the subscription ran (follow): its tasks were all assigned since, so
    // all their lines are new and the subscription's tail does not apply to them.
    bool late = false;
    std::string why;
    int publishers = 0;
  };

  class Subscriber final : public grpc::ServerWriteReactor<api::SubscribeLogsMessage> {
   public:
    Subscriber(std::shared_ptr<Impl> impl, std::string id, api::SubscribeLogsRequest request)
        : impl_(std::move(impl)), id_(std::move(id)), request_(std::move(request)) {}

    void OnWriteDone(bool ok) override {
      Actions actions;
      {
        absl::MutexLock lock(&impl_->mu_);
        writing_ = false;
        if (!ok) {
          impl_->EndSubscriptionLocked(
              this, grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber went away"),
              /*drop_queue=*/true, actions);
        }
        PumpLocked(actions);
      }
      Run(actions);
    }

    void OnCancel() override {
      Actions actions;
      {
        absl::MutexLock lock(&impl_->mu_);
        impl_->EndSubscriptionLocked(
            this, grpc::Status(grpc::StatusCode::CANCELLED, "the subscriber cancelled"),
            /*drop_queue=*/true, actions);
        PumpLocked(actions);
      }
      Run(actions);
    }

    void OnDone() override {
      {
        absl::MutexLock lock(&impl_->mu_);
        Actions ignored;  // ended already: Finish was the last operation
        impl_->EndSubscriptionLocked(this, grpc::Status::OK, true, ignored);
      }
      delete this;
    }

    bool follow() const { return request_.options().follow(); }

    // Sends queued lines, then the final status once requested and the queue is empty.
    void PumpLocked(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (finished_ || writing_) return;
      if (!queue_.empty()) {
        current_.Clear();
        const size_t n = std::min(queue_.size(), impl_->options_.max_lines_per_message);
        for (size_t i = 0; i < n; ++i) {
          *current_.add_messages() = std::move(queue_.front());
          queue_.pop_front();
        }
        impl_->stats_.lines_forwarded += n;
        writing_ = true;
        actions.push_back([this] { StartWrite(&current_); });
        ResumePublishersLocked(actions);
        return;
      }
      if (finish_requested_) {
        finished_ = true;
        actions.push_back([this, s = finish_status_] { Finish(s); });
      }
    }

    void RequestFinishLocked(grpc::Status status, bool drop_queue, Actions& actions)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (!finish_requested_) {
        finish_requested_ = true;
        finish_status_ = std::move(status);
      }
      if (drop_queue) queue_.clear();
      // A write in flight completes first (it fails at once when the call was cancelled; a
      // subscriber that stopped reading is cut off by the server's shutdown deadline).
      PumpLocked(actions);
    }

    void ResumePublishersLocked(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_);

    const std::string& id() const { return id_; }

    std::shared_ptr<Impl> impl_;
    const std::string id_;
    const api::SubscribeLogsRequest request_;
    std::map<std::string, NodeState> nodes_;
    absl::flat_hash_map<std::string, std::string> task_service_;
    std::set<Publisher*> publishers_;
    std::vector<Publisher*> paused_;
    bool ended_ = false;  // no longer in subs_
    std::deque<api::LogMessage> queue_;
    api::SubscribeLogsMessage current_;
    bool writing_ = false;
    bool finish_requested_ = false;
    grpc::Status finish_status_;
    bool finished_ = false;
  };

  class Listener final : public grpc::ServerWriteReactor<api::SubscriptionMessage> {
   public:
    Listener(std::shared_ptr<Impl> impl, std::string node_id)
        : impl_(std::move(impl)), node_id_(std::move(node_id)) {}

    void OnWriteDone(bool ok) override {
      Actions actions;
      {
        absl::MutexLock lock(&impl_->mu_);
        writing_ = false;
        if (!ok) {
          impl_->ListenerGoneLocked(this, actions);
          RequestFinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"), actions);
        }
        PumpLocked(actions);
      }
      Run(actions);
    }

    void OnCancel() override {
      Actions actions;
      {
        absl::MutexLock lock(&impl_->mu_);
        impl_->ListenerGoneLocked(this, actions);
        RequestFinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"), actions);
      }
      Run(actions);
    }

    void OnDone() override {
      Actions actions;
      {
        absl::MutexLock lock(&impl_->mu_);
        impl_->ListenerGoneLocked(this, actions);
      }
      Run(actions);
      delete this;
    }

    void SendLocked(api::SubscriptionMessage message, Actions& actions)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (finish_requested_) return;
      queue_.push_back(std::move(message));
      PumpLocked(actions);
    }

    void PumpLocked(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (finished_ || writing_) return;
      if (!queue_.empty() && !finish_requested_) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        writing_ = true;
        actions.push_back([this] { StartWrite(&current_); });
        return;
      }
      if (finish_requested_) {
        finished_ = true;
        actions.push_back([this, s = finish_status_] { Finish(s); });
      }
    }

    void RequestFinishLocked(grpc::Status status, Actions& actions)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (!finish_requested_) {
        finish_requested_ = true;
        finish_status_ = std::move(status);
      }
      queue_.clear();
      PumpLocked(actions);
    }

    const std::string& node_id() const { return node_id_; }

   private:
    std::shared_ptr<Impl> impl_;
    const std::string node_id_;
    std::deque<api::SubscriptionMessage> queue_;
    api::SubscriptionMessage current_;
    bool writing_ = false;
    bool finish_requested_ = false;
    grpc::Status finish_status_;
    bool finished_ = false;
  };

  class Publisher final : public grpc::ServerReadReactor<api::PublishLogsMessage> {
   public:
    Publisher(std::shared_ptr<Impl> impl, std::string node_id)
        : impl_(std::move(impl)), node_id_(std::move(node_id)) {
      reading_ = true;
      StartRead(&message_);
    }

    void OnReadDone(bool ok) override {
      Actions actions;
      {
        absl::MutexLock lock(&impl_->mu_);
        reading_ = false;
        if (!finished_) {
          if (ok) {
            HandleLocked(actions);
          } else {
            EndOfStreamLocked(actions);
          }
        }
      }
      Run(actions);
    }

    void OnDone() override {
      {
        absl::MutexLock lock(&impl_->mu_);
        Actions ignored;
        DetachLocked(ignored);
        impl_->publishers_.erase(this);
      }
      delete this;
    }

    // The subscriber took lines: read on.
    void ResumeLocked(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (finished_ || !paused_ || reading_) return;
      paused_ = false;
      reading_ = true;
      actions.push_back([this] { StartRead(&message_); });
    }

    void FinishLocked(grpc::Status status, Actions& actions)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (finished_) return;
      finished_ = true;
      DetachLocked(actions);
      actions.push_back([this, status] { Finish(status); });
    }

    // Leaves the subscription (without judging the node).
    void DetachLocked(Actions&) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (sub_ == nullptr) return;
      sub_->publishers_.erase(this);
      auto& paused = sub_->paused_;
      paused.erase(std::remove(paused.begin(), paused.end(), this), paused.end());
      auto it = sub_->nodes_.find(node_id_);
      if (it != sub_->nodes_.end()) --it->second.publishers;
      sub_ = nullptr;
    }

   private:
    void HandleLocked(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      if (sub_ == nullptr) {
        if (!sub_id_.empty()) {
          // The subscription ended while we were reading.
          FinishLocked(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    absl::StrCat("log subscription ", sub_id_, " has ended")),
                       actions);
          return;
        }
        sub_id_ = message_.subscription_id();
        auto it = impl_->subs_.find(sub_id_);
        if (sub_id_.empty() || it == impl_->subs_.end()) {
          FinishLocked(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    absl::StrCat("log subscription '", sub_id_,
                                                 "' is not active on this manager (the "
                                                 "subscriber went away, or another manager "
                                                 "leads now); stop publishing it")),
                       actions);
          return;
        }
        Subscriber* sub = it->second;
        auto node = sub->nodes_.find(node_id_);
        if (node == sub->nodes_.end() || !node->second.sent) {
          FinishLocked(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                    absl::StrCat("log subscription ", sub_id_,
                                                 " was not sent to node ", node_id_)),
                       actions);
          return;
        }
        sub_ = sub;
        sub->publishers_.insert(this);
        ++node->second.publishers;
      } else if (message_.subscription_id() != sub_id_) {
        FinishLocked(
            grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         absl::StrCat("a PublishLogs stream carries one subscription (", sub_id_,
                                      "), not also ", message_.subscription_id())),
            actions);
        return;
      }
      Subscriber* sub = sub_;
      NodeState& node = sub->nodes_[node_id_];
      for (api::LogMessage& m : *message_.mutable_messages()) {
        const std::string& task_id = m.context().task_id();
        if (node.tasks.count(task_id) == 0) {
          ++impl_->stats_.lines_dropped;
          continue;
        }
        m.mutable_context()->set_node_id(node_id_);
        auto svc = sub->task_service_.find(task_id);
        m.mutable_context()->set_service_id(svc == sub->task_service_.end() ? "" : svc->second);
        sub->queue_.push_back(std::move(m));
      }
      sub->PumpLocked(actions);
      if (message_.close()) {
        node.closed = true;
        FinishLocked(grpc::Status::OK, actions);
        impl_->CheckCompleteLocked(sub, actions);
        return;
      }
      if (sub->queue_.size() >= impl_->options_.subscriber_buffer_lines) {
        paused_ = true;
        sub->paused_.push_back(this);
        ++impl_->stats_.publisher_pauses;
        return;
      }
      reading_ = true;
      actions.push_back([this] { StartRead(&message_); });
    }

    void EndOfStreamLocked(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl_->mu_) {
      Subscriber* sub = sub_;
      FinishLocked(grpc::Status::OK, actions);
      if (sub == nullptr || sub->ended_) return;
      NodeState& node = sub->nodes_[node_id_];
      if (!node.closed && node.publishers == 0 && !sub->follow()) {
        node.failed = true;
        node.why = absl::StrCat("node ", node.label,
                                " ended its log stream before the end of its tasks' logs");
        impl_->CheckCompleteLocked(sub, actions);
      }
    }

    std::shared_ptr<Impl> impl_;
    const std::string node_id_;
    api::PublishLogsMessage message_;
    std::string sub_id_;
    Subscriber* sub_ = nullptr;
    bool reading_ = false;
    bool paused_ = false;
    bool finished_ = false;
  };

  // --- Calls ---------------------------------------------------------------------------------

  grpc::Status NotLeader() const {
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

  // The caller's certificate against the store's cluster (AuthorizeNode, for callback
  // contexts), then the leadership.
  grpc::Status Admit(const grpc::CallbackServerContext& context,
                     std::initializer_list<pki::Role> roles, std::string* node_id) const {
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
    std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    if (auth == nullptr) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "this call needs a node certificate (mutual TLS)");
    }
    absl::StatusOr<pki::NodeIdentity> caller = pki::PeerIdentity(*auth);
    if (!caller.ok()) return pki::ToGrpcStatus(caller.status());
    const std::vector<pki::Role> allowed(roles);
    absl::Status s = pki::AuthorizeRole(*caller, allowed, cluster_id, [&](absl::string_view id) {
      return std::find(denied.begin(), denied.end(), id) != denied.end();
    });
    if (!s.ok()) return pki::ToGrpcStatus(s);
    {
      absl::MutexLock lock(&mu_);
      if (!running_) return NotLeader();
    }
    if (!raft_->IsLeader()) return NotLeader();
    *node_id = caller->node_id;
    return grpc::Status::OK;
  }

  static grpc::Status Validate(const api::SubscribeLogsRequest& request) {
    const api::LogSelector& sel = request.selector();
    if (sel.service_ids_size() == 0 && sel.node_ids_size() == 0 && sel.task_ids_size() == 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the log selector names no service, node or task: give at least one");
    }
    for (const auto* list : {&sel.service_ids(), &sel.node_ids(), &sel.task_ids()}) {
      for (const std::string& id : *list) {
        if (id.empty()) {
          const char* what = list == &sel.service_ids() ? "service"
                             : list == &sel.node_ids()  ? "node"
                                                        : "task";
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              absl::StrCat("the log selector has an empty ", what,
                                           " ID: give IDs (names are resolved by the client)"));
        }
      }
    }
    for (int s : request.options().streams()) {
      if (s != api::LOG_STREAM_STDOUT && s != api::LOG_STREAM_STDERR) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("unknown log stream ", s,
                                         " in the options: use LOG_STREAM_STDOUT or "
                                         "LOG_STREAM_STDERR (none = both)"));
      }
    }
    const auto& since = request.options().since();
    if (since.nanos() < 0 || since.nanos() > 999999999) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the since timestamp's nanos must be from 0 to 999999999");
    }
    return grpc::Status::OK;
  }

  static bool Matches(const api::LogSelector& sel, const api::Task& task) {
    auto has = [](const auto& list, const std::string& v) {
      return std::find(list.begin(), list.end(), v) != list.end();
    };
    return has(sel.service_ids(), task.service_id()) || has(sel.node_ids(), task.node_id()) ||
           has(sel.task_ids(), task.id());
  }

  // The selected tasks, by node: NOT_FOUND names an unknown ID.
  struct Resolution {
    std::map<std::string, NodeState> nodes;
    absl::flat_hash_map<std::string, std::string> task_service;
  };
  static grpc::Status Resolve(const store::ReadTx& tx, const api::LogSelector& sel,
                              Resolution* out) {
    std::vector<const api::Task*> tasks;
    for (const std::string& id : sel.service_ids()) {
      if (tx.Get<api::Service>(id) == nullptr) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            absl::StrCat("service ", id,
                                         " not found (`shoal service ls` lists "
                                         "the services)"));
      }
      for (const api::Task* t : tx.FindTasksByService(id)) tasks.push_back(t);
    }
    for (const std::string& id : sel.node_ids()) {
      if (tx.Get<api::Node>(id) == nullptr) {
        return grpc::Status(
            grpc::StatusCode::NOT_FOUND,
            absl::StrCat("node ", id, " not found (`shoal node ls` lists the nodes)"));
      }
      for (const api::Task* t : tx.FindTasksByNode(id)) tasks.push_back(t);
    }
    for (const std::string& id : sel.task_ids()) {
      const api::Task* t = tx.Get<api::Task>(id);
      if (t == nullptr) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            absl::StrCat("task ", id,
                                         " not found (`shoal service ps` lists a "
                                         "service's tasks)"));
      }
      tasks.push_back(t);
    }
    for (const api::Task* t : tasks) {
      if (t->node_id().empty()) continue;
      NodeState& node = out->nodes[t->node_id()];
      node.tasks.insert(t->id());
      out->task_service[t->id()] = t->service_id();
    }
    for (auto& [id, node] : out->nodes) {
      const api::Node* n = tx.Get<api::Node>(id);
      node.label = NodeLabel(id, n == nullptr ? "" : n->description().hostname());
    }
    return grpc::Status::OK;
  }

  api::SubscriptionMessage SubscriptionFor(const Subscriber& sub, const NodeState& node) const {
    api::SubscriptionMessage m;
    m.set_id(sub.id_);
    for (const std::string& t : node.tasks) m.mutable_selector()->add_task_ids(t);
    *m.mutable_options() = sub.request_.options();
    if (node.late) m.mutable_options()->clear_tail();
    return m;
  }

  grpc::ServerWriteReactor<api::SubscribeLogsMessage>* Subscribe(
      grpc::CallbackServerContext* context, const api::SubscribeLogsRequest& request) {
    std::string caller;
    if (grpc::Status s = Admit(*context, {pki::Role::kManager}, &caller); !s.ok()) {
      return new RefusedWriter<api::SubscribeLogsMessage>(s);
    }
    if (grpc::Status s = Validate(request); !s.ok()) {
      return new RefusedWriter<api::SubscribeLogsMessage>(s);
    }
    Resolution resolution;
    grpc::Status resolved;
    store_->View(
        [&](const store::ReadTx& tx) { resolved = Resolve(tx, request.selector(), &resolution); });
    if (!resolved.ok()) return new RefusedWriter<api::SubscribeLogsMessage>(resolved);

    auto* sub = new Subscriber(shared_from_this(), NewId(), request);
    sub->nodes_ = std::move(resolution.nodes);
    sub->task_service_ = std::move(resolution.task_service);
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      if (!running_) {
        sub->ended_ = true;
        sub->RequestFinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, kStoppedLeading),
                                 false, actions);
      } else {
        subs_.emplace(sub->id(), sub);
        for (auto& [node_id, node] : sub->nodes_) {
          auto l = listeners_.find(node_id);
          if (l != listeners_.end()) {
            node.sent = true;
            l->second->SendLocked(SubscriptionFor(*sub, node), actions);
          } else if (!sub->follow()) {
            node.failed = true;
            node.why = absl::StrCat("node ", node.label, " is not connected to the leader");
          }
        }
        size_t tasks = 0;
        for (const auto& [node_id, node] : sub->nodes_) tasks += node.tasks.size();
        spdlog::debug("log subscription {} opened{}: {} task(s) on {} node(s)", sub->id(),
                      sub->follow() ? ", following" : "", tasks, sub->nodes_.size());
        CheckCompleteLocked(sub, actions);
      }
    }
    Run(actions);
    return sub;
  }

  grpc::ServerWriteReactor<api::SubscriptionMessage>* Listen(grpc::CallbackServerContext* context) {
    std::string node_id;
    if (grpc::Status s = Admit(*context, {pki::Role::kWorker, pki::Role::kManager}, &node_id);
        !s.ok()) {
      return new RefusedWriter<api::SubscriptionMessage>(s);
    }
    auto* listener = new Listener(shared_from_this(), node_id);
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      if (!running_) {
        listener->RequestFinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, kStoppedLeading),
                                      actions);
      } else {
        auto it = listeners_.find(node_id);
        if (it != listeners_.end()) {
          it->second->RequestFinishLocked(
              grpc::Status(grpc::StatusCode::ABORTED,
                           "a newer ListenSubscriptions stream of this node replaced this one"),
              actions);
        }
        listeners_[node_id] = listener;
        for (auto& [id, sub] : subs_) {
          auto node = sub->nodes_.find(node_id);
          if (node == sub->nodes_.end() || node->second.closed || node->second.failed) continue;
          node->second.sent = true;
          listener->SendLocked(SubscriptionFor(*sub, node->second), actions);
        }
      }
    }
    Run(actions);
    return listener;
  }

  grpc::ServerReadReactor<api::PublishLogsMessage>* Publish(grpc::CallbackServerContext* context) {
    std::string node_id;
    if (grpc::Status s = Admit(*context, {pki::Role::kWorker, pki::Role::kManager}, &node_id);
        !s.ok()) {
      return new RefusedReader<api::PublishLogsMessage>(s);
    }
    absl::MutexLock lock(&mu_);
    if (!running_) {
      return new RefusedReader<api::PublishLogsMessage>(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, kStoppedLeading));
    }
    auto* publisher = new Publisher(shared_from_this(), node_id);
    publishers_.insert(publisher);
    return publisher;
  }

  // --- State changes (mu_ held) --------------------------------------------------------------

  // Without follow: finishes once every node closed or failed.
  void CheckCompleteLocked(Subscriber* sub, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (sub->follow() || sub->ended_) return;
    std::vector<std::string> failures;
    for (const auto& [id, node] : sub->nodes_) {
      if (node.failed) {
        failures.push_back(node.why);
      } else if (!node.closed) {
        return;
      }
    }
    grpc::Status status = grpc::Status::OK;
    if (!failures.empty()) {
      status = grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("incomplete log stream: some logs could not be retrieved: ",
                       absl::StrJoin(failures, "; "),
                       " (the lines above are from the other nodes; retry once the node is back)"));
    }
    EndSubscriptionLocked(sub, status, /*drop_queue=*/false, actions);
  }

  // Forgets the subscription, tells the nodes that still serve it to stop, ends its publishing
  // streams, and finishes the subscriber with `status` (after its queued lines unless
  // drop_queue).
  void EndSubscriptionLocked(Subscriber* sub, grpc::Status status, bool drop_queue,
                             Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!sub->ended_) {
      sub->ended_ = true;
      subs_.erase(sub->id());
      for (auto& [node_id, node] : sub->nodes_) {
        if (!node.sent || node.closed) continue;
        auto l = listeners_.find(node_id);
        if (l == listeners_.end()) continue;
        api::SubscriptionMessage close;
        close.set_id(sub->id());
        close.set_close(true);
        l->second->SendLocked(std::move(close), actions);
      }
      std::vector<Publisher*> publishers(sub->publishers_.begin(), sub->publishers_.end());
      for (Publisher* p : publishers) {
        p->FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED,
                                     absl::StrCat("log subscription ", sub->id(), " ended")),
                        actions);
      }
      sub->paused_.clear();
    }
    sub->RequestFinishLocked(std::move(status), drop_queue, actions);
  }

  void ListenerGoneLocked(Listener* listener, Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = listeners_.find(listener->node_id());
    if (it == listeners_.end() || it->second != listener) return;
    listeners_.erase(it);
    std::vector<Subscriber*> subs;
    for (auto& [id, sub] : subs_) subs.push_back(sub);
    for (Subscriber* sub : subs) {
      if (sub->follow()) continue;
      auto node = sub->nodes_.find(listener->node_id());
      if (node == sub->nodes_.end()) continue;
      NodeState& n = node->second;
      if (n.closed || n.failed || n.publishers > 0) continue;
      n.failed = true;
      n.why = absl::StrCat("node ", n.label, " disconnected before sending its logs");
      CheckCompleteLocked(sub, actions);
    }
  }

  // Adds tasks that follow-subscriptions now select (new tasks, tasks assigned to a node) and
  // hands them to their nodes.
  void AddTasksLocked(const std::vector<api::Task>& tasks, Actions& actions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& [id, sub] : subs_) {
      if (!sub->follow()) continue;
      std::set<std::string> changed;
      for (const api::Task& t : tasks) {
        if (t.node_id().empty() || !Matches(sub->request_.selector(), t)) continue;
        auto [it, added] = sub->nodes_.try_emplace(t.node_id());
        NodeState& node = it->second;
        if (added) node.late = true;
        if (node.label.empty()) node.label = t.node_id();
        if (!node.tasks.insert(t.id()).second) continue;
        sub->task_service_[t.id()] = t.service_id();
        changed.insert(t.node_id());
      }
      for (const std::string& node_id : changed) {
        auto l = listeners_.find(node_id);
        if (l == listeners_.end()) continue;
        NodeState& node = sub->nodes_[node_id];
        node.sent = true;
        l->second->SendLocked(SubscriptionFor(*sub, node), actions);
      }
    }
  }

  bool Live(uint64_t generation) const {
    absl::MutexLock lock(&mu_);
    return running_ && generation_ == generation;
  }

  void AddTasks(const std::vector<api::Task>& tasks) {
    if (tasks.empty()) return;
    Actions actions;
    {
      absl::MutexLock lock(&mu_);
      AddTasksLocked(tasks, actions);
    }
    Run(actions);
  }

  // While leading: follows task changes for the follow-subscriptions, with a full pass over
  // their selectors every resync_interval (which also covers a subscription registered after
  // the store changed under its own resolution).
  void WatchLoop(uint64_t generation) {
    while (Live(generation)) {
      std::vector<api::LogSelector> selectors;
      {
        absl::MutexLock lock(&mu_);
        for (auto& [id, sub] : subs_) {
          if (sub->follow()) selectors.push_back(sub->request_.selector());
        }
      }
      std::vector<api::Task> selected;
      std::unique_ptr<store::Watcher> watcher = store_->ViewAndWatch(
          [&](const store::ReadTx& tx) {
            for (const api::LogSelector& sel : selectors) {
              for (const std::string& id : sel.service_ids()) {
                for (const api::Task* t : tx.FindTasksByService(id)) selected.push_back(*t);
              }
              for (const std::string& id : sel.node_ids()) {
                for (const api::Task* t : tx.FindTasksByNode(id)) selected.push_back(*t);
              }
              for (const std::string& id : sel.task_ids()) {
                if (const api::Task* t = tx.Get<api::Task>(id)) selected.push_back(*t);
              }
            }
          },
          store::WatchFilter::Kind(api::OBJECT_KIND_TASK));
      AddTasks(selected);
      const absl::Time resync = absl::Now() + options_.resync_interval;
      while (Live(generation) && absl::Now() < resync) {
        absl::StatusOr<store::StoreChange> change =
            watcher->Next(std::min(resync, absl::Now() + options_.poll_interval));
        if (!change.ok()) {
          if (absl::IsDeadlineExceeded(change.status())) continue;
          break;  // fell behind, or the store was restored: start over
        }
        std::vector<api::Task> tasks;
        for (const store::StoreEvent& e : change->events) {
          if (e.action == api::StoreAction::REMOVE) continue;
          const api::Task& t = e.object->task();
          if (!t.node_id().empty()) tasks.push_back(t);
        }
        AddTasks(tasks);
      }
    }
  }

  void Start() {
    absl::MutexLock lock(&mu_);
    if (running_) return;
    running_ = true;
    const uint64_t generation = ++generation_;
    std::thread old = std::move(watch_thread_);
    watch_thread_ = std::thread([this, generation] { WatchLoop(generation); });
    if (old.joinable()) old.detach();  // unreachable: Stop takes the thread
  }

  void Stop() {
    Actions actions;
    std::thread watch;
    {
      absl::MutexLock lock(&mu_);
      running_ = false;
      ++generation_;
      watch = std::move(watch_thread_);
      const grpc::Status stopped(grpc::StatusCode::UNAVAILABLE, kStoppedLeading);
      std::vector<Subscriber*> subs;
      for (auto& [id, sub] : subs_) subs.push_back(sub);
      for (Subscriber* sub : subs) EndSubscriptionLocked(sub, stopped, true, actions);
      std::vector<Listener*> listeners;
      for (auto& [id, l] : listeners_) listeners.push_back(l);
      listeners_.clear();
      for (Listener* l : listeners) l->RequestFinishLocked(stopped, actions);
      std::vector<Publisher*> publishers(publishers_.begin(), publishers_.end());
      for (Publisher* p : publishers) p->FinishLocked(stopped, actions);
    }
    Run(actions);
    if (watch.joinable()) watch.join();
  }

  LogBrokerStats stats() const {
    absl::MutexLock lock(&mu_);
    LogBrokerStats s = stats_;
    s.subscriptions = subs_.size();
    s.listeners = listeners_.size();
    s.publishers = publishers_.size();
    return s;
  }

  store::MemoryStore* const store_;
  RaftControl* const raft_;
  const LogBrokerOptions options_;
  LogsService logs_service_;
  BrokerService broker_service_;

  mutable absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Subscriber*> subs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Listener*> listeners_ ABSL_GUARDED_BY(mu_);
  std::set<Publisher*> publishers_ ABSL_GUARDED_BY(mu_);
  LogBrokerStats stats_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread watch_thread_ ABSL_GUARDED_BY(mu_);
};

void LogBroker::Impl::Subscriber::ResumePublishersLocked(Actions& actions) {
  if (queue_.size() >= impl_->options_.subscriber_buffer_lines) return;
  std::vector<Publisher*> paused;
  paused.swap(paused_);
  for (Publisher* p : paused) p->ResumeLocked(actions);
}

LogBroker::LogBroker(store::MemoryStore* store, RaftControl* raft, LogBrokerOptions options)
    : impl_(std::make_shared<Impl>(store, raft, options)) {}

LogBroker::~LogBroker() { Stop(); }

grpc::Service* LogBroker::logs_service() { return &impl_->logs_service_; }
grpc::Service* LogBroker::broker_service() { return &impl_->broker_service_; }

void LogBroker::Start() { impl_->Start(); }
void LogBroker::Stop() { impl_->Stop(); }
LogBrokerStats LogBroker::stats() const { return impl_->stats(); }

}  // namespace shoal::manager
