// The whole procedure against a real 3-member etcd (Debian's etcd-server), kept short: a little
// load at two client counts and two failover trials. Proves the runner, the load generator and
// the generated etcd protos work with etcd itself.
#include <unistd.h>

#include <cstdlib>

#include "bench/raft/runner.h"
#include "gtest/gtest.h"
#include "tests/harness/prerequisite.h"

namespace shoal::bench {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";

TEST(EtcdBenchTest, LoadAndFailoverAgainstRealEtcd) {
  SHOAL_REQUIRE(::access(kEtcd, X_OK) == 0, "no " << kEtcd << " (package etcd-server)");
  const char* tmp = std::getenv("TEST_TMPDIR");
  SideOptions o;
  o.name = "etcd";
  o.kind = ServerKind::kEtcd;
  o.binary = kEtcd;
  o.work_dir = tmp != nullptr ? tmp : "/tmp";
  o.clients = {1, 8};
  o.warmup = absl::Milliseconds(200);
  o.duration = absl::Milliseconds(500);
  o.failover_trials = 2;
  absl::StatusOr<SideResult> r = RunSide(o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->tiers.size(), 2u);
  for (const TierResult& t : r->tiers) {
    EXPECT_GT(t.load.writes, 0) << t.load.clients << " clients";
    EXPECT_EQ(t.load.errors, 0) << t.load.first_error;
    EXPECT_GT(t.server_cpu_cores, 0);
  }
  EXPECT_EQ(r->tiers[1].load.clients, 8);
  EXPECT_EQ(r->failover.trials, 2);
  EXPECT_EQ(r->failover.failed, 0);
  ASSERT_EQ(r->failover.seconds.size(), 2u);
  for (double s : r->failover.seconds) {
    // etcd cannot elect faster than its election timeout (1 s) minus one heartbeat.
    EXPECT_GT(s, 0.5);
    EXPECT_LT(s, 10);
  }
  EXPECT_EQ(r->failover.restart_s.size(), 2u);
}

}  // namespace
}  // namespace shoal::bench
