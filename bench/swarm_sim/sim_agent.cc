#include "bench/swarm_sim/sim_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/session.h"
#include "agent/task_lifecycle.h"

namespace shoal::bench {
namespace {

using agent::exec::ExitStatus;
using agent::exec::RuntimeState;
using agent::exec::SimBehavior;

// Longest real-time gap between polls while simulated exits are pending (the clock may be a
// ManualClock, whose progress is only noticed by looking).
constexpr absl::Duration kExitPoll = absl::Milliseconds(50);
// A task's ops never loop longer than this (NextOp always moves the state forward; this only
// guards against a bug turning into a spin).
constexpr int kMaxOpsPerDrive = 32;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// As agent/session.cc: an UNAVAILABLE answer from a manager that is not the leader (as opposed
// to a transport failure, which never mentions a leader): another manager may do better at once.
bool IsNonLeaderAnswer(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         absl::StrContains(absl::AsciiStrToLower(status.error_message()), "leader");
}

std::string ContainerId(const std::string& task_id) { return absl::StrCat("sim-", task_id); }

// gRPC 1.51 runs callback-API completions on the threads of one process-wide completion queue,
// which is created for the first channel making a callback call and destroyed with the last
// such channel. Destroying it from one of its own threads (a callback dropping the last
// reference to the last channel) joins that thread from itself and crashes the process
// (grpc/grpc#32584). Agents drop their channels from callbacks, so one channel that has made a
// callback call is kept for the life of the process: the queue is never destroyed.
void AnchorCallbackQueue() {
  static const bool anchored = [] {
    auto* channel = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()));
    auto stub = api::Dispatcher::NewStub(*channel);
    struct Call {
      grpc::ClientContext context;
      api::HeartbeatRequest request;
      api::HeartbeatResponse response;
    };
    auto call = std::make_shared<Call>();
    call->context.TryCancel();  // Only the queue is wanted, not the call.
    stub->async()->Heartbeat(&call->context, &call->request, &call->response,
                             [call](grpc::Status) {});
    return true;
  }();
  static_cast<void>(anchored);
}

}  // namespace

SimAgentStats& SimAgentStats::operator+=(const SimAgentStats& o) {
  sessions_opened += o.sessions_opened;
  stream_failures += o.stream_failures;
  heartbeats += o.heartbeats;
  assignment_streams += o.assignment_streams;
  assignment_messages += o.assignment_messages;
  status_calls += o.status_calls;
  statuses_sent += o.statuses_sent;
  status_failures += o.status_failures;
  largest_batch = std::max(largest_batch, o.largest_batch);
  tasks += o.tasks;
  running += o.running;
  return *this;
}

// --- Calls -------------------------------------------------------------------------------------
// Each call object is kept alive by itself (self_) until gRPC's last callback, and by the agent
// while it is current. The context is shared so that a cancel decided under the agent's mutex can
// be carried out after it is released, whatever became of the call meanwhile.

class SimAgent::SessionStream final : public grpc::ClientReadReactor<api::SessionMessage> {
 public:
  SessionStream(SimAgent* agent, uint64_t generation, std::shared_ptr<api::Dispatcher::Stub> stub)
      : agent_(agent), generation_(generation), stub_(std::move(stub)) {}

  void Begin(std::shared_ptr<SessionStream> self) {
    self_ = std::move(self);
    stub_->async()->Session(context.get(), &request, this);
    StartRead(&message_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (ok && agent_->OnSessionMessage(generation_, message_)) StartRead(&message_);
  }
  void OnDone(const grpc::Status& status) override {
    SimAgent* agent = agent_;
    std::shared_ptr<SessionStream> self = std::move(self_);
    agent->OnSessionDone(generation_, status);
    agent->in_flight_.fetch_sub(1);  // The last use of the agent.
  }

  const std::shared_ptr<grpc::ClientContext> context = std::make_shared<grpc::ClientContext>();
  api::SessionRequest request;

 private:
  SimAgent* const agent_;
  const uint64_t generation_;
  const std::shared_ptr<api::Dispatcher::Stub> stub_;
  api::SessionMessage message_;
  std::shared_ptr<SessionStream> self_;
};

class SimAgent::AssignmentsStream final : public grpc::ClientReadReactor<api::AssignmentsMessage> {
 public:
  AssignmentsStream(SimAgent* agent, uint64_t generation, uint64_t session_generation,
                    std::shared_ptr<api::Dispatcher::Stub> stub)
      : session_generation(session_generation),
        agent_(agent),
        generation_(generation),
        stub_(std::move(stub)) {}

  void Begin(std::shared_ptr<AssignmentsStream> self) {
    self_ = std::move(self);
    stub_->async()->Assignments(context.get(), &request, this);
    StartRead(&message_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (ok && agent_->OnAssignments(generation_, message_)) StartRead(&message_);
  }
  void OnDone(const grpc::Status& status) override {
    SimAgent* agent = agent_;
    std::shared_ptr<AssignmentsStream> self = std::move(self_);
    agent->OnAssignmentsDone(generation_, status);
    agent->in_flight_.fetch_sub(1);
  }

  const std::shared_ptr<grpc::ClientContext> context = std::make_shared<grpc::ClientContext>();
  api::AssignmentsRequest request;
  const uint64_t session_generation;  // The session stream it was opened for.

 private:
  SimAgent* const agent_;
  const uint64_t generation_;
  const std::shared_ptr<api::Dispatcher::Stub> stub_;
  api::AssignmentsMessage message_;
  std::shared_ptr<AssignmentsStream> self_;
};

struct SimAgent::Unary {
  const std::shared_ptr<grpc::ClientContext> context = std::make_shared<grpc::ClientContext>();
  std::shared_ptr<api::Dispatcher::Stub> stub;
  uint64_t generation = 0;
  absl::Time sent_at;
  api::HeartbeatRequest heartbeat_request;
  api::HeartbeatResponse heartbeat_response;
  api::UpdateTaskStatusRequest status_request;
  api::UpdateTaskStatusResponse status_response;
};

// --- SimAgent ------------------------------------------------------------------------------------

SimAgent::SimAgent(SimAgentOptions options)
    : options_(std::move(options)),
      clock_(options_.clock),
      next_wake_(absl::ToUnixNanos(absl::InfinitePast())) {
  AnchorCallbackQueue();
  absl::MutexLock lock(&mu_);
  managers_ = options_.managers;
  addr_ = managers_.empty() ? "" : managers_.front();
  backoff_ = options_.min_backoff;
  assignments_backoff_ = options_.min_backoff;
  report_backoff_ = options_.min_backoff;
}

SimAgent::~SimAgent() = default;

void SimAgent::Poll(absl::Time now) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    PollLocked(now, &actions);
  }
  Run(actions);
}

void SimAgent::Stop() {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (session_ != nullptr) actions.cancel.push_back(session_->context);
    if (heartbeat_ != nullptr) actions.cancel.push_back(heartbeat_->context);
    if (assignments_ != nullptr) actions.cancel.push_back(assignments_->context);
    if (report_ != nullptr) actions.cancel.push_back(report_->context);
    next_wake_ = absl::ToUnixNanos(absl::InfiniteFuture());
  }
  Run(actions);
}

bool SimAgent::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

std::string SimAgent::session_id() const {
  absl::MutexLock lock(&mu_);
  return session_id_;
}

std::string SimAgent::current_manager() const {
  absl::MutexLock lock(&mu_);
  return addr_;
}

std::vector<std::string> SimAgent::managers() const {
  absl::MutexLock lock(&mu_);
  return managers_;
}

SimAgentStats SimAgent::stats() const {
  absl::MutexLock lock(&mu_);
  SimAgentStats s = stats_;
  s.tasks = static_cast<int64_t>(tasks_.size());
  s.running = 0;
  for (const auto& [id, task] : tasks_) {
    if (task.status.state() == api::TASK_STATE_RUNNING) ++s.running;
  }
  return s;
}

std::optional<api::TaskStatus> SimAgent::task_status(const std::string& task_id) const {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return std::nullopt;
  return it->second.status;
}

size_t SimAgent::pending_statuses() const {
  absl::MutexLock lock(&mu_);
  return pending_.size();
}

std::string SimAgent::NextManagerLocked(const std::string& addr) const {
  auto it = std::find(managers_.begin(), managers_.end(), addr);
  if (it == managers_.end() || ++it == managers_.end()) return managers_.front();
  return *it;
}

void SimAgent::Run(Actions& actions) {
  for (const std::shared_ptr<grpc::ClientContext>& context : actions.cancel) context->TryCancel();
  if (actions.session != nullptr) actions.session->Begin(actions.session);
  if (actions.assignments != nullptr) actions.assignments->Begin(actions.assignments);
  if (std::shared_ptr<Unary> u = actions.heartbeat; u != nullptr) {
    u->stub->async()->Heartbeat(u->context.get(), &u->heartbeat_request, &u->heartbeat_response,
                                [this, u](grpc::Status status) {
                                  OnHeartbeatDone(u->generation, u->sent_at, status,
                                                  u->heartbeat_response);
                                  in_flight_.fetch_sub(1);
                                });
  }
  if (std::shared_ptr<Unary> u = actions.report; u != nullptr) {
    u->stub->async()->UpdateTaskStatus(u->context.get(), &u->status_request, &u->status_response,
                                       [this, u](grpc::Status status) {
                                         OnReportDone(status, u->status_request);
                                         in_flight_.fetch_sub(1);
                                       });
  }
}

void SimAgent::PollLocked(absl::Time now, Actions* actions) {
  if (stopping_) {
    next_wake_ = absl::ToUnixNanos(absl::InfiniteFuture());
    return;
  }

  // Simulated processes that exit by themselves (sim/crash-after).
  if (!exits_.empty()) {
    const absl::Time clock_now = clock_->Now();
    while (!exits_.empty() && exits_.begin()->first <= clock_now) {
      const std::string id = exits_.begin()->second;
      exits_.erase(exits_.begin());
      auto it = tasks_.find(id);
      if (it == tasks_.end()) continue;
      SimTask& t = it->second;
      if (t.phase != RuntimeState::Phase::kRunning || t.exit_at > clock_now) continue;
      t.phase = RuntimeState::Phase::kExited;
      t.pid = 0;
      if (!t.exit.has_value()) t.exit = ExitStatus{t.behavior.exit_code, false, ""};
      DriveLocked(id);
    }
  }

  // Session stream.
  if (session_ == nullptr && now >= reconnect_at_) {
    std::shared_ptr<grpc::ChannelCredentials> creds = options_.credentials();
    if (creds == nullptr) {
      spdlog::warn(
          "sim agent {}: no TLS credentials for the dispatcher session (the node has no usable "
          "certificate); retrying in {}",
          options_.description.hostname(), absl::FormatDuration(backoff_));
      ++stats_.stream_failures;
      reconnect_at_ = now + backoff_;
      backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    } else {
      // A new channel per stream, as agent::Session: a fresh connection with fresh credentials.
      stub_ =
          api::Dispatcher::NewStub(grpc::CreateCustomChannel(addr_, creds, options_.channel_args));
      ++generation_;
      connected_ = false;
      established_ = false;
      heartbeat_failure_ = grpc::Status::OK;
      open_deadline_ = now + options_.session_open_timeout;
      next_heartbeat_ = absl::InfiniteFuture();
      reconnect_at_ = absl::InfiniteFuture();
      session_ = std::make_shared<SessionStream>(this, generation_, stub_);
      *session_->request.mutable_description() = options_.description;
      session_->request.set_session_id(session_id_);
      in_flight_.fetch_add(1);
      actions->session = session_;
    }
  }
  if (session_ != nullptr && !connected_ && now >= open_deadline_) {
    heartbeat_failure_ =
        grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                     absl::StrCat("no SessionMessage from ", addr_, " within ",
                                  absl::FormatDuration(options_.session_open_timeout)));
    open_deadline_ = absl::InfiniteFuture();
    actions->cancel.push_back(session_->context);
  }

  // Heartbeat.
  if (connected_ && heartbeat_ == nullptr && now >= next_heartbeat_) {
    auto u = std::make_shared<Unary>();
    u->stub = stub_;
    u->generation = generation_;
    u->sent_at = now;
    u->heartbeat_request.set_session_id(session_id_);
    u->context->set_deadline(absl::ToChronoTime(now + options_.heartbeat_timeout));
    next_heartbeat_ = absl::InfiniteFuture();
    heartbeat_ = u;
    in_flight_.fetch_add(1);
    actions->heartbeat = std::move(u);
  }

  // Assignments: a stream of an older session goes; the current session gets one.
  if (assignments_ != nullptr && assignments_->session_generation != generation_) {
    actions->cancel.push_back(assignments_->context);
  }
  if (connected_ && assignments_ == nullptr && now >= assignments_at_) {
    ++assignments_generation_;
    assignments_ =
        std::make_shared<AssignmentsStream>(this, assignments_generation_, generation_, stub_);
    assignments_->request.set_session_id(session_id_);
    assignments_at_ = absl::InfiniteFuture();
    assignments_received_ = false;
    assignments_mismatch_ = false;
    results_in_.clear();
    ++stats_.assignment_streams;
    in_flight_.fetch_add(1);
    actions->assignments = assignments_;
  }

  // Status reports.
  const bool full = pending_.size() >= static_cast<size_t>(options_.max_batch);
  if (connected_ && report_ == nullptr && !pending_.empty() && now >= report_not_before_ &&
      (full || now >= report_at_)) {
    auto u = std::make_shared<Unary>();
    u->stub = stub_;
    u->generation = generation_;
    u->sent_at = now;
    u->status_request.set_session_id(session_id_);
    while (u->status_request.updates_size() < options_.max_batch && !pending_order_.empty()) {
      std::string id = std::move(pending_order_.front());
      pending_order_.pop_front();
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      api::UpdateTaskStatusRequest::TaskStatusUpdate* update = u->status_request.add_updates();
      update->set_task_id(std::move(id));
      *update->mutable_status() = std::move(it->second);
      pending_.erase(it);
    }
    u->context->set_deadline(absl::ToChronoTime(now + options_.rpc_timeout));
    report_at_ = absl::InfiniteFuture();
    report_ = u;
    in_flight_.fetch_add(1);
    actions->report = std::move(u);
  }

  UpdateWakeLocked(now);
}

void SimAgent::UpdateWakeLocked(absl::Time now) {
  absl::Time wake = absl::InfiniteFuture();
  if (stopping_) {
    next_wake_ = absl::ToUnixNanos(wake);
    return;
  }
  if (session_ == nullptr) wake = std::min(wake, reconnect_at_);
  if (session_ != nullptr && !connected_) wake = std::min(wake, open_deadline_);
  if (connected_ && heartbeat_ == nullptr) wake = std::min(wake, next_heartbeat_);
  if (connected_ && assignments_ == nullptr) wake = std::min(wake, assignments_at_);
  if (connected_ && report_ == nullptr && !pending_.empty()) {
    const bool full = pending_.size() >= static_cast<size_t>(options_.max_batch);
    wake = std::min(wake, std::max(report_not_before_, full ? now : report_at_));
  }
  if (!exits_.empty()) {
    const absl::Duration left =
        std::clamp(exits_.begin()->first - clock_->Now(), absl::ZeroDuration(), kExitPoll);
    wake = std::min(wake, now + left);
  }
  next_wake_ = absl::ToUnixNanos(wake);
}

// --- Session callbacks ---------------------------------------------------------------------------

bool SimAgent::OnSessionMessage(uint64_t generation, const api::SessionMessage& message) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || generation != generation_) return false;
    const absl::Time now = absl::Now();
    if (!message.session_id().empty()) session_id_ = message.session_id();
    std::vector<std::string> managers;
    for (const api::WeightedPeer& peer : message.managers()) {
      if (!peer.peer().addr().empty()) managers.push_back(peer.peer().addr());
    }
    if (!managers.empty()) managers_ = std::move(managers);
    if (!connected_) {
      connected_ = true;
      established_ = true;
      ++stats_.sessions_opened;
      open_deadline_ = absl::InfiniteFuture();
      next_heartbeat_ = now;  // First heartbeat at once.
      backoff_ = options_.min_backoff;
      immediate_in_a_row_ = 0;
      spdlog::debug("sim agent {}: dispatcher session {} open with {}",
                    options_.description.hostname(), session_id_, addr_);
      // A new session: the worker's supervisor resends every task's latest status (whatever the
      // old session was told may be lost) and wakes its threads (the assignments stream opens at
      // once, a report waits one batch window).
      for (const auto& [id, task] : tasks_) {
        if (task.status.state() >= api::TASK_STATE_ACCEPTED) QueueStatusLocked(id, task.status);
      }
      assignments_at_ = now;
      assignments_backoff_ = options_.min_backoff;
      report_not_before_ = absl::InfinitePast();
      if (report_ == nullptr && !pending_.empty()) report_at_ = now + options_.batch_window;
    }
    PollLocked(now, &actions);
  }
  Run(actions);
  return true;
}

void SimAgent::OnSessionDone(uint64_t generation, const grpc::Status& stream_status) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (generation != generation_) return;  // Cannot happen: one stream at a time.
    session_.reset();
    stub_.reset();
    connected_ = false;
    open_deadline_ = absl::InfiniteFuture();
    next_heartbeat_ = absl::InfiniteFuture();
    // A heartbeat in flight and the assignments stream belong to the stream that just ended.
    if (heartbeat_ != nullptr) actions.cancel.push_back(heartbeat_->context);
    if (assignments_ != nullptr) actions.cancel.push_back(assignments_->context);
    if (stopping_) {
      next_wake_ = absl::ToUnixNanos(absl::InfiniteFuture());
    } else {
      const absl::Time now = absl::Now();
      ++stats_.stream_failures;
      if (established_) {
        backoff_ = options_.min_backoff;
        immediate_in_a_row_ = 0;
      }
      // The heartbeat's (or open timeout's) reason wins over the CANCELLED it caused.
      const grpc::Status status = heartbeat_failure_.ok() ? stream_status : heartbeat_failure_;
      const std::string leader = status.error_code() == grpc::StatusCode::UNAVAILABLE
                                     ? agent::Session::ParseLeaderAddress(status.error_message())
                                     : "";
      bool immediate = false;
      std::string next;
      if (!leader.empty()) {
        next = leader;
        immediate = true;
      } else if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
        // The session expired; the manager itself is fine: a new session there.
        session_id_.clear();
        next = addr_;
        immediate = true;
      } else {
        next = NextManagerLocked(addr_);
        immediate = IsNonLeaderAnswer(status);
      }
      if (status.ok() || immediate) {
        spdlog::info("sim agent {}: dispatcher session with {} ended: {} ({}); reconnecting to {}",
                     options_.description.hostname(), addr_, status.error_message(),
                     static_cast<int>(status.error_code()), next);
      } else {
        spdlog::warn("sim agent {}: dispatcher session with {} failed: {} ({}); trying {}",
                     options_.description.hostname(), addr_, status.error_message(),
                     static_cast<int>(status.error_code()), next);
      }
      addr_ = next;
      // A redirect loop (managers disagreeing on the leader during an election) falls back to
      // the backoff after one pass over the known managers.
      const int limit = static_cast<int>(managers_.size()) + 1;
      if (immediate && immediate_in_a_row_ < limit) {
        ++immediate_in_a_row_;
        reconnect_at_ = now;
      } else {
        immediate_in_a_row_ = 0;
        reconnect_at_ = now + backoff_;
        backoff_ = std::min(backoff_ * 2, options_.max_backoff);
      }
      PollLocked(now, &actions);
    }
  }
  Run(actions);
}

void SimAgent::OnHeartbeatDone(uint64_t generation, absl::Time sent_at, const grpc::Status& status,
                               const api::HeartbeatResponse& response) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    heartbeat_.reset();
    if (stopping_) return;
    const absl::Time now = absl::Now();
    if (generation == generation_ && session_ != nullptr) {
      if (status.ok()) {
        ++stats_.heartbeats;
        absl::Duration period = FromProto(response.period());
        if (period <= absl::ZeroDuration()) period = options_.default_heartbeat_period;
        next_heartbeat_ = sent_at + period / 2;
      } else {
        spdlog::warn("sim agent {}: heartbeat to {} failed: {}; reconnecting",
                     options_.description.hostname(), addr_, status.error_message());
        heartbeat_failure_ = status;
        actions.cancel.push_back(session_->context);
      }
    }
    PollLocked(now, &actions);
  }
  Run(actions);
}

// --- Assignments -----------------------------------------------------------------------------

bool SimAgent::OnAssignments(uint64_t generation, const api::AssignmentsMessage& message) {
  Actions actions;
  bool more = true;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || generation != assignments_generation_ || assignments_ == nullptr) {
      return false;  // Cancelled already.
    }
    if (message.type() == api::AssignmentsMessage::INCREMENTAL &&
        (!assignments_received_ || message.applies_to() != results_in_)) {
      spdlog::warn(
          "sim agent {}: assignments changes apply to set \"{}\" but this agent holds \"{}\"; "
          "reopening the stream for a complete set",
          options_.description.hostname(), message.applies_to(), results_in_);
      assignments_mismatch_ = true;
      actions.cancel.push_back(assignments_->context);
      more = false;
    } else {
      assignments_received_ = true;
      ++stats_.assignment_messages;
      ApplyLocked(message);
      results_in_ = message.results_in();
    }
    PollLocked(absl::Now(), &actions);
  }
  Run(actions);
  return more;
}

void SimAgent::OnAssignmentsDone(uint64_t generation, const grpc::Status& status) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    if (generation != assignments_generation_ || assignments_ == nullptr) return;
    const bool old_session = assignments_->session_generation != generation_;
    assignments_.reset();
    if (stopping_) return;
    const absl::Time now = absl::Now();
    if (assignments_received_) assignments_backoff_ = options_.min_backoff;
    if (old_session || (assignments_mismatch_ && assignments_received_)) {
      // A newer session gets its stream at once; a mismatch reopens at once for a COMPLETE set.
      assignments_at_ = now;
    } else {
      if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
        spdlog::info("sim agent {}: assignments stream ended: {} ({}); reopening in {}",
                     options_.description.hostname(), status.error_message(),
                     static_cast<int>(status.error_code()),
                     absl::FormatDuration(assignments_backoff_));
      }
      assignments_at_ = now + assignments_backoff_;
      assignments_backoff_ = std::min(assignments_backoff_ * 2, options_.max_backoff);
    }
    PollLocked(now, &actions);
  }
  Run(actions);
}

// --- Status reports --------------------------------------------------------------------------

void SimAgent::OnReportDone(const grpc::Status& status,
                            const api::UpdateTaskStatusRequest& request) {
  Actions actions;
  {
    absl::MutexLock lock(&mu_);
    report_.reset();
    const absl::Time now = absl::Now();
    if (status.ok()) {
      ++stats_.status_calls;
      stats_.statuses_sent += request.updates_size();
      stats_.largest_batch = std::max<int64_t>(stats_.largest_batch, request.updates_size());
      report_backoff_ = options_.min_backoff;
      report_not_before_ = absl::InfinitePast();
      report_at_ = pending_.empty() ? absl::InfiniteFuture() : now + options_.batch_window;
    } else {
      ++stats_.status_failures;
      // Back in front, in order, unless a newer status of the same task is already waiting.
      for (int i = request.updates_size() - 1; i >= 0; --i) {
        const auto& update = request.updates(i);
        if (pending_.emplace(update.task_id(), update.status()).second) {
          pending_order_.push_front(update.task_id());
        }
      }
      if (stopping_) return;
      spdlog::info("sim agent {}: reporting {} task status(es) failed: {} ({}); retrying in {}",
                   options_.description.hostname(), request.updates_size(), status.error_message(),
                   static_cast<int>(status.error_code()), absl::FormatDuration(report_backoff_));
      report_not_before_ = now + report_backoff_;
      report_at_ = report_not_before_ + options_.batch_window;
      report_backoff_ = std::min(report_backoff_ * 2, options_.max_backoff);
    }
    PollLocked(now, &actions);
  }
  Run(actions);
}

void SimAgent::QueueStatusLocked(const std::string& id, const api::TaskStatus& status) {
  auto [it, inserted] = pending_.insert_or_assign(id, status);
  if (inserted) pending_order_.push_back(id);
  // The batch window starts with the first waiting status (a call in flight restarts it when it
  // completes).
  if (report_ == nullptr && report_at_ == absl::InfiniteFuture()) {
    report_at_ = absl::Now() + options_.batch_window;
  }
}

// --- Tasks -----------------------------------------------------------------------------------

void SimAgent::ApplyLocked(const api::AssignmentsMessage& message) {
  if (message.type() == api::AssignmentsMessage::INCREMENTAL) {
    for (const api::AssignmentChange& change : message.changes()) {
      if (!change.assignment().has_task()) continue;  // Secrets, configs, network records.
      const api::Task& task = change.assignment().task();
      if (change.action() == api::AssignmentChange::REMOVE) {
        UnassignLocked(task.id());
      } else {
        UpsertLocked(task);
      }
    }
    return;
  }
  // COMPLETE: what the node holds beyond it must go.
  absl::flat_hash_set<std::string> wanted;
  for (const api::AssignmentChange& change : message.changes()) {
    if (!change.assignment().has_task() || change.action() != api::AssignmentChange::UPDATE) {
      continue;
    }
    const api::Task& task = change.assignment().task();
    UpsertLocked(task);
    if (task.desired_state() < api::TASK_STATE_REMOVE) wanted.insert(task.id());
  }
  std::vector<std::string> unwanted;
  for (const auto& [id, task] : tasks_) {
    if (!wanted.contains(id)) unwanted.push_back(id);
  }
  for (const std::string& id : unwanted) UnassignLocked(id);
}

void SimAgent::UpsertLocked(const api::Task& task) {
  if (task.desired_state() >= api::TASK_STATE_REMOVE) {
    UnassignLocked(task.id());
    return;
  }
  auto [it, inserted] = tasks_.try_emplace(task.id());
  SimTask& t = it->second;
  if (inserted) {
    t.id = task.id();
    t.status = task.status();
  } else if (task.status().state() > t.status.state()) {
    // The managers know better (e.g. they marked it ORPHANED while the node was away).
    t.status = task.status();
  }
  t.image = task.spec().container_spec().image();
  t.desired = task.desired_state();
  t.assigned = true;
  DriveLocked(t.id);
}

void SimAgent::UnassignLocked(const std::string& id) {
  auto it = tasks_.find(id);
  if (it == tasks_.end() || !it->second.assigned) return;
  it->second.assigned = false;
  DriveLocked(id);
}

void SimAgent::EmitLocked(SimTask& task, api::TaskStatus status) {
  // The managers' view may have moved past this op's result meanwhile (e.g. ORPHANED).
  if (status.state() < task.status.state()) return;
  task.status = std::move(status);
  QueueStatusLocked(task.id, task.status);
}

void SimAgent::DriveLocked(const std::string& id) {
  for (int ops = 0; ops < kMaxOpsPerDrive; ++ops) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    SimTask& t = it->second;
    agent::TaskFacts facts;
    facts.state = t.status.state();
    facts.desired = t.desired;
    facts.assigned = t.assigned;
    facts.attached = t.attached;
    facts.exit = t.exit;
    const api::TaskState state = facts.state;
    const absl::Time now = clock_->Now();
    switch (agent::NextOp(facts)) {
      case agent::TaskOp::kNone:
        return;

      case agent::TaskOp::kAttach: {
        // The controller: a malformed sim image cannot have one.
        absl::StatusOr<SimBehavior> behavior = agent::exec::ParseSimImage(t.image);
        t.attached = true;
        if (!behavior.ok()) {
          if (!agent::IsTerminal(state)) {
            EmitLocked(t, agent::MakeStatus(agent::FailureState(state), now,
                                            std::string(behavior.status().message())));
          }
          break;
        }
        t.behavior = *behavior;
        // Inspect: the simulated runtime never held a task this agent has just learnt of.
        if (!agent::IsTerminal(state) && t.phase == RuntimeState::Phase::kAbsent) {
          if (state >= api::TASK_STATE_RUNNING) {
            t.exit = ExitStatus{0, false,
                                "task: the executor no longer has it (it was lost while the agent "
                                "was down)"};
          } else if (state >= api::TASK_STATE_READY) {
            t.phase = RuntimeState::Phase::kCreated;  // Prepared again.
          }
        }
        break;
      }

      case agent::TaskOp::kAccept:
        EmitLocked(t, agent::MakeStatus(api::TASK_STATE_ACCEPTED, now));
        break;
      case agent::TaskOp::kBeginPrepare:
        EmitLocked(t, agent::MakeStatus(api::TASK_STATE_PREPARING, now));
        break;
      case agent::TaskOp::kBeginStart:
        EmitLocked(t, agent::MakeStatus(api::TASK_STATE_STARTING, now));
        break;
      case agent::TaskOp::kCancel:
        EmitLocked(t, agent::MakeStatus(api::TASK_STATE_SHUTDOWN, now));
        break;

      case agent::TaskOp::kPrepare: {
        if (t.phase == RuntimeState::Phase::kAbsent) t.phase = RuntimeState::Phase::kCreated;
        api::TaskStatus status = agent::MakeStatus(api::TASK_STATE_READY, now);
        status.mutable_container_status()->set_container_id(ContainerId(t.id));
        EmitLocked(t, std::move(status));
        break;
      }

      case agent::TaskOp::kStart: {
        if (t.phase == RuntimeState::Phase::kExited) {
          EmitLocked(t, agent::MakeStatus(
                            api::TASK_STATE_FAILED, now,
                            absl::StrCat("sim task ", t.id,
                                         " has already run and exited; a task is never started "
                                         "twice")));
          break;
        }
        t.phase = RuntimeState::Phase::kRunning;
        t.pid = next_pid_++;
        switch (t.behavior.kind) {
          case SimBehavior::Kind::kRunForever:
            t.exit_at = absl::InfiniteFuture();
            break;
          case SimBehavior::Kind::kExit:
            t.exit_at = now;
            break;
          case SimBehavior::Kind::kCrashAfter:
            t.exit_at = now + t.behavior.after;
            break;
        }
        api::TaskStatus status = agent::MakeStatus(api::TASK_STATE_RUNNING, now);
        status.mutable_container_status()->set_container_id(ContainerId(t.id));
        status.mutable_container_status()->set_pid(t.pid);
        EmitLocked(t, std::move(status));
        if (t.exit_at <= now) {  // sim/exit:N ends at once.
          t.phase = RuntimeState::Phase::kExited;
          t.pid = 0;
          t.exit = ExitStatus{t.behavior.exit_code, false, ""};
        } else if (t.exit_at != absl::InfiniteFuture()) {
          exits_.insert({t.exit_at, t.id});
        }
        break;
      }

      case agent::TaskOp::kFinish: {
        if (!t.exit.has_value()) return;
        const bool stop_wanted = !t.assigned || t.desired >= api::TASK_STATE_SHUTDOWN;
        EmitLocked(t, agent::FinishedStatus(*t.exit, stop_wanted, now));
        break;
      }

      case agent::TaskOp::kShutdown: {
        // The sim executor honours the stop signal at once: the process ends with 0, and its
        // exit is noticed after the SHUTDOWN report, as the worker's exit callback would be.
        api::TaskStatus status = agent::MakeStatus(api::TASK_STATE_SHUTDOWN, now);
        if (t.exit.has_value()) {
          status.mutable_container_status()->set_exit_code(t.exit->exit_code);
        }
        EmitLocked(t, std::move(status));
        if (t.phase == RuntimeState::Phase::kRunning) {
          exits_.erase({t.exit_at, t.id});
          t.phase = RuntimeState::Phase::kExited;
          t.pid = 0;
          if (!t.exit.has_value()) t.exit = ExitStatus{0, true, ""};
        }
        break;
      }

      case agent::TaskOp::kRemove:
        if (t.assigned) return;  // NextOp removes unassigned tasks only.
        exits_.erase({t.exit_at, t.id});
        tasks_.erase(it);
        return;
    }
  }
  spdlog::error("sim agent {}: task {} did not settle after {} steps",
                options_.description.hostname(), id, kMaxOpsPerDrive);
}

// --- SimFleet --------------------------------------------------------------------------------

SimFleet::SimFleet(absl::Duration tick) : tick_(tick) {
  thread_ = std::thread([this] { Run(); });
}

SimFleet::~SimFleet() { Stop(absl::Seconds(10)); }

SimAgent* SimFleet::Add(SimAgentOptions options) {
  auto agent = std::make_unique<SimAgent>(std::move(options));
  SimAgent* a = agent.get();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return nullptr;
    agents_.push_back(std::move(agent));
  }
  a->Poll(absl::Now());  // The session opens at once.
  return a;
}

size_t SimFleet::size() const {
  absl::MutexLock lock(&mu_);
  return agents_.size();
}

size_t SimFleet::connected() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& a : agents_) n += a->connected() ? 1 : 0;
  return n;
}

SimAgentStats SimFleet::stats() const {
  absl::MutexLock lock(&mu_);
  SimAgentStats total;
  for (const auto& a : agents_) total += a->stats();
  return total;
}

void SimFleet::Run() {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping), tick_)) {
    const absl::Time now = absl::Now();
    for (const auto& a : agents_) {
      if (now >= a->next_wake()) a->Poll(now);
    }
  }
}

bool SimFleet::Stop(absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return true;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  for (const auto& a : agents_) a->Stop();
  const absl::Time deadline = absl::Now() + timeout;
  auto all_idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::all_of(agents_.begin(), agents_.end(),
                       [](const std::unique_ptr<SimAgent>& a) { return a->idle(); });
  };
  // The calls end on gRPC's threads, which signal nothing here: look every few milliseconds.
  while (!all_idle() && absl::Now() < deadline) {
    mu_.Unlock();
    absl::SleepFor(absl::Milliseconds(5));
    mu_.Lock();
  }
  if (!all_idle()) {
    spdlog::warn("sim fleet: calls of some agents did not end within {}; leaving them",
                 absl::FormatDuration(timeout));
    for (auto& a : agents_) static_cast<void>(a.release());
    agents_.clear();
    return false;
  }
  agents_.clear();
  return true;
}

}  // namespace shoal::bench
