#include "cli/task_format.h"

#include <sstream>

#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

api::Task MakeTask(const std::string& id, const std::string& service, uint64_t slot,
                   int64_t created, api::TaskState state, api::TaskState desired) {
  api::Task t;
  t.set_id(id);
  t.set_slot(slot);
  t.set_node_id("node1");
  t.mutable_service_annotations()->set_name(service);
  t.mutable_meta()->mutable_created_at()->set_seconds(created);
  t.mutable_spec()->mutable_container_spec()->set_image("nginx:1.25@sha256:0123");
  t.mutable_status()->set_state(state);
  t.mutable_status()->mutable_timestamp()->set_seconds(1700000000 - 300);
  t.set_desired_state(desired);
  return t;
}

TEST(TaskFormatTest, HistoryIndentedUnderTheNewestTaskOfASlot) {
  api::Task old = MakeTask("aaaaaaaaaaaaaaaaaaaaaaaaa", "web", 1, 100, api::TASK_STATE_FAILED,
                           api::TASK_STATE_SHUTDOWN);
  old.mutable_status()->set_err("task: non-zero exit (1): the process failed at start");
  api::Task current = MakeTask("bbbbbbbbbbbbbbbbbbbbbbbbb", "web", 1, 200, api::TASK_STATE_RUNNING,
                               api::TASK_STATE_RUNNING);
  api::PortConfig* port = current.mutable_status()->mutable_port_status()->add_ports();
  port->set_publish_mode(api::PortConfig::HOST);
  port->set_published_port(8080);
  port->set_target_port(80);
  api::Task global = MakeTask("ccccccccccccccccccccccccc", "agent", 0, 50, api::TASK_STATE_RUNNING,
                              api::TASK_STATE_RUNNING);
  const std::vector<TaskRow> rows = MakeTaskRows(
      {old, current, global}, [](const std::string& id) { return "host-" + id; }, kNow, true);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].name, "agent.node1");
  EXPECT_EQ(rows[1].name, "web.1");
  EXPECT_EQ(rows[1].id, "bbbbbbbbbbbb");
  EXPECT_EQ(rows[1].image, "nginx:1.25");
  EXPECT_EQ(rows[1].node, "host-node1");
  EXPECT_EQ(rows[1].desired_state, "Running");
  EXPECT_EQ(rows[1].current_state, "Running 5 minutes ago");
  EXPECT_EQ(rows[1].ports, "*:8080->80/tcp");
  EXPECT_EQ(rows[2].name, " \\_ web.1");
  EXPECT_EQ(rows[2].desired_state, "Shutdown");
  EXPECT_EQ(rows[2].error, "\"task: non-zero exit (1): the \xe2\x80\xa6\"");

  std::ostringstream out;
  PrintTaskTable(out, {rows[1]});
  EXPECT_EQ(
      out.str(),
      "ID             NAME    IMAGE        NODE         DESIRED STATE   CURRENT STATE         "
      "  ERROR   PORTS\n"
      "bbbbbbbbbbbb   web.1   nginx:1.25   host-node1   Running         Running 5 minutes ago"
      "           *:8080->80/tcp\n");
  EXPECT_EQ(TaskRowJson(rows[1])["CurrentState"], "Running 5 minutes ago");
}

TEST(TaskFormatTest, NoTruncKeepsEverything) {
  api::Task t = MakeTask("aaaaaaaaaaaaaaaaaaaaaaaaa", "web", 2, 1, api::TASK_STATE_REJECTED,
                         api::TASK_STATE_SHUTDOWN);
  t.mutable_status()->set_err("no such image: nginx:1.25@sha256:0123 (pull access denied)");
  const std::vector<TaskRow> rows = MakeTaskRows(
      {t}, [](const std::string& id) { return id; }, kNow, false);
  EXPECT_EQ(rows[0].id, "aaaaaaaaaaaaaaaaaaaaaaaaa");
  EXPECT_EQ(rows[0].image, "nginx:1.25@sha256:0123");
  EXPECT_EQ(rows[0].error, "\"no such image: nginx:1.25@sha256:0123 (pull access denied)\"");
  EXPECT_EQ(rows[0].current_state, "Rejected 5 minutes ago");
}

}  // namespace
}  // namespace shoal::cli
