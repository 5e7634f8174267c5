// SimAgent: a compact, thread-less node agent for swarm_sim (many simulated nodes in one
// process). It speaks the real dispatcher protocol (proto/dispatcher.proto) as agent::Session
// and agent::Worker do, but with gRPC's callback API instead of blocking threads: a SimFleet of
// 1,000 agents needs gRPC's few callback threads plus one timer thread, where the real
// Session + Worker + SimExecutor need ~7 threads per node.
//
// What each agent does (the same decisions as agent/session.cc and agent/worker.cc):
//   Session     Dispatcher.Session with the node description (and the previous session ID on a
//               reconnect); a new channel (fresh TLS connection, `credentials()`) per stream.
//               The stream's first SessionMessage opens the session: its ID and manager list
//               are kept. When the stream ends: a non-leader's UNAVAILABLE naming the leader
//               ("... the leader is at HOST:PORT", agent::Session::ParseLeaderAddress) → that
//               leader at once; NOT_FOUND (expired session) → a new session on the same manager
//               at once; another UNAVAILABLE mentioning a leader (e.g. "dispatcher stopped, it is
//               no longer the leader") → the next manager at once; anything else → the next
//               manager after a backoff (min_backoff doubling to max_backoff, reset once a
//               session opened). Immediate retries are bounded by the number of managers + 1
//               in a row (a redirect loop during an election falls back to the backoff). A
//               stream with no SessionMessage within session_open_timeout is dropped.
//   Heartbeat   right after the first SessionMessage, then every period/2 of the period the
//               last response returned; a failed heartbeat drops the stream, and its status
//               decides the reconnection as above.
//   Assignments opened as soon as a session is open (and reopened for each new session); a
//               COMPLETE set replaces what the node holds, INCREMENTAL changes apply on top;
//               one whose applies_to is not the set held → the stream is reopened at once for a
//               COMPLETE set; other ends → reopened after a backoff (reset when a message came).
//   UpdateTaskStatus  the latest status per task, coalesced for batch_window (or until
//               max_batch are waiting), at most max_batch per call and one call in flight; a
//               failed call puts its updates back in front (unless a newer status of the task is
//               waiting) and is retried after a backoff. A new session resends every task's
//               latest status (ACCEPTED or later), as the worker's supervisor does.
//   Tasks       agent::NextOp (agent/task_lifecycle.h) decides every step, as in the worker,
//               and a simulated process stands in for the executor's (the sim executor's image
//               rules, agent/exec/sim/sim_executor.h): ACCEPTED → PREPARING → READY → STARTING
//               → RUNNING, never past the desired state; `sim/exit:N` exits with N right after
//               it starts (COMPLETE / FAILED), `sim/crash-after:D` exits 1 after D (FAILED), a
//               malformed sim image is REJECTED, anything else runs until its desired state is
//               SHUTDOWN or it leaves the set (→ SHUTDOWN, then forgotten once unassigned).
//               Steps happen at once, so a new task's statuses coalesce into one report.
//
// Not simulated: certificate renewal (and the RENEW / ROTATE requests of SessionMessage), root
// rotation, network attachments, secrets and configs (received and ignored), and state across
// restarts (everything is in memory; a new swarm_sim is a set of new nodes).
//
// Threads and time: an agent owns no thread. Its gRPC callbacks run on gRPC's threads; its timed
// work (heartbeats, batch windows, backoffs, open timeouts, simulated exits) runs when SimFleet's
// timer thread calls Poll. Transport timing (heartbeats, backoffs, batching, deadlines) is real
// time; status timestamps and simulated exits (crash-after) use `clock`.
//
// Thread-safety: every public method may be called from any thread. gRPC is never called with
// the agent's mutex held (a callback may run inline on the calling thread).
#ifndef SHOAL_BENCH_SWARM_SIM_SIM_AGENT_H_
#define SHOAL_BENCH_SWARM_SIM_SIM_AGENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/exec/executor.h"
#include "agent/exec/sim/sim_executor.h"
#include "common/clock.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::bench {

struct SimAgentOptions {
  // Manager addresses (host:port) to try, in order. REQUIRES: non-empty.
  std::vector<std::string> managers;
  // Client credentials for the next connection; called for every (re)connect. nullptr fails the
  // attempt (retried after the backoff). REQUIRES: set.
  std::function<std::shared_ptr<grpc::ChannelCredentials>()> credentials;
  // Arguments of every channel (pki::ManagerChannelArguments() for real managers).
  grpc::ChannelArguments channel_args;
  api::NodeDescription description;
  // Status timestamps and simulated exits. REQUIRES: outlives the agent.
  Clock* clock = &RealClock();

  // Session (agent::SessionOptions' defaults).
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  absl::Duration heartbeat_timeout = absl::Seconds(5);
  absl::Duration default_heartbeat_period = absl::Seconds(5);
  absl::Duration session_open_timeout = absl::Seconds(10);
  // Worker (agent::WorkerOptions' defaults).
  absl::Duration batch_window = absl::Milliseconds(50);
  int max_batch = 200;
  absl::Duration rpc_timeout = absl::Seconds(10);
};

struct SimAgentStats {
  int64_t sessions_opened = 0;  // Streams that received a SessionMessage.
  int64_t stream_failures = 0;  // Session streams that ended (Stop() aside).
  int64_t heartbeats = 0;       // Successful heartbeats.
  int64_t assignment_streams = 0;
  int64_t assignment_messages = 0;
  int64_t status_calls = 0;     // Successful UpdateTaskStatus calls.
  int64_t statuses_sent = 0;    // Updates in them.
  int64_t status_failures = 0;  // Failed calls (retried).
  int64_t largest_batch = 0;
  int64_t tasks = 0;    // Held now (assigned, or finishing).
  int64_t running = 0;  // Of them, reported RUNNING.
  SimAgentStats& operator+=(const SimAgentStats& o);
};

class SimAgent {
 public:
  explicit SimAgent(SimAgentOptions options);
  ~SimAgent();  // REQUIRES: Stop() called and idle() (SimFleet sees to it).
  SimAgent(const SimAgent&) = delete;
  SimAgent& operator=(const SimAgent&) = delete;

  // Does whatever is due at real time `now` (the first call opens the session). Returns at once.
  void Poll(absl::Time now);
  // The real time at which Poll next has work (InfiniteFuture when it waits for a callback).
  absl::Time next_wake() const { return absl::FromUnixNanos(next_wake_.load()); }

  // Cancels every call in flight and starts no more. Returns at once; idle() turns true once
  // gRPC has finished the cancelled calls.
  void Stop();
  bool idle() const { return in_flight_.load() == 0; }

  // True between a stream's first SessionMessage and its end.
  bool connected() const;
  std::string session_id() const;
  std::string current_manager() const;
  std::vector<std::string> managers() const;
  SimAgentStats stats() const;
  // The latest status the agent holds for the task; nullopt once it is forgotten.
  std::optional<api::TaskStatus> task_status(const std::string& task_id) const;
  // Status changes not yet acknowledged by a dispatcher.
  size_t pending_statuses() const;

 private:
  class SessionStream;
  class AssignmentsStream;
  struct Unary;

  // One task and its simulated process.
  struct SimTask {
    std::string id;
    std::string image;
    api::TaskState desired = api::TASK_STATE_NEW;
    api::TaskStatus status;  // The latest (the agent's own, or the managers' before it acted).
    bool assigned = true;
    bool attached = false;
    std::optional<agent::exec::ExitStatus> exit;  // The simulated process's exit.
    agent::exec::RuntimeState::Phase phase = agent::exec::RuntimeState::Phase::kAbsent;
    agent::exec::SimBehavior behavior;
    int pid = 0;
    absl::Time exit_at = absl::InfiniteFuture();  // On the clock, while running.
  };

  // gRPC work decided under mu_ and done after it is released.
  struct Actions {
    std::shared_ptr<SessionStream> session;
    std::shared_ptr<AssignmentsStream> assignments;
    std::shared_ptr<Unary> heartbeat;
    std::shared_ptr<Unary> report;
    std::vector<std::shared_ptr<grpc::ClientContext>> cancel;
  };
  void Run(Actions& actions);

  void PollLocked(absl::Time now, Actions* actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateWakeLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string NextManagerLocked(const std::string& addr) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Callbacks (gRPC threads). The generation tells a current stream from an old one.
  bool OnSessionMessage(uint64_t generation, const api::SessionMessage& message);
  void OnSessionDone(uint64_t generation, const grpc::Status& status);
  void OnHeartbeatDone(uint64_t generation, absl::Time sent_at, const grpc::Status& status,
                       const api::HeartbeatResponse& response);
  bool OnAssignments(uint64_t generation, const api::AssignmentsMessage& message);
  void OnAssignmentsDone(uint64_t generation, const grpc::Status& status);
  void OnReportDone(const grpc::Status& status, const api::UpdateTaskStatusRequest& request);

  // Tasks.
  void ApplyLocked(const api::AssignmentsMessage& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpsertLocked(const api::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnassignLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs the task's ops until NextOp says kNone (or the task is forgotten).
  void DriveLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(SimTask& task, api::TaskStatus status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueStatusLocked(const std::string& id, const api::TaskStatus& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SimAgentOptions options_;
  Clock* const clock_;
  std::atomic<int64_t> next_wake_;
  std::atomic<int> in_flight_{0};  // Calls started and not yet done.

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> managers_ ABSL_GUARDED_BY(mu_);

  // Session.
  std::string addr_ ABSL_GUARDED_BY(mu_);  // Of the current (or next) stream.
  std::string session_id_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<SessionStream> session_ ABSL_GUARDED_BY(mu_);  // The open stream.
  std::shared_ptr<api::Dispatcher::Stub> stub_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool established_ ABSL_GUARDED_BY(mu_) = false;  // This stream received a message.
  absl::Time reconnect_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  int immediate_in_a_row_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time open_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time next_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::shared_ptr<Unary> heartbeat_ ABSL_GUARDED_BY(mu_);  // In flight.
  grpc::Status heartbeat_failure_ ABSL_GUARDED_BY(mu_);    // Why the stream was dropped.

  // Assignments.
  std::shared_ptr<AssignmentsStream> assignments_ ABSL_GUARDED_BY(mu_);
  uint64_t assignments_generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time assignments_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Duration assignments_backoff_ ABSL_GUARDED_BY(mu_);
  bool assignments_received_ ABSL_GUARDED_BY(mu_) = false;
  bool assignments_mismatch_ ABSL_GUARDED_BY(mu_) = false;
  std::string results_in_ ABSL_GUARDED_BY(mu_);

  // Status reports.
  absl::flat_hash_map<std::string, api::TaskStatus> pending_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> pending_order_ ABSL_GUARDED_BY(mu_);
  absl::Time report_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();        // The batch is due.
  absl::Time report_not_before_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // Retry backoff.
  std::shared_ptr<Unary> report_ ABSL_GUARDED_BY(mu_);                        // In flight.
  absl::Duration report_backoff_ ABSL_GUARDED_BY(mu_);

  // Tasks.
  absl::flat_hash_map<std::string, SimTask> tasks_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, std::string>> exits_ ABSL_GUARDED_BY(mu_);  // Clock times.
  int next_pid_ ABSL_GUARDED_BY(mu_) = 1000;

  SimAgentStats stats_ ABSL_GUARDED_BY(mu_);
};

// SimFleet: owns agents and the one timer thread that polls them.
class SimFleet {
 public:
  // The timer thread looks at every agent's next_wake every `tick`.
  explicit SimFleet(absl::Duration tick = absl::Milliseconds(10));
  ~SimFleet();  // Stop(absl::Seconds(10)) if not stopped.
  SimFleet(const SimFleet&) = delete;
  SimFleet& operator=(const SimFleet&) = delete;

  // Adds an agent; its session opens on the next tick. The pointer stays valid until the fleet
  // is destroyed.
  SimAgent* Add(SimAgentOptions options);
  size_t size() const;
  size_t connected() const;
  SimAgentStats stats() const;

  // Stops the timer thread and every agent, and waits up to `timeout` for their calls to end.
  // Returns whether they all did (otherwise the agents are leaked rather than freed under gRPC).
  bool Stop(absl::Duration timeout);

 private:
  void Run();

  const absl::Duration tick_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<SimAgent>> agents_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_SWARM_SIM_SIM_AGENT_H_
