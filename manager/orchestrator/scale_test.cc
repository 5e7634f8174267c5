// Scale: one replicated service of 100,000 replicas created in one pass, a second pass with
// nothing to do, and a scale-down to 50,000. Prints the times; the bounds are generous (this is
// the fastbuild configuration on a shared 2-core machine), not a benchmark.
#include <cstdio>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "manager/orchestrator/replicated.h"
#include "manager/orchestrator/task_reaper.h"
#include "manager/orchestrator/test_util.h"

namespace shoal::manager::orchestrator {
namespace {

using testing::OrchestratorFixture;

constexpr uint64_t kReplicas = 100000;

TEST(ScaleTest, HundredThousandReplicas) {
  OrchestratorFixture f;
  f.AddService(OrchestratorFixture::Replicated("svc", "big", kReplicas));
  ReplicatedOrchestrator orch(&f.store(), f.options());

  absl::Time t0 = absl::Now();
  ASSERT_TRUE(orch.Reconcile("svc").ok());
  const absl::Duration create = absl::Now() - t0;
  size_t count = 0;
  f.store().View([&](const store::ReadTx& tx) { count = tx.FindTasksByService("svc").size(); });
  EXPECT_EQ(count, kReplicas);
  std::printf("create %llu tasks: %s\n", static_cast<unsigned long long>(kReplicas),
              absl::FormatDuration(create).c_str());

  t0 = absl::Now();
  ASSERT_TRUE(orch.Reconcile("svc").ok());
  const absl::Duration noop = absl::Now() - t0;
  std::printf("pass with nothing to do: %s\n", absl::FormatDuration(noop).c_str());

  f.SetReplicas("svc", kReplicas / 2);
  t0 = absl::Now();
  ASSERT_TRUE(orch.Reconcile("svc").ok());
  const absl::Duration down = absl::Now() - t0;
  std::printf("scale down to %llu: %s\n", static_cast<unsigned long long>(kReplicas / 2),
              absl::FormatDuration(down).c_str());
  size_t live = 0;
  f.store().View([&](const store::ReadTx& tx) {
    for (const api::Task* t : tx.FindTasksByService("svc")) live += IsLive(*t);
  });
  EXPECT_EQ(live, kReplicas / 2);

  // The reaper deletes the 50,000 removed tasks (never assigned) in one pass.
  TaskReaper reaper(&f.store(), f.options());
  t0 = absl::Now();
  ASSERT_TRUE(reaper.ReconcileOnce().ok());
  const absl::Duration reap = absl::Now() - t0;
  std::printf("reap %llu removed tasks: %s\n", static_cast<unsigned long long>(kReplicas / 2),
              absl::FormatDuration(reap).c_str());
  f.store().View([&](const store::ReadTx& tx) { count = tx.FindTasksByService("svc").size(); });
  EXPECT_EQ(count, kReplicas / 2);

  // For comparison: the store alone, creating as many prepared tasks through one Batch.
  OrchestratorFixture g;
  api::Service svc = OrchestratorFixture::Replicated("svc", "big", kReplicas);
  std::vector<api::Task> prepared;
  prepared.reserve(kReplicas);
  for (uint64_t i = 1; i <= kReplicas; ++i) {
    prepared.push_back(NewTask(svc, nullptr, i, "", g.clock().Now()));
  }
  t0 = absl::Now();
  ASSERT_TRUE(g.store()
                  .Batch([&](store::Batch& b) {
                    for (api::Task& t : prepared) {
                      absl::Status s =
                          b.Update([&](store::WriteTx& tx) { return tx.Create(std::move(t)); });
                      if (!s.ok()) return s;
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  std::printf("store alone, %llu prepared creates in one Batch: %s\n",
              static_cast<unsigned long long>(kReplicas),
              absl::FormatDuration(absl::Now() - t0).c_str());

  EXPECT_LT(create, absl::Seconds(120));
  EXPECT_LT(noop, absl::Seconds(30));
  EXPECT_LT(down, absl::Seconds(60));
  EXPECT_LT(reap, absl::Seconds(60));
}

}  // namespace
}  // namespace shoal::manager::orchestrator
