#include "agent/worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace shoal::agent {
namespace {

constexpr absl::Duration kDefaultStopGrace = absl::Seconds(10);

absl::Duration StopGrace(const api::Task& task) {
  const google::protobuf::Duration& d = task.spec().container_spec().stop_grace_period();
  if (d.seconds() == 0 && d.nanos() == 0) return kDefaultStopGrace;
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void SetContainer(const absl::StatusOr<exec::RuntimeState>& rs, api::TaskStatus* status) {
  if (!rs.ok() || rs->container_id.empty()) return;
  status->mutable_container_status()->set_container_id(rs->container_id);
  status->mutable_container_status()->set_pid(rs->pid);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Worker>> Worker::Start(WorkerOptions options) {
  if (options.executor == nullptr || !options.connection || options.clock == nullptr) {
    return absl::InvalidArgumentError(
        "worker: an executor, a connection source and a clock are "
        "required");
  }
  if (options.threads < 1 || options.max_batch < 1) {
    return absl::InvalidArgumentError("worker: threads and max_batch must be at least 1");
  }
  std::unique_ptr<Worker> worker(new Worker(std::move(options)));
  if (!worker->options_.state_dir.empty()) {
    absl::StatusOr<std::vector<TaskRecord>> records = LoadWorkerState(worker->StatePath());
    if (!records.ok()) {
      spdlog::warn(
          "{}; starting without them (the managers' assignments and the executor will "
          "tell what runs)",
          std::string(records.status().message()));
    } else {
      absl::MutexLock lock(&worker->mu_);
      for (TaskRecord& record : *records) {
        auto runner = std::make_shared<Runner>();
        runner->task = std::move(record.task);
        runner->status = std::move(record.status);
        runner->assigned = record.assigned;
        runner->incarnation = ++worker->next_incarnation_;
        const std::string id = runner->task.id();
        worker->runners_[id] = runner;
        worker->ScheduleLocked(runner);
      }
      if (!records->empty()) {
        spdlog::info("worker: resuming {} task(s) from {}", records->size(), worker->StatePath());
      }
    }
  }
  Worker* w = worker.get();
  for (int i = 0; i < w->options_.threads; ++i) {
    w->task_threads_.emplace_back([w] { w->RunTasks(); });
  }
  w->assignments_thread_ = std::thread([w] { w->RunAssignments(); });
  w->reporter_thread_ = std::thread([w] { w->RunReporter(); });
  w->supervisor_thread_ = std::thread([w] { w->RunSupervisor(); });
  return worker;
}

Worker::Worker(WorkerOptions options)
    : options_(std::move(options)), clock_(options_.clock), executor_(options_.executor) {}

Worker::~Worker() { Stop(); }

void Worker::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
    if (report_ctx_ != nullptr) report_ctx_->TryCancel();
  }
  for (std::thread* t : {&assignments_thread_, &reporter_thread_, &supervisor_thread_}) {
    if (t->joinable()) t->join();
  }
  for (std::thread& t : task_threads_) {
    if (t.joinable()) t.join();
  }
  Save();
  // Released outside mu_: a controller's destructor waits for its exit callbacks, which take mu_.
  std::vector<std::unique_ptr<exec::Controller>> controllers;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, runner] : runners_) {
      if (runner->controller != nullptr) controllers.push_back(std::move(runner->controller));
    }
  }
  controllers.clear();
}

void Worker::Kick() {
  absl::MutexLock lock(&mu_);
  ++kicks_;
}

bool Worker::Pause(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  const uint64_t kicks = kicks_;
  auto woken = [this, kicks]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || kicks_ != kicks; };
  mu_.AwaitWithTimeout(absl::Condition(&woken), d);
  return !stopping_;
}

std::string Worker::StatePath() const {
  return absl::StrCat(options_.state_dir, "/worker/", kWorkerStateFile);
}

// --- Accessors -------------------------------------------------------------------------------

std::optional<api::TaskStatus> Worker::task_status(const std::string& task_id) const {
  absl::MutexLock lock(&mu_);
  auto it = runners_.find(task_id);
  if (it == runners_.end()) return std::nullopt;
  return it->second->status;
}

std::vector<std::string> Worker::task_ids() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  ids.reserve(runners_.size());
  for (const auto& [id, runner] : runners_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

size_t Worker::pending_statuses() const {
  absl::MutexLock lock(&mu_);
  return pending_.size();
}

WorkerStats Worker::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

// --- Bookkeeping -----------------------------------------------------------------------------

void Worker::MarkDirtyLocked() {
  if (!state_dirty_) dirty_since_ = absl::Now();
  state_dirty_ = true;
}

TaskFacts Worker::FactsLocked(const Runner& runner) const {
  TaskFacts facts;
  facts.state = runner.status.state();
  facts.desired = runner.task.desired_state();
  facts.assigned = runner.assigned;
  facts.attached = runner.attached;
  facts.exit = runner.exit;
  return facts;
}

void Worker::ScheduleLocked(const std::shared_ptr<Runner>& runner) {
  if (runner->forgotten || runner->busy || runner->queued) return;
  runner->queued = true;
  run_queue_.push_back(runner);
}

void Worker::QueueStatusLocked(const std::string& task_id, const api::TaskStatus& status) {
  auto [it, inserted] = pending_.insert_or_assign(task_id, status);
  if (inserted) pending_order_.push_back(task_id);
}

void Worker::EmitLocked(Runner& runner, api::TaskStatus status) {
  // The managers' view may have moved past this op's result meanwhile (e.g. ORPHANED).
  if (status.state() < runner.status.state()) return;
  if (status.state() == api::TASK_STATE_RUNNING && status.health() == api::TaskStatus::UNKNOWN) {
    status.set_health(runner.health);
  }
  runner.status = std::move(status);
  runner.backoff = absl::ZeroDuration();
  QueueStatusLocked(runner.task.id(), runner.status);
  MarkDirtyLocked();
}

void Worker::OpFailed(const std::shared_ptr<Runner>& runner, TaskOp op,
                      const absl::Status& status) {
  runner->backoff = runner->backoff == absl::ZeroDuration()
                        ? options_.min_backoff
                        : std::min(runner->backoff * 2, options_.max_backoff);
  runner->retry_at = absl::Now() + runner->backoff;
  spdlog::warn("task {}: {} failed: {}; retrying in {}", runner->task.id(), TaskOpName(op),
               std::string(status.message()), absl::FormatDuration(runner->backoff));
}

void Worker::Save() {
  if (options_.state_dir.empty()) {
    absl::MutexLock lock(&mu_);
    state_dirty_ = false;
    return;
  }
  absl::MutexLock save_lock(&save_mu_);
  std::vector<TaskRecord> records;
  {
    absl::MutexLock lock(&mu_);
    if (!state_dirty_) return;
    state_dirty_ = false;
    records.reserve(runners_.size());
    for (const auto& [id, runner] : runners_) {
      records.push_back(TaskRecord{runner->task, runner->status, runner->assigned});
    }
  }
  std::sort(records.begin(), records.end(),
            [](const TaskRecord& a, const TaskRecord& b) { return a.task.id() < b.task.id(); });
  if (absl::Status s = SaveWorkerState(StatePath(), records); !s.ok()) {
    spdlog::error("worker: cannot save the task records: {}", std::string(s.message()));
    absl::MutexLock lock(&mu_);
    MarkDirtyLocked();
  }
}

// --- Assignments -----------------------------------------------------------------------------

void Worker::UpsertLocked(const api::Task& task) {
  if (task.desired_state() >= api::TASK_STATE_REMOVE) {
    UnassignLocked(task.id());
    return;
  }
  std::shared_ptr<Runner>& runner = runners_[task.id()];
  if (runner == nullptr) {
    runner = std::make_shared<Runner>();
    runner->status = task.status();
    runner->incarnation = ++next_incarnation_;
    if (task.status().state() <= api::TASK_STATE_ASSIGNED) runner->assigned_at = absl::Now();
  } else if (task.status().state() > runner->status.state()) {
    // The managers know better (e.g. they marked it ORPHANED while the node was away).
    runner->status = task.status();
  }
  runner->task = task;
  runner->task.clear_status();  // runner->status is the one that counts.
  runner->assigned = true;
  MarkDirtyLocked();
  ScheduleLocked(runner);
}

void Worker::ApplyDependencyLocked(const api::AssignmentChange& change) {
  const api::Assignment& a = change.assignment();
  const bool remove = change.action() == api::AssignmentChange::REMOVE;
  if (a.has_secret()) {
    if (remove) {
      secrets_.erase(a.secret().id());
    } else {
      secrets_[a.secret().id()] = a.secret();
    }
  } else if (a.has_config()) {
    if (remove) {
      configs_.erase(a.config().id());
    } else {
      configs_[a.config().id()] = a.config();
    }
  }
}

absl::StatusOr<api::Secret> Worker::secret(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = secrets_.find(id);
  if (it == secrets_.end()) {
    return absl::NotFoundError(
        absl::StrCat("secret ", id, " is not assigned to this node (yet): retrying"));
  }
  return it->second;
}

absl::StatusOr<api::Config> Worker::config(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = configs_.find(id);
  if (it == configs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("config ", id, " is not assigned to this node (yet): retrying"));
  }
  return it->second;
}

void Worker::UnassignLocked(const std::string& task_id) {
  auto it = runners_.find(task_id);
  if (it == runners_.end() || !it->second->assigned) return;
  it->second->assigned = false;
  MarkDirtyLocked();
  ScheduleLocked(it->second);
}

void Worker::Apply(const api::AssignmentsMessage& message) {
  if (message.type() == api::AssignmentsMessage::INCREMENTAL) {
    absl::MutexLock lock(&mu_);
    for (const api::AssignmentChange& change : message.changes()) {
      if (!change.assignment().has_task()) {  // Secrets, configs, network records.
        ApplyDependencyLocked(change);
        continue;
      }
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
  {
    absl::MutexLock lock(&mu_);
    secrets_.clear();
    configs_.clear();
    for (const api::AssignmentChange& change : message.changes()) {
      if (change.action() != api::AssignmentChange::UPDATE) continue;
      if (!change.assignment().has_task()) {
        ApplyDependencyLocked(change);
        continue;
      }
      const api::Task& task = change.assignment().task();
      UpsertLocked(task);
      if (task.desired_state() < api::TASK_STATE_REMOVE) wanted.insert(task.id());
    }
    for (auto& [id, runner] : runners_) {
      if (!wanted.contains(id)) UnassignLocked(id);
    }
  }
  // Leftovers the runtime still holds (from before a restart whose records were lost).
  absl::StatusOr<std::vector<std::string>> held = executor_->ListAdoptable();
  if (!held.ok()) {
    spdlog::warn("worker: cannot list the executor's tasks: {}",
                 std::string(held.status().message()));
    return;
  }
  absl::MutexLock lock(&mu_);
  for (const std::string& id : *held) {
    if (wanted.contains(id) || runners_.contains(id)) continue;
    auto runner = std::make_shared<Runner>();
    runner->task.set_id(id);
    runner->assigned = false;
    runner->incarnation = ++next_incarnation_;
    runners_[id] = runner;
    MarkDirtyLocked();
    ScheduleLocked(runner);
    spdlog::info("worker: removing task {}, which the executor holds but is not assigned", id);
  }
}

void Worker::RunAssignments() {
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    const DispatcherConnection conn = options_.connection();
    if (conn.stub == nullptr || conn.session_id.empty()) {
      if (!Pause(options_.poll_interval)) return;
      continue;
    }
    grpc::ClientContext ctx;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      stream_ctx_ = &ctx;
      stream_session_ = conn.session_id;
      ++stats_.assignment_streams;
    }
    api::AssignmentsRequest request;
    request.set_session_id(conn.session_id);
    std::unique_ptr<grpc::ClientReaderInterface<api::AssignmentsMessage>> reader =
        conn.stub->Assignments(&ctx, request);
    api::AssignmentsMessage message;
    bool received = false;
    bool mismatch = false;
    std::string results_in;
    while (reader->Read(&message)) {
      if (message.type() == api::AssignmentsMessage::INCREMENTAL &&
          (!received || message.applies_to() != results_in)) {
        spdlog::warn(
            "worker: assignments changes apply to set \"{}\" but this agent holds \"{}\"; "
            "reopening the stream for a complete set",
            message.applies_to(), results_in);
        mismatch = true;
        ctx.TryCancel();
        while (reader->Read(&message)) {
        }
        break;
      }
      received = true;
      {
        absl::MutexLock lock(&mu_);
        ++stats_.assignment_messages;
      }
      Apply(message);
      results_in = message.results_in();
    }
    const grpc::Status status = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      stream_ctx_ = nullptr;
      stream_session_.clear();
      if (stopping_) return;
    }
    if (received) backoff = options_.min_backoff;
    if (mismatch && received) continue;  // The new stream starts with a COMPLETE set.
    if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      spdlog::info("worker: assignments stream ended: {} ({}); reopening in {}",
                   status.error_message(), static_cast<int>(status.error_code()),
                   absl::FormatDuration(backoff));
    }
    if (!Pause(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

// --- Status reports --------------------------------------------------------------------------

void Worker::RunReporter() {
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto any = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !pending_.empty(); };
      mu_.Await(absl::Condition(&any));
      if (stopping_) return;
      // Coalesce: let more changes (and newer states of the same tasks) arrive, unless a full
      // batch is already waiting.
      auto full = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || pending_.size() >= static_cast<size_t>(options_.max_batch);
      };
      mu_.AwaitWithTimeout(absl::Condition(&full), options_.batch_window);
      if (stopping_) return;
    }
    const DispatcherConnection conn = options_.connection();
    if (conn.stub == nullptr || conn.session_id.empty()) {
      if (!Pause(options_.poll_interval)) return;
      continue;
    }
    api::UpdateTaskStatusRequest request;
    request.set_session_id(conn.session_id);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      while (request.updates_size() < options_.max_batch && !pending_order_.empty()) {
        const std::string id = std::move(pending_order_.front());
        pending_order_.pop_front();
        auto it = pending_.find(id);
        if (it == pending_.end()) continue;
        api::UpdateTaskStatusRequest::TaskStatusUpdate* update = request.add_updates();
        update->set_task_id(id);
        *update->mutable_status() = std::move(it->second);
        pending_.erase(it);
      }
      if (request.updates().empty()) continue;
      report_ctx_ = &ctx;
    }
    api::UpdateTaskStatusResponse response;
    const grpc::Status status = conn.stub->UpdateTaskStatus(&ctx, request, &response);
    {
      absl::MutexLock lock(&mu_);
      report_ctx_ = nullptr;
      if (status.ok()) {
        ++stats_.status_calls;
        stats_.statuses_sent += request.updates_size();
        stats_.largest_batch = std::max<int64_t>(stats_.largest_batch, request.updates_size());
        backoff = options_.min_backoff;
        continue;
      }
      ++stats_.status_failures;
      // Back in front, in order, unless a newer status of the same task is already waiting.
      for (int i = request.updates_size() - 1; i >= 0; --i) {
        const auto& update = request.updates(i);
        if (pending_.emplace(update.task_id(), update.status()).second) {
          pending_order_.push_front(update.task_id());
        }
      }
      if (stopping_) return;
    }
    spdlog::warn("worker: reporting {} task status(es) failed: {} ({}); retrying in {}",
                 request.updates_size(), status.error_message(),
                 static_cast<int>(status.error_code()), absl::FormatDuration(backoff));
    if (!Pause(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

// --- Supervision -----------------------------------------------------------------------------

void Worker::RunSupervisor() {
  for (;;) {
    if (!Pause(options_.poll_interval)) return;
    const DispatcherConnection conn = options_.connection();
    bool save = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      if (conn.stub != nullptr && !conn.session_id.empty()) {
        if (conn.session_id != seen_.session_id || conn.stub != seen_.stub) {
          // A new session (maybe with another manager): whatever it was told before may be lost.
          seen_ = conn;
          ++stats_.sessions;
          ++kicks_;  // Threads backing off after the old session's errors: try the new one.
          for (const auto& [id, runner] : runners_) {
            if (runner->status.state() >= api::TASK_STATE_ACCEPTED) {
              QueueStatusLocked(id, runner->status);
            }
          }
        }
        if (stream_ctx_ != nullptr && stream_session_ != conn.session_id) {
          stream_ctx_->TryCancel();  // A stream of an older session.
        }
      }
      const absl::Time now = absl::Now();
      for (const auto& [id, runner] : runners_) {
        if (runner->retry_at != absl::InfinitePast() && runner->retry_at <= now) {
          runner->retry_at = absl::InfinitePast();
          ScheduleLocked(runner);
        }
      }
      save = state_dirty_ && now - dirty_since_ >= options_.save_delay;
    }
    if (save) Save();
  }
}

// --- Task lifecycles -------------------------------------------------------------------------

void Worker::RunTasks() {
  for (;;) {
    std::shared_ptr<Runner> runner;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !run_queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      runner = std::move(run_queue_.front());
      run_queue_.pop_front();
      runner->queued = false;
      if (runner->busy || runner->forgotten) continue;
      runner->busy = true;
    }
    Drive(runner);
  }
}

void Worker::Drive(const std::shared_ptr<Runner>& runner) {
  for (;;) {
    TaskOp op;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || runner->forgotten || absl::Now() < runner->retry_at) {
        runner->busy = false;
        return;
      }
      op = NextOp(FactsLocked(*runner));
      if (op == TaskOp::kNone) {
        runner->busy = false;
        return;
      }
    }
    Perform(op, runner);
  }
}

void Worker::WatchExit(const std::shared_ptr<Runner>& runner) {
  // Only the busy thread touches the controller.
  exec::Controller* controller = runner->controller.get();
  if (controller == nullptr) return;
  std::string id;
  uint64_t incarnation;
  {
    absl::MutexLock lock(&mu_);
    id = runner->task.id();
    incarnation = runner->incarnation;
  }
  controller->NotifyExit(
      [this, id, incarnation](const exec::ExitStatus& exit) { OnExit(id, incarnation, exit); });
}

void Worker::OnExit(const std::string& task_id, uint64_t incarnation,
                    const exec::ExitStatus& exit) {
  absl::MutexLock lock(&mu_);
  auto it = runners_.find(task_id);
  if (it == runners_.end() || it->second->incarnation != incarnation) return;
  if (!it->second->exit.has_value()) it->second->exit = exit;
  ScheduleLocked(it->second);
}

void Worker::OnControllerStatus(const std::string& task_id, uint64_t incarnation,
                                const exec::ControllerStatus& controller_status) {
  absl::MutexLock lock(&mu_);
  auto it = runners_.find(task_id);
  if (it == runners_.end() || it->second->incarnation != incarnation) return;
  Runner& runner = *it->second;
  runner.health = controller_status.health;
  const api::TaskState state = runner.status.state();
  api::TaskStatus status = runner.status;
  if (state == api::TASK_STATE_PREPARING && !controller_status.message.empty()) {
    status.set_message(controller_status.message);
  } else if (state == api::TASK_STATE_RUNNING) {
    status.set_health(controller_status.health);
  }
  if (status.message() == runner.status.message() && status.health() == runner.status.health()) {
    return;
  }
  const int64_t nanos = absl::ToUnixNanos(clock_->Now());
  status.mutable_timestamp()->set_seconds(nanos / 1000000000);
  status.mutable_timestamp()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  EmitLocked(runner, std::move(status));
}

void Worker::Perform(TaskOp op, const std::shared_ptr<Runner>& runner) {
  // The busy flag makes this thread the only one touching runner->controller.
  exec::Controller* controller = runner->controller.get();
  api::Task task;
  api::TaskState state;
  {
    absl::MutexLock lock(&mu_);
    task = runner->task;
    state = runner->status.state();
  }
  const absl::Time now = clock_->Now();

  switch (op) {
    case TaskOp::kNone:
      return;

    case TaskOp::kAttach: {
      absl::StatusOr<std::unique_ptr<exec::Controller>> made;
      if (runner->controller != nullptr) {
        made = std::move(runner->controller);  // From an attach that raced with a change.
      } else {
        made = executor_->NewController(task);
      }
      if (!made.ok()) {
        absl::MutexLock lock(&mu_);
        runner->attached = true;
        if (!IsTerminal(state)) {
          EmitLocked(*runner,
                     MakeStatus(FailureState(state), now, std::string(made.status().message())));
        }
        return;
      }
      std::unique_ptr<exec::Controller> made_controller = std::move(*made);
      {
        uint64_t incarnation;
        {
          absl::MutexLock lock(&mu_);
          incarnation = runner->incarnation;
        }
        made_controller->SetStatusListener(
            [this, id = task.id(), incarnation](const exec::ControllerStatus& cs) {
              OnControllerStatus(id, incarnation, cs);
            });
      }
      absl::StatusOr<exec::RuntimeState> rs = made_controller->Inspect();
      if (!rs.ok()) {
        {
          absl::MutexLock lock(&mu_);
          OpFailed(runner, op, rs.status());
        }
        return;  // made_controller is released here, outside mu_.
      }
      std::optional<api::TaskStatus> status;
      std::optional<exec::ExitStatus> exit;
      bool watch = false;
      if (!IsTerminal(state)) {
        switch (rs->phase) {
          case exec::RuntimeState::Phase::kRunning:
            watch = true;
            if (state < api::TASK_STATE_RUNNING) {  // Started before a restart: adopt it.
              status = MakeStatus(api::TASK_STATE_RUNNING, now);
              SetContainer(rs, &*status);
            }
            break;
          case exec::RuntimeState::Phase::kExited:
            exit = rs->exit;
            break;
          case exec::RuntimeState::Phase::kCreated:
            if (state >= api::TASK_STATE_RUNNING) {
              exit = exec::ExitStatus{0, false,
                                      "task: its container is no longer running (it stopped "
                                      "while the agent was down)"};
            }
            break;
          case exec::RuntimeState::Phase::kAbsent:
            if (state >= api::TASK_STATE_RUNNING) {
              exit = exec::ExitStatus{0, false,
                                      "task: the executor no longer has it (it was lost while "
                                      "the agent was down)"};
            } else if (state >= api::TASK_STATE_READY) {
              // Prepared before a restart, but the runtime lost it: prepare again.
              if (absl::Status s = made_controller->Prepare(); !s.ok()) {
                status = MakeStatus(FailureState(state), now, std::string(s.message()));
              }
            }
            break;
        }
      }
      {
        absl::MutexLock lock(&mu_);
        runner->controller = std::move(made_controller);
        if (runner->status.state() != state) return;  // Changed meanwhile: inspect again.
        runner->attached = true;
        if (exit.has_value() && !runner->exit.has_value()) runner->exit = std::move(exit);
        if (status.has_value()) EmitLocked(*runner, std::move(*status));
      }
      if (watch) WatchExit(runner);
      return;
    }

    case TaskOp::kAccept:
    case TaskOp::kBeginPrepare:
    case TaskOp::kBeginStart:
    case TaskOp::kCancel: {
      const api::TaskState next = op == TaskOp::kAccept         ? api::TASK_STATE_ACCEPTED
                                  : op == TaskOp::kBeginPrepare ? api::TASK_STATE_PREPARING
                                  : op == TaskOp::kBeginStart   ? api::TASK_STATE_STARTING
                                                                : api::TASK_STATE_SHUTDOWN;
      absl::MutexLock lock(&mu_);
      EmitLocked(*runner, MakeStatus(next, now));
      return;
    }

    case TaskOp::kPrepare: {
      absl::Status s = controller != nullptr
                           ? controller->Prepare()
                           : absl::InternalError("task: no controller to prepare it with");
      api::TaskStatus status;
      if (s.ok()) {
        status = MakeStatus(api::TASK_STATE_READY, now);
        SetContainer(controller->Inspect(), &status);
      } else {
        status = MakeStatus(api::TASK_STATE_REJECTED, now, std::string(s.message()));
      }
      absl::MutexLock lock(&mu_);
      EmitLocked(*runner, std::move(status));
      return;
    }

    case TaskOp::kStart: {
      absl::Status s = controller != nullptr
                           ? controller->Start()
                           : absl::InternalError("task: no controller to start it with");
      if (!s.ok()) {
        absl::MutexLock lock(&mu_);
        EmitLocked(*runner, MakeStatus(api::TASK_STATE_FAILED, now, std::string(s.message())));
        return;
      }
      api::TaskStatus status = MakeStatus(api::TASK_STATE_RUNNING, now);
      SetContainer(controller->Inspect(), &status);
      absl::Duration took = absl::InfiniteDuration();
      {
        absl::MutexLock lock(&mu_);
        EmitLocked(*runner, std::move(status));
        if (runner->assigned_at != absl::InfinitePast()) {
          took = absl::Now() - runner->assigned_at;
          runner->assigned_at = absl::InfinitePast();
        }
      }
      if (took != absl::InfiniteDuration() && options_.on_task_started) {
        options_.on_task_started(took);
      }
      WatchExit(runner);
      return;
    }

    case TaskOp::kFinish: {
      absl::MutexLock lock(&mu_);
      if (!runner->exit.has_value()) return;
      const bool stop_wanted =
          !runner->assigned || runner->task.desired_state() >= api::TASK_STATE_SHUTDOWN;
      EmitLocked(*runner, FinishedStatus(*runner->exit, stop_wanted, now));
      return;
    }

    case TaskOp::kShutdown: {
      absl::Status s;
      if (controller != nullptr) {
        s = controller->Shutdown(StopGrace(task));
        if (!s.ok()) {
          spdlog::warn("task {}: graceful stop failed ({}); killing it", task.id(),
                       std::string(s.message()));
          s = controller->Terminate();
        }
      }
      absl::MutexLock lock(&mu_);
      if (!s.ok()) {
        OpFailed(runner, op, s);
        return;
      }
      api::TaskStatus status = MakeStatus(api::TASK_STATE_SHUTDOWN, now);
      if (runner->exit.has_value()) {
        status.mutable_container_status()->set_exit_code(runner->exit->exit_code);
      }
      EmitLocked(*runner, std::move(status));
      return;
    }

    case TaskOp::kRemove: {
      absl::Status s = controller != nullptr ? controller->Remove() : absl::OkStatus();
      std::unique_ptr<exec::Controller> released;  // Destroyed after mu_ is released.
      absl::MutexLock lock(&mu_);
      if (!s.ok()) {
        OpFailed(runner, op, s);
        return;
      }
      if (runner->assigned) return;  // Assigned again meanwhile; it is finished anyway.
      runner->forgotten = true;
      auto it = runners_.find(task.id());
      if (it != runners_.end() && it->second == runner) runners_.erase(it);
      released = std::move(runner->controller);
      MarkDirtyLocked();
      return;
    }
  }
}

}  // namespace shoal::agent
