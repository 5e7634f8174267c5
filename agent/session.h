// Session: the node side of the dispatcher session (proto/dispatcher.proto).
//
// Every node, managers included, keeps one session with the leader's Dispatcher. A Session
// object owns two threads:
//   - the session thread picks a manager, opens Dispatcher.Session over mutual TLS, and hands
//     every SessionMessage to the caller's callback (on that thread, in order). When the stream
//     ends or fails it reconnects, with exponential backoff (min_backoff doubling up to
//     max_backoff, reset once a session is established);
//   - the heartbeat thread calls Dispatcher.Heartbeat right after a stream's first
//     SessionMessage, and then every period/2 of the period the last response returned, so a
//     heartbeat always lands within the period. A failed heartbeat drops the stream (the session
//     thread then reconnects); NOT_FOUND also forgets the session ID so the next session is new.
//
// Choosing a manager: the first of `managers` at the start; after a failure the next one, round
// robin, from the newest list (the dispatcher sends it in SessionMessage.managers). A manager that
// is not the leader answers UNAVAILABLE naming the leader ("... the leader is at HOST:PORT"): the
// session goes there at once, without backoff. Immediate retries are bounded by the number of
// known managers; beyond that (a redirect loop during an election) the backoff applies.
//
// Credentials: `credentials()` is called for every (re)connect, so a renewed certificate is used
// by the next stream; Reconnect() drops the current stream to force that at once.
//
// A stream that delivers no SessionMessage within `session_open_timeout` is dropped (a manager
// that accepted the connection but hangs).
//
// Time: backoff and heartbeat scheduling read `clock` (waits are bounded in real time too, so a
// manual clock's progress is noticed); gRPC deadlines are real time.
//
// Thread-safety: every public method may be called from any thread, except that `on_message` must
// not call Stop() or destroy the Session (it runs on the session thread, which Stop joins).
#ifndef SHOAL_AGENT_SESSION_H_
#define SHOAL_AGENT_SESSION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::agent {

// An open session as the node's other dispatcher calls need it (the worker's Assignments and
// UpdateTaskStatus): its ID and a stub on the session's channel. Empty (no stub, no ID) while no
// session is open.
struct DispatcherConnection {
  std::string session_id;
  std::shared_ptr<api::Dispatcher::StubInterface> stub;
  // The session's channel to the leader, for the node's other streams to it (the log broker's).
  // Null in tests that hand the worker a bare stub.
  std::shared_ptr<grpc::Channel> channel;
};

struct SessionOptions {
  // Manager addresses (host:port) to try, in order. REQUIRES: non-empty.
  std::vector<std::string> managers;
  // Client credentials for the next connection (pki::ChannelCredentials with the node's current
  // certificate). Called on the session thread for every (re)connect. REQUIRES: set.
  std::function<std::shared_ptr<grpc::ChannelCredentials>()> credentials;
  api::NodeDescription description;
  Clock* clock = &RealClock();
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // Deadline of each Heartbeat call.
  absl::Duration heartbeat_timeout = absl::Seconds(5);
  // Used until the first Heartbeat response gives the dispatcher's period.
  absl::Duration default_heartbeat_period = absl::Seconds(5);
  absl::Duration session_open_timeout = absl::Seconds(10);
};

class Session {
 public:
  using MessageCallback = std::function<void(const api::SessionMessage&)>;

  // Starts the threads; the first connection attempt begins at once. Returns nullptr when the
  // options are unusable (no managers, no credentials function, no clock).
  static std::unique_ptr<Session> Start(SessionOptions options, MessageCallback on_message);

  ~Session();  // Stop()
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Ends the session promptly: cancels the stream and any heartbeat in flight, interrupts any
  // backoff, and joins the threads. Idempotent. After it no callback runs.
  void Stop();

  // Drops the current stream and reconnects at once to the same manager (with fresh credentials),
  // resuming the same session ID. Interrupts a backoff wait if no stream is open.
  void Reconnect();

  // The newest manager list (the dispatcher's, once one was received; `managers` before).
  std::vector<std::string> managers() const;
  // True between a stream's first SessionMessage and its end.
  bool connected() const;
  // The session ID last received; "" before the first session or after a NOT_FOUND.
  std::string session_id() const;
  // The manager the current (or last) stream went to.
  std::string current_manager() const;
  // The open session (between a stream's first SessionMessage and its end), or an empty one.
  DispatcherConnection connection() const;
  // Successful heartbeats, over all streams.
  int64_t heartbeats_sent() const;
  // Streams that ended or failed (Stop() aside); counted before the backoff that follows.
  int64_t stream_failures() const;

  // The leader's address in a non-leader's UNAVAILABLE message ("... the leader is at
  // HOST:PORT"), or "" when the message names none. Exposed for tests.
  static std::string ParseLeaderAddress(absl::string_view message);

 private:
  Session(SessionOptions options, MessageCallback on_message);

  void RunSession();
  void RunHeartbeats();
  // One stream: returns its final status; *established tells whether a message arrived.
  grpc::Status RunStream(const std::string& addr, bool* established);
  // Waits until `deadline` on the injected clock, or less if Reconnect() asks to skip the wait.
  // False when stopping.
  bool WaitUntil(absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The manager after `addr` in the newest list (the first if `addr` is not in it).
  std::string NextManagerLocked(const std::string& addr) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SessionOptions options_;
  const MessageCallback on_message_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool reconnect_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> managers_ ABSL_GUARDED_BY(mu_);
  std::string current_addr_ ABSL_GUARDED_BY(mu_);
  std::string session_id_ ABSL_GUARDED_BY(mu_);
  // The open stream, if any.
  grpc::ClientContext* stream_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<api::Dispatcher::Stub> stub_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
  uint64_t stream_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time open_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time next_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Why the heartbeat thread dropped the stream, if it did.
  grpc::Status heartbeat_failure_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* heartbeat_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Bumped on every change the heartbeat thread waits for.
  uint64_t state_version_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t heartbeats_sent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t stream_failures_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread session_thread_;
  std::thread heartbeat_thread_;
  absl::Mutex stop_mu_;  // Serialises Stop() callers around the joins.
};

}  // namespace shoal::agent

#endif  // SHOAL_AGENT_SESSION_H_
