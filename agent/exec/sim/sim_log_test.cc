// The sim executor's per-task logs: what the simulated processes write, the json-file lines on
// disk, rotation, and SimLogSource's tail / since / streams / follow.
#include "agent/exec/sim/sim_log.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/exec/sim/sim_executor.h"
#include "common/clock.h"
#include "gtest/gtest.h"

namespace shoal::agent::exec {
namespace {

std::string FreshDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name, "-", ::getpid());
  std::string cmd = absl::StrCat("rm -rf '", dir, "'");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return dir;
}

api::Task MakeTask(const std::string& id, const std::string& image) {
  api::Task task;
  task.set_id(id);
  task.mutable_spec()->mutable_container_spec()->set_image(image);
  return task;
}

absl::Time TimeOf(const api::LogMessage& m) {
  return absl::FromUnixSeconds(m.timestamp().seconds()) + absl::Nanoseconds(m.timestamp().nanos());
}

std::vector<api::LogMessage> ReadAll(logs::TaskLogSource& source, const std::string& task,
                                     logs::LogReadOptions options = {}) {
  std::vector<api::LogMessage> out;
  Cancellation cancel;
  absl::Status s = source.ReadLogs(
      task, options,
      [&](const api::LogMessage& m) {
        out.push_back(m);
        return true;
      },
      cancel);
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

std::vector<std::string> Data(const std::vector<api::LogMessage>& lines) {
  std::vector<std::string> out;
  for (const api::LogMessage& m : lines) out.push_back(m.data());
  return out;
}

class SimLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("sim-logs");
    SimExecutorOptions options;
    options.clock = &clock_;
    options.log_dir = dir_;
    auto e = SimExecutor::Create(options);
    ASSERT_TRUE(e.ok()) << e.status();
    executor_ = std::move(*e);
    ASSERT_NE(executor_->log_source(), nullptr);
  }

  std::unique_ptr<Controller> Run(const std::string& id, const std::string& image) {
    auto c = executor_->NewController(MakeTask(id, image));
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE((*c)->Prepare().ok());
    EXPECT_TRUE((*c)->Start().ok());
    return std::move(*c);
  }

  ManualClock clock_;
  std::string dir_;
  std::unique_ptr<SimExecutor> executor_;
};

TEST_F(SimLogTest, StartAndStopAreLoggedWithTheClocksTimes) {
  const absl::Time t0 = clock_.Now();
  auto c = Run("t1", "busybox");
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(c->Shutdown(absl::Seconds(1)).ok());

  std::vector<api::LogMessage> lines = ReadAll(*executor_->log_source(), "t1");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].data(), "sim: task t1 started (image busybox)\n");
  EXPECT_EQ(lines[0].stream(), api::LOG_STREAM_STDOUT);
  EXPECT_EQ(lines[0].context().task_id(), "t1");
  EXPECT_EQ(TimeOf(lines[0]), t0);
  EXPECT_EQ(lines[1].data(), "sim: stopped\n");
  EXPECT_EQ(TimeOf(lines[1]), t0 + absl::Seconds(5));

  // On disk: docker's json-file lines.
  std::ifstream in(absl::StrCat(dir_, "/t1.log"));
  std::string first;
  ASSERT_TRUE(std::getline(in, first));
  EXPECT_NE(first.find("\"log\":\"sim: task t1 started (image busybox)\\n\""), std::string::npos)
      << first;
  EXPECT_NE(first.find("\"stream\":\"stdout\""), std::string::npos) << first;
  EXPECT_NE(first.find("\"time\":\""), std::string::npos) << first;
}

TEST_F(SimLogTest, NonZeroExitIsLoggedOnStderr) {
  auto c = Run("t2", "sim/exit:3");
  std::vector<api::LogMessage> lines = ReadAll(*executor_->log_source(), "t2");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].data(), "sim: exiting with code 3\n");
  EXPECT_EQ(lines[1].stream(), api::LOG_STREAM_STDERR);

  logs::LogReadOptions only_stdout;
  only_stdout.want_stderr = false;
  EXPECT_EQ(Data(ReadAll(*executor_->log_source(), "t2", only_stdout)),
            std::vector<std::string>{"sim: task t2 started (image sim/exit:3)\n"});
  logs::LogReadOptions only_stderr;
  only_stderr.want_stdout = false;
  EXPECT_EQ(Data(ReadAll(*executor_->log_source(), "t2", only_stderr)),
            std::vector<std::string>{"sim: exiting with code 3\n"});
}

TEST_F(SimLogTest, CrashAfterLogsAtItsScheduledTime) {
  const absl::Time t0 = clock_.Now();
  auto c = Run("t3", "sim/crash-after:10s");
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(c->Inspect().ok());  // settles the due exit
  std::vector<api::LogMessage> lines = ReadAll(*executor_->log_source(), "t3");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].data(), "sim: exiting with code 1\n");
  EXPECT_EQ(TimeOf(lines[1]), t0 + absl::Seconds(10));
}

TEST(SimLogStoreTest, TailSinceAndUnknownTask) {
  SimLogOptions o;
  o.dir = FreshDir("sim-store");
  SimLogStore store(o);
  SimLogSource source(&store);
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        store.Append("t", api::LOG_STREAM_STDOUT, absl::StrCat("line ", i), t0 + absl::Seconds(i))
            .ok());
  }
  logs::LogReadOptions tail;
  tail.tail = 2;
  EXPECT_EQ(Data(ReadAll(source, "t", tail)), (std::vector<std::string>{"line 3\n", "line 4\n"}));
  logs::LogReadOptions since;
  since.since = t0 + absl::Seconds(3);
  EXPECT_EQ(Data(ReadAll(source, "t", since)), (std::vector<std::string>{"line 3\n", "line 4\n"}));
  logs::LogReadOptions zero;
  zero.tail = 0;
  EXPECT_TRUE(ReadAll(source, "t", zero).empty());
  EXPECT_TRUE(ReadAll(source, "unknown").empty());
}

TEST(SimLogStoreTest, RotationKeepsTheFilesBounded) {
  SimLogOptions o;
  o.dir = FreshDir("sim-rotate");
  o.max_file_bytes = 300;
  o.max_files = 3;
  SimLogStore store(o);
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(store
                    .Append("t", api::LOG_STREAM_STDOUT, absl::StrCat("line ", i),
                            t0 + absl::Milliseconds(i))
                    .ok());
  }
  std::vector<std::string> files = store.Files("t");
  EXPECT_EQ(files.size(), 3u);
  std::vector<api::LogMessage> lines = *store.Read("t", {});
  ASSERT_FALSE(lines.empty());
  EXPECT_LT(lines.size(), 100u);
  EXPECT_EQ(lines.back().data(), "line 99\n");
  for (size_t i = 1; i < lines.size(); ++i) EXPECT_LT(TimeOf(lines[i - 1]), TimeOf(lines[i]));

  ASSERT_TRUE(store.Remove("t").ok());
  EXPECT_TRUE(store.Files("t").empty());
}

TEST_F(SimLogTest, FollowDeliversNewLinesUntilCancelled) {
  struct Collected {
    absl::Mutex mu;
    std::vector<std::string> data;
  } got;
  Cancellation cancel;
  logs::LogReadOptions follow;
  follow.follow = true;
  absl::Status result;
  std::thread reader([&] {
    result = executor_->log_source()->ReadLogs(
        "t4", follow,
        [&](const api::LogMessage& m) {
          absl::MutexLock lock(&got.mu);
          got.data.push_back(m.data());
          return true;
        },
        cancel);
  });
  size_t want = 0;
  auto enough = [&got, &want]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(got.mu) { return got.data.size() >= want; };
  // The task has not started yet: follow waits for it.
  auto c = Run("t4", "busybox");
  {
    absl::MutexLock lock(&got.mu);
    want = 1;
    ASSERT_TRUE(got.mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20)));
  }
  ASSERT_TRUE(c->Shutdown(absl::Seconds(1)).ok());
  {
    absl::MutexLock lock(&got.mu);
    want = 2;
    ASSERT_TRUE(got.mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20)));
  }
  cancel.Cancel();
  reader.join();
  EXPECT_TRUE(result.ok()) << result;
  absl::MutexLock lock(&got.mu);
  EXPECT_EQ(got.data,
            (std::vector<std::string>{"sim: task t4 started (image busybox)\n", "sim: stopped\n"}));
}

TEST_F(SimLogTest, RemoveDeletesTheLog) {
  auto c = Run("t5", "busybox");
  ASSERT_TRUE(c->Remove().ok());
  EXPECT_TRUE(ReadAll(*executor_->log_source(), "t5").empty());
}

TEST_F(SimLogTest, DefaultLogDirIsBesideTheStateFile) {
  const std::string dir = FreshDir("sim-default");
  SimExecutorOptions options;
  options.clock = &clock_;
  options.state_file = absl::StrCat(dir, "/worker/sim.json");
  auto e = SimExecutor::Create(options);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->log_dir(), absl::StrCat(dir, "/worker/sim-logs"));
  SimExecutorOptions none;
  none.clock = &clock_;
  auto n = SimExecutor::Create(none);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ((*n)->log_source(), nullptr);
}

TEST(JsonLogLineTest, RoundTripAndErrors) {
  const absl::Time t = absl::FromUnixNanos(1700000000123456789);
  const std::string line = FormatJsonLogLine(api::LOG_STREAM_STDERR, "oops\n", t);
  auto m = ParseJsonLogLine(line, "t9");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data(), "oops\n");
  EXPECT_EQ(m->stream(), api::LOG_STREAM_STDERR);
  EXPECT_EQ(TimeOf(*m), t);
  EXPECT_FALSE(ParseJsonLogLine("not json", "t9").ok());
  EXPECT_FALSE(ParseJsonLogLine("{\"log\":\"x\",\"time\":\"yesterday\"}", "t9").ok());
}

}  // namespace
}  // namespace shoal::agent::exec
