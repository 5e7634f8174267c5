// The load generator and the failover probe against in-process fake members.
#include "bench/raft/load.h"

#include "absl/strings/str_cat.h"
#include "bench/raft/fake_kv_server.h"
#include "bench/raft/kv_client.h"
#include "gtest/gtest.h"

namespace shoal::bench {
namespace {

using testing::FakeKvServer;

TEST(RunLoadTest, CountBoundedRunWritesEveryKeyRoundRobin) {
  FakeKvServer server(1, 1);
  LoadOptions o;
  o.endpoint = server.endpoint();
  o.clients = 8;
  o.warmup = absl::ZeroDuration();
  o.total = 400;
  o.key_space = 10;
  o.value_size = 256;
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->writes, 400);
  EXPECT_EQ(r->errors, 0);
  EXPECT_EQ(r->latency_ms.count, 400);
  EXPECT_GT(r->writes_per_s, 0);
  EXPECT_GT(r->latency_ms.p50, 0);
  EXPECT_LE(r->latency_ms.p50, r->latency_ms.p99);
  EXPECT_LE(r->latency_ms.p99, r->latency_ms.max);
  EXPECT_EQ(server.puts_ok(), 400);
  std::map<std::string, int64_t> keys = server.keys();
  ASSERT_EQ(keys.size(), 10u);
  for (const auto& [key, n] : keys) EXPECT_EQ(n, 40) << key;
  EXPECT_EQ(keys.begin()->first, "bench/00000000");
  EXPECT_EQ(server.last_value_size(), 256u);
  EXPECT_EQ(r->connections, 8);
}

TEST(RunLoadTest, TimeBoundedRunMeasuresOnlyTheWindow) {
  FakeKvServer server(1, 1);
  LoadOptions o;
  o.endpoint = server.endpoint();
  o.clients = 4;
  o.connections = 2;
  o.warmup = absl::Milliseconds(100);
  o.duration = absl::Milliseconds(300);
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->writes, 0);
  EXPECT_LT(r->writes, server.puts_ok());  // warm-up Puts are not counted
  EXPECT_NEAR(r->seconds, 0.3, 0.01);
  EXPECT_EQ(r->connections, 2);
}

TEST(RunLoadTest, FailedPutsAreCountedAndPacedNotFatal) {
  FakeKvServer server(1, 1);
  server.FailNextPuts(1'000'000);
  LoadOptions o;
  o.endpoint = server.endpoint();
  o.clients = 2;
  o.warmup = absl::ZeroDuration();
  o.duration = absl::Milliseconds(200);
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->writes, 0);
  EXPECT_GT(r->errors, 0);
  // Each client waits 10 ms after a failure: at most ~20 attempts per client in 200 ms.
  EXPECT_LE(r->errors, 2 * 25);
  EXPECT_NE(r->first_error.find("no leader"), std::string::npos) << r->first_error;
}

TEST(RunLoadTest, RejectsNonsense) {
  LoadOptions o;
  o.endpoint = "127.0.0.1:1";
  o.clients = 0;
  EXPECT_EQ(RunLoad(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RunLoadTest, UnreachableEndpointIsUnavailable) {
  LoadOptions o;
  o.endpoint = "127.0.0.1:1";  // nothing listens on port 1
  o.duration = absl::Milliseconds(100);
  o.connect_timeout = absl::Milliseconds(200);
  EXPECT_EQ(RunLoad(o).status().code(), absl::StatusCode::kUnavailable);
}

TEST(ProbeTest, RunsStartThenTimesTheFirstCommittedWrite) {
  FakeKvServer a(2, 0), b(3, 0);
  a.FailNextPuts(1'000'000);
  b.FailNextPuts(4);  // b "elects a leader" after four refused attempts
  ProbeOptions o;
  o.endpoints = {a.endpoint(), b.endpoint()};
  o.attempt_interval = absl::Milliseconds(5);
  bool started = false;
  absl::StatusOr<ProbeResult> r = TimeUntilWriteCommits(o, [&] {
    started = true;
    return absl::OkStatus();
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(started);
  EXPECT_EQ(r->endpoint, b.endpoint());
  EXPECT_EQ(b.puts_failed(), 4);
  EXPECT_GE(b.puts_ok(), 1);
  EXPECT_GE(r->attempts, 10);  // five rounds to two endpoints
  EXPECT_GT(r->elapsed, absl::ZeroDuration());
  EXPECT_LT(r->elapsed, absl::Seconds(5));
}

TEST(ProbeTest, GivesUpAtTheTimeout) {
  FakeKvServer a(2, 0);
  a.FailNextPuts(1'000'000);
  ProbeOptions o;
  o.endpoints = {a.endpoint()};
  o.timeout = absl::Milliseconds(200);
  o.attempt_interval = absl::Milliseconds(20);
  absl::StatusOr<ProbeResult> r = TimeUntilWriteCommits(o, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(r.status().message().find("no leader"), std::string::npos) << r.status();
  EXPECT_LE(a.puts_failed(), 12);  // about one attempt per 20 ms
}

TEST(ProbeTest, StartErrorIsReturned) {
  FakeKvServer a(2, 0);
  ProbeOptions o;
  o.endpoints = {a.endpoint()};
  absl::StatusOr<ProbeResult> r =
      TimeUntilWriteCommits(o, [] { return absl::FailedPreconditionError("no such pid"); });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.puts_ok(), 0);
}

TEST(KvClientTest, StatusesFindTheAgreedLeader) {
  FakeKvServer m1(11, 12), m2(12, 12), m3(13, 12);
  std::vector<MemberStatus> s =
      QueryStatuses({m1.endpoint(), m2.endpoint(), m3.endpoint()}, absl::Seconds(2));
  ASSERT_EQ(s.size(), 3u);
  EXPECT_TRUE(s[0].status.ok()) << s[0].status;
  EXPECT_EQ(s[0].member_id, 11u);
  EXPECT_EQ(s[0].leader, 12u);
  EXPECT_EQ(AgreedLeader(s), 1u);
  EXPECT_TRUE(AllHealthy(s, 0));
  m3.SetRaftIndex(5);
  m2.SetRaftIndex(100);
  s = QueryStatuses({m1.endpoint(), m2.endpoint(), m3.endpoint()}, absl::Seconds(2));
  EXPECT_FALSE(AllHealthy(s, 10));  // m3 trails the leader by 95
  EXPECT_TRUE(AllHealthy(s, 95));
}

TEST(KvClientTest, DisagreementOrNoLeaderIsNotHealthy) {
  MemberStatus a, b, c;
  a.member_id = 1, a.leader = 1;
  b.member_id = 2, b.leader = 1;
  c.member_id = 3, c.leader = 3;
  EXPECT_FALSE(AgreedLeader({a, b, c}).has_value());
  c.leader = 0;
  EXPECT_FALSE(AgreedLeader({a, b, c}).has_value());
  c.leader = 1;
  EXPECT_EQ(AgreedLeader({a, b, c}), 0u);
  c.status = absl::UnavailableError("down");
  EXPECT_EQ(AgreedLeader({a, b, c}), 0u);  // the others still agree
  EXPECT_FALSE(AllHealthy({a, b, c}, 1000));
  a.status = absl::UnavailableError("down");  // the named leader is not answering
  EXPECT_FALSE(AgreedLeader({a, b}).has_value());
}

TEST(KvClientTest, GrpcTargetDropsTheScheme) {
  EXPECT_EQ(GrpcTarget("http://127.0.0.1:2379"), "127.0.0.1:2379");
  EXPECT_EQ(GrpcTarget("127.0.0.1:2379"), "127.0.0.1:2379");
}

}  // namespace
}  // namespace shoal::bench
