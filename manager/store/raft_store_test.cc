// The store on real Raft: three managers in one process, each a RaftNode (gRPC transport on
// loopback, durable log in a temporary directory) driving its own MemoryStore. Writes made on
// any manager end up in every store, byte for byte; restarts and snapshot installs keep them so.
// (Ticks of 20 ms keep elections quick; consensus itself is tested in raft/.)
#include <stdlib.h>
#include <algorithm>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "manager/store/memory_store.h"
#include "manager/store/test_objects.h"
#include "raft/node/raft_node.h"
#include "raft/transport/deferred_handler.h"
#include "raft/transport/transport.h"
#include "raft/transport/transport_service.h"

namespace shoal::manager::store {
namespace {

using testing::MakeService;
using testing::MakeTask;
using testing::SetLabel;

// The store's Proposer over a Raft node (what a manager wires up; here set once the node runs).
class NodeProposer : public Proposer {
 public:
  void Set(raft::RaftNode* node) { node_.store(node); }
  absl::StatusOr<std::string> Propose(std::string data, absl::Time deadline) override {
    raft::RaftNode* node = node_.load();
    if (node == nullptr) return absl::UnavailableError("raft node not running");
    return node->Propose(std::move(data), deadline);
  }

 private:
  std::atomic<raft::RaftNode*> node_{nullptr};
};

struct Manager {
  uint64_t id = 0;
  std::string dir, addr;
  int port = 0;
  raft::DeferredHandler handler;
  std::unique_ptr<raft::TransportService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<raft::Transport> transport;
  NodeProposer proposer;
  std::unique_ptr<MemoryStore> store;
  std::unique_ptr<raft::RaftNode> node;
};

class StoreCluster {
 public:
  explicit StoreCluster(raft::RaftNodeOptions base) : base_(std::move(base)) {
    std::string tmpl = "/tmp/store-raft-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    root_ = tmpl;
  }
  ~StoreCluster() {
    for (auto& [id, m] : managers_) {
      if (m->node != nullptr) Stop(id);
    }
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  void Bootstrap(int n) {
    for (int i = 1; i <= n; ++i) {
      auto m = std::make_unique<Manager>();
      m->id = i;
      m->dir = absl::StrCat(root_, "/m", i);
      // Learn a free port first, so that every founder knows every address.
      raft::TransportService probe_service(m->id, &m->handler);
      grpc::ServerBuilder b;
      b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &m->port);
      b.RegisterService(&probe_service);
      b.BuildAndStart()->Shutdown();
      m->addr = absl::StrCat("127.0.0.1:", m->port);
      api::RaftMember f;
      f.set_raft_id(m->id);
      f.set_addr(m->addr);
      founders_.push_back(f);
      managers_[i] = std::move(m);
    }
    for (auto& [id, m] : managers_) Start(id);
  }

  // Starts (or restarts, from its directory) a manager with a fresh store, as a process would.
  void Start(uint64_t id) {
    Manager& m = *managers_.at(id);
    m.service = std::make_unique<raft::TransportService>(m.id, &m.handler);
    grpc::ServerBuilder b;
    raft::TransportService::ConfigureServerBuilder(&b);
    b.AddListeningPort(m.addr, grpc::InsecureServerCredentials(), &m.port);
    b.RegisterService(m.service.get());
    m.server = b.BuildAndStart();
    if (m.server == nullptr) std::abort();
    raft::Transport::Options topts;
    topts.local_id = m.id;
    topts.channel_credentials = grpc::InsecureChannelCredentials();
    m.transport = std::make_unique<raft::Transport>(topts, &m.handler);
    m.store = std::make_unique<MemoryStore>(&m.proposer);
    raft::RaftNodeOptions o = base_;
    o.id = m.id;
    o.addr = m.addr;
    o.dir = m.dir;
    o.bootstrap_members = founders_;
    absl::StatusOr<std::unique_ptr<raft::RaftNode>> node =
        raft::RaftNode::Start(o, m.store.get(), m.transport.get());
    if (!node.ok()) std::abort();
    m.node = std::move(*node);
    m.handler.Set(m.node.get());
    m.proposer.Set(m.node.get());
  }

  void Stop(uint64_t id) {
    Manager& m = *managers_.at(id);
    m.proposer.Set(nullptr);
    m.handler.Set(nullptr);
    m.node->Stop();
    m.transport->Stop();
    m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    m.node.reset();
    m.transport.reset();
    m.server.reset();
    m.service.reset();
  }

  Manager& manager(uint64_t id) { return *managers_.at(id); }
  MemoryStore& store(uint64_t id) { return *managers_.at(id)->store; }
  std::vector<uint64_t> running() const {
    std::vector<uint64_t> ids;
    for (const auto& [id, m] : managers_) {
      if (m->node != nullptr) ids.push_back(id);
    }
    return ids;
  }

  // Polls with a deadline, as raft/node's test cluster does.
  uint64_t WaitForLeader(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      for (uint64_t id : running()) {
        if (manager(id).node->GetInfo().state == raft::StateType::kLeader) return id;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    return 0;
  }
  // Every running manager applied what `id` has applied.
  // Waits until every running manager applied what the most advanced one (at least `id`) had
  // applied when called. (A node's published `applied` can trail its state machine by one loop
  // iteration, so no single manager's figure is a safe target on its own.)
  bool WaitForCatchUp(uint64_t id, absl::Duration timeout = absl::Seconds(15)) {
    uint64_t target = manager(id).node->GetInfo().applied;
    for (uint64_t other : running()) {
      target = std::max(target, manager(other).node->GetInfo().applied);
    }
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      bool all = true;
      for (uint64_t other : running())
        all = all && manager(other).node->GetInfo().applied >= target;
      if (all) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }

 private:
  raft::RaftNodeOptions base_;
  std::string root_;
  std::map<uint64_t, std::unique_ptr<Manager>> managers_;
  std::vector<api::RaftMember> founders_;
};

raft::RaftNodeOptions Fast() {
  raft::RaftNodeOptions o;
  o.tick_interval = absl::Milliseconds(20);
  o.election_tick = 5;
  return o;
}

// Retries what Raft may refuse transiently (no leader yet, leader change).
absl::Status UpdateWithRetry(MemoryStore& store, const std::function<absl::Status(WriteTx&)>& fn) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  for (;;) {
    absl::Status s = store.Update(fn);
    if (s.ok() || absl::Now() > deadline || (!absl::IsUnavailable(s) && !absl::IsAborted(s))) {
      return s;
    }
  }
}

void ExpectIdenticalStores(StoreCluster& c) {
  std::vector<uint64_t> ids = c.running();
  const std::string first = c.store(ids[0]).Snapshot();
  for (uint64_t id : ids) EXPECT_EQ(c.store(id).Snapshot(), first) << "manager " << id;
}

TEST(RaftStoreTest, WritesOnAnyManagerReachEveryStore) {
  StoreCluster c(Fast());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  // Watch on a follower: it sees the leader's writes as they apply there.
  const uint64_t follower = lead == 1 ? 2 : 1;
  std::unique_ptr<Watcher> w = c.store(follower).ViewAndWatch([](const ReadTx&) {});
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(UpdateWithRetry(c.store(id), [id](WriteTx& tx) {
                  return tx.Create(MakeService(absl::StrCat("s", id), absl::StrCat("svc", id)));
                }).ok());
    // Propose returned once applied on the proposing manager: it reads its own write.
    c.store(id).View([id](const ReadTx& tx) {
      const api::Service* s = tx.Get<api::Service>(absl::StrCat("s", id));
      ASSERT_NE(s, nullptr);
      EXPECT_EQ(s->meta().version().index(), tx.version());
    });
  }
  // A name taken on one manager is taken for all (refused by the follower's transaction if it
  // already applied s1, else by Apply on every manager).
  absl::Status dup = UpdateWithRetry(
      c.store(follower), [](WriteTx& tx) { return tx.Create(MakeService("s9", "svc1")); });
  EXPECT_EQ(dup.code(), absl::StatusCode::kAlreadyExists) << dup;
  ASSERT_TRUE(c.WaitForCatchUp(lead));
  ExpectIdenticalStores(c);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<StoreChange> ch = w->Next(absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(ch.ok()) << ch.status();
    EXPECT_EQ(ch->events[0].object->service().id(), absl::StrCat("s", i + 1));
  }
}

// Two managers race to update one object: every acknowledged write is there, each exactly once,
// and every store agrees.
TEST(RaftStoreTest, ConcurrentWritersOnDifferentManagers) {
  StoreCluster c(Fast());
  c.Bootstrap(3);
  ASSERT_NE(c.WaitForLeader(), 0u);
  ASSERT_TRUE(UpdateWithRetry(c.store(1), [](WriteTx& tx) {
                return tx.Create(MakeService("s", "web"));
              }).ok());
  // Other managers see it once they applied it (a read on them is not linearizable otherwise).
  ASSERT_TRUE(c.WaitForCatchUp(1));
  auto writer = [&](uint64_t id) {
    for (int i = 0; i < 25; ++i) {
      absl::Status s = UpdateWithRetry(c.store(id), [&](WriteTx& tx) {
        const api::Service* current = tx.Get<api::Service>("s");
        if (current == nullptr) return absl::InternalError("s is missing");
        api::Service svc = *current;
        SetLabel(&svc, absl::StrCat("m", id, "-", i), "1");
        return tx.Update(svc);
      });
      // UpdateWithRetry re-runs the transaction on ABORTED, so every write lands eventually.
      EXPECT_TRUE(s.ok()) << s;
    }
  };
  std::thread a(writer, 2), b(writer, 3);
  a.join();
  b.join();
  const uint64_t lead = c.WaitForLeader();
  ASSERT_TRUE(c.WaitForCatchUp(lead));
  ExpectIdenticalStores(c);
  c.store(1).View([](const ReadTx& tx) {
    EXPECT_EQ(tx.Get<api::Service>("s")->spec().annotations().labels_size(), 50);
  });
}

// Restarted managers rebuild their store from their snapshot plus log; a manager that fell
// behind the leader's compacted log receives a snapshot (Restore) and still ends up identical.
TEST(RaftStoreTest, RestartAndSnapshotInstallKeepStoresIdentical) {
  raft::RaftNodeOptions o = Fast();
  o.snapshot_interval = 10;
  o.log_entries_for_slow_followers = 2;
  StoreCluster c(o);
  c.Bootstrap(3);
  uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t lagging = lead == 3 ? 2 : 3;
  c.Stop(lagging);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(UpdateWithRetry(c.store(lead), [i](WriteTx& tx) {
                  return tx.Create(
                      MakeTask(absl::StrCat("t", i), "svc", i + 1, absl::StrCat("n", i % 3)));
                }).ok());
  }
  lead = c.WaitForLeader();
  ASSERT_GT(c.manager(lead).node->GetInfo().snapshot_index, 20u);
  c.Start(lagging);
  ASSERT_TRUE(c.WaitForCatchUp(lead));
  EXPECT_GE(c.manager(lagging).node->GetInfo().snapshot_index, 20u);  // installed, not replayed
  ExpectIdenticalStores(c);
  c.store(lagging).View([](const ReadTx& tx) {
    EXPECT_EQ(tx.Count<api::Task>(), 40u);
    EXPECT_EQ(tx.FindTasksByNode("n1").size(), 13u);
  });

  // Every manager restarts: snapshot + log replay rebuild the same store.
  for (uint64_t id : c.running()) c.Stop(id);
  for (uint64_t id = 1; id <= 3; ++id) c.Start(id);
  lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  ASSERT_TRUE(UpdateWithRetry(c.store(lead), [](WriteTx& tx) {
                return tx.Create(MakeTask("after-restart", "svc", 99));
              }).ok());
  ASSERT_TRUE(c.WaitForCatchUp(lead));
  ExpectIdenticalStores(c);
  EXPECT_EQ(c.store(lagging).Counts().of(api::OBJECT_KIND_TASK), 41u);
}

}  // namespace
}  // namespace shoal::manager::store
