// The Dispatcher over real mutual-TLS gRPC on 127.0.0.1, on a store with a DirectProposer and a
// ManualClock: sessions, heartbeats, liveness, leadership, task status and assignments.
//
// Certificates are dated by the real clock (gRPC checks them against it); the dispatcher's own
// time (expiries, grace) is the ManualClock, which only the test moves.
#include "manager/dispatcher/dispatcher.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/cluster_object.h"
#include "manager/fake_raft_control.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"
#include "pki/grpc_tls.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::manager {
namespace {

using ::testing::HasSubstr;

constexpr char kCluster[] = "cluster1";

std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Seconds(20)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

// An open Session stream.
struct SessionStream {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReader<api::SessionMessage>> reader;
  api::SessionMessage first;

  // The next message; false when the stream ended.
  bool Next(api::SessionMessage* message) { return reader->Read(message); }
  // Reads until the stream ends; returns its status.
  grpc::Status End() {
    api::SessionMessage ignored;
    while (reader->Read(&ignored)) {
    }
    return reader->Finish();
  }
};

struct AssignmentsStream {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReader<api::AssignmentsMessage>> reader;
  bool Next(api::AssignmentsMessage* message) { return reader->Read(message); }
};

api::Node MakeNode(const std::string& id) {
  api::Node node;
  node.set_id(id);
  node.mutable_spec()->set_membership(api::NodeSpec::ACCEPTED);
  return node;
}

api::Task MakeTask(const std::string& id, const std::string& node_id, api::TaskState state,
                   api::TaskState desired = api::TASK_STATE_RUNNING) {
  api::Task task;
  task.set_id(id);
  task.set_service_id("svc1");
  task.set_node_id(node_id);
  task.set_desired_state(desired);
  task.mutable_status()->set_state(state);
  task.mutable_spec()->mutable_container_spec()->set_image("busybox");
  return task;
}

// Which tasks, secrets and configs a message updates or removes, as "task:t1", "-secret:s1".
std::vector<std::string> Describe(const api::AssignmentsMessage& message) {
  std::vector<std::string> out;
  for (const api::AssignmentChange& c : message.changes()) {
    const std::string prefix = c.action() == api::AssignmentChange::REMOVE ? "-" : "";
    const api::Assignment& a = c.assignment();
    if (a.has_task()) out.push_back(absl::StrCat(prefix, "task:", a.task().id()));
    if (a.has_secret()) out.push_back(absl::StrCat(prefix, "secret:", a.secret().id()));
    if (a.has_config()) out.push_back(absl::StrCat(prefix, "config:", a.config().id()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() : store_(&proposer_, store::StoreOptions{&clock_}), raft_(1, "mgr1") {
    proposer_.Attach(&store_);
  }

  void SetUp() override {
    const absl::Time now = absl::Now();
    root_ = std::make_unique<pki::RootCA>(pki::testing::NewRootCA(now - absl::Hours(24)));
    api::Cluster cluster;
    cluster.set_id(kCluster);
    cluster.mutable_spec()->mutable_annotations()->set_name(kDefaultClusterName);
    cluster.mutable_root_ca()->set_ca_cert(root_->cert_pem());
    cluster.mutable_root_ca()->set_ca_key(root_->key_pem());
    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) -> absl::Status {
                      if (absl::Status s = tx.Create(cluster); !s.ok()) return s;
                      if (absl::Status s = tx.Create(MakeNode("w1")); !s.ok()) return s;
                      return tx.Create(MakeNode("w2"));
                    })
                    .ok());
    raft_.SetMembers({{1, "mgr1", "10.0.0.1:2377", /*leader=*/true, true, false}});

    manager_ = pki::testing::IssueNode(*root_, "mgr1", pki::Role::kManager, kCluster,
                                       absl::Hours(24), now);
    w1_ = pki::testing::IssueNode(*root_, "w1", pki::Role::kWorker, kCluster, absl::Hours(24), now);
    w2_ = pki::testing::IssueNode(*root_, "w2", pki::Role::kWorker, kCluster, absl::Hours(24), now);

    DispatcherOptions options;
    options.clock = &clock_;
    options.stop_grace = absl::Milliseconds(300);
    dispatcher_ = std::make_unique<Dispatcher>(&store_, &raft_, options);
    auto creds = pki::ServerCredentials({manager_.cert_pem, manager_.key_pem}, root_->cert_pem(),
                                        pki::ClientCertPolicy::kVerifyIfPresent);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(dispatcher_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override {
    dispatcher_->Stop();  // ends open streams, so Shutdown does not wait for them
    server_->Shutdown();
  }

  std::unique_ptr<api::Dispatcher::Stub> StubFor(const pki::testing::IssuedNode& node) {
    auto creds = pki::ChannelCredentials({node.cert_pem, node.key_pem}, root_->cert_pem());
    EXPECT_TRUE(creds.ok()) << creds.status();
    return api::Dispatcher::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port_), *creds, pki::ManagerChannelArguments()));
  }

  // Opens a session and reads its first message.
  SessionStream Open(api::Dispatcher::Stub* stub, const std::string& hostname = "host") {
    SessionStream s;
    s.ctx = Ctx();
    api::SessionRequest request;
    request.mutable_description()->set_hostname(hostname);
    s.reader = stub->Session(s.ctx.get(), request);
    EXPECT_TRUE(s.reader->Read(&s.first)) << s.reader->Finish().error_message();
    return s;
  }

  grpc::Status Heartbeat(api::Dispatcher::Stub* stub, const std::string& session_id,
                         absl::Duration* period = nullptr) {
    api::HeartbeatRequest request;
    request.set_session_id(session_id);
    api::HeartbeatResponse response;
    grpc::Status s = stub->Heartbeat(Ctx().get(), request, &response);
    if (period != nullptr) {
      *period =
          absl::Seconds(response.period().seconds()) + absl::Nanoseconds(response.period().nanos());
    }
    return s;
  }

  AssignmentsStream OpenAssignments(api::Dispatcher::Stub* stub, const std::string& session_id) {
    AssignmentsStream s;
    s.ctx = Ctx();
    api::AssignmentsRequest request;
    request.set_session_id(session_id);
    s.reader = stub->Assignments(s.ctx.get(), request);
    return s;
  }

  api::Node GetNode(const std::string& id) {
    api::Node node;
    store_.View([&](const store::ReadTx& tx) {
      if (const api::Node* n = tx.Get<api::Node>(id)) node = *n;
    });
    return node;
  }
  api::Task GetTask(const std::string& id) {
    api::Task task;
    store_.View([&](const store::ReadTx& tx) {
      if (const api::Task* t = tx.Get<api::Task>(id)) task = *t;
    });
    return task;
  }
  template <class T>
  void Create(T object) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) { return tx.Create(object); });
    ASSERT_TRUE(s.ok()) << s;
  }
  // Read-modify-write; retried when the dispatcher wrote the object meanwhile (a session's
  // registration is committed in the background).
  template <class T>
  void Change(const std::string& id, const std::function<void(T*)>& change) {
    absl::Status s;
    for (int attempt = 0; attempt < 10; ++attempt) {
      s = store_.Update([&](store::WriteTx& tx) {
        T o = *tx.Get<T>(id);
        change(&o);
        return tx.Update(std::move(o));
      });
      if (!absl::IsAborted(s)) break;
    }
    ASSERT_TRUE(s.ok()) << s;
  }
  void SetNodeState(const std::string& id, api::NodeStatus::State state) {
    Change<api::Node>(id, [&](api::Node* n) { n->mutable_status()->set_state(state); });
  }

  // Waits (event-driven, bounded) until `cond` holds on the store.
  bool WaitForStore(const std::function<bool(const store::ReadTx&)>& cond,
                    absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      bool holds = false;
      auto watcher = store_.ViewAndWatch([&](const store::ReadTx& tx) { holds = cond(tx); });
      if (holds) return true;
      auto change = watcher->Next(deadline);
      if (!change.ok() && change.status().code() == absl::StatusCode::kDeadlineExceeded) {
        return false;
      }
    }
  }
  bool WaitForNodeState(const std::string& id, api::NodeStatus::State state) {
    return WaitForStore([&](const store::ReadTx& tx) {
      const api::Node* n = tx.Get<api::Node>(id);
      return n != nullptr && n->status().state() == state;
    });
  }

  ManualClock clock_;
  store::DirectProposer proposer_;
  store::MemoryStore store_;
  FakeRaftControl raft_;
  std::unique_ptr<pki::RootCA> root_;
  pki::testing::IssuedNode manager_, w1_, w2_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(DispatcherTest, SessionMakesTheNodeReadyAndSendsTheFirstMessage) {
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get(), "host-w1");
  const api::SessionMessage& m = session.first;
  EXPECT_FALSE(m.session_id().empty());
  EXPECT_EQ(m.node().id(), "w1");
  EXPECT_EQ(m.node().status().state(), api::NodeStatus::READY);
  EXPECT_EQ(m.node().status().addr(), "127.0.0.1");
  EXPECT_EQ(m.node().description().hostname(), "host-w1");
  ASSERT_EQ(m.managers_size(), 1);
  EXPECT_EQ(m.managers(0).peer().node_id(), "mgr1");
  EXPECT_EQ(m.managers(0).peer().addr(), "10.0.0.1:2377");
  EXPECT_EQ(m.managers(0).weight(), 10);
  EXPECT_EQ(m.root_ca(), root_->cert_pem());

  // The registration is committed in the background.
  ASSERT_TRUE(WaitForNodeState("w1", api::NodeStatus::READY));
  const api::Node stored = GetNode("w1");
  EXPECT_EQ(stored.status().state(), api::NodeStatus::READY);
  EXPECT_EQ(stored.status().addr(), "127.0.0.1");
  EXPECT_EQ(stored.description().hostname(), "host-w1");
  EXPECT_EQ(dispatcher_->session_count(), 1u);
}

TEST_F(DispatcherTest, SessionSendsChangesOfNodeRootCaAndManagers) {
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  api::SessionMessage m;

  Change<api::Node>("w1", [](api::Node* n) {
    n->mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  });
  ASSERT_TRUE(session.Next(&m));
  EXPECT_EQ(m.session_id(), session.first.session_id());
  EXPECT_EQ(m.node().spec().availability(), api::NODE_AVAILABILITY_DRAIN);

  // A root rotation: both roots.
  pki::RootCA next = pki::testing::NewRootCA(absl::Now() - absl::Hours(1));
  Change<api::Cluster>(kCluster, [&](api::Cluster* c) {
    c->mutable_root_ca()->mutable_root_rotation()->set_ca_cert(next.cert_pem());
  });
  ASSERT_TRUE(session.Next(&m));
  EXPECT_EQ(m.root_ca(), root_->cert_pem() + next.cert_pem());

  // A new manager shows up at the next heartbeat period.
  raft_.SetMembers({{1, "mgr1", "10.0.0.1:2377", true, true, false},
                    {2, "mgr2", "10.0.0.2:2377", false, true, false}});
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(session.Next(&m));
  ASSERT_EQ(m.managers_size(), 2);
  EXPECT_EQ(m.managers(1).peer().node_id(), "mgr2");
  EXPECT_EQ(m.managers(1).peer().addr(), "10.0.0.2:2377");
}

TEST_F(DispatcherTest, HeartbeatsKeepTheNodeReady) {
  dispatcher_->Start();
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  ASSERT_TRUE(WaitForNodeState("w1", api::NodeStatus::READY));  // registered in the background
  const std::string id = session.first.session_id();
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(absl::Seconds(10));  // within 3 x 5 s of the last heartbeat
    absl::Duration period;
    grpc::Status s = Heartbeat(stub.get(), id, &period);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(period, absl::Seconds(5));
    dispatcher_->CheckLiveness();
    EXPECT_EQ(GetNode("w1").status().state(), api::NodeStatus::READY);
  }
  // The period comes from the cluster spec when set.
  Change<api::Cluster>(kCluster, [](api::Cluster* c) {
    c->mutable_spec()->mutable_dispatcher()->mutable_heartbeat_period()->set_seconds(2);
  });
  absl::Duration period;
  ASSERT_TRUE(Heartbeat(stub.get(), id, &period).ok());
  EXPECT_EQ(period, absl::Seconds(2));
}

TEST_F(DispatcherTest, MissedHeartbeatsMarkTheNodeDown) {
  dispatcher_->Start();
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  ASSERT_TRUE(WaitForNodeState("w1", api::NodeStatus::READY));  // registered in the background
  const std::string id = session.first.session_id();
  clock_.Advance(absl::Seconds(14));
  dispatcher_->CheckLiveness();
  EXPECT_EQ(GetNode("w1").status().state(), api::NodeStatus::READY);
  clock_.Advance(absl::Seconds(2));  // 16 s > 3 x 5 s: the loop notices
  ASSERT_TRUE(WaitForNodeState("w1", api::NodeStatus::DOWN));
  EXPECT_EQ(GetNode("w1").status().message(), "heartbeat failure");
  // The session is gone: its stream ends and its ID is unknown.
  grpc::Status end = session.End();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::NOT_FOUND) << end.error_message();
  EXPECT_THAT(end.error_message(), HasSubstr("expired"));
  EXPECT_EQ(Heartbeat(stub.get(), id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(dispatcher_->session_count(), 0u);
  // Reconnecting makes it READY again.
  SessionStream again = Open(stub.get());
  EXPECT_EQ(again.first.node().status().state(), api::NodeStatus::READY);
  EXPECT_NE(again.first.session_id(), id);
  EXPECT_TRUE(WaitForNodeState("w1", api::NodeStatus::READY));
}

TEST_F(DispatcherTest, NewLeaderGivesReadyNodesOneGrace) {
  // w1 and w2 were READY under the previous leader.
  SetNodeState("w1", api::NodeStatus::READY);
  SetNodeState("w2", api::NodeStatus::READY);
  dispatcher_->Start();
  clock_.Advance(absl::Seconds(10));
  // w1 reconnects within the grace; w2 never does.
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  dispatcher_->CheckLiveness();
  EXPECT_EQ(GetNode("w2").status().state(), api::NodeStatus::READY);
  clock_.Advance(absl::Seconds(6));  // 16 s since Start
  ASSERT_TRUE(WaitForNodeState("w2", api::NodeStatus::DOWN));
  EXPECT_EQ(GetNode("w2").status().message(), "heartbeat failure");
  EXPECT_EQ(GetNode("w1").status().state(), api::NodeStatus::READY);  // its session is 6 s old
  ASSERT_TRUE(Heartbeat(stub.get(), session.first.session_id()).ok());
}

TEST_F(DispatcherTest, NonLeaderRefusesNamingTheLeader) {
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  raft_.SetLeader(false);
  raft_.SetMembers({{1, "mgr1", "10.0.0.1:2377", false, true, false},
                    {2, "mgr2", "10.0.0.2:2377", true, true, false}});
  // The open stream ends so that the agent reconnects elsewhere.
  grpc::Status end = session.End();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(end.error_message(), "this manager is not the leader; the leader is at 10.0.0.2:2377");

  grpc::Status s = Heartbeat(stub.get(), session.first.session_id());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "this manager is not the leader; the leader is at 10.0.0.2:2377");
  auto ctx = Ctx();
  auto reader = stub->Session(ctx.get(), api::SessionRequest());
  api::SessionMessage m;
  EXPECT_FALSE(reader->Read(&m));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);

  raft_.SetMembers({{1, "mgr1", "10.0.0.1:2377", false, true, false}});
  s = Heartbeat(stub.get(), session.first.session_id());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("no leader is known"));
}

TEST_F(DispatcherTest, UnknownSessionIsNotFound) {
  auto stub = StubFor(w1_);
  EXPECT_EQ(Heartbeat(stub.get(), "nope").error_code(), grpc::StatusCode::NOT_FOUND);
  api::UpdateTaskStatusRequest update;
  update.set_session_id("nope");
  api::UpdateTaskStatusResponse response;
  EXPECT_EQ(stub->UpdateTaskStatus(Ctx().get(), update, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  AssignmentsStream assignments = OpenAssignments(stub.get(), "nope");
  api::AssignmentsMessage m;
  EXPECT_FALSE(assignments.Next(&m));
  EXPECT_EQ(assignments.reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  // Another node's session is not the caller's.
  auto stub2 = StubFor(w2_);
  SessionStream other = Open(stub2.get());
  grpc::Status s = Heartbeat(stub.get(), other.first.session_id());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("open a new session"));
}

TEST_F(DispatcherTest, NewerSessionReplacesTheOld) {
  auto stub = StubFor(w1_);
  SessionStream first = Open(stub.get());
  SessionStream second = Open(stub.get());
  grpc::Status end = first.End();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(end.error_message(), HasSubstr("replaced by a newer session"));
  EXPECT_EQ(Heartbeat(stub.get(), first.first.session_id()).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Heartbeat(stub.get(), second.first.session_id()).ok());
  EXPECT_EQ(dispatcher_->session_count(), 1u);
}

TEST_F(DispatcherTest, CertificatesOfOtherClustersAndRemovedNodesAreRefused) {
  auto foreign = pki::testing::IssueNode(*root_, "w1", pki::Role::kWorker, "cluster2",
                                         absl::Hours(24), absl::Now());
  auto stub = StubFor(foreign);
  grpc::Status s = Heartbeat(stub.get(), "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("cluster2"));

  Change<api::Cluster>(kCluster,
                       [](api::Cluster* c) { (*c->mutable_denied_certificates())["w2"]; });
  auto removed = StubFor(w2_);
  s = Heartbeat(removed.get(), "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("removed"));
}

TEST_F(DispatcherTest, StopEndsStreamsWithUnavailable) {
  dispatcher_->Start();
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  AssignmentsStream assignments = OpenAssignments(stub.get(), session.first.session_id());
  api::AssignmentsMessage m;
  ASSERT_TRUE(assignments.Next(&m));  // the stream is open on the dispatcher
  EXPECT_EQ(dispatcher_->stream_count(), 2u);
  dispatcher_->Stop();
  // Stop returns once every stream has finished.
  EXPECT_EQ(dispatcher_->stream_count(), 0u);
  grpc::Status end = session.End();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(end.error_message(), HasSubstr("dispatcher stopped"));
  EXPECT_FALSE(assignments.Next(&m));
  end = assignments.reader->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(end.error_message(), HasSubstr("dispatcher stopped"));
  EXPECT_EQ(dispatcher_->session_count(), 0u);
}

// An Assignments stream read with the callback API that never asks for a message: the
// dispatcher's first write stalls once it exceeds the flow-control window.
class StalledReader : public grpc::ClientReadReactor<api::AssignmentsMessage> {
 public:
  void OnReadInitialMetadataDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    metadata_ = true;  // the dispatcher started its first write
  }
  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    done_ = true;
    status_ = status;
  }
  bool WaitForMetadata() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&metadata_), absl::Seconds(20));
  }
  grpc::Status WaitDone() {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&done_), absl::Seconds(20));
    return done_ ? status_ : grpc::Status(grpc::StatusCode::INTERNAL, "not done");
  }

  grpc::ClientContext ctx;
  api::AssignmentsRequest request;
  api::AssignmentsMessage incoming;

 private:
  absl::Mutex mu_;
  bool metadata_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

TEST_F(DispatcherTest, StopCancelsAStreamWhoseAgentDoesNotRead) {
  api::Task big = MakeTask("big", "w1", api::TASK_STATE_ASSIGNED);
  (*big.mutable_annotations()->mutable_labels())["blob"] = std::string(8 << 20, 'x');
  Create(big);
  auto creds = pki::ChannelCredentials({w1_.cert_pem, w1_.key_pem}, root_->cert_pem());
  ASSERT_TRUE(creds.ok()) << creds.status();
  grpc::ChannelArguments args = pki::ManagerChannelArguments();
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);  // the window does not grow without reads
  args.SetMaxReceiveMessageSize(64 << 20);
  auto stub = api::Dispatcher::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), *creds, args));
  SessionStream session = Open(stub.get());
  StalledReader reader;
  reader.request.set_session_id(session.first.session_id());
  stub->async()->Assignments(&reader.ctx, &reader.request, &reader);
  reader.StartCall();
  ASSERT_TRUE(reader.WaitForMetadata());

  dispatcher_->Stop();  // ends the session stream; cancels the stalled one after the grace
  EXPECT_EQ(dispatcher_->stream_count(), 0u);
  EXPECT_EQ(session.End().error_code(), grpc::StatusCode::UNAVAILABLE);
  // The agent, reading at last, sees what came through and the end of the stream.
  reader.StartRead(&reader.incoming);
  const grpc::Status end = reader.WaitDone();
  EXPECT_TRUE(end.error_code() == grpc::StatusCode::CANCELLED ||
              end.error_code() == grpc::StatusCode::UNAVAILABLE)
      << end.error_code() << ": " << end.error_message();
}

TEST_F(DispatcherTest, AStreamEndsWithItsSession) {
  auto stub = StubFor(w1_);
  SessionStream first = Open(stub.get());
  AssignmentsStream assignments = OpenAssignments(stub.get(), first.first.session_id());
  api::AssignmentsMessage m;
  ASSERT_TRUE(assignments.Next(&m));
  // A newer session replaces the first: the first's assignment stream ends too.
  SessionStream second = Open(stub.get());
  EXPECT_FALSE(assignments.Next(&m));
  grpc::Status end = assignments.reader->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(end.error_message(), HasSubstr("replaced by a newer session"));
  // An assignment stream of an ended session is refused.
  AssignmentsStream late = OpenAssignments(stub.get(), first.first.session_id());
  EXPECT_FALSE(late.Next(&m));
  EXPECT_EQ(late.reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(DispatcherTest, RemovingTheNodeEndsItsStreams) {
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  ASSERT_TRUE(WaitForNodeState("w1", api::NodeStatus::READY));
  AssignmentsStream assignments = OpenAssignments(stub.get(), session.first.session_id());
  api::AssignmentsMessage m;
  ASSERT_TRUE(assignments.Next(&m));
  ASSERT_TRUE(store_.Update([](store::WriteTx& tx) { return tx.Delete<api::Node>("w1"); }).ok());
  grpc::Status end = session.End();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(end.error_message(),
            "node w1 was removed from the swarm; join again with a join token");
  EXPECT_FALSE(assignments.Next(&m));
  end = assignments.reader->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(dispatcher_->session_count(), 0u);
}

TEST_F(DispatcherTest, LeadershipLossEndsAssignmentStreams) {
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  AssignmentsStream assignments = OpenAssignments(stub.get(), session.first.session_id());
  api::AssignmentsMessage m;
  ASSERT_TRUE(assignments.Next(&m));
  raft_.SetMembers({{1, "mgr1", "10.0.0.1:2377", false, true, false},
                    {2, "mgr2", "10.0.0.2:2377", true, true, false}});
  raft_.SetLeader(false);
  EXPECT_FALSE(assignments.Next(&m));
  grpc::Status end = assignments.reader->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(end.error_message(), "this manager is not the leader; the leader is at 10.0.0.2:2377");
  EXPECT_EQ(session.End().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(DispatcherTest, UpdateTaskStatusAppliesOnlyTheNodesOwnTasksForward) {
  Create(MakeTask("t1", "w1", api::TASK_STATE_ASSIGNED));
  Create(MakeTask("t2", "w2", api::TASK_STATE_ASSIGNED));
  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());

  api::UpdateTaskStatusRequest request;
  request.set_session_id(session.first.session_id());
  auto* u1 = request.add_updates();
  u1->set_task_id("t1");
  u1->mutable_status()->set_state(api::TASK_STATE_RUNNING);
  u1->mutable_status()->set_message("started");
  auto* u2 = request.add_updates();
  u2->set_task_id("t2");
  u2->mutable_status()->set_state(api::TASK_STATE_RUNNING);
  auto* u3 = request.add_updates();
  u3->set_task_id("no-such-task");
  u3->mutable_status()->set_state(api::TASK_STATE_RUNNING);
  api::UpdateTaskStatusResponse response;
  grpc::Status s = stub->UpdateTaskStatus(Ctx().get(), request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();

  api::Task t1 = GetTask("t1");
  EXPECT_EQ(t1.status().state(), api::TASK_STATE_RUNNING);
  EXPECT_EQ(t1.status().message(), "started");
  EXPECT_EQ(t1.status().applied_by(), "w1");
  EXPECT_EQ(t1.status().applied_at().seconds(), absl::ToUnixSeconds(clock_.Now()));
  EXPECT_EQ(GetTask("t2").status().state(), api::TASK_STATE_ASSIGNED);  // not w1's

  // Backwards is ignored.
  request.clear_updates();
  auto* back = request.add_updates();
  back->set_task_id("t1");
  back->mutable_status()->set_state(api::TASK_STATE_PREPARING);
  ASSERT_TRUE(stub->UpdateTaskStatus(Ctx().get(), request, &response).ok());
  EXPECT_EQ(GetTask("t1").status().state(), api::TASK_STATE_RUNNING);
  // Forward to a terminal state is applied.
  back->mutable_status()->set_state(api::TASK_STATE_FAILED);
  back->mutable_status()->set_err("exit 1");
  ASSERT_TRUE(stub->UpdateTaskStatus(Ctx().get(), request, &response).ok());
  EXPECT_EQ(GetTask("t1").status().state(), api::TASK_STATE_FAILED);
  EXPECT_EQ(GetTask("t1").status().err(), "exit 1");
}

TEST_F(DispatcherTest, AssignmentsCompleteThenIncremental) {
  api::Secret secret;
  secret.set_id("s1");
  secret.mutable_spec()->mutable_annotations()->set_name("pw");
  secret.mutable_spec()->set_data("hunter2");
  Create(secret);
  api::Config config;
  config.set_id("c1");
  config.mutable_spec()->mutable_annotations()->set_name("conf");
  config.mutable_spec()->set_data("x=1");
  Create(config);
  api::Task t1 = MakeTask("t1", "w1", api::TASK_STATE_ASSIGNED);
  auto* sref = t1.mutable_spec()->mutable_container_spec()->add_secrets();
  sref->set_secret_id("s1");
  sref->set_secret_name("pw");
  t1.mutable_spec()->mutable_container_spec()->add_configs()->set_config_id("c1");
  Create(t1);
  Create(MakeTask("t2", "w2", api::TASK_STATE_ASSIGNED));                          // another node's
  Create(MakeTask("t3", "w1", api::TASK_STATE_SHUTDOWN, api::TASK_STATE_REMOVE));  // going away

  auto stub = StubFor(w1_);
  SessionStream session = Open(stub.get());
  AssignmentsStream stream = OpenAssignments(stub.get(), session.first.session_id());
  api::AssignmentsMessage m;
  ASSERT_TRUE(stream.Next(&m)) << stream.reader->Finish().error_message();
  EXPECT_EQ(m.type(), api::AssignmentsMessage::COMPLETE);
  EXPECT_THAT(Describe(m), ::testing::ElementsAre("config:c1", "secret:s1", "task:t1"));
  for (const auto& c : m.changes()) {
    if (c.assignment().has_secret()) {
      EXPECT_EQ(c.assignment().secret().spec().data(), "hunter2");
    }
  }
  std::string last = m.results_in();
  EXPECT_FALSE(last.empty());

  // A new task for the node.
  Create(MakeTask("t4", "w1", api::TASK_STATE_ASSIGNED));
  ASSERT_TRUE(stream.Next(&m));
  EXPECT_EQ(m.type(), api::AssignmentsMessage::INCREMENTAL);
  EXPECT_EQ(m.applies_to(), last);
  EXPECT_THAT(Describe(m), ::testing::ElementsAre("task:t4"));
  last = m.results_in();

  // A status-only change (the agent's own report) is not echoed; the next real change is.
  Change<api::Task>("t4",
                    [](api::Task* t) { t->mutable_status()->set_state(api::TASK_STATE_RUNNING); });
  Change<api::Task>("t2", [](api::Task* t) { t->set_desired_state(api::TASK_STATE_SHUTDOWN); });
  Change<api::Task>("t1", [](api::Task* t) { t->set_desired_state(api::TASK_STATE_SHUTDOWN); });
  ASSERT_TRUE(stream.Next(&m));
  EXPECT_EQ(m.applies_to(), last);
  EXPECT_THAT(Describe(m), ::testing::ElementsAre("task:t1"));
  EXPECT_EQ(m.changes(0).assignment().task().desired_state(), api::TASK_STATE_SHUTDOWN);
  last = m.results_in();

  // t1 is to be removed: it goes, and with it the secret and config only it used.
  Change<api::Task>("t1", [](api::Task* t) { t->set_desired_state(api::TASK_STATE_REMOVE); });
  ASSERT_TRUE(stream.Next(&m));
  EXPECT_EQ(m.applies_to(), last);
  EXPECT_THAT(Describe(m), ::testing::ElementsAre("-config:c1", "-secret:s1", "-task:t1"));
  last = m.results_in();

  // A task moved to the node that references the secret brings it back.
  Change<api::Task>("t2", [](api::Task* t) {
    t->set_node_id("w1");
    t->set_desired_state(api::TASK_STATE_RUNNING);
    t->mutable_spec()->mutable_container_spec()->add_secrets()->set_secret_id("s1");
  });
  ASSERT_TRUE(stream.Next(&m));
  EXPECT_THAT(Describe(m), ::testing::ElementsAre("secret:s1", "task:t2"));
  // Deleting a task removes it.
  ASSERT_TRUE(store_.Update([](store::WriteTx& tx) { return tx.Delete<api::Task>("t4"); }).ok());
  ASSERT_TRUE(stream.Next(&m));
  EXPECT_THAT(Describe(m), ::testing::ElementsAre("-task:t4"));
}

TEST_F(DispatcherTest, TasksOfALongDownNodeAreOrphaned) {
  // w2 went down (its last update is "now" on the manual clock); its tasks are unknown.
  SetNodeState("w2", api::NodeStatus::DOWN);
  Create(MakeTask("t1", "w2", api::TASK_STATE_RUNNING, api::TASK_STATE_SHUTDOWN));
  Create(MakeTask("t2", "w2", api::TASK_STATE_ASSIGNED));
  Create(MakeTask("t3", "w2", api::TASK_STATE_FAILED));   // finished: left as it is
  Create(MakeTask("t4", "w1", api::TASK_STATE_RUNNING));  // a live node's: untouched
  dispatcher_->CheckLiveness();
  clock_.Advance(absl::Hours(23));
  dispatcher_->CheckLiveness();
  EXPECT_EQ(GetTask("t1").status().state(), api::TASK_STATE_RUNNING);

  clock_.Advance(absl::Hours(1));
  dispatcher_->CheckLiveness();
  for (const char* id : {"t1", "t2"}) {
    const api::Task t = GetTask(id);
    EXPECT_EQ(t.status().state(), api::TASK_STATE_ORPHANED) << id;
    EXPECT_THAT(t.status().message(), HasSubstr("down for more than 24h")) << id;
  }
  EXPECT_EQ(GetTask("t3").status().state(), api::TASK_STATE_FAILED);
  EXPECT_EQ(GetTask("t4").status().state(), api::TASK_STATE_RUNNING);
  // Only the leader judges.
  Create(MakeTask("t5", "w2", api::TASK_STATE_RUNNING));
  raft_.SetLeader(false);
  clock_.Advance(absl::Hours(25));
  dispatcher_->CheckLiveness();
  EXPECT_EQ(GetTask("t5").status().state(), api::TASK_STATE_RUNNING);
}

TEST_F(DispatcherTest, ConcurrentReportsOfManyNodesAreAllCommitted) {
  // 40 concurrent reports from two nodes, group-committed (write_batcher_test shows the
  // batching itself deterministically).
  for (int i = 0; i < 40; ++i) {
    Create(MakeTask(absl::StrCat("t", i), i % 2 ? "w2" : "w1", api::TASK_STATE_ASSIGNED));
  }
  auto stub1 = StubFor(w1_);
  auto stub2 = StubFor(w2_);
  SessionStream s1 = Open(stub1.get());
  SessionStream s2 = Open(stub2.get());
  ASSERT_TRUE(WaitForNodeState("w1", api::NodeStatus::READY));
  ASSERT_TRUE(WaitForNodeState("w2", api::NodeStatus::READY));
  const size_t commits_before = dispatcher_->write_commits();
  std::vector<std::thread> reporters;
  std::atomic<int> failures{0};
  for (int i = 0; i < 40; ++i) {
    reporters.emplace_back([&, i] {
      api::UpdateTaskStatusRequest request;
      request.set_session_id(i % 2 ? s2.first.session_id() : s1.first.session_id());
      auto* u = request.add_updates();
      u->set_task_id(absl::StrCat("t", i));
      u->mutable_status()->set_state(api::TASK_STATE_RUNNING);
      api::UpdateTaskStatusResponse response;
      auto* stub = i % 2 ? stub2.get() : stub1.get();
      if (!stub->UpdateTaskStatus(Ctx().get(), request, &response).ok()) ++failures;
    });
  }
  for (auto& t : reporters) t.join();
  EXPECT_EQ(failures.load(), 0);
  // Every acknowledged report is in the store.
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(GetTask(absl::StrCat("t", i)).status().state(), api::TASK_STATE_RUNNING) << i;
  }
  EXPECT_GE(dispatcher_->write_commits() - commits_before, 1u);
}

TEST(PeerIpTest, Forms) {
  EXPECT_EQ(PeerIp("ipv4:10.1.2.3:4567"), "10.1.2.3");
  EXPECT_EQ(PeerIp("ipv6:[::1]:4567"), "::1");
  EXPECT_EQ(PeerIp("ipv6:%5Bfe80::1%5D:4567"), "fe80::1");
  EXPECT_EQ(PeerIp("unix:/run/shoal.sock"), "");
}

}  // namespace
}  // namespace shoal::manager
