// The worker's records: round trip, a missing file, and unreadable content.
#include "agent/worker_state.h"

#include <cstdlib>
#include <string>

#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::agent {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(WorkerStateTest, RoundTrip) {
  std::vector<TaskRecord> records(2);
  records[0].task.set_id("t1");
  records[0].task.set_desired_state(api::TASK_STATE_RUNNING);
  records[0].task.mutable_spec()->mutable_container_spec()->set_image("sim/exit:3");
  records[0].status.set_state(api::TASK_STATE_RUNNING);
  records[0].status.mutable_container_status()->set_pid(1001);
  records[1].task.set_id("t2");
  records[1].status.set_state(api::TASK_STATE_SHUTDOWN);
  records[1].assigned = false;

  const std::string path = TempPath("rt/worker/tasks.json");
  ASSERT_TRUE(SaveWorkerState(path, records).ok());
  auto loaded = LoadWorkerState(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0].task.spec().container_spec().image(), "sim/exit:3");
  EXPECT_EQ((*loaded)[0].task.desired_state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ((*loaded)[0].status.container_status().pid(), 1001);
  EXPECT_TRUE((*loaded)[0].assigned);
  EXPECT_EQ((*loaded)[1].status.state(), api::TASK_STATE_SHUTDOWN);
  EXPECT_FALSE((*loaded)[1].assigned);
}

TEST(WorkerStateTest, NoFileIsNoRecords) {
  auto loaded = LoadWorkerState(TempPath("none/tasks.json"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->empty());
}

TEST(WorkerStateTest, UnreadableContentNamesTheFile) {
  const std::string path = TempPath("bad-tasks.json");
  for (const char* bad : {"{oops", "{\"version\":2,\"tasks\":[]}",
                          "{\"version\":1,\"tasks\":[{\"task\":{},\"status\":{}}]}",
                          "{\"version\":1,\"tasks\":[{\"task\":{\"id\":7},\"status\":{}}]}"}) {
    ASSERT_TRUE(WriteFileAtomic(path, bad, 0600).ok());
    auto loaded = LoadWorkerState(path);
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << bad;
    EXPECT_THAT(std::string(loaded.status().message()), HasSubstr(path));
  }
}

}  // namespace
}  // namespace shoal::agent
