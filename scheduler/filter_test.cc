#include "scheduler/filter.h"

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace shoal::scheduler {
namespace {

using testing::kCpu;
using testing::kGiB;
using testing::NodeBuilder;
using testing::TaskBuilder;

TEST(CountNodes, Plural) {
  EXPECT_EQ(CountNodes(1), "1 node");
  EXPECT_EQ(CountNodes(3), "3 nodes");
}

TEST(ReadyFilter, OnlyReadyNodes) {
  ReadyFilter f;
  EXPECT_FALSE(f.dynamic());
  EXPECT_TRUE(f.Enabled(TaskBuilder().Build()));
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("a").Build())), Refusal::kNone);
  for (auto s : {api::NodeStatus::DOWN, api::NodeStatus::DISCONNECTED, api::NodeStatus::UNKNOWN}) {
    EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("a").State(s).Build())), Refusal::kUnavailable);
  }
  EXPECT_EQ(f.Explain(Refusal::kUnavailable, 1), "1 node not available for new tasks");
  EXPECT_EQ(f.Explain(Refusal::kUnavailable, 3), "3 nodes not available for new tasks");
}

TEST(AvailabilityFilter, OnlyActiveNodes) {
  AvailabilityFilter f;
  EXPECT_TRUE(f.Enabled(TaskBuilder().Build()));
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("a").Build())), Refusal::kNone);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("a").Availability(api::NODE_AVAILABILITY_PAUSE).Build())),
            Refusal::kUnavailable);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("a").Availability(api::NODE_AVAILABILITY_DRAIN).Build())),
            Refusal::kUnavailable);
  EXPECT_EQ(f.Explain(Refusal::kUnavailable, 2), "2 nodes not available for new tasks");
}

TEST(ResourceFilter, DisabledWithoutReservations) {
  ResourceFilter f;
  EXPECT_TRUE(f.dynamic());
  EXPECT_FALSE(f.Enabled(TaskBuilder().Build()));
  EXPECT_TRUE(f.Enabled(TaskBuilder().Memory(1).Build()));
  EXPECT_TRUE(f.Enabled(TaskBuilder().NanoCpus(1).Build()));
  EXPECT_TRUE(f.Enabled(TaskBuilder().Generic("gpu", 1).Build()));
}

TEST(ResourceFilter, CpuMemoryAndGeneric) {
  ResourceFilter f;
  ASSERT_TRUE(f.Enabled(TaskBuilder().NanoCpus(2 * kCpu).Memory(4 * kGiB).Build()));
  NodeInfo big(NodeBuilder("a").NanoCpus(2 * kCpu).Memory(4 * kGiB).Build());  // Exactly fits.
  EXPECT_EQ(f.Check(big), Refusal::kNone);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("b").NanoCpus(kCpu).Build())), Refusal::kCpu);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("c").Memory(2 * kGiB).Build())), Refusal::kMemory);
  // What running tasks reserve is not available.
  big.AddTask(TaskBuilder("x").Memory(1).Build());
  EXPECT_EQ(f.Check(big), Refusal::kMemory);
  EXPECT_EQ(f.Explain(Refusal::kCpu, 1), "1 node with insufficient CPU");
  EXPECT_EQ(f.Explain(Refusal::kMemory, 2), "2 nodes with insufficient memory");

  ASSERT_TRUE(f.Enabled(TaskBuilder().Generic("gpu", 2).Build()));
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("d").Discrete("gpu", 2).Build())), Refusal::kNone);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("e").Named("gpu", "0").Named("gpu", "1").Build())),
            Refusal::kNone);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("f").Named("gpu", "0").Build())),
            Refusal::kGenericResources);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("g").Build())), Refusal::kGenericResources);
  EXPECT_EQ(f.Explain(Refusal::kGenericResources, 2),
            "2 nodes with insufficient generic resources (gpu)");
}

TEST(ConstraintFilter, EnabledOnlyWithConstraints) {
  ConstraintFilter f;
  EXPECT_FALSE(f.dynamic());
  EXPECT_FALSE(f.Enabled(TaskBuilder().Build()));
  ASSERT_TRUE(f.Enabled(
      TaskBuilder().Constraint("node.labels.zone==east").Constraint("node.role!=manager").Build()));
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("a").Label("zone", "east").Build())), Refusal::kNone);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("b").Label("zone", "west").Build())),
            Refusal::kConstraints);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("c").Label("zone", "east").Manager().Build())),
            Refusal::kConstraints);
  EXPECT_EQ(f.Explain(Refusal::kConstraints, 1), "1 node did not satisfy constraints");
  EXPECT_EQ(f.Explain(Refusal::kConstraints, 2), "2 nodes did not satisfy constraints");
}

TEST(ConstraintFilter, UnparsableConstraintsRefuseEveryNode) {
  ConstraintFilter f;
  ASSERT_TRUE(f.Enabled(TaskBuilder().Constraint("zone=east").Build()));
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("a").Label("zone", "east").Build())),
            Refusal::kConstraints);
}

TEST(PlatformFilter, MatchesOsAndNormalisedArchitecture) {
  PlatformFilter f;
  EXPECT_FALSE(f.dynamic());
  EXPECT_FALSE(f.Enabled(TaskBuilder().Build()));
  ASSERT_TRUE(
      f.Enabled(TaskBuilder().Platform("linux", "x86_64").Platform("linux", "arm64").Build()));
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("a").Platform("linux", "amd64").Build())), Refusal::kNone);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("b").Platform("linux", "aarch64").Build())),
            Refusal::kNone);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("c").Platform("linux", "s390x").Build())),
            Refusal::kPlatform);
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("d").Platform("windows", "amd64").Build())),
            Refusal::kPlatform);
  // Empty fields in the image's list accept anything.
  ASSERT_TRUE(f.Enabled(TaskBuilder().Platform("", "arm64").Build()));
  EXPECT_EQ(f.Check(NodeInfo(NodeBuilder("e").Platform("freebsd", "arm64").Build())),
            Refusal::kNone);
  EXPECT_EQ(f.Explain(Refusal::kPlatform, 4), "unsupported platform on 4 nodes");
}

TEST(HostPortFilter, ConflictsOnlyOnTheSameHostPortAndProtocol) {
  HostPortFilter f;
  EXPECT_TRUE(f.dynamic());
  EXPECT_FALSE(f.Enabled(TaskBuilder().IngressPort(80).Build()));
  EXPECT_FALSE(f.Enabled(TaskBuilder().HostPort(0).Build()));
  ASSERT_TRUE(f.Enabled(TaskBuilder().HostPort(8080).Build()));
  NodeInfo n(NodeBuilder("a").Build());
  EXPECT_EQ(f.Check(n), Refusal::kNone);
  n.AddTask(TaskBuilder("udp").HostPort(8080, api::PortConfig::UDP).Build());
  EXPECT_EQ(f.Check(n), Refusal::kNone);
  n.AddTask(TaskBuilder("tcp").Service("other").HostPort(8080).Build());
  EXPECT_EQ(f.Check(n), Refusal::kHostPort);
  EXPECT_EQ(f.Explain(Refusal::kHostPort, 1), "host-mode port already in use on 1 node");
}

TEST(MaxReplicasFilter, CountsActiveTasksOfTheService) {
  MaxReplicasFilter f;
  EXPECT_TRUE(f.dynamic());
  EXPECT_FALSE(f.Enabled(TaskBuilder().Build()));
  ASSERT_TRUE(f.Enabled(TaskBuilder().MaxReplicas(2).Build()));
  NodeInfo n(NodeBuilder("a").Build());
  n.AddTask(TaskBuilder("s1").Build());
  n.AddTask(TaskBuilder("o1").Service("other").Build());
  n.AddTask(TaskBuilder("o2").Service("other").Build());
  EXPECT_EQ(f.Check(n), Refusal::kNone);
  n.AddTask(TaskBuilder("s2").Build());
  EXPECT_EQ(f.Check(n), Refusal::kMaxReplicas);
  n.AddTask(TaskBuilder("s2").DesiredState(api::TASK_STATE_SHUTDOWN).Build());
  EXPECT_EQ(f.Check(n), Refusal::kNone);  // A task being shut down does not count.
  EXPECT_EQ(f.Explain(Refusal::kMaxReplicas, 3), "max replicas per node limit exceeded on 3 nodes");
}

TEST(DefaultFilters, StaticOnesFirst) {
  auto filters = DefaultFilters();
  std::vector<std::string> names;
  bool seen_dynamic = false;
  for (const auto& f : filters) {
    names.emplace_back(f->name());
    if (f->dynamic()) seen_dynamic = true;
    EXPECT_TRUE(f->dynamic() || !seen_dynamic) << f->name();
  }
  EXPECT_EQ(names, (std::vector<std::string>{"ready", "availability", "constraints", "platform",
                                             "resources", "host-ports", "max-replicas"}));
}

}  // namespace
}  // namespace shoal::scheduler
