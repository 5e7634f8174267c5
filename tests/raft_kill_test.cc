// Three real shoal_kv processes (Shoal's Raft library with fsync on) under a steady write load;
// the leader is killed with SIGKILL and restarted, repeatedly. Afterwards every write that was
// acknowledged must be readable, with its value, from every member.
#include <signal.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

constexpr int kMembers = 3;

struct KvMember {
  uint64_t id = 0;
  int peer_port = 0;
  int client_port = 0;
  std::string data_dir;
  std::string log;
  ChildProcess process;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
};

class KvCluster {
 public:
  KvCluster() : root_("shoal-raftkill") {
    std::string peers;
    for (int i = 0; i < kMembers; ++i) {
      auto m = std::make_unique<KvMember>();
      m->id = i + 1;
      m->peer_port = PickFreeLoopbackPort();
      m->client_port = PickFreeLoopbackPort();
      m->data_dir = absl::StrCat(root_.path(), "/member", m->id);
      m->log = absl::StrCat(root_.path(), "/member", m->id, ".log");
      auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", m->client_port),
                                         grpc::InsecureChannelCredentials());
      m->kv = etcdserverpb::KV::NewStub(channel);
      m->maintenance = etcdserverpb::Maintenance::NewStub(channel);
      absl::StrAppend(&peers, peers.empty() ? "" : ",", m->id, "=127.0.0.1:", m->peer_port);
      members_.push_back(std::move(m));
    }
    peers_ = peers;
  }

  void Start(KvMember& m) {
    absl::StatusOr<ChildProcess> p = ChildProcess::Start(
        {RunfilePath("bench/shoal_kv/shoal_kv"), "--id", absl::StrCat(m.id), "--peers", peers_,
         "--client-addr", absl::StrCat("127.0.0.1:", m.client_port), "--data-dir", m.data_dir},
        m.log);
    ASSERT_TRUE(p.ok()) << p.status();
    m.process = std::move(*p);
  }

  // The member every running member names as leader, or 0.
  uint64_t Leader() {
    uint64_t agreed = 0;
    for (auto& m : members_) {
      if (!m->process.running()) continue;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      etcdserverpb::StatusResponse r;
      if (!m->maintenance->Status(&ctx, etcdserverpb::StatusRequest(), &r).ok()) return 0;
      if (r.leader() == 0 || (agreed != 0 && r.leader() != agreed)) return 0;
      agreed = r.leader();
    }
    // Survivors keep naming a killed leader until their election timeout runs out.
    if (agreed == 0 || agreed > members_.size() || !member(agreed).process.running()) return 0;
    return agreed;
  }

  KvMember& member(uint64_t id) { return *members_[id - 1]; }
  std::vector<std::unique_ptr<KvMember>>& members() { return members_; }

 private:
  TempDir root_;
  std::string peers_;
  std::vector<std::unique_ptr<KvMember>> members_;
};

TEST(RaftKillTest, EveryAcknowledgedWriteSurvivesRepeatedLeaderKills) {
  KvCluster cluster;
  for (auto& m : cluster.members()) cluster.Start(*m);
  uint64_t leader = 0;
  ASSERT_TRUE(WaitFor([&] { return (leader = cluster.Leader()) != 0; }, absl::Seconds(20)));

  absl::Mutex mu;
  std::map<std::string, std::string> acked;  // key -> value of acknowledged Puts
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> current_leader{leader};
  std::atomic<int> errors{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      // Bounded: at most 20,000 attempts per writer, and the test stops them after the kills.
      for (int i = 0; i < 20000 && !stop.load(); ++i) {
        const uint64_t target = current_leader.load();
        if (target == 0) {
          absl::SleepFor(absl::Milliseconds(5));
          continue;
        }
        etcdserverpb::PutRequest put;
        put.set_key(absl::StrCat("w", w, "-", i));
        put.set_value(absl::StrCat("value-", w, "-", i));
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
        etcdserverpb::PutResponse resp;
        if (cluster.member(target).kv->Put(&ctx, put, &resp).ok()) {
          absl::MutexLock lock(&mu);
          acked[put.key()] = put.value();
        } else {
          ++errors;
        }
      }
    });
  }

  // However the test ends (an ASSERT returns early), stop and join the writers first, so that
  // the cluster and its directory are torn down normally.
  absl::Cleanup join_writers = [&] {
    stop = true;
    for (auto& t : writers) {
      if (t.joinable()) t.join();
    }
  };

  auto acked_count = [&] {
    absl::MutexLock lock(&mu);
    return acked.size();
  };
  constexpr int kKills = 5;
  for (int kill = 0; kill < kKills; ++kill) {
    const size_t before = acked_count();
    ASSERT_TRUE(WaitFor([&] { return acked_count() >= before + 200; }, absl::Seconds(30)))
        << "writes stalled before kill " << kill;
    KvMember& victim = cluster.member(current_leader.load());
    ASSERT_TRUE(victim.process.Signal(SIGKILL, absl::Seconds(10)).ok());
    current_leader = 0;
    uint64_t next = 0;
    ASSERT_TRUE(WaitFor([&] { return (next = cluster.Leader()) != 0; }, absl::Seconds(20)))
        << "no new leader after kill " << kill;
    EXPECT_NE(next, victim.id);
    current_leader = next;
    cluster.Start(victim);  // restarts from its data dir
  }
  const size_t before = acked_count();
  ASSERT_TRUE(WaitFor([&] { return acked_count() >= before + 200; }, absl::Seconds(30)));
  std::move(join_writers).Invoke();

  // Every member must hold every acknowledged write (a linearizable read on each).
  std::map<std::string, std::string> expected;
  {
    absl::MutexLock lock(&mu);
    expected = acked;
  }
  ASSERT_TRUE(WaitFor([&] { return cluster.Leader() != 0; }, absl::Seconds(20)));
  for (auto& m : cluster.members()) {
    size_t missing = 0;
    for (const auto& [key, value] : expected) {
      etcdserverpb::RangeRequest get;
      get.set_key(key);
      etcdserverpb::RangeResponse resp;
      grpc::Status s;
      for (int attempt = 0; attempt < 50; ++attempt) {  // a restarted member may still catch up
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
        s = m->kv->Range(&ctx, get, &resp);
        if (s.ok()) break;
        absl::SleepFor(absl::Milliseconds(20));
      }
      ASSERT_TRUE(s.ok()) << "member " << m->id << ": " << s.error_message();
      if (resp.kvs_size() != 1 || resp.kvs(0).value() != value) ++missing;
    }
    EXPECT_EQ(missing, 0u) << "member " << m->id << " lost acknowledged writes";
  }
  std::cout << "acknowledged writes: " << expected.size() << ", failed attempts: " << errors.load()
            << ", leader kills: " << kKills << "\n";
}

}  // namespace
}  // namespace shoal::testing
