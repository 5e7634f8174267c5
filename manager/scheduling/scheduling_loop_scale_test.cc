// 100,000 PENDING tasks (100 services of 1,000 replicas, half of them spread over 10 zones) on
// 1,000 nodes, through the running SchedulingLoop and a store with DirectProposer. Prints the
// timings; the bound is generous (the figures depend on the build mode and the machine).
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "manager/scheduling/scheduling_loop.h"
#include "manager/store/test_objects.h"
#include "scheduler/test_util.h"

namespace shoal::manager {
namespace {

using scheduler::testing::NodeBuilder;
using scheduler::testing::TaskBuilder;

constexpr int kNodes = 1000;
constexpr int kServices = 100;
constexpr int kReplicas = 1000;
constexpr int kZones = 10;

TEST(SchedulingLoopScale, HundredThousandTasksOnAThousandNodes) {
  store::testing::StoreFixture f;
  absl::Time t0 = absl::Now();
  ASSERT_TRUE(
      f.store
          .Batch([](store::Batch& b) {
            for (int i = 0; i < kNodes; ++i) {
              api::Node n = NodeBuilder(absl::StrCat("node", 10000 + i))
                                .Label("zone", absl::StrCat("z", i % kZones))
                                .Build();
              if (absl::Status s = b.Update([&](store::WriteTx& tx) { return tx.Create(n); });
                  !s.ok()) {
                return s;
              }
            }
            for (int s = 0; s < kServices; ++s) {
              TaskBuilder tb;
              tb.Service(absl::StrCat("svc", 100 + s));
              if (s % 2 == 0) tb.Spread("node.labels.zone");
              for (int r = 0; r < kReplicas; ++r) {
                api::Task t = tb.Build();
                t.set_id(absl::StrCat("task", 100 + s, "-", 10000 + r));
                if (absl::Status st = b.Update([&](store::WriteTx& tx) { return tx.Create(t); });
                    !st.ok()) {
                  return st;
                }
              }
            }
            return absl::OkStatus();
          })
          .ok());
  const absl::Duration setup = absl::Now() - t0;

  SchedulingLoop loop(&f.store, {});  // Real clock: this measures real time.
  t0 = absl::Now();
  loop.Start();
  int assigned = 0;
  std::map<std::string, int> per_node;
  const absl::Time deadline = absl::Now() + absl::Minutes(10);
  while (absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(200));
    assigned = 0;
    f.store.View([&](const store::ReadTx& tx) {
      for (const api::Task* t : tx.List<api::Task>()) {
        assigned += t->status().state() == api::TASK_STATE_ASSIGNED;
      }
    });
    if (assigned == kServices * kReplicas) break;
  }
  const absl::Duration through_loop = absl::Now() - t0;
  loop.Stop();
  const SchedulingPassStats pass = loop.last_pass();

  ASSERT_EQ(assigned, kServices * kReplicas);
  f.store.View([&](const store::ReadTx& tx) {
    for (const api::Task* t : tx.List<api::Task>()) ++per_node[t->node_id()];
  });
  ASSERT_EQ(per_node.size(), static_cast<size_t>(kNodes));
  for (const auto& [node, n] : per_node) EXPECT_EQ(n, kServices * kReplicas / kNodes) << node;

  std::printf(
      "store setup (1,000 nodes + 100,000 tasks through Batch): %s\n"
      "loop start -> all 100,000 tasks ASSIGNED in the store: %s\n"
      "  last pass: %zu tasks, %zu assigned; read + Schedule %s, store batch write %s\n",
      absl::FormatDuration(setup).c_str(), absl::FormatDuration(through_loop).c_str(), pass.tasks,
      pass.assigned, absl::FormatDuration(pass.read_and_schedule).c_str(),
      absl::FormatDuration(pass.write).c_str());
  // Generous: the write of 100,000 task updates dominates (store-bound, ~4x slower unoptimised).
  EXPECT_LT(through_loop, absl::Minutes(5));
}

}  // namespace
}  // namespace shoal::manager
