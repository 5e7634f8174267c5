#include "tests/harness/process.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "gtest/gtest.h"

namespace shoal::testing {
namespace {

TEST(RunCommandTest, CapturesOutputExitCodeAndStdin) {
  CommandResult r =
      RunCommand({"/bin/sh", "-c", "cat; echo oops >&2; exit 3"}, {.stdin_data = "hello"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "hello");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_FALSE(r.timed_out);
}

TEST(RunCommandTest, EnvironmentCanBeSetAndUnset) {
  ::setenv("SHOAL_HARNESS_DROP", "x", 1);
  CommandResult r = RunCommand({"/bin/sh", "-c", "echo \"$A-${SHOAL_HARNESS_DROP:-unset}\""},
                               {.env = {{"A", "set"}}, .unset_env = {"SHOAL_HARNESS_DROP"}});
  EXPECT_EQ(r.out, "set-unset\n");
}

TEST(RunCommandTest, KillsAtTimeout) {
  CommandResult r = RunCommand({"/bin/sleep", "30"}, {.timeout = absl::Milliseconds(100)});
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.exit_code, -1);
}

TEST(ChildProcessTest, SignalEndsAndReapsByPid) {
  TempDir dir;
  absl::StatusOr<ChildProcess> child =
      ChildProcess::Start({"/bin/sleep", "30"}, dir.path() + "/log");
  ASSERT_TRUE(child.ok());
  const pid_t pid = child->pid();
  absl::StatusOr<int> status = child->Signal(SIGTERM, absl::Seconds(10));
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_FALSE(child->running());
  EXPECT_NE(::kill(pid, 0), 0);  // gone and reaped
}

TEST(TempDirTest, RemovedWithContents) {
  std::string path;
  {
    TempDir dir;
    path = dir.path();
    ASSERT_EQ(::mkdir((path + "/sub").c_str(), 0700), 0);
  }
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0);
}

TEST(PickFreeLoopbackPortTest, ReturnsUsablePort) {
  int port = PickFreeLoopbackPort();
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

}  // namespace
}  // namespace shoal::testing
