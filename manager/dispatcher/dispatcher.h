// Dispatcher: the leader's end of every agent's channel (proto/dispatcher.proto) — sessions,
// heartbeats, node liveness, task status reports and the assignment stream.
//
// Every call is authorised by the caller's node certificate (manager::AuthorizeNode, workers and
// managers; the node ID is the certificate's CN, never a request field), and answered only by
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
// Time: expiries are on options.clock (ManualClock in tests). Waits are bounded in real time
// (options.poll_interval) so that a manual clock's progress, leadership changes and cancellation
// are all noticed without any other wake-up.
//
// Thread-safety: gRPC runs the handlers concurrently on its threads; Start and Stop may be called
// from any thread and are idempotent. Stop ends every open stream.
#ifndef SHOAL_MANAGER_DISPATCHER_DISPATCHER_H_
#define SHOAL_MANAGER_DISPATCHER_DISPATCHER_H_

#include <memory>
#include <string>
#include <thread>
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
  // Longest real-time wait of a stream or loop before it looks again at its session, the
  // leadership, the clock and cancellation.
  absl::Duration poll_interval = absl::Milliseconds(500);
  // A node DOWN this long gets its unfinished tasks marked ORPHANED.
  absl::Duration orphan_after = absl::Hours(24);
};

// The IP in a gRPC peer string ("ipv4:10.0.0.1:4567" -> "10.0.0.1", "ipv6:[::1]:4567" or
// "ipv6:%5B::1%5D:4567" -> "::1"); "" for other forms (e.g. unix sockets).
std::string PeerIp(absl::string_view grpc_peer);

class Dispatcher : public api::Dispatcher::Service {
 public:
  // `store` and `raft` are not owned and must outlive the dispatcher.
  Dispatcher(store::MemoryStore* store, RaftControl* raft, DispatcherOptions options = {});
  ~Dispatcher() override;  // Stop()s
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Starts the liveness loop (on becoming leader); gives READY nodes their grace.
  void Start();
  // Stops the loop, ends every session and open stream (UNAVAILABLE) and forgets them.
  void Stop();

  grpc::Status Session(grpc::ServerContext* context, const api::SessionRequest* request,
                       grpc::ServerWriter<api::SessionMessage>* writer) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const api::HeartbeatRequest* request,
                         api::HeartbeatResponse* response) override;
  grpc::Status UpdateTaskStatus(grpc::ServerContext* context,
                                const api::UpdateTaskStatusRequest* request,
                                api::UpdateTaskStatusResponse* response) override;
  grpc::Status Assignments(grpc::ServerContext* context, const api::AssignmentsRequest* request,
                           grpc::ServerWriter<api::AssignmentsMessage>* writer) override;

  // One pass of the liveness loop: ends expired sessions and marks their nodes DOWN, and the
  // nodes whose start-of-leadership grace ran out without a session. The loop calls it every
  // liveness_check_interval; tests may call it directly.
  void CheckLiveness();

  // Nodes with a live session (for tests and metrics).
  size_t session_count() const;
  // Store commits made for agents' writes so far (for tests and metrics).
  size_t write_commits() const { return batcher_.commits(); }

 private:
  struct SessionState {
    std::string id;
    std::string node_id;
    absl::Time expiry;   // on the clock
    absl::Status ended;  // OK while live; why it ended otherwise
  };

  // AuthorizeNode + the leader check; `node_id` receives the caller's node ID.
  grpc::Status Admit(const grpc::ServerContext& context, std::string* node_id) const;
  grpc::Status NotLeader() const;
  // The caller's live session `session_id`, or NOT_FOUND.
  absl::StatusOr<std::shared_ptr<SessionState>> FindSession(absl::string_view session_id,
                                                            absl::string_view node_id) const;
  // Non-OK when a stream of `session` must end now.
  grpc::Status StreamMustEnd(const SessionState& session, const grpc::ServerContext& context) const;
  absl::Duration HeartbeatPeriod() const;
  void LivenessLoop();
  // Marks ORPHANED the unfinished tasks of nodes DOWN for longer than orphan_after.
  void OrphanTasksOfLongDownNodes(absl::Time now);
  // Ends `session` with `why` and forgets it. REQUIRES: mu_ held.
  void EndSessionLocked(const std::shared_ptr<SessionState>& session, absl::Status why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

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

  WriteBatcher batcher_;
  AssignmentHub hub_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_DISPATCHER_DISPATCHER_H_
