// The worker against a fake Dispatcher served in-process (insecure, 127.0.0.1) and the sim
// executor on a ManualClock. Every wait is on a condition with a deadline.
#include "agent/worker.h"

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/exec/sim/sim_executor.h"
#include "agent/worker_state.h"
#include "common/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::agent {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(30);

bool Eventually(const std::function<bool()>& cond, absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!cond()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

api::Task SimTask(const std::string& id, const std::string& image,
                  api::TaskState desired = api::TASK_STATE_RUNNING) {
  api::Task task;
  task.set_id(id);
  task.set_node_id("node-1");
  task.set_desired_state(desired);
  task.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
  task.mutable_spec()->mutable_container_spec()->set_image(image);
  return task;
}

// A Dispatcher holding the node's task set: a stream gets it as a COMPLETE message, then every
// change as an INCREMENTAL one (as manager/dispatcher does). Status reports are recorded.
class FakeDispatcher final : public api::Dispatcher::Service {
 public:
  void set_session(std::string id) {
    absl::MutexLock lock(&mu_);
    session_ = std::move(id);
  }
  void SetTasks(const std::vector<api::Task>& tasks) {
    absl::MutexLock lock(&mu_);
    api::AssignmentsMessage event;
    for (const api::Task& t : tasks) {
      tasks_[t.id()] = t;
      api::AssignmentChange* c = event.add_changes();
      c->set_action(api::AssignmentChange::UPDATE);
      *c->mutable_assignment()->mutable_task() = t;
    }
    log_.push_back({event, false});
  }
  void SetTask(const api::Task& task) { SetTasks({task}); }
  void RemoveTask(const std::string& id) {
    absl::MutexLock lock(&mu_);
    tasks_.erase(id);
    api::AssignmentsMessage event;
    api::AssignmentChange* c = event.add_changes();
    c->set_action(api::AssignmentChange::REMOVE);
    c->mutable_assignment()->mutable_task()->set_id(id);
    log_.push_back({event, false});
  }
  // A secret or config assignment (UPDATE) or its removal (REMOVE).
  void SetDependency(const api::Assignment& a, bool remove = false) {
    absl::MutexLock lock(&mu_);
    const std::string key = a.has_secret() ? "s/" + a.secret().id() : "c/" + a.config().id();
    if (remove) {
      deps_.erase(key);
    } else {
      deps_[key] = a;
    }
    api::AssignmentsMessage event;
    api::AssignmentChange* c = event.add_changes();
    c->set_action(remove ? api::AssignmentChange::REMOVE : api::AssignmentChange::UPDATE);
    *c->mutable_assignment() = a;
    log_.push_back({event, false});
  }
  // Sends `message` as it is to the open stream.
  void Inject(const api::AssignmentsMessage& message) {
    absl::MutexLock lock(&mu_);
    log_.push_back({message, true});
  }
  void FailStatusCalls(int n) {
    absl::MutexLock lock(&mu_);
    fail_status_calls_ = n;
  }
  void EndStreams() {
    absl::MutexLock lock(&mu_);
    ++end_generation_;
  }
  void Shutdown() {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }

  int streams() const {
    absl::MutexLock lock(&mu_);
    return streams_;
  }
  int status_calls() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(batch_sizes_.size());
  }
  std::vector<int> batch_sizes() const {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }
  // The states reported for a task, in order, over all sessions.
  std::vector<api::TaskState> history(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = history_.find(id);
    return it == history_.end() ? std::vector<api::TaskState>{} : it->second;
  }
  std::optional<api::TaskStatus> latest(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = latest_.find(id);
    if (it == latest_.end()) return std::nullopt;
    return it->second;
  }
  api::TaskState state(const std::string& id) const {
    auto s = latest(id);
    return s.has_value() ? s->state() : api::TASK_STATE_NEW;
  }
  // The latest state reported for a task within session `session`.
  api::TaskState state_in(const std::string& session, const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto s = by_session_.find(session);
    if (s == by_session_.end()) return api::TASK_STATE_NEW;
    auto it = s->second.find(id);
    return it == s->second.end() ? api::TASK_STATE_NEW : it->second;
  }

  grpc::Status UpdateTaskStatus(grpc::ServerContext*, const api::UpdateTaskStatusRequest* request,
                                api::UpdateTaskStatusResponse*) override {
    absl::MutexLock lock(&mu_);
    if (fail_status_calls_ > 0) {
      --fail_status_calls_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected failure");
    }
    if (request->session_id() != session_) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown session");
    }
    batch_sizes_.push_back(request->updates_size());
    for (const auto& u : request->updates()) {
      history_[u.task_id()].push_back(u.status().state());
      latest_[u.task_id()] = u.status();
      by_session_[request->session_id()][u.task_id()] = u.status().state();
    }
    return grpc::Status::OK;
  }

  grpc::Status Assignments(grpc::ServerContext* context, const api::AssignmentsRequest* request,
                           grpc::ServerWriter<api::AssignmentsMessage>* writer) override {
    api::AssignmentsMessage complete;
    size_t pos;
    uint64_t generation;
    {
      absl::MutexLock lock(&mu_);
      if (request->session_id() != session_) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown session");
      }
      ++streams_;
      generation = end_generation_;
      pos = log_.size();
      complete.set_type(api::AssignmentsMessage::COMPLETE);
      for (const auto& [id, t] : tasks_) {
        *complete.add_changes()->mutable_assignment()->mutable_task() = t;
      }
      for (const auto& [key, a] : deps_) *complete.add_changes()->mutable_assignment() = a;
    }
    uint64_t sequence = 1;
    complete.set_results_in("1");
    if (!writer->Write(complete)) return grpc::Status::CANCELLED;
    for (;;) {
      std::vector<std::pair<api::AssignmentsMessage, bool>> events;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return log_.size() > pos || end_generation_ != generation || shutting_down_;
        };
        mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(20));
        if (shutting_down_ || end_generation_ != generation) return grpc::Status::OK;
        events.assign(log_.begin() + pos, log_.end());
        pos = log_.size();
      }
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
      for (auto& [message, raw] : events) {
        if (!raw) {
          message.set_type(api::AssignmentsMessage::INCREMENTAL);
          message.set_applies_to(std::to_string(sequence));
          message.set_results_in(std::to_string(++sequence));
        }
        if (!writer->Write(message)) return grpc::Status::CANCELLED;
      }
    }
  }

 private:
  mutable absl::Mutex mu_;
  std::string session_ ABSL_GUARDED_BY(mu_) = "s1";
  std::map<std::string, api::Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, api::Assignment> deps_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<api::AssignmentsMessage, bool>> log_ ABSL_GUARDED_BY(mu_);
  int fail_status_calls_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t end_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int> batch_sizes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<api::TaskState>> history_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, api::TaskStatus> latest_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<std::string, api::TaskState>> by_session_ ABSL_GUARDED_BY(mu_);
};

// Forwards to another executor, and lets a test speak for its controllers' status listeners
// (the sim executor has no health checks or pull progress to report).
class ReportingExecutor final : public exec::Executor {
 public:
  explicit ReportingExecutor(exec::Executor* inner) : inner_(inner) {}

  api::EngineDescription Describe() const override { return inner_->Describe(); }
  absl::StatusOr<std::vector<std::string>> ListAdoptable() override {
    return inner_->ListAdoptable();
  }
  absl::StatusOr<std::unique_ptr<exec::Controller>> NewController(const api::Task& task) override {
    absl::StatusOr<std::unique_ptr<exec::Controller>> made = inner_->NewController(task);
    if (!made.ok()) return made.status();
    return std::unique_ptr<exec::Controller>(
        std::make_unique<Reporting>(this, task.id(), std::move(*made)));
  }

  // Calls the listener the worker registered on task `id`'s controller; false without one.
  bool Report(const std::string& id, const exec::ControllerStatus& status) {
    exec::Controller::StatusListener listener;
    {
      absl::MutexLock lock(&mu_);
      auto it = listeners_.find(id);
      if (it == listeners_.end() || !it->second) return false;
      listener = it->second;
    }
    listener(status);
    return true;
  }

 private:
  class Reporting final : public exec::Controller {
   public:
    Reporting(ReportingExecutor* owner, std::string id, std::unique_ptr<exec::Controller> inner)
        : owner_(owner), id_(std::move(id)), inner_(std::move(inner)) {}
    ~Reporting() override { SetStatusListener(nullptr); }
    absl::Status Prepare() override { return inner_->Prepare(); }
    absl::Status Start() override { return inner_->Start(); }
    absl::StatusOr<exec::RuntimeState> Inspect() override { return inner_->Inspect(); }
    void NotifyExit(ExitCallback on_exit) override { inner_->NotifyExit(std::move(on_exit)); }
    absl::Status Shutdown(absl::Duration grace) override { return inner_->Shutdown(grace); }
    absl::Status Terminate() override { return inner_->Terminate(); }
    absl::Status Remove() override { return inner_->Remove(); }
    void SetStatusListener(StatusListener listener) override {
      absl::MutexLock lock(&owner_->mu_);
      owner_->listeners_[id_] = std::move(listener);
    }

   private:
    ReportingExecutor* const owner_;
    const std::string id_;
    std::unique_ptr<exec::Controller> inner_;
  };

  exec::Executor* const inner_;
  absl::Mutex mu_;
  std::map<std::string, exec::Controller::StatusListener> listeners_ ABSL_GUARDED_BY(mu_);
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = api::Dispatcher::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
    state_dir_ =
        absl::StrCat(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp", "/worker-",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    sim_file_ = state_dir_ + "/worker/sim.json";
    Connect("s1");
  }

  void TearDown() override {
    worker_.reset();
    executor_.reset();
    fake_.Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  // What the connection source hands the worker: a session, or none.
  void Connect(const std::string& session) {
    absl::MutexLock lock(&conn_mu_);
    conn_ = DispatcherConnection{session, stub_};
  }
  void Disconnect() {
    absl::MutexLock lock(&conn_mu_);
    conn_ = DispatcherConnection{};
  }

  void StartExecutor() {
    exec::SimExecutorOptions options;
    options.clock = &clock_;
    options.state_file = sim_file_;
    auto e = exec::SimExecutor::Create(options);
    ASSERT_TRUE(e.ok()) << e.status();
    executor_ = std::move(*e);
  }

  void StartWorker(WorkerOptions options = {}, exec::Executor* executor = nullptr) {
    if (executor_ == nullptr) StartExecutor();
    options.state_dir = state_dir_;
    options.executor = executor != nullptr ? executor : executor_.get();
    options.clock = &clock_;
    options.connection = [this] {
      absl::MutexLock lock(&conn_mu_);
      return conn_;
    };
    auto w = Worker::Start(std::move(options));
    ASSERT_TRUE(w.ok()) << w.status();
    worker_ = std::move(*w);
  }

  bool ReachesAt(const std::string& id, api::TaskState state) {
    return Eventually([&] { return fake_.state(id) == state; });
  }

  static bool Increasing(const std::vector<api::TaskState>& states) {
    for (size_t i = 1; i < states.size(); ++i) {
      if (states[i] < states[i - 1]) return false;
    }
    return true;
  }

  ManualClock clock_;
  FakeDispatcher fake_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<api::Dispatcher::Stub> stub_;
  std::string state_dir_;
  std::string sim_file_;
  absl::Mutex conn_mu_;
  DispatcherConnection conn_ ABSL_GUARDED_BY(conn_mu_);
  std::unique_ptr<exec::SimExecutor> executor_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(WorkerTest, RefusesIncompleteOptions) {
  EXPECT_EQ(Worker::Start(WorkerOptions{}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerTest, CompleteSetThenIncrementalChanges) {
  fake_.SetTasks({SimTask("a", "busybox"), SimTask("b", "busybox")});
  StartWorker();
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_RUNNING));
  ASSERT_TRUE(ReachesAt("b", api::TASK_STATE_RUNNING));
  EXPECT_EQ(executor_->running_count(), 2u);
  auto running = fake_.latest("a");
  EXPECT_EQ(running->message(), "started");
  EXPECT_EQ(running->container_status().container_id(), "sim-a");
  EXPECT_GT(running->container_status().pid(), 0);
  EXPECT_EQ(running->timestamp().seconds(), absl::ToUnixSeconds(clock_.Now()));

  // A new task.
  fake_.SetTask(SimTask("c", "busybox"));
  ASSERT_TRUE(ReachesAt("c", api::TASK_STATE_RUNNING));
  // Desired SHUTDOWN stops it; the task stays (finished) until it leaves the set.
  fake_.SetTask(SimTask("a", "busybox", api::TASK_STATE_SHUTDOWN));
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_SHUTDOWN));
  EXPECT_EQ(fake_.latest("a")->container_status().exit_code(), 0);
  EXPECT_THAT(worker_->task_ids(), Contains("a"));
  // Removal: stopped, reported SHUTDOWN, removed from the runtime, forgotten.
  fake_.RemoveTask("b");
  ASSERT_TRUE(ReachesAt("b", api::TASK_STATE_SHUTDOWN));
  ASSERT_TRUE(Eventually([&] {
    auto held = executor_->ListAdoptable();
    return held.ok() && std::count(held->begin(), held->end(), "b") == 0 &&
           worker_->task_status("b") == std::nullopt;
  }));
  EXPECT_EQ(executor_->running_count(), 1u);  // c
  fake_.RemoveTask("a");
  ASSERT_TRUE(Eventually([&] { return worker_->task_ids() == std::vector<std::string>{"c"}; }));
  for (const char* id : {"a", "b", "c"}) EXPECT_TRUE(Increasing(fake_.history(id))) << id;
  EXPECT_EQ(executor_->starts("c"), 1);
}

TEST_F(WorkerTest, HoldsTheAssignedSecretsAndConfigsInMemory) {
  api::Assignment secret;
  secret.mutable_secret()->set_id("sec1");
  secret.mutable_secret()->mutable_spec()->set_data("s3cr3t");
  api::Assignment config;
  config.mutable_config()->set_id("cfg1");
  config.mutable_config()->mutable_spec()->set_data("key=value");
  fake_.SetDependency(secret);  // in the COMPLETE set
  StartWorker();
  ASSERT_TRUE(Eventually([&] { return worker_->secret("sec1").ok(); }));
  EXPECT_EQ(worker_->secret("sec1")->spec().data(), "s3cr3t");
  EXPECT_EQ(worker_->config("cfg1").status().code(), absl::StatusCode::kNotFound);
  fake_.SetDependency(config);  // an INCREMENTAL change
  ASSERT_TRUE(Eventually([&] { return worker_->config("cfg1").ok(); }));
  EXPECT_EQ(worker_->config("cfg1")->spec().data(), "key=value");
  fake_.SetDependency(secret, /*remove=*/true);
  ASSERT_TRUE(Eventually([&] { return !worker_->secret("sec1").ok(); }));
  EXPECT_EQ(worker_->secret("sec1").status().code(), absl::StatusCode::kNotFound);
  // A new stream's COMPLETE set replaces everything held.
  fake_.SetDependency(config, /*remove=*/true);
  fake_.EndStreams();
  ASSERT_TRUE(Eventually([&] { return !worker_->config("cfg1").ok(); }));
  // Nothing of it reached the disk.
  worker_->Stop();
  std::ifstream in(state_dir_ + "/worker/tasks.json");
  const std::string saved((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(saved.find("s3cr3t"), std::string::npos);
}

TEST_F(WorkerTest, ReportsHowLongEachTaskTookToStart) {
  absl::Mutex mu;
  std::vector<absl::Duration> took;
  WorkerOptions options;
  options.on_task_started = [&](absl::Duration d) {
    absl::MutexLock lock(&mu);
    took.push_back(d);
  };
  fake_.SetTasks({SimTask("a", "busybox"), SimTask("b", "busybox")});
  StartWorker(std::move(options));
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_RUNNING));
  ASSERT_TRUE(ReachesAt("b", api::TASK_STATE_RUNNING));
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return took.size() == 2;
  }));
  absl::MutexLock lock(&mu);
  for (absl::Duration d : took) {
    EXPECT_GE(d, absl::ZeroDuration());
    EXPECT_LT(d, absl::Seconds(30));
  }
}

TEST_F(WorkerTest, ReportsTheControllersHealthWhileRunning) {
  StartExecutor();
  ReportingExecutor reporting(executor_.get());
  fake_.SetTasks({SimTask("a", "busybox")});
  StartWorker({}, &reporting);
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_RUNNING));
  EXPECT_EQ(fake_.latest("a")->health(), api::TaskStatus::UNKNOWN);

  ASSERT_TRUE(reporting.Report("a", exec::ControllerStatus{"", api::TaskStatus::STARTING}));
  ASSERT_TRUE(Eventually([&] { return fake_.latest("a")->health() == api::TaskStatus::STARTING; }));
  ASSERT_TRUE(reporting.Report("a", exec::ControllerStatus{"", api::TaskStatus::HEALTHY}));
  ASSERT_TRUE(Eventually([&] { return fake_.latest("a")->health() == api::TaskStatus::HEALTHY; }));
  auto latest = fake_.latest("a");
  EXPECT_EQ(latest->state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(latest->message(), "started");
  worker_.reset();  // before `reporting`, which its controllers point to
}

TEST_F(WorkerTest, StopsAtTheDesiredState) {
  fake_.SetTask(SimTask("r", "busybox", api::TASK_STATE_READY));
  StartWorker();
  ASSERT_TRUE(ReachesAt("r", api::TASK_STATE_READY));
  EXPECT_EQ(fake_.latest("r")->message(), "prepared");
  EXPECT_EQ(executor_->starts("r"), 0);
  fake_.SetTask(SimTask("r", "busybox", api::TASK_STATE_RUNNING));
  ASSERT_TRUE(ReachesAt("r", api::TASK_STATE_RUNNING));
  EXPECT_EQ(executor_->starts("r"), 1);
}

TEST_F(WorkerTest, ExitCodesDecideCompleteOrFailed) {
  fake_.SetTasks({SimTask("ok", "sim/exit:0"), SimTask("bad", "sim/exit:3"),
                  SimTask("job", "sim/exit:0", api::TASK_STATE_COMPLETE),
                  SimTask("crash", "sim/crash-after:2s"), SimTask("invalid", "sim/exit:x")});
  StartWorker();
  ASSERT_TRUE(ReachesAt("ok", api::TASK_STATE_COMPLETE));
  EXPECT_EQ(fake_.latest("ok")->err(), "");
  ASSERT_TRUE(ReachesAt("bad", api::TASK_STATE_FAILED));
  EXPECT_EQ(fake_.latest("bad")->err(), "task: non-zero exit (3)");
  EXPECT_EQ(fake_.latest("bad")->container_status().exit_code(), 3);
  ASSERT_TRUE(ReachesAt("job", api::TASK_STATE_COMPLETE));
  ASSERT_TRUE(ReachesAt("invalid", api::TASK_STATE_REJECTED));
  EXPECT_THAT(fake_.latest("invalid")->err(), ::testing::HasSubstr("sim/exit:x"));

  ASSERT_TRUE(ReachesAt("crash", api::TASK_STATE_RUNNING));
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(ReachesAt("crash", api::TASK_STATE_FAILED));
  EXPECT_EQ(fake_.latest("crash")->err(), "task: non-zero exit (1)");
  // Finished tasks are never started again.
  for (const char* id : {"ok", "bad", "job", "crash"}) EXPECT_EQ(executor_->starts(id), 1) << id;
}

TEST_F(WorkerTest, StatusesAreCoalescedAndBatched) {
  std::vector<api::Task> tasks;
  for (int i = 0; i < 60; ++i) tasks.push_back(SimTask(absl::StrCat("t", i), "busybox"));
  fake_.SetTasks(tasks);
  WorkerOptions options;
  options.max_batch = 25;
  options.batch_window = absl::Milliseconds(200);
  StartWorker(options);
  for (const api::Task& t : tasks) ASSERT_TRUE(ReachesAt(t.id(), api::TASK_STATE_RUNNING));
  for (int size : fake_.batch_sizes()) EXPECT_LE(size, 25);
  EXPECT_GE(fake_.status_calls(), 3);  // 60 tasks need at least three calls of 25.
  // Five steps per task, but only the latest state of each task goes out per batch.
  const WorkerStats stats = worker_->stats();
  EXPECT_LT(stats.statuses_sent, 60 * 5);
  EXPECT_LE(stats.largest_batch, 25);
  for (const api::Task& t : tasks) EXPECT_TRUE(Increasing(fake_.history(t.id())));
}

TEST_F(WorkerTest, FailedReportsAreRetried) {
  fake_.FailStatusCalls(3);
  fake_.SetTask(SimTask("a", "busybox"));
  WorkerOptions options;
  options.min_backoff = absl::Milliseconds(10);
  StartWorker(options);
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_RUNNING));
  EXPECT_GE(worker_->stats().status_failures, 3);
  EXPECT_TRUE(Eventually([&] { return worker_->pending_statuses() == 0; }));
}

TEST_F(WorkerTest, ANewSessionGetsTheLatestStatusesAgain) {
  fake_.SetTasks({SimTask("a", "busybox"), SimTask("b", "sim/exit:2")});
  StartWorker();
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_RUNNING));
  ASSERT_TRUE(ReachesAt("b", api::TASK_STATE_FAILED));
  const int streams = fake_.streams();

  // The session moves (e.g. to a new leader): a new ID; the old stream is dropped.
  fake_.set_session("s2");
  Connect("s2");
  worker_->Kick();
  EXPECT_TRUE(Eventually([&] {
    return fake_.state_in("s2", "a") == api::TASK_STATE_RUNNING &&
           fake_.state_in("s2", "b") == api::TASK_STATE_FAILED;
  }));
  EXPECT_TRUE(Eventually([&] { return fake_.streams() > streams; }));
  EXPECT_GE(worker_->stats().sessions, 2);
  // Nothing was started again.
  EXPECT_EQ(executor_->starts("a"), 1);
  EXPECT_EQ(executor_->starts("b"), 1);
}

TEST_F(WorkerTest, WaitsForASessionAndReconnectsTheStream) {
  Disconnect();
  fake_.SetTask(SimTask("a", "busybox"));
  StartWorker();
  EXPECT_EQ(fake_.streams(), 0);
  EXPECT_THAT(worker_->task_ids(), IsEmpty());
  Connect("s1");
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_RUNNING));
  // The stream ends (the dispatcher stopped): the worker reopens it and keeps up.
  fake_.EndStreams();
  ASSERT_TRUE(Eventually([&] { return fake_.streams() >= 2; }));
  fake_.SetTask(SimTask("b", "busybox"));
  ASSERT_TRUE(ReachesAt("b", api::TASK_STATE_RUNNING));
}

TEST_F(WorkerTest, MismatchedChangesReopenTheStream) {
  fake_.SetTask(SimTask("a", "busybox"));
  StartWorker();
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_RUNNING));
  api::AssignmentsMessage bogus;
  bogus.set_type(api::AssignmentsMessage::INCREMENTAL);
  bogus.set_applies_to("999");
  bogus.set_results_in("1000");
  auto* change = bogus.add_changes();
  *change->mutable_assignment()->mutable_task() = SimTask("ghost", "busybox");
  fake_.Inject(bogus);
  ASSERT_TRUE(Eventually([&] { return fake_.streams() >= 2; }));
  // The new stream's COMPLETE set holds only "a"; "ghost" was never applied.
  fake_.SetTask(SimTask("c", "busybox"));
  ASSERT_TRUE(ReachesAt("c", api::TASK_STATE_RUNNING));
  EXPECT_EQ(worker_->task_status("ghost"), std::nullopt);
  EXPECT_EQ(executor_->starts("ghost"), 0);
  EXPECT_EQ(executor_->starts("a"), 1);
}

TEST_F(WorkerTest, RestartAdoptsWhatStillRunsAndReportsWhatChanged) {
  fake_.SetTasks({SimTask("keep", "busybox"), SimTask("crash", "sim/crash-after:10s"),
                  SimTask("drop", "busybox"), SimTask("done", "sim/exit:0")});
  StartWorker();
  for (const char* id : {"keep", "crash", "drop"})
    ASSERT_TRUE(ReachesAt(id, api::TASK_STATE_RUNNING));
  ASSERT_TRUE(ReachesAt("done", api::TASK_STATE_COMPLETE));
  // The agent stops (SIGTERM): tasks keep running; records are written.
  worker_.reset();
  executor_.reset();
  ASSERT_TRUE(FileExists(state_dir_ + "/worker/tasks.json"));
  auto records = LoadWorkerState(state_dir_ + "/worker/tasks.json");
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(records->size(), 4u);

  // While it is down, "crash" crashes and the managers unassign "drop".
  clock_.Advance(absl::Seconds(20));
  fake_.RemoveTask("drop");
  fake_.set_session("s2");
  Disconnect();

  StartExecutor();
  StartWorker();
  // Before any session: the tasks are back from the records, adopted, not started again.
  EXPECT_THAT(worker_->task_ids(), ElementsAre("crash", "done", "drop", "keep"));
  ASSERT_TRUE(Eventually([&] {
    auto s = worker_->task_status("crash");
    return s.has_value() && s->state() == api::TASK_STATE_FAILED;
  }));
  EXPECT_EQ(worker_->task_status("keep")->state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(executor_->starts("keep"), 1);

  // The new session: statuses are resent, and the COMPLETE set drops "drop".
  Connect("s2");
  EXPECT_TRUE(Eventually([&] {
    return fake_.state_in("s2", "keep") == api::TASK_STATE_RUNNING &&
           fake_.state_in("s2", "crash") == api::TASK_STATE_FAILED &&
           fake_.state_in("s2", "done") == api::TASK_STATE_COMPLETE &&
           fake_.state_in("s2", "drop") == api::TASK_STATE_SHUTDOWN;
  }));
  EXPECT_EQ(fake_.latest("crash")->err(), "task: non-zero exit (1)");
  ASSERT_TRUE(Eventually([&] { return worker_->task_status("drop") == std::nullopt; }));
  EXPECT_THAT(*executor_->ListAdoptable(), Not(Contains("drop")));
  EXPECT_EQ(executor_->starts("keep"), 1);
  EXPECT_EQ(executor_->running_count(), 1u);
}

TEST_F(WorkerTest, LeftoversTheSetDoesNotKnowAreRemoved) {
  // The runtime holds a task from an earlier life whose records are gone.
  StartExecutor();
  {
    auto c = executor_->NewController(SimTask("leftover", "busybox"));
    ASSERT_TRUE((*c)->Prepare().ok());
    ASSERT_TRUE((*c)->Start().ok());
  }
  fake_.SetTask(SimTask("a", "busybox"));
  StartWorker();
  ASSERT_TRUE(ReachesAt("a", api::TASK_STATE_RUNNING));
  ASSERT_TRUE(Eventually([&] {
    auto held = executor_->ListAdoptable();
    return held.ok() && *held == std::vector<std::string>{"a"};
  }));
  EXPECT_EQ(worker_->task_ids(), std::vector<std::string>{"a"});
}

TEST_F(WorkerTest, AThousandTasksOnOneWorker) {
  constexpr int kTasks = 1000;
  std::vector<api::Task> tasks;
  for (int i = 0; i < kTasks; ++i) tasks.push_back(SimTask(absl::StrCat("task-", i), "busybox"));
  fake_.SetTasks(tasks);
  const absl::Time start = absl::Now();
  StartWorker();
  ASSERT_TRUE(Eventually([&] {
    for (const api::Task& t : tasks) {
      if (fake_.state(t.id()) != api::TASK_STATE_RUNNING) return false;
    }
    return true;
  }));
  const absl::Duration to_running = absl::Now() - start;
  EXPECT_EQ(executor_->running_count(), static_cast<size_t>(kTasks));
  const WorkerStats stats = worker_->stats();
  EXPECT_LE(stats.largest_batch, 200);
  EXPECT_LT(stats.status_calls, kTasks);  // Batched, not one call per change.

  // All of them stop at once.
  std::vector<api::Task> stopping = tasks;
  for (api::Task& t : stopping) t.set_desired_state(api::TASK_STATE_SHUTDOWN);
  const absl::Time stop_start = absl::Now();
  fake_.SetTasks(stopping);
  ASSERT_TRUE(Eventually([&] {
    for (const api::Task& t : tasks) {
      if (fake_.state(t.id()) != api::TASK_STATE_SHUTDOWN) return false;
    }
    return true;
  }));
  EXPECT_EQ(executor_->running_count(), 0u);
  std::printf("1000 tasks: RUNNING after %s, SHUTDOWN after %s, %lld status calls\n",
              absl::FormatDuration(to_running).c_str(),
              absl::FormatDuration(absl::Now() - stop_start).c_str(),
              static_cast<long long>(worker_->stats().status_calls));
  EXPECT_LT(to_running, absl::Seconds(10));
}

}  // namespace
}  // namespace shoal::agent
