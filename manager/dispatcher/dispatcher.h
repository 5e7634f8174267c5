// Dispatcher: the leader's end of every agent's channel (proto/dispatcher.proto) — sessions,
// heartbeats, node liveness, task status reports and the assignment stream.
//
// Every call is authorised by the caller's node certificate (as manager::AuthorizeNode: workers
// and managers; the node ID is the certificate's CN, never a request field), and answered only by
// the Raft leader: elsewhere UNAVAILABLE "this manager is not the leader; the leader is at ADDR".
//
//   Session      Registers a session (random ID) for the node, replacing any previous one, and
//                marks the node READY with its description and address (the peer IP of the
//                call). Streams a SessionMessage (node, managers, root CA(s), network keys) at
//                once and again whenever one of them changes. The stream ends when the caller
//                cancels it; when the session expires (NOT_FOUND) or is replaced by a newer one
//                (ABORTED); or when this manager stops leading or the dispatcher stops
//                (UNAVAILABLE): in every case the agent reconnects.
//   Heartbeat    Extends the session to now + period x grace_multiplier and returns the period
//                (cluster.spec.dispatcher.heartbeat_period, default
//                options.default_heartbeat_period).
//   UpdateTaskStatus  Applies status reports to the node's own tasks, forward only (a report
//                whose state is behind the stored one is ignored, as are other nodes' tasks).
//                Answers once the reports are committed.
//   Assignments  A COMPLETE message with the node's tasks (node_id = the node, desired state
//                before REMOVE) and the secrets and configs they reference, then INCREMENTAL
//                changes. Task changes that touch only the status (the agent's own reports) are
//                not echoed back.
//
// Scale: the store writes of every node (session registrations, status reports) go through one
// WriteBatcher, so a thousand agents reporting at once cost a few Raft entries, not a thousand;
// and every assignment stream is fed by one AssignmentHub, which routes each task change to its
// node by hash lookup instead of offering it to every stream's filter. A session's first message
// goes out before its registration is committed, so an agent reconnecting to a busy new leader
// starts heartbeating at once; a registration that fails (the node was removed) ends the stream.
//
// Liveness (Start/Stop, run by the manager while it leads): a loop on the injected clock marks
// DOWN ("heartbeat failure"), in one store update, every node whose session expired. On Start,
// every node the store has READY gets one full grace (period x grace_multiplier) before it can
// be marked DOWN, so a new leader does not mark live nodes down before they reconnect; READY
// nodes that never open a session go DOWN after it. A node DOWN for longer than orphan_after
// (Docker's 24 h, counted from the node's last store update, so it survives leader changes) has
// its unfinished tasks marked ORPHANED: nobody knows what became of them, and the task reaper
// may now delete them.
//
// Time: expiries are on options.clock (ManualClock in tests). The liveness loop's and the
// router's waits are bounded in real time (options.poll_interval) so that a manual clock's
// progress and leadership changes are noticed without any other wake-up; an agent's
// cancellation is a gRPC reaction (OnCancel).
//
// Threads: served with gRPC's callback API, so no call holds a thread while it waits. Heartbeat
// answers at once; UpdateTaskStatus answers from the WriteBatcher's completion callback; each
// Session and Assignments stream is a reactor with at most one write in flight, fed by
// notifications: one store watcher (nodes, cluster) routed by node to the session streams, the
// AssignmentHub for the assignment streams. A small fixed pool of stream workers builds the
// messages and starts the writes; while a write is in flight, newer session state supersedes
// the unsent message and assignment changes coalesce by object in the node's hub subscription.
// One router thread also ends every stream when this manager stops leading and refreshes the
// manager list every heartbeat period. The thread count does not depend on the number of nodes.
//
// Thread-safety: handlers run concurrently on gRPC's threads; Start and Stop may be called from
// any thread and are idempotent. Stop ends every open stream and returns once each has finished
// (a stream whose agent does not read is cancelled after options.stop_grace).
#ifndef SHOAL_MANAGER_DISPATCHER_DISPATCHER_H_
#define SHOAL_MANAGER_DISPATCHER_DISPATCHER_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "manager/dispatcher/assignment_hub.h"
#include "manager/dispatcher/write_batcher.h"
#include "manager/raft_control.h"
#include "manager/store/memory_store.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::manager {

struct DispatcherOptions {
  Clock* clock = nullptr;  // nullptr = RealClock()
  // Used when the cluster spec sets no heartbeat period.
  absl::Duration default_heartbeat_period = absl::Seconds(5);
  // A session expires after period x grace_multiplier without a heartbeat (Docker's 3).
  int grace_multiplier = 3;
  // How often (on the clock) the liveness loop looks for expired sessions.
  absl::Duration liveness_check_interval = absl::Milliseconds(500);
  // Longest real-time wait of the liveness loop and the stream router before they look again at
  // the clock and the leadership.
  absl::Duration poll_interval = absl::Milliseconds(500);
  // A node DOWN this long gets its unfinished tasks marked ORPHANED.
  absl::Duration orphan_after = absl::Hours(24);
  // Threads that build the streams' messages and start their writes.
  int stream_workers = 2;
  // How long Stop waits (real time) for the streams to finish on their own before it cancels the
  // calls still open (an agent that stopped reading leaves a write pending forever).
  absl::Duration stop_grace = absl::Seconds(2);
};

// The IP in a gRPC peer string ("ipv4:10.0.0.1:4567" -> "10.0.0.1", "ipv6:[::1]:4567" or
// "ipv6:%5B::1%5D:4567" -> "::1"); "" for other forms (e.g. unix sockets).
std::string PeerIp(absl::string_view grpc_peer);

// A grpc::Service (api::Dispatcher::CallbackService derives from it): registered with
// ServerBuilder::RegisterService like the synchronous services beside it, on the same server.
class Dispatcher : public api::Dispatcher::CallbackService {
 public:
  // `store` and `raft` are not owned and must outlive the dispatcher.
  Dispatcher(store::MemoryStore* store, RaftControl* raft, DispatcherOptions options = {});
  ~Dispatcher() override;  // Stop()s; then refuses calls (the server must be shut down first)
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Starts the liveness loop (on becoming leader); gives READY nodes their grace.
  void Start();
  // Stops the loop, ends every session and open stream (UNAVAILABLE) and forgets them; returns
  // once every stream has finished (OnDone).
  void Stop();

  grpc::ServerWriteReactor<api::SessionMessage>* Session(
      grpc::CallbackServerContext* context, const api::SessionRequest* request) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const api::HeartbeatRequest* request,
                                      api::HeartbeatResponse* response) override;
  // Answers from the WriteBatcher's completion callback, once the reports are committed: no
  // thread waits for the commit.
  grpc::ServerUnaryReactor* UpdateTaskStatus(grpc::CallbackServerContext* context,
                                             const api::UpdateTaskStatusRequest* request,
                                             api::UpdateTaskStatusResponse* response) override;
  grpc::ServerWriteReactor<api::AssignmentsMessage>* Assignments(
      grpc::CallbackServerContext* context, const api::AssignmentsRequest* request) override;

  // One pass of the liveness loop: ends expired sessions and marks their nodes DOWN, and the
  // nodes whose start-of-leadership grace ran out without a session. The loop calls it every
  // liveness_check_interval; tests may call it directly.
  void CheckLiveness();

  // Nodes with a live session (for tests and metrics).
  size_t session_count() const;
  // Store commits made for agents' writes so far (for tests and metrics).
  size_t write_commits() const { return batcher_.commits(); }
  // Session and Assignments streams open now (for tests and metrics).
  size_t stream_count() const;

 private:
  class Stream;
  class SessionStream;
  class AssignmentsStream;

  struct SessionState {
    std::string id;
    std::string node_id;
    absl::Time expiry;   // on the clock
    absl::Status ended;  // OK while live; why it ended otherwise
    // Its open streams (guarded by the dispatcher's mu_): ended with it.
    std::vector<Stream*> streams;
  };

  // AuthorizeNode + the leader check; `node_id` receives the caller's node ID.
  grpc::Status Admit(const grpc::ServerContextBase& context, std::string* node_id) const;
  grpc::Status NotLeader() const;
  grpc::Status DoHeartbeat(const grpc::ServerContextBase& context,
                           const api::HeartbeatRequest& request, api::HeartbeatResponse* response);
  // The caller's live session `session_id`, or NOT_FOUND.
  absl::StatusOr<std::shared_ptr<SessionState>> FindSession(absl::string_view session_id,
                                                            absl::string_view node_id) const;
  absl::Duration HeartbeatPeriod() const;
  void LivenessLoop();
  // Marks ORPHANED the unfinished tasks of nodes DOWN for longer than orphan_after.
  void OrphanTasksOfLongDownNodes(absl::Time now);
  // Ends `session` with `why` and forgets it; appends its streams to *streams, which the caller
  // must End (outside mu_) with the session's `ended` status. `session` is taken by value: the
  // caller's may be the map entry this erases.
  void EndSessionLocked(std::shared_ptr<SessionState> session, absl::Status why,
                        std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>>* streams)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // EndSessionLocked, then ends the streams.
  void EndSession(const std::shared_ptr<SessionState>& session, absl::Status why)
      ABSL_LOCKS_EXCLUDED(mu_);
  static void EndStreams(std::vector<std::pair<std::shared_ptr<Stream>, grpc::Status>> streams);

  // Streams. Register fails (the stream must finish with the returned status) while Stop is
  // ending the streams, or once the stream's session has ended.
  grpc::Status RegisterLocked(Stream* stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unregister(Stream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues `stream` for a worker.
  void Enqueue(std::shared_ptr<Stream> stream) ABSL_LOCKS_EXCLUDED(work_mu_);
  void WorkLoop();
  // Routes node and cluster changes to the session streams; ends every stream when this manager
  // stops leading; refreshes the managers list every heartbeat period.
  void RouterLoop();
  void RouteSessionChange(const store::StoreChange& change) ABSL_LOCKS_EXCLUDED(mu_);
  // A new watcher for the router, and (`resync`: after the previous one was closed because it
  // fell behind or the store was restored) a fresh view of the nodes and the cluster for every
  // session stream.
  std::shared_ptr<store::Watcher> WatchSessions(bool resync) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every stream with `why` (leadership lost, dispatcher stopping).
  void EndAllStreams(const grpc::Status& why) ABSL_LOCKS_EXCLUDED(mu_);

  store::MemoryStore* const store_;
  RaftControl* const raft_;
  const DispatcherOptions options_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<SessionState>> sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> node_session_ ABSL_GUARDED_BY(mu_);
  // Nodes READY in the store without a session when the loop started: DOWN after this time.
  absl::flat_hash_map<std::string, absl::Time> grace_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread liveness_thread_ ABSL_GUARDED_BY(mu_);

  // Open streams, and the session streams by node.
  absl::flat_hash_map<Stream*, std::weak_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<SessionStream*>> session_streams_
      ABSL_GUARDED_BY(mu_);
  // False while Stop ends the streams, and from destruction on: new streams are refused.
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool destroying_ ABSL_GUARDED_BY(mu_) = false;
  // The managers as the session streams were last told (refreshed every heartbeat period).
  std::shared_ptr<const std::vector<ManagerMember>> members_ ABSL_GUARDED_BY(mu_);
  std::thread router_thread_;
  // The router's current watcher (Close()d on destruction to wake the router), and its flag.
  std::shared_ptr<store::Watcher> router_watcher_ ABSL_GUARDED_BY(mu_);
  bool router_stopping_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex work_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::deque<std::shared_ptr<Stream>> work_ ABSL_GUARDED_BY(work_mu_);
  bool work_stopping_ ABSL_GUARDED_BY(work_mu_) = false;
  std::vector<std::thread> workers_;

  WriteBatcher batcher_;
  AssignmentHub hub_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_DISPATCHER_DISPATCHER_H_
