#include "scheduler/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace shoal::scheduler {
namespace {

using testing::kCpu;
using testing::kGiB;
using testing::kMiB;
using testing::MakeNodeSet;
using testing::NodeBuilder;
using testing::TaskBuilder;
using testing::TasksPerLabel;
using testing::TasksPerNode;
using Counts = std::map<std::string, int>;

std::vector<api::Node> Nodes(int n, const std::string& prefix = "n") {
  std::vector<api::Node> out;
  for (int i = 0; i < n; ++i) out.push_back(NodeBuilder(prefix + std::to_string(i)).Build());
  return out;
}

std::map<std::string, std::string> Reasons(const Decisions& d) {
  std::map<std::string, std::string> out;
  for (const Unplaced& u : d.unplaced) out[u.task_id] = u.reason;
  return out;
}

// ---- Balancing ------------------------------------------------------------------------------

TEST(Schedule, SpreadsEvenlyOverIdenticalNodes) {
  NodeSet nodes = MakeNodeSet(Nodes(3));
  Decisions d = Schedule(&nodes, TaskBuilder().Replicas(7));
  EXPECT_TRUE(d.unplaced.empty());
  EXPECT_EQ(TasksPerNode(d), (Counts{{"n0", 3}, {"n1", 2}, {"n2", 2}}));
}

TEST(Schedule, TiesGoToTheLowestNodeId) {
  NodeSet nodes =
      MakeNodeSet({NodeBuilder("b").Build(), NodeBuilder("c").Build(), NodeBuilder("a").Build()});
  Decisions d = Schedule(&nodes, TaskBuilder().Replicas(1));
  ASSERT_EQ(d.assigned.size(), 1u);
  EXPECT_EQ(d.assigned[0].node_id, "a");
}

TEST(Schedule, FewestTasksOfTheServiceFirstThenFewestOverall) {
  NodeSet nodes = MakeNodeSet(Nodes(3));
  // n0 runs two tasks of another service; n2 one task of this one; n1 nothing.
  nodes.AddTask(TaskBuilder("o1").Service("other").Node("n0").Build());
  nodes.AddTask(TaskBuilder("o2").Service("other").Node("n0").Build());
  nodes.AddTask(TaskBuilder("s0").Node("n2").Build());
  Decisions d = Schedule(&nodes, TaskBuilder().Replicas(2));
  ASSERT_EQ(d.assigned.size(), 2u);
  EXPECT_EQ(d.assigned[0].node_id, "n1");  // 0 of the service, 0 overall.
  EXPECT_EQ(d.assigned[1].node_id, "n0");  // 0 of the service beats n2's 1, despite 2 overall.
  // Then every node has one of the service; the least busy overall goes next (n1: 1, n2: 1).
  Decisions d2 = Schedule(&nodes, TaskBuilder().Replicas(1, "u"));
  ASSERT_EQ(d2.assigned.size(), 1u);
  EXPECT_EQ(d2.assigned[0].node_id, "n1");
}

TEST(Schedule, RecordsAssignmentsInTheNodeSet) {
  NodeSet nodes = MakeNodeSet(Nodes(2));
  Decisions d = Schedule(&nodes, TaskBuilder().Memory(kGiB).Replicas(4));
  ASSERT_EQ(d.assigned.size(), 4u);
  for (const char* id : {"n0", "n1"}) {
    const NodeInfo* n = nodes.Find(id);
    EXPECT_EQ(n->ActiveTasksOfService("svc"), 2);
    EXPECT_EQ(n->available_memory_bytes(), 6 * kGiB);
  }
  EXPECT_TRUE(nodes.Find(d.assigned[0].node_id)->HasTask(d.assigned[0].task_id));
  // Undoing one (the store write failed) gives its resources back.
  EXPECT_TRUE(nodes.RemoveTask(d.assigned[0].node_id, d.assigned[0].task_id));
  EXPECT_EQ(nodes.Find(d.assigned[0].node_id)->available_memory_bytes(), 7 * kGiB);
}

// ---- Spread preferences ---------------------------------------------------------------------

TEST(Schedule, SpreadSplitsEvenlyOverLabelValuesWhateverTheirSize) {
  std::vector<api::Node> v;
  v.push_back(NodeBuilder("a0").Label("zone", "a").Build());
  for (int i = 0; i < 2; ++i)
    v.push_back(NodeBuilder("b" + std::to_string(i)).Label("zone", "b").Build());
  for (int i = 0; i < 6; ++i)
    v.push_back(NodeBuilder("c" + std::to_string(i)).Label("zone", "c").Build());
  NodeSet nodes = MakeNodeSet(v);
  Decisions d = Schedule(&nodes, TaskBuilder().Spread("node.labels.zone").Replicas(9));
  EXPECT_EQ(TasksPerLabel(d, nodes, "zone"), (Counts{{"a", 3}, {"b", 3}, {"c", 3}}));
  Counts per_node = TasksPerNode(d);
  EXPECT_EQ(per_node["a0"], 3);
  EXPECT_EQ(per_node["b0"] + per_node["b1"], 3);
  for (int i = 0; i < 6; ++i) EXPECT_LE(per_node["c" + std::to_string(i)], 1);
}

TEST(Schedule, SpreadCountsTasksAlreadyRunning) {
  NodeSet nodes = MakeNodeSet({NodeBuilder("a").Label("zone", "a").Build(),
                               NodeBuilder("b").Label("zone", "b").Build(),
                               NodeBuilder("c").Label("zone", "c").Build()});
  for (int i = 0; i < 4; ++i)
    nodes.AddTask(TaskBuilder("old" + std::to_string(i)).Node("a").Build());
  Decisions d = Schedule(&nodes, TaskBuilder().Spread("node.labels.zone").Replicas(5));
  EXPECT_EQ(TasksPerLabel(d, nodes, "zone"), (Counts{{"b", 3}, {"c", 2}}));
}

TEST(Schedule, NodesWithoutTheLabelFormTheirOwnGroup) {
  NodeSet nodes = MakeNodeSet({NodeBuilder("a").Label("zone", "a").Build(),
                               NodeBuilder("b").Label("zone", "b").Build(),
                               NodeBuilder("x").Build(), NodeBuilder("y").Build()});
  Decisions d = Schedule(&nodes, TaskBuilder().Spread("node.labels.zone").Replicas(9));
  EXPECT_EQ(TasksPerLabel(d, nodes, "zone"), (Counts{{"", 3}, {"a", 3}, {"b", 3}}));
  Counts per_node = TasksPerNode(d);
  EXPECT_EQ(per_node["x"], 2);  // The unlabelled group still balances inside itself.
  EXPECT_EQ(per_node["y"], 1);
}

TEST(Schedule, NestedSpread) {
  // Two datacenters; dc1 has racks r1, r2, dc2 has r3 only. Each rack holds two nodes.
  std::vector<api::Node> v;
  for (auto [dc, rack] : std::vector<std::pair<std::string, std::string>>{
           {"dc1", "r1"}, {"dc1", "r2"}, {"dc2", "r3"}}) {
    for (int i = 0; i < 2; ++i) {
      v.push_back(
          NodeBuilder(rack + "-" + std::to_string(i)).Label("dc", dc).Label("rack", rack).Build());
    }
  }
  NodeSet nodes = MakeNodeSet(v);
  Decisions d = Schedule(
      &nodes, TaskBuilder().Spread("node.labels.dc").Spread("node.labels.rack").Replicas(8));
  EXPECT_EQ(TasksPerLabel(d, nodes, "dc"), (Counts{{"dc1", 4}, {"dc2", 4}}));
  EXPECT_EQ(TasksPerLabel(d, nodes, "rack"), (Counts{{"r1", 2}, {"r2", 2}, {"r3", 4}}));
  for (const auto& [node, n] : TasksPerNode(d)) EXPECT_LE(n, 2) << node;
}

TEST(Schedule, AFullGroupPassesItsShareToTheOthers) {
  // Zone a can hold one task (memory); zone b plenty.
  NodeSet nodes = MakeNodeSet({NodeBuilder("a").Label("zone", "a").Memory(kGiB).Build(),
                               NodeBuilder("b0").Label("zone", "b").Build(),
                               NodeBuilder("b1").Label("zone", "b").Build()});
  Decisions d =
      Schedule(&nodes, TaskBuilder().Memory(kGiB).Spread("node.labels.zone").Replicas(10));
  EXPECT_TRUE(d.unplaced.empty());
  EXPECT_EQ(TasksPerLabel(d, nodes, "zone"), (Counts{{"a", 1}, {"b", 9}}));
}

TEST(Schedule, ConstraintsAndSpreadTogether) {
  // Zone c has no node matching the constraint: its share goes to a and b.
  NodeSet nodes = MakeNodeSet({NodeBuilder("a").Label("zone", "a").Label("tier", "app").Build(),
                               NodeBuilder("b").Label("zone", "b").Label("tier", "app").Build(),
                               NodeBuilder("c").Label("zone", "c").Label("tier", "db").Build()});
  Decisions d = Schedule(
      &nodes,
      TaskBuilder().Constraint("node.labels.tier==app").Spread("node.labels.zone").Replicas(6));
  EXPECT_TRUE(d.unplaced.empty());
  EXPECT_EQ(TasksPerNode(d), (Counts{{"a", 3}, {"b", 3}}));
}

TEST(Schedule, UnsupportedSpreadDescriptorIsIgnored) {
  NodeSet nodes = MakeNodeSet(Nodes(2));
  Decisions d = Schedule(&nodes, TaskBuilder().Spread("node.hostname").Replicas(4));
  EXPECT_EQ(TasksPerNode(d), (Counts{{"n0", 2}, {"n1", 2}}));
}

// ---- Batches respect resources, ports and max replicas -------------------------------------

TEST(Schedule, BatchNeverOvercommitsResources) {
  NodeSet nodes = MakeNodeSet(
      {NodeBuilder("a").NanoCpus(4 * kCpu).Build(), NodeBuilder("b").NanoCpus(3 * kCpu).Build()});
  Decisions d = Schedule(&nodes, TaskBuilder().NanoCpus(kCpu).Memory(kGiB).Replicas(9));
  EXPECT_EQ(TasksPerNode(d), (Counts{{"a", 4}, {"b", 3}}));
  ASSERT_EQ(d.unplaced.size(), 2u);
  EXPECT_EQ(d.unplaced[0].reason, "no suitable node (2 nodes with insufficient CPU)");
  EXPECT_EQ(nodes.Find("a")->available_nano_cpus(), 0);
  EXPECT_EQ(nodes.Find("b")->available_nano_cpus(), 0);
}

TEST(Schedule, MaxReplicasPerNode) {
  NodeSet nodes = MakeNodeSet(Nodes(3));
  Decisions d = Schedule(&nodes, TaskBuilder().MaxReplicas(2).Replicas(8));
  EXPECT_EQ(TasksPerNode(d), (Counts{{"n0", 2}, {"n1", 2}, {"n2", 2}}));
  ASSERT_EQ(d.unplaced.size(), 2u);
  EXPECT_EQ(d.unplaced[1].reason,
            "no suitable node (max replicas per node limit exceeded on 3 nodes)");
}

TEST(Schedule, HostPortsOneTaskPerNode) {
  NodeSet nodes = MakeNodeSet(Nodes(3));
  nodes.AddTask(TaskBuilder("web").Service("web").HostPort(8080).Node("n2").Build());
  Decisions d = Schedule(&nodes, TaskBuilder().HostPort(8080).Replicas(3));
  EXPECT_EQ(TasksPerNode(d), (Counts{{"n0", 1}, {"n1", 1}}));
  ASSERT_EQ(d.unplaced.size(), 1u);
  EXPECT_EQ(d.unplaced[0].reason, "no suitable node (host-mode port already in use on 3 nodes)");
  // Ingress ports do not bind on the node.
  NodeSet more = MakeNodeSet(Nodes(1));
  EXPECT_EQ(Schedule(&more, TaskBuilder().IngressPort(8080).Replicas(3)).assigned.size(), 3u);
}

TEST(Schedule, GenericResourcesAreClaimedPerTask) {
  NodeSet nodes = MakeNodeSet({NodeBuilder("a").Named("gpu", "g0").Named("gpu", "g1").Build(),
                               NodeBuilder("b").Discrete("gpu", 1).Build()});
  Decisions d = Schedule(&nodes, TaskBuilder().Generic("gpu", 1).Replicas(4));
  ASSERT_EQ(d.assigned.size(), 3u);
  std::set<std::string> units;
  for (const Assignment& a : d.assigned) {
    ASSERT_EQ(a.generic_resources.size(), 1u) << a.task_id;
    const api::GenericResource& g = a.generic_resources[0];
    if (a.node_id == "a") {
      EXPECT_TRUE(units.insert(g.named().value()).second) << "unit handed out twice";
    } else {
      EXPECT_EQ(g.discrete().value(), 1);
    }
  }
  EXPECT_EQ(units, (std::set<std::string>{"g0", "g1"}));
  EXPECT_EQ(Reasons(d)["t004"],
            "no suitable node (2 nodes with insufficient generic resources (gpu))");
}

// ---- Explanations ---------------------------------------------------------------------------

TEST(Schedule, ExplainsWhyNoNodeFits) {
  NodeSet nodes = MakeNodeSet({
      NodeBuilder("down").State(api::NodeStatus::DOWN).Build(),
      NodeBuilder("drain").Availability(api::NODE_AVAILABILITY_DRAIN).Build(),
      NodeBuilder("pause").Availability(api::NODE_AVAILABILITY_PAUSE).Build(),
      NodeBuilder("small").Memory(kGiB).Build(),
  });
  Decisions d = Schedule(&nodes, TaskBuilder().Memory(2 * kGiB).Replicas(2));
  EXPECT_TRUE(d.assigned.empty());
  ASSERT_EQ(d.unplaced.size(), 2u);
  for (const Unplaced& u : d.unplaced) {
    EXPECT_EQ(u.reason,
              "no suitable node (3 nodes not available for new tasks; 1 node with insufficient "
              "memory)");
  }
}

TEST(Schedule, NoNodesAtAll) {
  NodeSet nodes;
  Decisions d = Schedule(&nodes, TaskBuilder().Replicas(1));
  ASSERT_EQ(d.unplaced.size(), 1u);
  EXPECT_EQ(d.unplaced[0].reason, "no suitable node");
}

TEST(Schedule, UnplacedTaskIsPlacedOnceANodeAppears) {
  NodeSet nodes = MakeNodeSet({NodeBuilder("a").Label("zone", "west").Build()});
  std::vector<api::Task> tasks = TaskBuilder().Constraint("node.labels.zone==east").Replicas(2);
  Decisions d = Schedule(&nodes, tasks);
  ASSERT_EQ(d.unplaced.size(), 2u);
  EXPECT_EQ(d.unplaced[0].reason, "no suitable node (1 node did not satisfy constraints)");
  // The loop retries when nodes change: a node with the label joins.
  nodes.AddOrUpdateNode(NodeBuilder("b").Label("zone", "east").Build());
  d = Schedule(&nodes, tasks);
  EXPECT_TRUE(d.unplaced.empty());
  EXPECT_EQ(TasksPerNode(d), (Counts{{"b", 2}}));
}

// ---- Groups and preassigned tasks -----------------------------------------------------------

TEST(Schedule, GroupsByServiceAndSpecVersion) {
  NodeSet nodes = MakeNodeSet(Nodes(2));
  std::vector<api::Task> tasks;
  for (api::Task& t : TaskBuilder().Service("web", 2).Memory(kGiB).Replicas(2, "web-v2-"))
    tasks.push_back(t);
  for (api::Task& t : TaskBuilder().Service("api", 1).Constraint("node.id==n1").Replicas(2, "api-"))
    tasks.push_back(t);
  for (api::Task& t : TaskBuilder().Service("web", 1).Replicas(2, "web-v1-")) tasks.push_back(t);
  tasks.push_back(TaskBuilder("lone").Service("web", 0).NoSpecVersion().Build());
  Decisions d = Schedule(&nodes, tasks);
  ASSERT_TRUE(d.unplaced.empty());
  std::vector<std::string> order;
  for (const Assignment& a : d.assigned) order.push_back(a.task_id);
  // (service, version) order; one-off tasks last.
  EXPECT_EQ(order, (std::vector<std::string>{"api-001", "api-002", "web-v1-001", "web-v1-002",
                                             "web-v2-001", "web-v2-002", "lone"}));
  for (const Assignment& a : d.assigned) {
    if (a.task_id.rfind("api-", 0) == 0) {
      EXPECT_EQ(a.node_id, "n1");
    }
  }
}

TEST(Schedule, LaterGroupsOfAServiceSeeTheTasksEarlierGroupsPlaced) {
  // A rolling update leaves tasks of two spec versions pending at once.
  NodeSet nodes = MakeNodeSet(Nodes(2));
  for (int i = 0; i < 3; ++i) {
    nodes.AddTask(TaskBuilder("bg" + std::to_string(i)).Service("other").Node("n1").Build());
  }
  std::vector<api::Task> tasks = TaskBuilder().Service("web", 1).Replicas(3, "v1-");
  tasks.push_back(TaskBuilder("v2-001").Service("web", 2).Build());
  Decisions d = Schedule(&nodes, tasks);
  ASSERT_EQ(d.assigned.size(), 4u);
  EXPECT_EQ(TasksPerNode(d), (Counts{{"n0", 2}, {"n1", 2}}));
  EXPECT_EQ(d.assigned[3].task_id, "v2-001");
  EXPECT_EQ(d.assigned[3].node_id, "n1");  // n1 has fewer of web (1 vs 2), though more tasks.
}

TEST(Schedule, PreassignedTasksAreCheckedAgainstTheirNodeOnly) {
  NodeSet nodes =
      MakeNodeSet({NodeBuilder("a").Build(), NodeBuilder("b").Memory(kGiB).Build(),
                   NodeBuilder("c").Availability(api::NODE_AVAILABILITY_DRAIN).Build()});
  std::vector<api::Task> tasks = {
      TaskBuilder("ga").Service("global").Memory(2 * kGiB).Node("a").Build(),
      TaskBuilder("gb").Service("global").Memory(2 * kGiB).Node("b").Build(),
      TaskBuilder("gc").Service("global").Memory(2 * kGiB).Node("c").Build(),
      TaskBuilder("gz").Service("global").Memory(2 * kGiB).Node("zz").Build(),
  };
  Decisions d = Schedule(&nodes, tasks);
  ASSERT_EQ(d.assigned.size(), 1u);
  EXPECT_EQ(d.assigned[0].task_id, "ga");
  EXPECT_EQ(d.assigned[0].node_id, "a");
  auto reasons = Reasons(d);
  EXPECT_EQ(reasons["gb"], "no suitable node (1 node with insufficient memory)");
  EXPECT_EQ(reasons["gc"], "no suitable node (1 node not available for new tasks)");
  EXPECT_EQ(reasons["gz"], "no suitable node (node zz not found)");
  EXPECT_EQ(nodes.Find("a")->available_memory_bytes(), 6 * kGiB);
}

// ---- Determinism and balance at scale -------------------------------------------------------

std::vector<api::Node> RandomCluster(std::mt19937_64& rng, int n) {
  std::vector<api::Node> v;
  for (int i = 0; i < n; ++i) {
    char id[16];
    std::snprintf(id, sizeof(id), "node%04d", i);
    NodeBuilder b(id);
    b.Label("zone", "z" + std::to_string(rng() % 4));
    if (rng() % 5 != 0) b.Label("tier", "app");
    if (rng() % 10 == 0) b.Availability(api::NODE_AVAILABILITY_DRAIN);
    b.Memory((1 + rng() % 8) * kGiB);
    v.push_back(b.Build());
  }
  return v;
}

TEST(Schedule, DeterministicWhateverTheOrderNodesArrivedIn) {
  const uint64_t seed = std::random_device()();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  std::vector<api::Node> cluster = RandomCluster(rng, 200);
  std::vector<api::Task> tasks = TaskBuilder()
                                     .Memory(512 * kMiB)
                                     .Constraint("node.labels.tier==app")
                                     .Spread("node.labels.zone")
                                     .Replicas(1500);
  NodeSet first = MakeNodeSet(cluster);
  Decisions a = Schedule(&first, tasks);
  std::shuffle(cluster.begin(), cluster.end(), rng);
  NodeSet second = MakeNodeSet(cluster);
  Decisions b = Schedule(&second, tasks);
  ASSERT_EQ(a.assigned.size(), b.assigned.size()) << "seed " << seed;
  for (size_t i = 0; i < a.assigned.size(); ++i) {
    EXPECT_EQ(a.assigned[i].task_id, b.assigned[i].task_id);
    EXPECT_EQ(a.assigned[i].node_id, b.assigned[i].node_id) << "seed " << seed;
  }
  ASSERT_EQ(a.unplaced.size(), b.unplaced.size());
  for (size_t i = 0; i < a.unplaced.size(); ++i) {
    EXPECT_EQ(a.unplaced[i].reason, b.unplaced[i].reason);
  }
  // Whatever the draw, no node is overcommitted and every refusal is explained.
  for (const auto& [id, info] : first) EXPECT_GE(info.available_memory_bytes(), 0) << id;
  for (const Unplaced& u : a.unplaced)
    EXPECT_NE(u.reason.find("no suitable node ("), std::string::npos);
}

TEST(Schedule, LargeBatchIsEvenAcrossZonesAndNodes) {
  std::vector<api::Node> v;
  for (int i = 0; i < 1000; ++i) {
    char id[16];
    std::snprintf(id, sizeof(id), "n%04d", i);
    v.push_back(NodeBuilder(id).Label("zone", "z" + std::to_string(i % 10)).Build());
  }
  NodeSet nodes = MakeNodeSet(v);
  Decisions d = Schedule(&nodes, TaskBuilder().Spread("node.labels.zone").Replicas(10500));
  EXPECT_TRUE(d.unplaced.empty());
  for (const auto& [zone, n] : TasksPerLabel(d, nodes, "zone")) EXPECT_EQ(n, 1050) << zone;
  Counts per_node = TasksPerNode(d);
  int lo = 1 << 30, hi = 0;
  for (const auto& [id, n] : per_node) {
    lo = std::min(lo, n);
    hi = std::max(hi, n);
  }
  EXPECT_EQ(per_node.size(), 1000u);
  EXPECT_LE(hi - lo, 1);
}

}  // namespace
}  // namespace shoal::scheduler
