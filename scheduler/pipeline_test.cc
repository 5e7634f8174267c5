#include "scheduler/pipeline.h"

#include <vector>

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace shoal::scheduler {
namespace {

using testing::kGiB;
using testing::NodeBuilder;
using testing::TaskBuilder;

TEST(Pipeline, PassesANodeEveryEnabledFilterAccepts) {
  Pipeline p;
  p.SetTask(TaskBuilder().Memory(kGiB).Constraint("node.labels.zone==a").Build());
  EXPECT_TRUE(p.Process(NodeInfo(NodeBuilder("n").Label("zone", "a").Build())));
  EXPECT_EQ(p.Explain(), "");
}

TEST(Pipeline, CountsOnlyTheFirstRefusalOfANode) {
  Pipeline p;
  p.SetTask(TaskBuilder().Memory(kGiB).Constraint("node.labels.zone==a").Build());
  // Down, wrong zone and too small: counted as not available only.
  EXPECT_FALSE(p.Process(NodeInfo(
      NodeBuilder("n").State(api::NodeStatus::DOWN).Label("zone", "b").Memory(1).Build())));
  EXPECT_EQ(p.count(Refusal::kUnavailable), 1);
  EXPECT_EQ(p.count(Refusal::kConstraints), 0);
  EXPECT_EQ(p.count(Refusal::kMemory), 0);
  EXPECT_EQ(p.Explain(), "1 node not available for new tasks");
}

TEST(Pipeline, FullExplanationMostFrequentFirst) {
  Pipeline p;
  p.SetTask(TaskBuilder().Memory(2 * kGiB).Constraint("node.role==worker").Build());
  std::vector<api::Node> nodes = {
      NodeBuilder("down").State(api::NodeStatus::DOWN).Build(),
      NodeBuilder("drained").Availability(api::NODE_AVAILABILITY_DRAIN).Build(),
      NodeBuilder("paused").Availability(api::NODE_AVAILABILITY_PAUSE).Build(),
      NodeBuilder("small").Memory(kGiB).Build(),
  };
  for (const api::Node& n : nodes) EXPECT_FALSE(p.Process(NodeInfo(n)));
  EXPECT_EQ(p.Explain(), "3 nodes not available for new tasks; 1 node with insufficient memory");
  EXPECT_EQ(NoSuitableNode(p.Explain()),
            "no suitable node (3 nodes not available for new tasks; 1 node with insufficient "
            "memory)");

  // Equal counts keep pipeline order: constraints before resources.
  p.ResetCounts();
  EXPECT_EQ(p.Explain(), "");
  EXPECT_FALSE(p.Process(NodeInfo(NodeBuilder("mgr").Manager().Build())));
  EXPECT_FALSE(p.Process(NodeInfo(NodeBuilder("small").Memory(kGiB).Build())));
  EXPECT_FALSE(p.Process(NodeInfo(NodeBuilder("small2").Memory(kGiB).Build())));
  EXPECT_FALSE(p.Process(NodeInfo(NodeBuilder("mgr2").Manager().Build())));
  EXPECT_EQ(p.Explain(), "2 nodes did not satisfy constraints; 2 nodes with insufficient memory");
}

TEST(Pipeline, EveryRefusalExplained) {
  Pipeline p;
  p.SetTask(TaskBuilder()
                .NanoCpus(testing::kCpu)
                .Generic("gpu", 1)
                .HostPort(443)
                .MaxReplicas(1)
                .Platform("linux", "amd64")
                .Build());
  NodeInfo port(NodeBuilder("port").Discrete("gpu", 1).Build());
  port.AddTask(TaskBuilder("x").Service("web").HostPort(443).Build());
  NodeInfo full(NodeBuilder("full").Discrete("gpu", 2).Build());
  full.AddTask(TaskBuilder("y").Build());
  for (const NodeInfo& n : {NodeInfo(NodeBuilder("arm").Platform("linux", "arm64").Build()),
                            NodeInfo(NodeBuilder("cpu").NanoCpus(1).Build()),
                            NodeInfo(NodeBuilder("nogpu").Build()), port, full}) {
    EXPECT_FALSE(p.Process(n)) << n.id();
  }
  EXPECT_EQ(p.Explain(),
            "unsupported platform on 1 node; 1 node with insufficient CPU; 1 node with "
            "insufficient generic resources (gpu); host-mode port already in use on 1 node; max "
            "replicas per node limit exceeded on 1 node");
}

TEST(Pipeline, StagesSplitStaticAndDynamicFilters) {
  Pipeline p;
  p.SetTask(TaskBuilder().Memory(kGiB).Constraint("node.labels.zone==a").Build());
  NodeInfo wrong_zone(NodeBuilder("n").Label("zone", "b").Build());
  EXPECT_EQ(p.Check(wrong_zone, Pipeline::Stage::kStatic), Refusal::kConstraints);
  EXPECT_EQ(p.Check(wrong_zone, Pipeline::Stage::kDynamic), Refusal::kNone);
  NodeInfo small(NodeBuilder("m").Label("zone", "a").Memory(1).Build());
  EXPECT_EQ(p.Check(small, Pipeline::Stage::kStatic), Refusal::kNone);
  EXPECT_EQ(p.Check(small, Pipeline::Stage::kDynamic), Refusal::kMemory);
  EXPECT_EQ(p.Check(small), Refusal::kMemory);
  EXPECT_EQ(p.count(Refusal::kMemory), 0);  // Check counts nothing.
}

TEST(Pipeline, SetTaskResetsCountsAndFilters) {
  Pipeline p;
  p.SetTask(TaskBuilder().Constraint("node.labels.zone==a").Build());
  NodeInfo b(NodeBuilder("n").Label("zone", "b").Build());
  EXPECT_FALSE(p.Process(b));
  p.SetTask(TaskBuilder().Build());
  EXPECT_EQ(p.Explain(), "");
  EXPECT_TRUE(p.Process(b));
}

TEST(NoSuitableNode, WithAndWithoutExplanation) {
  EXPECT_EQ(NoSuitableNode(""), "no suitable node");
  EXPECT_EQ(NoSuitableNode("1 node not available for new tasks"),
            "no suitable node (1 node not available for new tasks)");
}

}  // namespace
}  // namespace shoal::scheduler
