#include "common/files.h"

#include <sys/stat.h>

#include <cstdlib>

#include "gtest/gtest.h"

namespace shoal {
namespace {

std::string TempDir() {
  std::string tmpl = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp") +
                     "/files_test.XXXXXX";
  return ::mkdtemp(tmpl.data());
}

TEST(FilesTest, WriteAtomicReplacesAndSetsMode) {
  const std::string dir = TempDir();
  const std::string path = dir + "/a/b/record";
  ASSERT_TRUE(MakeDirectories(dir + "/a/b", 0700).ok());
  ASSERT_TRUE(WriteFileAtomic(path, "one", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(path, "two", 0600).ok());
  EXPECT_EQ(*ReadFile(path), "two");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(FileExists(path + ".tmp"));
}

TEST(FilesTest, ReadMissingIsNotFound) {
  EXPECT_EQ(ReadFile(TempDir() + "/missing").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace shoal
