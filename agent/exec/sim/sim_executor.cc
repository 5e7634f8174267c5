#include "agent/exec/sim/sim_executor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"

namespace shoal::agent::exec {
namespace {

constexpr int kKilledExitCode = 137;  // 128 + SIGKILL
constexpr int kCrashExitCode = 1;
constexpr char kExitPrefix[] = "exit:";
constexpr char kCrashAfterPrefix[] = "crash-after:";

const char* PhaseName(RuntimeState::Phase phase) {
  switch (phase) {
    case RuntimeState::Phase::kAbsent:
      return "absent";
    case RuntimeState::Phase::kCreated:
      return "created";
    case RuntimeState::Phase::kRunning:
      return "running";
    case RuntimeState::Phase::kExited:
      return "exited";
  }
  return "absent";
}

std::optional<RuntimeState::Phase> PhaseFromName(const std::string& name) {
  for (auto phase : {RuntimeState::Phase::kCreated, RuntimeState::Phase::kRunning,
                     RuntimeState::Phase::kExited}) {
    if (name == PhaseName(phase)) return phase;
  }
  return std::nullopt;
}

nlohmann::json TimeToJson(absl::Time t) {
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) return nullptr;
  return absl::ToUnixNanos(t);
}

absl::Time TimeFromJson(const nlohmann::json& j, absl::Time if_null) {
  if (j.is_null()) return if_null;
  return absl::FromUnixNanos(j.get<int64_t>());
}

std::string ContainerId(const std::string& task_id) { return absl::StrCat("sim-", task_id); }

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::StatusOr<SimBehavior> ParseSimImage(absl::string_view image) {
  absl::string_view name = image.substr(0, image.find('@'));  // Drop a digest.
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  SimBehavior behavior;
  if (parts.size() < 2 || parts[parts.size() - 2] != "sim") return behavior;
  absl::string_view last = parts.back();
  if (absl::ConsumePrefix(&last, kExitPrefix)) {
    int code = -1;
    if (!absl::SimpleAtoi(last, &code) || code < 0 || code > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("sim image \"", std::string(image),
                       "\": the exit code must be a number from 0 to 255, as in sim/exit:3"));
    }
    behavior.kind = SimBehavior::Kind::kExit;
    behavior.exit_code = code;
  } else if (absl::ConsumePrefix(&last, kCrashAfterPrefix)) {
    absl::Duration after;
    if (!absl::ParseDuration(last, &after) || after < absl::ZeroDuration() ||
        after == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sim image \"", std::string(image),
                       "\": the delay must be a duration such as 2s, 500ms or 1m30s, as in "
                       "sim/crash-after:2s"));
    }
    behavior.kind = SimBehavior::Kind::kCrashAfter;
    behavior.exit_code = kCrashExitCode;
    behavior.after = after;
  }
  return behavior;
}

// The controller of one task: every operation goes to the executor by task ID.
class SimController : public Controller {
 public:
  SimController(SimExecutor* executor, std::string id, std::string image)
      : executor_(executor), id_(std::move(id)), image_(std::move(image)) {}
  ~SimController() override { executor_->Unregister(id_, this); }

  absl::Status Prepare() override { return executor_->Prepare(id_, image_); }
  absl::Status Start() override { return executor_->Start(id_); }
  absl::StatusOr<RuntimeState> Inspect() override { return executor_->Inspect(id_); }
  void NotifyExit(ExitCallback on_exit) override {
    executor_->NotifyExit(id_, this, std::move(on_exit));
  }
  absl::Status Shutdown(absl::Duration) override { return executor_->Stop(id_, 0); }
  absl::Status Terminate() override { return executor_->Stop(id_, kKilledExitCode); }
  absl::Status Remove() override { return executor_->Remove(id_); }

 private:
  SimExecutor* const executor_;
  const std::string id_;
  const std::string image_;
};

absl::StatusOr<std::unique_ptr<SimExecutor>> SimExecutor::Create(SimExecutorOptions options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("sim executor: no clock given");
  std::unique_ptr<SimExecutor> executor(new SimExecutor(std::move(options)));
  if (absl::Status s = executor->Load(); !s.ok()) return s;
  executor->thread_ = std::thread([e = executor.get()] { e->Run(); });
  return executor;
}

SimExecutor::SimExecutor(SimExecutorOptions options)
    : options_(std::move(options)), clock_(options_.clock) {
  std::string dir = options_.log_dir;
  if (dir.empty() && !options_.state_file.empty()) {
    dir = absl::StrCat(Parent(options_.state_file), "/sim-logs");
  }
  if (!dir.empty()) {
    SimLogOptions lo;
    lo.dir = dir;
    log_store_ = std::make_unique<SimLogStore>(lo);
    log_source_ = std::make_unique<SimLogSource>(log_store_.get());
  }
}

std::string SimExecutor::log_dir() const {
  return log_store_ == nullptr ? "" : log_store_->options().dir;
}

void SimExecutor::LogLine(const std::string& id, api::LogStream stream, const std::string& line,
                          absl::Time when) {
  if (log_store_ == nullptr) return;
  if (absl::Status s = log_store_->Append(id, stream, line, when); !s.ok()) {
    spdlog::warn("sim executor: {}", std::string(s.message()));
  }
}

SimExecutor::~SimExecutor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (absl::Status s = Flush(); !s.ok()) {
    spdlog::error("sim executor: {}", std::string(s.message()));
  }
}

absl::Status SimExecutor::Load() {
  if (options_.state_file.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> data = ReadFile(options_.state_file);
  if (absl::IsNotFound(data.status())) return absl::OkStatus();
  if (!data.ok()) return data.status();
  const auto corrupt = [this](const std::string& why) {
    return absl::DataLossError(
        absl::StrCat("the sim executor's records in ", options_.state_file, " are unreadable (",
                     why, "); delete the file to start with no simulated processes"));
  };
  try {
    const nlohmann::json j = nlohmann::json::parse(*data);
    if (j.value("version", 0) != 1) return corrupt("unknown version");
    absl::MutexLock lock(&mu_);
    next_pid_ = j.value("next_pid", 1000);
    for (const auto& [id, pj] : j.at("processes").items()) {
      Process p;
      p.image = pj.at("image").get<std::string>();
      absl::StatusOr<SimBehavior> behavior = ParseSimImage(p.image);
      if (!behavior.ok()) return corrupt(std::string(behavior.status().message()));
      p.behavior = *behavior;
      std::optional<RuntimeState::Phase> phase = PhaseFromName(pj.at("phase").get<std::string>());
      if (!phase.has_value()) return corrupt("unknown phase");
      p.phase = *phase;
      p.started_at = TimeFromJson(pj.at("started_at_ns"), absl::InfinitePast());
      p.exit_at = TimeFromJson(pj.at("exit_at_ns"), absl::InfiniteFuture());
      p.exit.exit_code = pj.value("exit_code", 0);
      p.exit.stopped = pj.value("stopped", false);
      p.exit.error = pj.value("error", "");
      p.pid = pj.value("pid", 0);
      p.starts = pj.value("starts", int64_t{0});
      if (p.phase == RuntimeState::Phase::kRunning && p.exit_at != absl::InfiniteFuture()) {
        timers_.insert({p.exit_at, id});
      }
      processes_.emplace(id, std::move(p));
    }
  } catch (const nlohmann::json::exception& e) {
    return corrupt(e.what());
  }
  return absl::OkStatus();
}

std::string SimExecutor::SerializeLocked() const {
  nlohmann::json processes = nlohmann::json::object();
  for (const auto& [id, p] : processes_) {
    processes[id] = {
        {"image", p.image},
        {"phase", PhaseName(p.phase)},
        {"started_at_ns", TimeToJson(p.started_at)},
        {"exit_at_ns", TimeToJson(p.exit_at)},
        {"exit_code", p.exit.exit_code},
        {"stopped", p.exit.stopped},
        {"error", p.exit.error},
        {"pid", p.pid},
        {"starts", p.starts},
    };
  }
  nlohmann::json j = {{"version", 1}, {"next_pid", next_pid_}, {"processes", processes}};
  return j.dump();
}

absl::Status SimExecutor::Flush() {
  if (options_.state_file.empty()) return absl::OkStatus();
  absl::MutexLock flush_lock(&flush_mu_);
  std::string data;
  {
    absl::MutexLock lock(&mu_);
    if (!dirty_) return absl::OkStatus();
    dirty_ = false;
    data = SerializeLocked();
  }
  absl::Status s = MakeDirectories(Parent(options_.state_file), 0700);
  if (s.ok()) s = WriteFileAtomic(options_.state_file, data, 0600);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    MarkDirtyLocked();  // Try again later.
    return absl::Status(s.code(), absl::StrCat("cannot record the simulated processes: ",
                                               std::string(s.message())));
  }
  return absl::OkStatus();
}

void SimExecutor::MarkDirtyLocked() {
  if (!dirty_) dirty_since_ = absl::Now();
  dirty_ = true;
}

void SimExecutor::Run() {
  absl::Time last_flush_error = absl::InfinitePast();
  for (;;) {
    bool flush = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      const absl::Time now = clock_->Now();
      while (!timers_.empty() && timers_.begin()->first <= now) {
        const std::string id = timers_.begin()->second;
        timers_.erase(timers_.begin());
        auto it = processes_.find(id);
        if (it != processes_.end()) SettleLocked(id, it->second);
      }
      flush = dirty_ && !options_.state_file.empty() &&
              absl::Now() - dirty_since_ >= options_.flush_delay;
    }
    Deliver();
    if (flush) {
      if (absl::Status s = Flush(); !s.ok() && absl::Now() - last_flush_error > absl::Minutes(1)) {
        last_flush_error = absl::Now();
        spdlog::error("sim executor: {}", std::string(s.message()));
      }
    }
    absl::MutexLock lock(&mu_);
    absl::Duration wait = options_.poll_interval;
    if (!timers_.empty()) {
      wait = std::min(wait, std::max(timers_.begin()->first - clock_->Now(), absl::ZeroDuration()));
    }
    if (dirty_ && !options_.state_file.empty()) {
      wait = std::min(wait, std::max(options_.flush_delay - (absl::Now() - dirty_since_),
                                     absl::ZeroDuration()));
    }
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wake_ || stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&woken), wait);
    wake_ = false;
  }
}

void SimExecutor::EndLocked(const std::string& id, Process& p, ExitStatus exit) {
  if (exit.stopped) {
    LogLine(id, api::LOG_STREAM_STDOUT, "sim: stopped", clock_->Now());
  } else {
    const absl::Time when = p.exit_at != absl::InfiniteFuture() ? p.exit_at : clock_->Now();
    LogLine(id, exit.exit_code == 0 ? api::LOG_STREAM_STDOUT : api::LOG_STREAM_STDERR,
            absl::StrCat("sim: exiting with code ", exit.exit_code), when);
  }
  p.phase = RuntimeState::Phase::kExited;
  p.exit = exit;
  p.pid = 0;
  to_notify_.emplace_back(id, std::move(exit));
  MarkDirtyLocked();
}

void SimExecutor::SettleLocked(const std::string& id, Process& p) {
  if (p.phase == RuntimeState::Phase::kRunning && clock_->Now() >= p.exit_at) {
    EndLocked(id, p, ExitStatus{p.behavior.exit_code, false, ""});
  }
}

void SimExecutor::Deliver() {
  absl::MutexLock callback_lock(&callback_mu_);
  std::vector<std::pair<std::string, ExitStatus>> exits;
  {
    absl::MutexLock lock(&mu_);
    exits.swap(to_notify_);
  }
  for (const auto& [id, exit] : exits) {
    auto range = callbacks_.equal_range(id);
    std::vector<Controller::ExitCallback> fns;
    for (auto it = range.first; it != range.second; ++it) fns.push_back(std::move(it->second.fn));
    callbacks_.erase(range.first, range.second);
    for (auto& fn : fns) fn(exit);
  }
}

api::EngineDescription SimExecutor::Describe() const {
  api::EngineDescription engine;
  engine.set_engine_version("sim");
  return engine;
}

absl::StatusOr<std::unique_ptr<Controller>> SimExecutor::NewController(const api::Task& task) {
  if (task.id().empty()) return absl::InvalidArgumentError("sim executor: the task has no ID");
  const std::string& image = task.spec().container_spec().image();
  if (absl::StatusOr<SimBehavior> b = ParseSimImage(image); !b.ok()) return b.status();
  return std::unique_ptr<Controller>(new SimController(this, task.id(), image));
}

absl::StatusOr<std::vector<std::string>> SimExecutor::ListAdoptable() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  ids.reserve(processes_.size());
  for (const auto& [id, p] : processes_) ids.push_back(id);
  return ids;
}

int64_t SimExecutor::starts(const std::string& task_id) const {
  absl::MutexLock lock(&mu_);
  auto it = processes_.find(task_id);
  return it == processes_.end() ? 0 : it->second.starts;
}

size_t SimExecutor::running_count() const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  return std::count_if(processes_.begin(), processes_.end(), [now](const auto& entry) {
    return entry.second.phase == RuntimeState::Phase::kRunning && now < entry.second.exit_at;
  });
}

absl::Status SimExecutor::Prepare(const std::string& id, const std::string& image) {
  absl::StatusOr<SimBehavior> behavior = ParseSimImage(image);
  if (!behavior.ok()) return behavior.status();
  absl::MutexLock lock(&mu_);
  if (processes_.count(id) != 0) return absl::OkStatus();
  Process p;
  p.image = image;
  p.behavior = *behavior;
  processes_.emplace(id, std::move(p));
  MarkDirtyLocked();
  return absl::OkStatus();
}

absl::Status SimExecutor::Start(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = processes_.find(id);
    if (it == processes_.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("sim task ", id, " was not prepared: Prepare must come before Start"));
    }
    Process& p = it->second;
    SettleLocked(id, p);
    switch (p.phase) {
      case RuntimeState::Phase::kRunning:
        return absl::OkStatus();
      case RuntimeState::Phase::kExited:
        return absl::FailedPreconditionError(absl::StrCat(
            "sim task ", id, " has already run and exited; a task is never started twice"));
      default:
        break;
    }
    const absl::Time now = clock_->Now();
    p.phase = RuntimeState::Phase::kRunning;
    p.started_at = now;
    p.pid = next_pid_++;
    ++p.starts;
    switch (p.behavior.kind) {
      case SimBehavior::Kind::kRunForever:
        p.exit_at = absl::InfiniteFuture();
        break;
      case SimBehavior::Kind::kExit:
        p.exit_at = now;
        break;
      case SimBehavior::Kind::kCrashAfter:
        p.exit_at = now + p.behavior.after;
        break;
    }
    if (p.exit_at != absl::InfiniteFuture()) {
      timers_.insert({p.exit_at, id});
      wake_ = true;
    }
    MarkDirtyLocked();
    LogLine(id, api::LOG_STREAM_STDOUT,
            absl::StrCat("sim: task ", id, " started (image ", p.image, ")"), now);
    SettleLocked(id, p);  // sim/exit:N ends at once.
  }
  Deliver();
  return absl::OkStatus();
}

absl::StatusOr<RuntimeState> SimExecutor::Inspect(const std::string& id) {
  RuntimeState state;
  {
    absl::MutexLock lock(&mu_);
    auto it = processes_.find(id);
    if (it != processes_.end()) {
      Process& p = it->second;
      SettleLocked(id, p);
      state.phase = p.phase;
      state.container_id = ContainerId(id);
      if (p.phase == RuntimeState::Phase::kRunning) state.pid = p.pid;
      if (p.phase == RuntimeState::Phase::kExited) state.exit = p.exit;
    }
  }
  Deliver();
  return state;
}

void SimExecutor::NotifyExit(const std::string& id, const void* owner,
                             Controller::ExitCallback fn) {
  {
    absl::MutexLock callback_lock(&callback_mu_);
    std::optional<ExitStatus> exited;
    {
      absl::MutexLock lock(&mu_);
      auto it = processes_.find(id);
      if (it != processes_.end()) {
        SettleLocked(id, it->second);
        if (it->second.phase == RuntimeState::Phase::kExited) exited = it->second.exit;
      }
    }
    if (exited.has_value()) {
      fn(*exited);
    } else {
      callbacks_.emplace(id, Registration{owner, std::move(fn)});
    }
  }
  Deliver();  // Others registered before a settle above.
}

void SimExecutor::Unregister(const std::string& id, const void* owner) {
  absl::MutexLock callback_lock(&callback_mu_);
  auto range = callbacks_.equal_range(id);
  for (auto it = range.first; it != range.second;) {
    it = it->second.owner == owner ? callbacks_.erase(it) : std::next(it);
  }
}

absl::Status SimExecutor::Stop(const std::string& id, int exit_code) {
  {
    absl::MutexLock lock(&mu_);
    auto it = processes_.find(id);
    if (it != processes_.end()) {
      SettleLocked(id, it->second);
      if (it->second.phase == RuntimeState::Phase::kRunning) {
        EndLocked(id, it->second, ExitStatus{exit_code, true, ""});
      }
    }
  }
  Deliver();
  return absl::OkStatus();
}

absl::Status SimExecutor::Remove(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = processes_.find(id);
    if (it != processes_.end()) {
      SettleLocked(id, it->second);
      if (it->second.phase == RuntimeState::Phase::kRunning) {
        EndLocked(id, it->second, ExitStatus{kKilledExitCode, true, ""});
      }
      processes_.erase(it);
      MarkDirtyLocked();
    }
    if (log_store_ != nullptr) {
      if (absl::Status s = log_store_->Remove(id); !s.ok()) {
        spdlog::warn("sim executor: {}", std::string(s.message()));
      }
    }
  }
  Deliver();
  return absl::OkStatus();
}

}  // namespace shoal::agent::exec
