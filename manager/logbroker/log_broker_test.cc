// The LogBroker over real mutual-TLS gRPC on 127.0.0.1, on a store with a DirectProposer: selector
// validation, routing to the nodes and back, close, nodes that are not connected, follow (nodes
// and tasks that come later), cancellation, slow subscribers and leadership loss. The agents are
// played by the test with their own node certificates.
#include "manager/logbroker/log_broker.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/cluster_object.h"
#include "manager/fake_raft_control.h"
#include "manager/logbroker/logs_forwarder.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"
#include "pki/grpc_tls.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"
#include "proto/logs.grpc.pb.h"

namespace shoal::manager {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr char kCluster[] = "cluster1";

std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Seconds(30)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

// Polls `cond` until it holds or `timeout` passes (a condition with a deadline, not a sleep).
bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!cond()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

api::LogMessage Line(const std::string& task_id, const std::string& data, int64_t seconds = 1,
                     api::LogStream stream = api::LOG_STREAM_STDOUT) {
  api::LogMessage m;
  m.mutable_context()->set_task_id(task_id);
  m.mutable_timestamp()->set_seconds(seconds);
  m.set_stream(stream);
  m.set_data(data);
  return m;
}

// An agent's ListenSubscriptions stream.
struct Listening {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReader<api::SubscriptionMessage>> reader;
  bool Next(api::SubscriptionMessage* m) { return reader->Read(m); }
};

// A subscriber's stream.
struct Subscribed {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::ClientReader<api::SubscribeLogsMessage>> reader;
  // Reads to the end: every line's data, in order, and the final status.
  grpc::Status ReadAll(std::vector<api::LogMessage>* lines) {
    api::SubscribeLogsMessage m;
    while (reader->Read(&m)) {
      for (const api::LogMessage& l : m.messages()) lines->push_back(l);
    }
    return reader->Finish();
  }
};

std::vector<std::string> Data(const std::vector<api::LogMessage>& lines) {
  std::vector<std::string> out;
  for (const api::LogMessage& l : lines) out.push_back(l.data());
  return out;
}

std::vector<std::string> Tasks(const api::SubscriptionMessage& m) {
  return {m.selector().task_ids().begin(), m.selector().task_ids().end()};
}

class LogBrokerTest : public ::testing::Test {
 protected:
  LogBrokerTest() : store_(&proposer_), raft_(1, "mgr1") { proposer_.Attach(&store_); }

  void SetUp() override {
    const absl::Time now = absl::Now();
    root_ = std::make_unique<pki::RootCA>(pki::testing::NewRootCA(now - absl::Hours(24)));
    api::Cluster cluster;
    cluster.set_id(kCluster);
    cluster.mutable_spec()->mutable_annotations()->set_name(kDefaultClusterName);
    cluster.mutable_root_ca()->set_ca_cert(root_->cert_pem());
    Create(cluster);
    Create(MakeNode("w1", "host-1"));
    Create(MakeNode("w2", "host-2"));
    api::Service svc;
    svc.set_id("svc1");
    svc.mutable_spec()->mutable_annotations()->set_name("web");
    Create(svc);
    Create(MakeTask("t1", "svc1", "w1"));
    Create(MakeTask("t2", "svc1", "w2"));
    Create(MakeTask("t3", "svc1", ""));     // not scheduled yet
    Create(MakeTask("t9", "other", "w1"));  // another service's task on w1
    raft_.SetMembers({{1, "mgr1", "10.0.0.1:2377", /*leader=*/true, true, false}});

    manager_ = pki::testing::IssueNode(*root_, "mgr1", pki::Role::kManager, kCluster,
                                       absl::Hours(24), now);
    w1_ = pki::testing::IssueNode(*root_, "w1", pki::Role::kWorker, kCluster, absl::Hours(24), now);
    w2_ = pki::testing::IssueNode(*root_, "w2", pki::Role::kWorker, kCluster, absl::Hours(24), now);

    StartBroker(LogBrokerOptions{});
  }

  void StartBroker(LogBrokerOptions options) {
    options.resync_interval = absl::Milliseconds(200);
    options.poll_interval = absl::Milliseconds(20);
    broker_ = std::make_unique<LogBroker>(&store_, &raft_, options);
    broker_->Start();
    auto creds = pki::ServerCredentials({manager_.cert_pem, manager_.key_pem}, root_->cert_pem(),
                                        pki::ClientCertPolicy::kVerifyIfPresent);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(broker_->logs_service());
    builder.RegisterService(broker_->broker_service());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override {
    broker_->Stop();  // ends open streams, so Shutdown does not wait for them
    server_->Shutdown();
  }

  static api::Node MakeNode(const std::string& id, const std::string& hostname) {
    api::Node node;
    node.set_id(id);
    node.mutable_description()->set_hostname(hostname);
    node.mutable_spec()->set_membership(api::NodeSpec::ACCEPTED);
    return node;
  }
  static api::Task MakeTask(const std::string& id, const std::string& service,
                            const std::string& node) {
    api::Task task;
    task.set_id(id);
    task.set_service_id(service);
    task.set_node_id(node);
    task.set_slot(1);
    task.set_desired_state(api::TASK_STATE_RUNNING);
    return task;
  }
  template <class T>
  void Create(T object) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) { return tx.Create(object); });
    ASSERT_TRUE(s.ok()) << s;
  }
  void AssignTask(const std::string& id, const std::string& node) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) {
      api::Task t = *tx.Get<api::Task>(id);
      t.set_node_id(node);
      return tx.Update(std::move(t));
    });
    ASSERT_TRUE(s.ok()) << s;
  }

  std::shared_ptr<grpc::Channel> ChannelFor(const pki::testing::IssuedNode& node) {
    auto creds = pki::ChannelCredentials({node.cert_pem, node.key_pem}, root_->cert_pem());
    EXPECT_TRUE(creds.ok()) << creds.status();
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), *creds,
                                     pki::ManagerChannelArguments());
  }

  Listening Listen(const pki::testing::IssuedNode& node) {
    Listening l;
    l.ctx = Ctx();
    l.reader = api::LogBroker::NewStub(ChannelFor(node))
                   ->ListenSubscriptions(l.ctx.get(), api::ListenSubscriptionsRequest());
    return l;
  }

  Subscribed Subscribe(const api::SubscribeLogsRequest& request,
                       const pki::testing::IssuedNode* as = nullptr) {
    Subscribed s;
    s.ctx = Ctx();
    s.reader = api::Logs::NewStub(ChannelFor(as != nullptr ? *as : manager_))
                   ->SubscribeLogs(s.ctx.get(), request);
    return s;
  }

  static api::SubscribeLogsRequest ForService(const std::string& id, bool follow = false) {
    api::SubscribeLogsRequest r;
    r.mutable_selector()->add_service_ids(id);
    r.mutable_options()->set_follow(follow);
    return r;
  }

  // Publishes `lines` (then close, if `close`) for `sub_id` as `node`; returns the status.
  grpc::Status Publish(const pki::testing::IssuedNode& node, const std::string& sub_id,
                       const std::vector<api::LogMessage>& lines, bool close = true) {
    auto ctx = Ctx();
    api::PublishLogsResponse response;
    auto writer = api::LogBroker::NewStub(ChannelFor(node))->PublishLogs(ctx.get(), &response);
    api::PublishLogsMessage m;
    m.set_subscription_id(sub_id);
    for (const api::LogMessage& l : lines) *m.add_messages() = l;
    m.set_close(close);
    writer->Write(m);
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status SubscribeStatus(const api::SubscribeLogsRequest& request,
                               const pki::testing::IssuedNode* as = nullptr) {
    Subscribed s = Subscribe(request, as);
    std::vector<api::LogMessage> lines;
    return s.ReadAll(&lines);
  }

  bool WaitForListeners(size_t n) {
    return WaitFor([&] { return broker_->stats().listeners == n; });
  }

  store::DirectProposer proposer_;
  store::MemoryStore store_;
  FakeRaftControl raft_;
  std::unique_ptr<pki::RootCA> root_;
  pki::testing::IssuedNode manager_, w1_, w2_;
  std::unique_ptr<LogBroker> broker_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(LogBrokerTest, SelectorIsValidated) {
  api::SubscribeLogsRequest empty;
  grpc::Status s = SubscribeStatus(empty);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("names no service, node or task"));

  api::SubscribeLogsRequest blank;
  blank.mutable_selector()->add_task_ids("");
  s = SubscribeStatus(blank);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("empty task ID"));

  api::SubscribeLogsRequest stream = ForService("svc1");
  stream.mutable_options()->add_streams(api::LOG_STREAM_UNKNOWN);
  s = SubscribeStatus(stream);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown log stream"));

  s = SubscribeStatus(ForService("nope"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("service nope not found"));
}

TEST_F(LogBrokerTest, OnlyManagersSubscribeAndOnlyTheLeaderServes) {
  grpc::Status s = SubscribeStatus(ForService("svc1"), &w1_);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();

  raft_.SetLeader(false);
  raft_.SetMembers({{1, "mgr1", "10.0.0.1:2377", false, true, false},
                    {2, "mgr2", "10.0.0.2:2377", true, true, false}});
  s = SubscribeStatus(ForService("svc1"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("the leader is at 10.0.0.2:2377"));
  Listening l = Listen(w1_);
  api::SubscriptionMessage m;
  EXPECT_FALSE(l.Next(&m));
  EXPECT_EQ(l.reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(LogBrokerTest, RoutesToTheNodesAndBackThenFinishesWhenAllClosed) {
  Listening l1 = Listen(w1_);
  Listening l2 = Listen(w2_);
  ASSERT_TRUE(WaitForListeners(2));
  Subscribed sub = Subscribe(ForService("svc1"));

  api::SubscriptionMessage m1, m2;
  ASSERT_TRUE(l1.Next(&m1));
  ASSERT_TRUE(l2.Next(&m2));
  EXPECT_EQ(m1.id(), m2.id());
  EXPECT_THAT(Tasks(m1), ElementsAre("t1"));  // not t9 (another service), not t2 (w2's)
  EXPECT_THAT(Tasks(m2), ElementsAre("t2"));
  EXPECT_FALSE(m1.close());

  // w1 also tries to slip in a line of a task it was not asked for: dropped.
  EXPECT_TRUE(Publish(w1_, m1.id(), {Line("t1", "one\n"), Line("t9", "not yours\n")}).ok());
  EXPECT_TRUE(
      Publish(w2_, m2.id(), {Line("t2", "two\n"), Line("t2", "err\n", 2, api::LOG_STREAM_STDERR)})
          .ok());

  std::vector<api::LogMessage> lines;
  grpc::Status s = sub.ReadAll(&lines);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(Data(lines), UnorderedElementsAre("one\n", "two\n", "err\n"));
  for (const api::LogMessage& l : lines) {
    EXPECT_EQ(l.context().service_id(), "svc1");
    EXPECT_EQ(l.context().node_id(), l.context().task_id() == "t1" ? "w1" : "w2");
  }
  EXPECT_EQ(broker_->stats().lines_dropped, 1u);
  EXPECT_EQ(broker_->stats().subscriptions, 0u);

  // The subscription is over: publishing for it again is refused.
  EXPECT_EQ(Publish(w1_, m1.id(), {Line("t1", "late\n")}).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(LogBrokerTest, PublishingForAnotherNodesSubscriptionIsRefused) {
  Listening l1 = Listen(w1_);
  ASSERT_TRUE(WaitForListeners(1));
  api::SubscribeLogsRequest r;
  r.mutable_selector()->add_task_ids("t1");
  Subscribed sub = Subscribe(r);
  api::SubscriptionMessage m;
  ASSERT_TRUE(l1.Next(&m));
  grpc::Status s = Publish(w2_, m.id(), {Line("t1", "forged\n")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_TRUE(Publish(w1_, m.id(), {Line("t1", "real\n")}).ok());
  std::vector<api::LogMessage> lines;
  EXPECT_TRUE(sub.ReadAll(&lines).ok());
  EXPECT_THAT(Data(lines), ElementsAre("real\n"));
}

TEST_F(LogBrokerTest, NodeNotConnectedIsNamedAfterTheOthersLines) {
  Listening l1 = Listen(w1_);
  ASSERT_TRUE(WaitForListeners(1));
  Subscribed sub = Subscribe(ForService("svc1"));
  api::SubscriptionMessage m;
  ASSERT_TRUE(l1.Next(&m));
  EXPECT_TRUE(Publish(w1_, m.id(), {Line("t1", "one\n")}).ok());
  std::vector<api::LogMessage> lines;
  grpc::Status s = sub.ReadAll(&lines);
  EXPECT_THAT(Data(lines), ElementsAre("one\n"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("incomplete log stream"));
  EXPECT_THAT(s.error_message(), HasSubstr("host-2 (w2) is not connected"));
}

TEST_F(LogBrokerTest, NothingSelectedFinishesAtOnce) {
  api::SubscribeLogsRequest r;
  r.mutable_selector()->add_task_ids("t3");  // no node yet
  std::vector<api::LogMessage> lines;
  Subscribed sub = Subscribe(r);
  EXPECT_TRUE(sub.ReadAll(&lines).ok());
  EXPECT_TRUE(lines.empty());
}

TEST_F(LogBrokerTest, FollowAddsNodesAndTasksThatComeLaterAndCancelClosesThem) {
  Listening l1 = Listen(w1_);
  ASSERT_TRUE(WaitForListeners(1));
  Subscribed sub = Subscribe(ForService("svc1", /*follow=*/true));
  api::SubscriptionMessage m1;
  ASSERT_TRUE(l1.Next(&m1));
  EXPECT_THAT(Tasks(m1), ElementsAre("t1"));

  // w2 connects later: it gets the subscription with its task.
  Listening l2 = Listen(w2_);
  api::SubscriptionMessage m2;
  ASSERT_TRUE(l2.Next(&m2));
  EXPECT_EQ(m2.id(), m1.id());
  EXPECT_THAT(Tasks(m2), ElementsAre("t2"));

  // t3 is scheduled on w2: w2 gets the subscription again, now with both tasks.
  AssignTask("t3", "w2");
  api::SubscriptionMessage m3;
  ASSERT_TRUE(l2.Next(&m3));
  EXPECT_EQ(m3.id(), m1.id());
  EXPECT_THAT(Tasks(m3), ElementsAre("t2", "t3"));

  // Lines flow while following (a publish stream stays open).
  auto ctx = Ctx();
  api::PublishLogsResponse response;
  auto writer = api::LogBroker::NewStub(ChannelFor(w2_))->PublishLogs(ctx.get(), &response);
  api::PublishLogsMessage pm;
  pm.set_subscription_id(m1.id());
  *pm.add_messages() = Line("t3", "new task\n");
  ASSERT_TRUE(writer->Write(pm));
  api::SubscribeLogsMessage got;
  ASSERT_TRUE(sub.reader->Read(&got));
  ASSERT_EQ(got.messages_size(), 1);
  EXPECT_EQ(got.messages(0).data(), "new task\n");
  EXPECT_EQ(got.messages(0).context().node_id(), "w2");

  // The subscriber goes away: both nodes are told to stop, and the publish stream ends.
  sub.ctx->TryCancel();
  api::SubscriptionMessage c1, c2;
  ASSERT_TRUE(l1.Next(&c1));
  ASSERT_TRUE(l2.Next(&c2));
  EXPECT_TRUE(c1.close());
  EXPECT_TRUE(c2.close());
  EXPECT_EQ(c1.id(), m1.id());
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitFor([&] { return broker_->stats().subscriptions == 0; }));
}

// --tail counts the lines that existed when the subscription began: a node that is involved
// only later (a task was assigned to it since) gets the subscription without the tail.
TEST_F(LogBrokerTest, FollowHandsANodeInvolvedLaterTheSubscriptionWithoutTail) {
  Listening l1 = Listen(w1_);
  Listening l2 = Listen(w2_);
  ASSERT_TRUE(WaitForListeners(2));
  api::SubscribeLogsRequest request;
  request.mutable_selector()->add_task_ids("t1");  // on w1
  request.mutable_selector()->add_task_ids("t3");  // not scheduled yet
  request.mutable_options()->set_follow(true);
  request.mutable_options()->set_tail(2);
  Subscribed sub = Subscribe(request);
  api::SubscriptionMessage m1;
  ASSERT_TRUE(l1.Next(&m1));
  EXPECT_THAT(Tasks(m1), ElementsAre("t1"));
  ASSERT_TRUE(m1.options().has_tail());
  EXPECT_EQ(m1.options().tail(), 2u);

  AssignTask("t3", "w2");
  api::SubscriptionMessage m2;
  ASSERT_TRUE(l2.Next(&m2));
  EXPECT_EQ(m2.id(), m1.id());
  EXPECT_THAT(Tasks(m2), ElementsAre("t3"));
  EXPECT_TRUE(m2.options().follow());
  EXPECT_FALSE(m2.options().has_tail());
  sub.ctx->TryCancel();
}

TEST_F(LogBrokerTest, SlowSubscriberHoldsItsPublisherBackAndLosesNothing) {
  broker_->Stop();
  server_->Shutdown();
  LogBrokerOptions options;
  options.subscriber_buffer_lines = 4;
  options.max_lines_per_message = 2;
  StartBroker(options);

  Listening l1 = Listen(w1_);
  ASSERT_TRUE(WaitForListeners(1));
  api::SubscribeLogsRequest r;
  r.mutable_selector()->add_task_ids("t1");
  Subscribed sub = Subscribe(r);
  api::SubscriptionMessage m;
  ASSERT_TRUE(l1.Next(&m));

  // Big lines, so that the transport's windows fill and the broker must hold lines back.
  constexpr int kLines = 400;
  const std::string filler(16 * 1024, 'x');
  std::atomic<bool> published{false};
  grpc::Status publish_status;
  std::thread publisher([&] {
    auto ctx = Ctx();
    api::PublishLogsResponse response;
    auto writer = api::LogBroker::NewStub(ChannelFor(w1_))->PublishLogs(ctx.get(), &response);
    for (int i = 0; i < kLines; ++i) {
      api::PublishLogsMessage pm;
      pm.set_subscription_id(m.id());
      *pm.add_messages() = Line("t1", absl::StrCat(i, " ", filler, "\n"), i);
      pm.set_close(i == kLines - 1);
      if (!writer->Write(pm)) break;
    }
    writer->WritesDone();
    publish_status = writer->Finish();
    published = true;
  });
  // The subscriber reads nothing: the broker pauses the publisher, which cannot finish.
  ASSERT_TRUE(WaitFor([&] { return broker_->stats().publisher_pauses > 0; }));
  EXPECT_FALSE(published.load());

  std::vector<api::LogMessage> lines;
  grpc::Status s = sub.ReadAll(&lines);
  publisher.join();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(publish_status.ok()) << publish_status.error_message();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kLines));
  for (int i = 0; i < kLines; ++i) {
    EXPECT_EQ(lines[i].data().substr(0, lines[i].data().find(' ')), absl::StrCat(i));
  }
}

TEST_F(LogBrokerTest, StopEndsEveryStreamUnavailable) {
  Listening l1 = Listen(w1_);
  ASSERT_TRUE(WaitForListeners(1));
  Subscribed sub = Subscribe(ForService("svc1", /*follow=*/true));
  api::SubscriptionMessage m;
  ASSERT_TRUE(l1.Next(&m));
  broker_->Stop();
  std::vector<api::LogMessage> lines;
  grpc::Status s = sub.ReadAll(&lines);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("stopped leading"));
  while (l1.Next(&m)) {
  }
  EXPECT_EQ(l1.reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  // And new calls are refused until it leads again.
  EXPECT_EQ(SubscribeStatus(ForService("svc1")).error_code(), grpc::StatusCode::UNAVAILABLE);
  broker_->Start();
  Listening again = Listen(w1_);
  ASSERT_TRUE(WaitForListeners(1));
}

TEST_F(LogBrokerTest, ForwarderRelaysToTheLeader) {
  Listening l1 = Listen(w1_);
  Listening l2 = Listen(w2_);
  ASSERT_TRUE(WaitForListeners(2));
  // The forwarder on an insecure local server, dialling the broker as the manager.
  LogsForwarder forwarder(
      [this]() -> absl::StatusOr<std::shared_ptr<grpc::Channel>> { return ChannelFor(manager_); });
  int local_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &local_port);
  builder.RegisterService(&forwarder);
  std::unique_ptr<grpc::Server> local = builder.BuildAndStart();
  ASSERT_NE(local, nullptr);
  auto stub = api::Logs::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", local_port),
                                                     grpc::InsecureChannelCredentials()));
  Subscribed sub;
  sub.ctx = Ctx();
  sub.reader = stub->SubscribeLogs(sub.ctx.get(), ForService("svc1"));
  api::SubscriptionMessage m1, m2;
  ASSERT_TRUE(l1.Next(&m1));
  ASSERT_TRUE(l2.Next(&m2));
  EXPECT_TRUE(Publish(w1_, m1.id(), {Line("t1", "one\n")}).ok());
  EXPECT_TRUE(Publish(w2_, m2.id(), {Line("t2", "two\n")}).ok());
  std::vector<api::LogMessage> lines;
  EXPECT_TRUE(sub.ReadAll(&lines).ok());
  EXPECT_THAT(Data(lines), UnorderedElementsAre("one\n", "two\n"));

  // Errors come through unchanged; a failing dial ends the call with its status.
  Subscribed bad;
  bad.ctx = Ctx();
  bad.reader = stub->SubscribeLogs(bad.ctx.get(), ForService("nope"));
  EXPECT_EQ(bad.ReadAll(&lines).error_code(), grpc::StatusCode::NOT_FOUND);

  LogsForwarder refusing([]() -> absl::StatusOr<std::shared_ptr<grpc::Channel>> {
    return absl::FailedPreconditionError("this node is not a manager");
  });
  int refusing_port = 0;
  grpc::ServerBuilder b2;
  b2.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &refusing_port);
  b2.RegisterService(&refusing);
  std::unique_ptr<grpc::Server> refusing_server = b2.BuildAndStart();
  auto stub2 = api::Logs::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", refusing_port),
                                                      grpc::InsecureChannelCredentials()));
  Subscribed refused;
  refused.ctx = Ctx();
  refused.reader = stub2->SubscribeLogs(refused.ctx.get(), ForService("svc1"));
  grpc::Status s = refused.ReadAll(&lines);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("not a manager"));
  refusing_server->Shutdown();
  local->Shutdown();
}

}  // namespace
}  // namespace shoal::manager
