// SimAgent against in-process fake dispatchers (plaintext, 127.0.0.1): two managers share one
// fake cluster state, and the test decides which one leads.
#include "bench/swarm_sim/sim_agent.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::bench {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

template <typename Condition>
bool WaitFor(Condition condition, absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// What the fake managers share: the node's tasks (and their change log), sessions, and what the
// agent reported.
struct FakeCluster {
  absl::Mutex mu;
  absl::CondVar changed;
  bool shutdown ABSL_GUARDED_BY(mu) = false;
  std::vector<std::string> managers ABSL_GUARDED_BY(mu);
  std::string leader ABSL_GUARDED_BY(mu);  // Address of the leading fake; "" = none known.
  std::set<std::string> live_sessions ABSL_GUARDED_BY(mu);
  int next_session ABSL_GUARDED_BY(mu) = 0;
  // (manager address, request) of every Session call.
  std::vector<std::pair<std::string, api::SessionRequest>> session_requests ABSL_GUARDED_BY(mu);
  std::map<std::string, int> sessions_opened ABSL_GUARDED_BY(mu);  // By manager address.
  absl::Duration heartbeat_period ABSL_GUARDED_BY(mu) = absl::Seconds(5);
  int heartbeats ABSL_GUARDED_BY(mu) = 0;
  bool expire_next_heartbeat ABSL_GUARDED_BY(mu) = false;
  std::map<std::string, api::Task> tasks ABSL_GUARDED_BY(mu);
  std::vector<api::AssignmentChange> log ABSL_GUARDED_BY(mu);
  std::map<std::string, int> assignment_streams ABSL_GUARDED_BY(mu);  // By manager address.
  bool inject_mismatch ABSL_GUARDED_BY(mu) = false;
  int fail_reports ABSL_GUARDED_BY(mu) = 0;  // The next N UpdateTaskStatus calls fail.
  std::vector<int> report_sizes ABSL_GUARDED_BY(mu);
  std::map<std::string, api::TaskStatus> statuses ABSL_GUARDED_BY(mu);  // Latest reported.
  std::map<std::string, std::map<std::string, api::TaskStatus>> statuses_by_manager
      ABSL_GUARDED_BY(mu);

  void Changed() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { changed.SignalAll(); }

  void SetTask(const api::Task& task) {
    absl::MutexLock l(&mu);
    tasks[task.id()] = task;
    api::AssignmentChange c;
    c.set_action(api::AssignmentChange::UPDATE);
    *c.mutable_assignment()->mutable_task() = task;
    log.push_back(c);
    Changed();
  }
  void RemoveTask(const std::string& id) {
    absl::MutexLock l(&mu);
    tasks.erase(id);
    api::AssignmentChange c;
    c.set_action(api::AssignmentChange::REMOVE);
    c.mutable_assignment()->mutable_task()->set_id(id);
    log.push_back(c);
    Changed();
  }
  void SetLeader(const std::string& addr) {
    absl::MutexLock l(&mu);
    leader = addr;
    Changed();
  }
  std::optional<api::TaskStatus> Status(const std::string& id) {
    absl::MutexLock l(&mu);
    auto it = statuses.find(id);
    if (it == statuses.end()) return std::nullopt;
    return it->second;
  }
  api::TaskState State(const std::string& id) {
    std::optional<api::TaskStatus> s = Status(id);
    return s.has_value() ? s->state() : api::TASK_STATE_NEW;
  }
};

api::Task MakeTask(const std::string& id, const std::string& image,
                   api::TaskState desired = api::TASK_STATE_RUNNING) {
  api::Task t;
  t.set_id(id);
  t.set_node_id("node-1");
  t.set_desired_state(desired);
  t.mutable_spec()->mutable_container_spec()->set_image(image);
  t.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
  return t;
}

class FakeDispatcher final : public api::Dispatcher::Service {
 public:
  explicit FakeDispatcher(FakeCluster* c) : c_(c) {
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
    addr_ = absl::StrCat("127.0.0.1:", port);
  }
  ~FakeDispatcher() override {
    {
      absl::MutexLock l(&c_->mu);
      c_->shutdown = true;
      c_->Changed();
    }
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  }
  const std::string& addr() const { return addr_; }

  grpc::Status Session(grpc::ServerContext* ctx, const api::SessionRequest* request,
                       grpc::ServerWriter<api::SessionMessage>* writer) override {
    api::SessionMessage m;
    {
      absl::MutexLock l(&c_->mu);
      c_->session_requests.emplace_back(addr_, *request);
      if (c_->leader != addr_) return NotLeaderLocked();
      const std::string id = absl::StrCat("session-", ++c_->next_session);
      c_->live_sessions.insert(id);
      ++c_->sessions_opened[addr_];
      m.set_session_id(id);
      for (const std::string& a : c_->managers) m.add_managers()->mutable_peer()->set_addr(a);
    }
    if (!writer->Write(m)) return grpc::Status(grpc::StatusCode::CANCELLED, "gone");
    absl::MutexLock l(&c_->mu);
    for (;;) {
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      if (c_->shutdown) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
      if (c_->leader != addr_) return NotLeaderLocked();
      if (c_->live_sessions.count(m.session_id()) == 0) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "session expired");
      }
      c_->changed.WaitWithTimeout(&c_->mu, absl::Milliseconds(10));
    }
  }

  grpc::Status Heartbeat(grpc::ServerContext*, const api::HeartbeatRequest* request,
                         api::HeartbeatResponse* response) override {
    absl::MutexLock l(&c_->mu);
    if (c_->leader != addr_) return NotLeaderLocked();
    ++c_->heartbeats;
    if (c_->expire_next_heartbeat) {
      c_->expire_next_heartbeat = false;
      c_->live_sessions.erase(request->session_id());
      c_->Changed();
    }
    if (c_->live_sessions.count(request->session_id()) == 0) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown session; open a new session");
    }
    const int64_t ns = absl::ToInt64Nanoseconds(c_->heartbeat_period);
    response->mutable_period()->set_seconds(ns / 1000000000);
    response->mutable_period()->set_nanos(static_cast<int32_t>(ns % 1000000000));
    return grpc::Status::OK;
  }

  grpc::Status UpdateTaskStatus(grpc::ServerContext*, const api::UpdateTaskStatusRequest* request,
                                api::UpdateTaskStatusResponse*) override {
    absl::MutexLock l(&c_->mu);
    if (c_->fail_reports > 0) {
      --c_->fail_reports;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected failure");
    }
    if (c_->leader != addr_) return NotLeaderLocked();
    c_->report_sizes.push_back(request->updates_size());
    for (const auto& u : request->updates()) {
      c_->statuses[u.task_id()] = u.status();
      c_->statuses_by_manager[addr_][u.task_id()] = u.status();
    }
    return grpc::Status::OK;
  }

  grpc::Status Assignments(grpc::ServerContext* ctx, const api::AssignmentsRequest* request,
                           grpc::ServerWriter<api::AssignmentsMessage>* writer) override {
    api::AssignmentsMessage m;
    size_t cursor = 0;
    {
      absl::MutexLock l(&c_->mu);
      if (c_->leader != addr_) return NotLeaderLocked();
      if (c_->live_sessions.count(request->session_id()) == 0) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown session");
      }
      ++c_->assignment_streams[addr_];
      m.set_type(api::AssignmentsMessage::COMPLETE);
      for (const auto& [id, task] : c_->tasks) {
        api::AssignmentChange* c = m.add_changes();
        *c->mutable_assignment()->mutable_task() = task;
      }
      cursor = c_->log.size();
      m.set_results_in(absl::StrCat(cursor));
    }
    for (;;) {
      if (!writer->Write(m)) return grpc::Status(grpc::StatusCode::CANCELLED, "gone");
      m.Clear();
      absl::MutexLock l(&c_->mu);
      for (;;) {
        if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
        if (c_->shutdown) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
        if (c_->leader != addr_) return NotLeaderLocked();
        if (c_->inject_mismatch) {
          c_->inject_mismatch = false;
          m.set_type(api::AssignmentsMessage::INCREMENTAL);
          m.set_applies_to("a set this agent never had");
          m.set_results_in("bogus");
          break;
        }
        if (c_->log.size() > cursor) {
          m.set_type(api::AssignmentsMessage::INCREMENTAL);
          m.set_applies_to(absl::StrCat(cursor));
          for (; cursor < c_->log.size(); ++cursor) *m.add_changes() = c_->log[cursor];
          m.set_results_in(absl::StrCat(cursor));
          break;
        }
        c_->changed.WaitWithTimeout(&c_->mu, absl::Milliseconds(10));
      }
    }
  }

 private:
  grpc::Status NotLeaderLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(c_->mu) {
    if (c_->leader.empty()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "this manager is not the leader, and no leader is known right now");
    }
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("this manager is not the leader; the leader is at ", c_->leader));
  }

  FakeCluster* const c_;
  std::unique_ptr<grpc::Server> server_;
  std::string addr_;
};

class SimAgentTest : public ::testing::Test {
 protected:
  SimAgentTest() : a_(&cluster_), b_(&cluster_) {
    absl::MutexLock l(&cluster_.mu);
    cluster_.managers = {a_.addr(), b_.addr()};
    cluster_.leader = a_.addr();
  }
  ~SimAgentTest() override { EXPECT_TRUE(fleet_.Stop(absl::Seconds(10))); }

  // An agent that first tries manager B (not the leader).
  SimAgent* Start(Clock* clock = &RealClock()) {
    SimAgentOptions o;
    o.managers = {b_.addr()};
    o.credentials = [] { return grpc::InsecureChannelCredentials(); };
    o.description.set_hostname("sim-node-1");
    o.clock = clock;
    o.min_backoff = absl::Milliseconds(20);
    o.max_backoff = absl::Milliseconds(200);
    return fleet_.Add(std::move(o));
  }

  FakeCluster cluster_;
  FakeDispatcher a_;
  FakeDispatcher b_;
  SimFleet fleet_{absl::Milliseconds(5)};
};

TEST_F(SimAgentTest, FollowsTheLeaderRedirectAndRunsTasksAsTheWorkerWould) {
  cluster_.SetTask(MakeTask("app", "sim/app"));
  cluster_.SetTask(MakeTask("exit0", "sim/exit:0"));
  cluster_.SetTask(MakeTask("exit3", "registry.example/sim/exit:3"));
  cluster_.SetTask(MakeTask("bad", "sim/exit:x"));
  cluster_.SetTask(MakeTask("ready", "sim/app", api::TASK_STATE_READY));
  SimAgent* agent = Start();

  ASSERT_TRUE(WaitFor([&] { return agent->connected(); }));
  EXPECT_EQ(agent->current_manager(), a_.addr());
  EXPECT_EQ(agent->managers(), (std::vector<std::string>{a_.addr(), b_.addr()}));
  {
    absl::MutexLock l(&cluster_.mu);
    ASSERT_GE(cluster_.session_requests.size(), 2u);
    EXPECT_EQ(cluster_.session_requests[0].first, b_.addr());  // Refused: not the leader.
    EXPECT_EQ(cluster_.session_requests[1].first, a_.addr());
    EXPECT_EQ(cluster_.session_requests[1].second.description().hostname(), "sim-node-1");
    EXPECT_EQ(cluster_.session_requests[1].second.session_id(), "");
  }

  ASSERT_TRUE(WaitFor([&] {
    return cluster_.State("app") == api::TASK_STATE_RUNNING &&
           cluster_.State("exit0") == api::TASK_STATE_COMPLETE &&
           cluster_.State("exit3") == api::TASK_STATE_FAILED &&
           cluster_.State("bad") == api::TASK_STATE_REJECTED &&
           cluster_.State("ready") == api::TASK_STATE_READY;
  }));
  EXPECT_EQ(cluster_.Status("app")->container_status().container_id(), "sim-app");
  EXPECT_GT(cluster_.Status("app")->container_status().pid(), 0);
  EXPECT_EQ(cluster_.Status("exit0")->container_status().exit_code(), 0);
  EXPECT_EQ(cluster_.Status("exit3")->err(), "task: non-zero exit (3)");
  EXPECT_EQ(cluster_.Status("exit3")->container_status().exit_code(), 3);
  EXPECT_NE(cluster_.Status("bad")->err().find("exit code must be a number"), std::string::npos);
  // The five tasks arrived in one COMPLETE message and were reported in one batch.
  {
    absl::MutexLock l(&cluster_.mu);
    ASSERT_FALSE(cluster_.report_sizes.empty());
    EXPECT_EQ(cluster_.report_sizes[0], 5);
  }
  ASSERT_TRUE(WaitFor([&] { return agent->stats().status_calls >= 1; }));  // The answer came.
  const SimAgentStats s = agent->stats();
  EXPECT_EQ(s.sessions_opened, 1);
  EXPECT_EQ(s.stream_failures, 1);  // B's refusal.
  EXPECT_EQ(s.largest_batch, 5);
  EXPECT_EQ(s.running, 1);
  EXPECT_GE(s.heartbeats, 1);
}

TEST_F(SimAgentTest, StopsAndForgetsTasksAsTheirDesiredStateAndAssignmentChange) {
  cluster_.SetTask(MakeTask("app", "sim/app"));
  cluster_.SetTask(MakeTask("other", "sim/app"));
  SimAgent* agent = Start();
  ASSERT_TRUE(WaitFor([&] {
    return cluster_.State("app") == api::TASK_STATE_RUNNING &&
           cluster_.State("other") == api::TASK_STATE_RUNNING;
  }));

  // Desired SHUTDOWN: stopped and reported SHUTDOWN, but kept while assigned.
  cluster_.SetTask(MakeTask("app", "sim/app", api::TASK_STATE_SHUTDOWN));
  ASSERT_TRUE(WaitFor([&] { return cluster_.State("app") == api::TASK_STATE_SHUTDOWN; }));
  EXPECT_TRUE(agent->task_status("app").has_value());
  // Removed from the set: forgotten.
  cluster_.RemoveTask("app");
  ASSERT_TRUE(WaitFor([&] { return !agent->task_status("app").has_value(); }));

  // Desired REMOVE of a running task: stopped (SHUTDOWN) and forgotten.
  cluster_.SetTask(MakeTask("other", "sim/app", api::TASK_STATE_REMOVE));
  ASSERT_TRUE(WaitFor([&] { return cluster_.State("other") == api::TASK_STATE_SHUTDOWN; }));
  ASSERT_TRUE(WaitFor([&] { return !agent->task_status("other").has_value(); }));
  EXPECT_EQ(agent->stats().tasks, 0);
}

TEST_F(SimAgentTest, CrashAfterExitsOnTheInjectedClock) {
  ManualClock clock;
  cluster_.SetTask(MakeTask("crash", "sim/crash-after:1h"));
  SimAgent* agent = Start(&clock);
  ASSERT_TRUE(WaitFor([&] { return cluster_.State("crash") == api::TASK_STATE_RUNNING; }));
  clock.Advance(absl::Minutes(59));
  EXPECT_EQ(agent->task_status("crash")->state(), api::TASK_STATE_RUNNING);
  clock.Advance(absl::Minutes(1));
  ASSERT_TRUE(WaitFor([&] { return cluster_.State("crash") == api::TASK_STATE_FAILED; }));
  EXPECT_EQ(cluster_.Status("crash")->err(), "task: non-zero exit (1)");
  EXPECT_EQ(cluster_.Status("crash")->timestamp().seconds(), absl::ToUnixSeconds(clock.Now()));
}

TEST_F(SimAgentTest, FollowsALeaderChangeAndResendsItsStatuses) {
  cluster_.SetTask(MakeTask("app", "sim/app"));
  SimAgent* agent = Start();
  ASSERT_TRUE(WaitFor([&] { return cluster_.State("app") == api::TASK_STATE_RUNNING; }));
  const std::string old_session = agent->session_id();

  // A stops leading: its streams end with UNAVAILABLE naming B.
  const absl::Time changed = absl::Now();
  cluster_.SetLeader(b_.addr());
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock l(&cluster_.mu);
    return cluster_.sessions_opened[b_.addr()] == 1 &&
           cluster_.assignment_streams[b_.addr()] == 1 &&
           cluster_.statuses_by_manager[b_.addr()].count("app") == 1;
  }));
  EXPECT_LT(absl::Now() - changed, absl::Seconds(2));
  EXPECT_EQ(agent->current_manager(), b_.addr());
  {
    absl::MutexLock l(&cluster_.mu);
    // The reconnect resumed the session ID it had.
    EXPECT_EQ(cluster_.session_requests.back().first, b_.addr());
    EXPECT_EQ(cluster_.session_requests.back().second.session_id(), old_session);
    EXPECT_EQ(cluster_.statuses_by_manager[b_.addr()]["app"].state(), api::TASK_STATE_RUNNING);
  }
  // Still the same task, never started twice.
  EXPECT_EQ(agent->task_status("app")->state(), api::TASK_STATE_RUNNING);
}

TEST_F(SimAgentTest, HeartbeatsAndOpensANewSessionWhenItsSessionExpires) {
  {
    absl::MutexLock l(&cluster_.mu);
    cluster_.heartbeat_period = absl::Milliseconds(40);
  }
  SimAgent* agent = Start();
  ASSERT_TRUE(WaitFor([&] { return agent->stats().heartbeats >= 5; }));
  const std::string first = agent->session_id();
  {
    absl::MutexLock l(&cluster_.mu);
    cluster_.expire_next_heartbeat = true;
  }
  ASSERT_TRUE(WaitFor([&] { return agent->connected() && agent->session_id() != first; }));
  absl::MutexLock l(&cluster_.mu);
  // After NOT_FOUND: a new session (no ID) on the same manager.
  EXPECT_EQ(cluster_.session_requests.back().first, a_.addr());
  EXPECT_EQ(cluster_.session_requests.back().second.session_id(), "");
}

TEST_F(SimAgentTest, ReopensTheAssignmentsStreamOnASequenceMismatch) {
  cluster_.SetTask(MakeTask("app", "sim/app"));
  SimAgent* agent = Start();
  ASSERT_TRUE(WaitFor([&] { return cluster_.State("app") == api::TASK_STATE_RUNNING; }));
  {
    absl::MutexLock l(&cluster_.mu);
    cluster_.inject_mismatch = true;
    cluster_.Changed();
  }
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock l(&cluster_.mu);
    return cluster_.assignment_streams[a_.addr()] == 2;
  }));
  // The new stream's COMPLETE set still holds the task: it keeps running.
  cluster_.SetTask(MakeTask("more", "sim/app"));
  ASSERT_TRUE(WaitFor([&] { return cluster_.State("more") == api::TASK_STATE_RUNNING; }));
  EXPECT_EQ(agent->task_status("app")->state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(agent->stats().assignment_streams, 2);
}

TEST_F(SimAgentTest, RetriesFailedStatusReports) {
  {
    absl::MutexLock l(&cluster_.mu);
    cluster_.fail_reports = 2;
  }
  cluster_.SetTask(MakeTask("app", "sim/app"));
  SimAgent* agent = Start();
  ASSERT_TRUE(WaitFor([&] { return agent->stats().status_calls >= 1; }));
  EXPECT_EQ(cluster_.State("app"), api::TASK_STATE_RUNNING);
  EXPECT_EQ(agent->stats().status_failures, 2);
  EXPECT_EQ(agent->pending_statuses(), 0u);
}

TEST_F(SimAgentTest, BacksOffWhileNoManagerAnswers) {
  cluster_.SetLeader("");  // An election: nobody leads, every manager says so.
  SimAgent* agent = Start();
  ASSERT_TRUE(WaitFor([&] { return agent->stats().stream_failures >= 6; }));
  EXPECT_FALSE(agent->connected());
  cluster_.SetLeader(a_.addr());
  ASSERT_TRUE(WaitFor([&] { return agent->connected(); }));
  EXPECT_EQ(agent->current_manager(), a_.addr());
}

}  // namespace
}  // namespace shoal::bench
