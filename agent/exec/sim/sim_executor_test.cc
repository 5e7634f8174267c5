// The sim executor's semantics, on a ManualClock: image parsing, exit codes, crash-after timing,
// stop and removal, exit callbacks, and records that survive a restart.
#include "agent/exec/sim/sim_executor.h"

#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::agent::exec {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using Phase = RuntimeState::Phase;

constexpr absl::Duration kWait = absl::Seconds(10);

bool Eventually(const std::function<bool()>& cond) {
  const absl::Time deadline = absl::Now() + kWait;
  while (!cond()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

api::Task SimTask(const std::string& id, const std::string& image) {
  api::Task task;
  task.set_id(id);
  task.mutable_spec()->mutable_container_spec()->set_image(image);
  return task;
}

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// Records the exits a controller reports.
struct ExitLog {
  absl::Mutex mu;
  std::vector<ExitStatus> exits;

  Controller::ExitCallback Callback() {
    return [this](const ExitStatus& e) {
      absl::MutexLock lock(&mu);
      exits.push_back(e);
    };
  }
  size_t size() {
    absl::MutexLock lock(&mu);
    return exits.size();
  }
  ExitStatus at(size_t i) {
    absl::MutexLock lock(&mu);
    return exits.at(i);
  }
};

class SimExecutorTest : public ::testing::Test {
 protected:
  std::unique_ptr<SimExecutor> NewExecutor(const std::string& state_file = "") {
    SimExecutorOptions options;
    options.clock = &clock_;
    options.state_file = state_file;
    absl::StatusOr<std::unique_ptr<SimExecutor>> e = SimExecutor::Create(options);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }

  std::unique_ptr<Controller> Started(SimExecutor& executor, const std::string& id,
                                      const std::string& image) {
    absl::StatusOr<std::unique_ptr<Controller>> c = executor.NewController(SimTask(id, image));
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) return nullptr;
    EXPECT_TRUE((*c)->Prepare().ok());
    EXPECT_TRUE((*c)->Start().ok());
    return std::move(*c);
  }

  ManualClock clock_;
};

TEST(ParseSimImageTest, Forms) {
  auto forever = ParseSimImage("nginx:latest");
  ASSERT_TRUE(forever.ok());
  EXPECT_EQ(forever->kind, SimBehavior::Kind::kRunForever);
  EXPECT_EQ(ParseSimImage("sim/other:1")->kind, SimBehavior::Kind::kRunForever);
  EXPECT_EQ(ParseSimImage("sim/exit")->kind, SimBehavior::Kind::kRunForever);

  auto exit3 = ParseSimImage("sim/exit:3");
  ASSERT_TRUE(exit3.ok());
  EXPECT_EQ(exit3->kind, SimBehavior::Kind::kExit);
  EXPECT_EQ(exit3->exit_code, 3);
  EXPECT_EQ(ParseSimImage("docker.io/sim/exit:0@sha256:abcd")->exit_code, 0);
  EXPECT_EQ(ParseSimImage("sim/exit:255@sha256:abcd")->exit_code, 255);

  auto crash = ParseSimImage("sim/crash-after:1m30s");
  ASSERT_TRUE(crash.ok());
  EXPECT_EQ(crash->kind, SimBehavior::Kind::kCrashAfter);
  EXPECT_EQ(crash->after, absl::Seconds(90));
  EXPECT_NE(crash->exit_code, 0);
  EXPECT_EQ(ParseSimImage("sim/crash-after:500ms")->after, absl::Milliseconds(500));

  for (const char* bad : {"sim/exit:x", "sim/exit:-1", "sim/exit:256", "sim/crash-after:soon",
                          "sim/crash-after:-2s", "sim/crash-after:inf"}) {
    auto b = ParseSimImage(bad);
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(b.status().message()), HasSubstr(bad));
  }
}

TEST_F(SimExecutorTest, DescribesItselfAsSim) {
  auto e = NewExecutor();
  EXPECT_EQ(e->Describe().engine_version(), "sim");
}

TEST_F(SimExecutorTest, MalformedImageIsRefusedByNewController) {
  auto e = NewExecutor();
  auto c = e->NewController(SimTask("t1", "sim/exit:nope"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(e->NewController(SimTask("", "busybox")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SimExecutorTest, ExitImageExitsWithItsCodeRightAfterStarting) {
  auto e = NewExecutor();
  auto c = Started(*e, "t1", "sim/exit:7");
  ASSERT_NE(c, nullptr);
  auto state = c->Inspect();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->phase, Phase::kExited);
  EXPECT_EQ(state->exit.exit_code, 7);
  EXPECT_FALSE(state->exit.stopped);
  ExitLog log;
  c->NotifyExit(log.Callback());  // Already exited: called at once.
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log.at(0).exit_code, 7);
  // Never started twice.
  EXPECT_EQ(c->Start().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e->starts("t1"), 1);
}

TEST_F(SimExecutorTest, PlainImageRunsUntilShutdown) {
  auto e = NewExecutor();
  auto c = Started(*e, "t1", "busybox:latest");
  ASSERT_NE(c, nullptr);
  ExitLog log;
  c->NotifyExit(log.Callback());
  clock_.Advance(absl::Hours(100));
  auto state = c->Inspect();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->phase, Phase::kRunning);
  EXPECT_GT(state->pid, 0);
  EXPECT_EQ(state->container_id, "sim-t1");
  EXPECT_EQ(e->running_count(), 1u);
  EXPECT_TRUE(c->Start().ok());  // Idempotent while running.
  EXPECT_EQ(e->starts("t1"), 1);
  EXPECT_EQ(log.size(), 0u);

  ASSERT_TRUE(c->Shutdown(absl::Seconds(10)).ok());
  ASSERT_EQ(log.size(), 1u);  // Delivered before Shutdown returns.
  EXPECT_EQ(log.at(0).exit_code, 0);
  EXPECT_TRUE(log.at(0).stopped);
  EXPECT_EQ(c->Inspect()->phase, Phase::kExited);
  EXPECT_EQ(e->running_count(), 0u);
  EXPECT_TRUE(c->Shutdown(absl::Seconds(10)).ok());  // Idempotent.
  EXPECT_EQ(log.size(), 1u);
}

TEST_F(SimExecutorTest, TerminateKills) {
  auto e = NewExecutor();
  auto c = Started(*e, "t1", "busybox");
  ExitLog log;
  c->NotifyExit(log.Callback());
  ASSERT_TRUE(c->Terminate().ok());
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log.at(0).exit_code, 137);
  EXPECT_TRUE(log.at(0).stopped);
}

TEST_F(SimExecutorTest, CrashAfterFailsOnScheduleOfTheInjectedClock) {
  auto e = NewExecutor();
  auto c = Started(*e, "t1", "sim/crash-after:2s");
  ExitLog log;
  c->NotifyExit(log.Callback());
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_EQ(c->Inspect()->phase, Phase::kRunning);
  EXPECT_EQ(log.size(), 0u);
  clock_.Advance(absl::Milliseconds(1));
  auto state = c->Inspect();  // Settles the due exit and delivers it.
  EXPECT_EQ(state->phase, Phase::kExited);
  EXPECT_EQ(state->exit.exit_code, 1);
  EXPECT_FALSE(state->exit.stopped);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log.at(0).exit_code, 1);
}

TEST_F(SimExecutorTest, TimerThreadDeliversExitsWithoutBeingAsked) {
  auto e = NewExecutor();
  auto c = Started(*e, "t1", "sim/crash-after:500ms");
  ExitLog log;
  c->NotifyExit(log.Callback());
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_TRUE(Eventually([&] { return log.size() == 1; }));
  EXPECT_EQ(log.at(0).exit_code, 1);
}

TEST_F(SimExecutorTest, StartNeedsPrepareAndOperationsAreIdempotent) {
  auto e = NewExecutor();
  auto c = e->NewController(SimTask("t1", "busybox"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Inspect()->phase, Phase::kAbsent);
  EXPECT_EQ((*c)->Start().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE((*c)->Shutdown(absl::Seconds(1)).ok());
  EXPECT_TRUE((*c)->Remove().ok());
  ASSERT_TRUE((*c)->Prepare().ok());
  ASSERT_TRUE((*c)->Prepare().ok());
  EXPECT_EQ((*c)->Inspect()->phase, Phase::kCreated);
  EXPECT_THAT(*e->ListAdoptable(), UnorderedElementsAre("t1"));
  ASSERT_TRUE((*c)->Start().ok());
  ExitLog log;
  (*c)->NotifyExit(log.Callback());
  ASSERT_TRUE((*c)->Remove().ok());  // Kills it first.
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log.at(0).exit_code, 137);
  EXPECT_EQ((*c)->Inspect()->phase, Phase::kAbsent);
  EXPECT_TRUE(e->ListAdoptable()->empty());
  EXPECT_TRUE((*c)->Remove().ok());
}

TEST_F(SimExecutorTest, NoCallbackAfterTheControllerIsGone) {
  auto e = NewExecutor();
  auto c = Started(*e, "t1", "sim/crash-after:1s");
  auto called = std::make_shared<std::atomic<int>>(0);
  c->NotifyExit([called](const ExitStatus&) { ++*called; });
  c.reset();
  clock_.Advance(absl::Seconds(5));
  auto other = e->NewController(SimTask("t1", "sim/crash-after:1s"));
  EXPECT_EQ((*other)->Inspect()->phase, Phase::kExited);  // Settled and delivered.
  EXPECT_EQ(called->load(), 0);
}

TEST_F(SimExecutorTest, WaitReturnsTheExitOrCancels) {
  auto e = NewExecutor();
  auto c = Started(*e, "t1", "busybox");
  Cancellation cancel;
  std::thread canceller([&] { cancel.Cancel(); });
  auto cancelled = c->Wait(cancel);
  canceller.join();
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);

  Cancellation never;
  std::thread stopper([&] { EXPECT_TRUE(c->Terminate().ok()); });
  auto exit = c->Wait(never);
  stopper.join();
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 137);
}

TEST_F(SimExecutorTest, ProcessesOutliveARestartOfTheExecutor) {
  const std::string file = absl::StrCat(TempDir(), "/sim-restart/worker/sim.json");
  {
    auto e = NewExecutor(file);
    auto forever = Started(*e, "forever", "busybox");
    auto crash = Started(*e, "crash", "sim/crash-after:10s");
    auto done = Started(*e, "done", "sim/exit:3");
    auto created = e->NewController(SimTask("created", "busybox"));
    ASSERT_TRUE((*created)->Prepare().ok());
  }
  ASSERT_TRUE(FileExists(file));
  clock_.Advance(absl::Seconds(4));
  auto e = NewExecutor(file);
  EXPECT_THAT(*e->ListAdoptable(), UnorderedElementsAre("forever", "crash", "done", "created"));
  auto forever = e->NewController(SimTask("forever", "busybox"));
  auto crash = e->NewController(SimTask("crash", "sim/crash-after:10s"));
  auto done = e->NewController(SimTask("done", "sim/exit:3"));
  auto created = e->NewController(SimTask("created", "busybox"));
  EXPECT_EQ((*forever)->Inspect()->phase, Phase::kRunning);
  EXPECT_EQ((*crash)->Inspect()->phase, Phase::kRunning);
  EXPECT_EQ((*done)->Inspect()->exit.exit_code, 3);
  EXPECT_EQ((*created)->Inspect()->phase, Phase::kCreated);
  EXPECT_TRUE((*forever)->Start().ok());  // Adopted, not started again.
  EXPECT_EQ(e->starts("forever"), 1);
  EXPECT_EQ(e->running_count(), 2u);

  // Times are absolute: the crash comes 10 s after the original start.
  ExitLog log;
  (*crash)->NotifyExit(log.Callback());
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ((*crash)->Inspect()->phase, Phase::kRunning);
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(Eventually([&] { return log.size() == 1; }));
  EXPECT_EQ(log.at(0).exit_code, 1);
}

TEST_F(SimExecutorTest, UnreadableRecordsAreReported) {
  const std::string file = absl::StrCat(TempDir(), "/sim-corrupt.json");
  ASSERT_TRUE(WriteFileAtomic(file, "{not json", 0600).ok());
  SimExecutorOptions options;
  options.clock = &clock_;
  options.state_file = file;
  auto e = SimExecutor::Create(options);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(e.status().message()), HasSubstr(file));
}

}  // namespace
}  // namespace shoal::agent::exec
