#include "scheduler/node_info.h"

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace shoal::scheduler {
namespace {

using testing::kCpu;
using testing::kGiB;
using testing::kMiB;
using testing::NodeBuilder;
using testing::TaskBuilder;

TEST(NodeInfo, StartsWithTheReportedCapacity) {
  NodeInfo n(NodeBuilder("n").NanoCpus(4 * kCpu).Memory(8 * kGiB).Discrete("ssd", 3).Build());
  EXPECT_EQ(n.id(), "n");
  EXPECT_EQ(n.available_nano_cpus(), 4 * kCpu);
  EXPECT_EQ(n.available_memory_bytes(), 8 * kGiB);
  EXPECT_EQ(n.AvailableGeneric("ssd"), 3);
  EXPECT_EQ(n.AvailableGeneric("gpu"), 0);
  EXPECT_EQ(n.active_tasks(), 0);
  EXPECT_EQ(n.task_count(), 0u);
}

TEST(NodeInfo, AddAndRemoveTaskReserveAndReleaseResources) {
  NodeInfo n(NodeBuilder("n").Build());
  api::Task t = TaskBuilder("t1").NanoCpus(kCpu / 2).Memory(512 * kMiB).Node("n").Build();
  EXPECT_TRUE(n.AddTask(t));
  EXPECT_TRUE(n.HasTask("t1"));
  EXPECT_EQ(n.available_nano_cpus(), 4 * kCpu - kCpu / 2);
  EXPECT_EQ(n.available_memory_bytes(), 8 * kGiB - 512 * kMiB);
  EXPECT_EQ(n.active_tasks(), 1);
  EXPECT_EQ(n.ActiveTasksOfService("svc"), 1);
  EXPECT_EQ(n.ActiveTasksOfService("other"), 0);
  EXPECT_FALSE(n.AddTask(t));  // Nothing new.
  EXPECT_TRUE(n.RemoveTask("t1"));
  EXPECT_FALSE(n.RemoveTask("t1"));
  EXPECT_EQ(n.available_nano_cpus(), 4 * kCpu);
  EXPECT_EQ(n.available_memory_bytes(), 8 * kGiB);
  EXPECT_EQ(n.active_tasks(), 0);
  EXPECT_EQ(n.ActiveTasksOfService("svc"), 0);
}

TEST(NodeInfo, TasksDesiredToStopHoldResourcesButAreNotActive) {
  NodeInfo n(NodeBuilder("n").Build());
  TaskBuilder b("t1");
  b.Memory(kGiB).DesiredState(api::TASK_STATE_SHUTDOWN);
  EXPECT_TRUE(n.AddTask(b.Build()));
  EXPECT_EQ(n.active_tasks(), 0);
  EXPECT_EQ(n.available_memory_bytes(), 7 * kGiB);
  // The same task desired to run again becomes active; resources are not taken twice.
  b.DesiredState(api::TASK_STATE_RUNNING);
  EXPECT_TRUE(n.AddTask(b.Build()));
  EXPECT_EQ(n.active_tasks(), 1);
  EXPECT_EQ(n.ActiveTasksOfService("svc"), 1);
  EXPECT_EQ(n.available_memory_bytes(), 7 * kGiB);
  b.DesiredState(api::TASK_STATE_REMOVE);
  EXPECT_TRUE(n.AddTask(b.Build()));
  EXPECT_EQ(n.active_tasks(), 0);
  EXPECT_EQ(n.ActiveTasksOfService("svc"), 0);
}

TEST(NodeInfo, HostPortsAreCountedPerProtocol) {
  NodeInfo n(NodeBuilder("n").Build());
  n.AddTask(TaskBuilder("t1").HostPort(8080).IngressPort(9090).Build());
  EXPECT_TRUE(n.HostPortInUse(HostPort{api::PortConfig::TCP, 8080}));
  EXPECT_FALSE(n.HostPortInUse(HostPort{api::PortConfig::UDP, 8080}));
  EXPECT_FALSE(n.HostPortInUse(HostPort{api::PortConfig::TCP, 9090}));  // Ingress binds nothing.
  // Two tasks on one port (state the store may briefly hold): the port stays used until both go.
  n.AddTask(TaskBuilder("t2").HostPort(8080).Build());
  n.RemoveTask("t1");
  EXPECT_TRUE(n.HostPortInUse(HostPort{api::PortConfig::TCP, 8080}));
  n.RemoveTask("t2");
  EXPECT_FALSE(n.HostPortInUse(HostPort{api::PortConfig::TCP, 8080}));
}

TEST(NodeInfo, HostPortZeroNeverConflicts) {
  auto d = TaskDemand::FromTask(TaskBuilder("t").HostPort(0).Build());
  EXPECT_TRUE(d->host_ports.empty());
}

TEST(NodeInfo, DiscreteGenericResources) {
  NodeInfo n(NodeBuilder("n").Discrete("ssd", 3).Build());
  std::vector<api::GenericResource> got =
      n.Place("t1", TaskDemand::FromTask(TaskBuilder("t1").Generic("ssd", 2).Build()), true);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].discrete().kind(), "ssd");
  EXPECT_EQ(got[0].discrete().value(), 2);
  EXPECT_EQ(n.AvailableGeneric("ssd"), 1);
  n.RemoveTask("t1");
  EXPECT_EQ(n.AvailableGeneric("ssd"), 3);
}

TEST(NodeInfo, NamedGenericResourcesClaimTheLowestFreeUnits) {
  NodeInfo n(
      NodeBuilder("n").Named("gpu", "gpu-2").Named("gpu", "gpu-0").Named("gpu", "gpu-1").Build());
  auto demand = TaskDemand::FromTask(TaskBuilder("t").Generic("gpu", 2).Build());
  std::vector<api::GenericResource> a = n.Place("t1", demand, true);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].named().value(), "gpu-0");
  EXPECT_EQ(a[1].named().value(), "gpu-1");
  EXPECT_EQ(n.AvailableGeneric("gpu"), 1);
  n.RemoveTask("t1");
  EXPECT_EQ(n.AvailableGeneric("gpu"), 3);

  // A task recorded with its units keeps exactly those.
  api::Task held = TaskBuilder("t2").Generic("gpu", 1).Build();
  api::GenericResource* g = held.add_assigned_generic_resources();
  g->mutable_named()->set_kind("gpu");
  g->mutable_named()->set_value("gpu-2");
  n.AddTask(held);
  std::vector<api::GenericResource> b = n.Place("t3", demand, true);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].named().value(), "gpu-0");
  EXPECT_EQ(b[1].named().value(), "gpu-1");
  EXPECT_EQ(n.AvailableGeneric("gpu"), 0);
}

TEST(NodeInfo, SetNodeRecomputesFromTasks) {
  NodeInfo n(NodeBuilder("n").Named("gpu", "g0").Named("gpu", "g1").Build());
  n.AddTask(
      TaskBuilder("t1").Memory(2 * kGiB).NanoCpus(kCpu).Generic("gpu", 1).HostPort(80).Build());
  n.SetNode(NodeBuilder("n").Memory(16 * kGiB).NanoCpus(8 * kCpu).Named("gpu", "g0").Build());
  EXPECT_EQ(n.available_memory_bytes(), 14 * kGiB);
  EXPECT_EQ(n.available_nano_cpus(), 7 * kCpu);
  EXPECT_EQ(n.AvailableGeneric("gpu"), 0);  // g0 is held by t1; g1 is gone.
  EXPECT_TRUE(n.HostPortInUse(HostPort{api::PortConfig::TCP, 80}));
  EXPECT_EQ(n.active_tasks(), 1);
  // Giving back a unit the node no longer has does not resurrect it.
  n.SetNode(NodeBuilder("n").Build());
  n.RemoveTask("t1");
  EXPECT_EQ(n.AvailableGeneric("gpu"), 0);
  EXPECT_FALSE(n.HostPortInUse(HostPort{api::PortConfig::TCP, 80}));
}

TEST(NodeInfo, CountsPerService) {
  NodeInfo n(NodeBuilder("n").Build());
  n.AddTask(TaskBuilder("a1").Service("a").Build());
  n.AddTask(TaskBuilder("a2").Service("a").Build());
  n.AddTask(TaskBuilder("b1").Service("b").Build());
  EXPECT_EQ(n.ActiveTasksOfService("a"), 2);
  EXPECT_EQ(n.ActiveTasksOfService("b"), 1);
  EXPECT_EQ(n.active_tasks(), 3);
  n.RemoveTask("a1");
  EXPECT_EQ(n.ActiveTasksOfService("a"), 1);
  EXPECT_EQ(n.active_tasks(), 2);
}

}  // namespace
}  // namespace shoal::scheduler
