// Command lines and layout of benchmark clusters (no processes are started here; the etcd
// integration test does that).
#include "bench/raft/cluster.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::bench {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;

std::vector<MemberLayout> ThreeMembers() {
  std::vector<MemberLayout> m(3);
  for (int i = 0; i < 3; ++i) {
    m[i].id = i + 1;
    m[i].peer_port = 2380 + 10 * i;
    m[i].client_port = 2379 + 10 * i;
    m[i].data_dir = absl::StrCat("/d/member", i + 1);
  }
  return m;
}

TEST(MemberCommandTest, ShoalKvFollowsTheContractInTheReadme) {
  ClusterOptions o;
  o.kind = ServerKind::kShoalKv;
  o.binary = "/bin/shoal_kv";
  EXPECT_THAT(MemberCommand(o, ThreeMembers(), 1),
              ElementsAre("/bin/shoal_kv", "--id", "2", "--peers",
                          "1=127.0.0.1:2380,2=127.0.0.1:2390,3=127.0.0.1:2400", "--client-addr",
                          "127.0.0.1:2389", "--data-dir", "/d/member2"));
}

TEST(MemberCommandTest, EtcdGetsLoopbackUrlsAndDefaultTiming) {
  ClusterOptions o;
  o.kind = ServerKind::kEtcd;
  o.binary = "/usr/bin/etcd";
  std::vector<std::string> argv = MemberCommand(o, ThreeMembers(), 0);
  EXPECT_EQ(argv[0], "/usr/bin/etcd");
  EXPECT_THAT(argv, Contains("--name=m1"));
  EXPECT_THAT(argv, Contains("--data-dir=/d/member1"));
  EXPECT_THAT(argv, Contains("--listen-client-urls=http://127.0.0.1:2379"));
  EXPECT_THAT(argv, Contains("--listen-peer-urls=http://127.0.0.1:2380"));
  EXPECT_THAT(argv, Contains("--initial-cluster=m1=http://127.0.0.1:2380,m2=http://"
                             "127.0.0.1:2390,m3=http://127.0.0.1:2400"));
  EXPECT_THAT(argv, Contains("--heartbeat-interval=100"));
  EXPECT_THAT(argv, Contains("--election-timeout=1000"));
}

TEST(PlanMembersTest, DistinctPortsAndOneDataDirEach) {
  ClusterOptions o;
  o.dir = "/tmp/x";
  absl::StatusOr<std::vector<MemberLayout>> m = PlanMembers(o);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 3u);
  std::set<int> ports;
  std::set<std::string> dirs;
  for (const MemberLayout& l : *m) {
    ports.insert(l.peer_port);
    ports.insert(l.client_port);
    dirs.insert(l.data_dir);
  }
  EXPECT_EQ(ports.size(), 6u);
  EXPECT_EQ(dirs.size(), 3u);
  EXPECT_EQ((*m)[2].id, 3);
}

}  // namespace
}  // namespace shoal::bench
