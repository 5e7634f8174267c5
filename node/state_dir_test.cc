#include "node/state_dir.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"

namespace shoal::node {
namespace {

std::string TempRoot() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/statedir-XXXXXX";
  char* made = ::mkdtemp(tmpl.data());
  EXPECT_NE(made, nullptr);
  return tmpl;
}

unsigned ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return st.st_mode & 0777;
}

TEST(StateDirTest, CreatesNestedDirectoryWithMode0700) {
  const std::string dir = TempRoot() + "/a/b/state";
  absl::StatusOr<StateDir> sd = StateDir::Open(dir);
  ASSERT_TRUE(sd.ok()) << sd.status();
  EXPECT_EQ(ModeOf(dir), 0700u);
  EXPECT_EQ(sd->Sub("raft"), dir + "/raft");
  std::ifstream lock(dir + "/shoald.lock");
  int pid = 0;
  lock >> pid;
  EXPECT_EQ(pid, ::getpid());
}

TEST(StateDirTest, TightensModeOfExistingDirectory) {
  const std::string dir = TempRoot() + "/loose";
  ASSERT_EQ(::mkdir(dir.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  ASSERT_TRUE(StateDir::Open(dir).ok());
  EXPECT_EQ(ModeOf(dir), 0700u);
}

TEST(StateDirTest, SecondHolderIsRefusedWithThePidAndTheFix) {
  const std::string dir = TempRoot() + "/shared";
  absl::StatusOr<StateDir> first = StateDir::Open(dir);
  ASSERT_TRUE(first.ok());
  // flock() locks belong to the open file description, so a second open in this process is
  // refused just as another process would be.
  absl::StatusOr<StateDir> second = StateDir::Open(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use by another shoald"), std::string::npos);
  EXPECT_NE(second.status().message().find(std::to_string(::getpid())), std::string::npos);
  EXPECT_NE(second.status().message().find("--state-dir"), std::string::npos);
}

TEST(StateDirTest, LockIsReleasedWhenTheHolderGoesAway) {
  const std::string dir = TempRoot() + "/released";
  { ASSERT_TRUE(StateDir::Open(dir).ok()); }
  EXPECT_TRUE(StateDir::Open(dir).ok());
}

TEST(StateDirTest, PathThatIsAFileIsRefused) {
  const std::string file = TempRoot() + "/file";
  std::ofstream(file) << "x";
  absl::StatusOr<StateDir> sd = StateDir::Open(file);
  ASSERT_FALSE(sd.ok());
  EXPECT_NE(sd.status().message().find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace shoal::node
