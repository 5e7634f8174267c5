// The Dispatcher at scale, over real mutual-TLS gRPC on 127.0.0.1 in one process: 300 nodes each
// hold a Session and an Assignments stream. The process's thread count must not grow with the
// number of open streams, every stream must get its assignments, and one node that stops
// reading must neither hold up the others nor make its own changes pile up (they coalesce by
// task while its write is stuck).
//
// The clients use gRPC's callback API (ClientReadReactor), so they add no thread per stream
// either: the growth measured is the server's.
#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "manager/cluster_object.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/fake_raft_control.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"
#include "pki/grpc_tls.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::manager {
namespace {

constexpr char kCluster[] = "cluster1";
constexpr int kNodes = 300;
// Allowed growth of the process's threads with all 2 x kNodes streams open: gRPC's own pools
// (executor, timers, callback pollers) are bounded by the number of cores, not by the streams.
constexpr int kMaxThreadGrowth = 60;

// The process's thread count, from /proc/self/status.
int Threads() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest(line);
    if (absl::ConsumePrefix(&rest, "Threads:")) {
      int n = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &n)) return n;
    }
  }
  return -1;
}

std::string NodeId(int i) { return absl::StrCat("node-", i); }

api::Task MakeTask(const std::string& id, const std::string& node_id) {
  api::Task task;
  task.set_id(id);
  task.set_service_id("svc1");
  task.set_node_id(node_id);
  task.set_desired_state(api::TASK_STATE_RUNNING);
  task.mutable_status()->set_state(api::TASK_STATE_ASSIGNED);
  task.mutable_spec()->mutable_container_spec()->set_image("busybox");
  return task;
}

// A server stream read with the callback API. Reads until the stream ends, unless paused: then
// it stops asking for messages (so the server's writes stall on flow control) until resumed.
template <class Message>
class Reader : public grpc::ClientReadReactor<Message> {
 public:
  explicit Reader(bool pause_after_first) : pause_after_first_(pause_after_first) {
    ctx_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(5)));
  }

  grpc::ClientContext* context() { return &ctx_; }

  // Call after the stub's async()->Method(context(), request, this).
  void Begin() {
    this->StartRead(&incoming_);
    this->StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    bool next = true;
    {
      absl::MutexLock lock(&mu_);
      messages_.push_back(incoming_);
      if (pause_after_first_ && messages_.size() == 1) paused_ = true;
      if (paused_) {
        reading_ = false;
        next = false;
      }
    }
    if (next) this->StartRead(&incoming_);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    done_ = true;
    status_ = status;
  }

  void Resume() {
    {
      absl::MutexLock lock(&mu_);
      paused_ = false;
      if (reading_ || done_) return;
      reading_ = true;
    }
    this->StartRead(&incoming_);
  }

  // Waits until `pred(messages)` holds or the stream ended; returns whether it holds.
  bool WaitFor(const std::function<bool(const std::vector<Message>&)>& pred,
               absl::Duration timeout = absl::Seconds(60)) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || pred(messages_); };
    mu_.AwaitWithTimeout(absl::Condition(&cond), timeout);
    return pred(messages_);
  }
  bool WaitDone(absl::Duration timeout = absl::Seconds(60)) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
    return done_;
  }
  std::vector<Message> messages() {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  grpc::Status status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  const bool pause_after_first_;
  grpc::ClientContext ctx_;
  Message incoming_;
  absl::Mutex mu_;
  std::vector<Message> messages_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_ ABSL_GUARDED_BY(mu_) = true;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// Whether a message updates task `id` (with the given spec version, if >= 0).
bool HasTask(const api::AssignmentsMessage& m, const std::string& id, int64_t spec_version = -1) {
  for (const api::AssignmentChange& c : m.changes()) {
    if (c.action() != api::AssignmentChange::UPDATE || !c.assignment().has_task()) continue;
    const api::Task& t = c.assignment().task();
    if (t.id() == id && (spec_version < 0 || t.spec_version().index() == spec_version)) {
      return true;
    }
  }
  return false;
}

bool AnyHasTask(const std::vector<api::AssignmentsMessage>& ms, const std::string& id,
                int64_t spec_version = -1) {
  return std::any_of(ms.begin(), ms.end(), [&](const api::AssignmentsMessage& m) {
    return HasTask(m, id, spec_version);
  });
}

class DispatcherScaleTest : public ::testing::Test {
 protected:
  DispatcherScaleTest() : store_(&proposer_, store::StoreOptions{&clock_}), raft_(1, "mgr1") {
    proposer_.Attach(&store_);
  }

  void SetUp() override {
    const absl::Time now = absl::Now();
    root_ = std::make_unique<pki::RootCA>(pki::testing::NewRootCA(now - absl::Hours(24)));
    api::Cluster cluster;
    cluster.set_id(kCluster);
    cluster.mutable_spec()->mutable_annotations()->set_name(kDefaultClusterName);
    cluster.mutable_root_ca()->set_ca_cert(root_->cert_pem());
    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) -> absl::Status {
                      if (absl::Status s = tx.Create(cluster); !s.ok()) return s;
                      for (int i = 0; i < kNodes; ++i) {
                        api::Node node;
                        node.set_id(NodeId(i));
                        node.mutable_spec()->set_membership(api::NodeSpec::ACCEPTED);
                        if (absl::Status s = tx.Create(node); !s.ok()) return s;
                        if (absl::Status s = tx.Create(MakeTask(absl::StrCat("t-", i), NodeId(i)));
                            !s.ok()) {
                          return s;
                        }
                      }
                      return absl::OkStatus();
                    })
                    .ok());
    raft_.SetMembers({{1, "mgr1", "10.0.0.1:2377", /*leader=*/true, true, false}});
    manager_ = pki::testing::IssueNode(*root_, "mgr1", pki::Role::kManager, kCluster,
                                       absl::Hours(24), now);
    for (int i = 0; i < kNodes; ++i) {
      nodes_.push_back(pki::testing::IssueNode(*root_, NodeId(i), pki::Role::kWorker, kCluster,
                                               absl::Hours(24), now));
    }

    DispatcherOptions options;
    options.clock = &clock_;
    dispatcher_ = std::make_unique<Dispatcher>(&store_, &raft_, options);
    auto creds = pki::ServerCredentials({manager_.cert_pem, manager_.key_pem}, root_->cert_pem(),
                                        pki::ClientCertPolicy::kVerifyIfPresent);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(dispatcher_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);

    for (int i = 0; i < kNodes; ++i) {
      auto ccreds =
          pki::ChannelCredentials({nodes_[i].cert_pem, nodes_[i].key_pem}, root_->cert_pem());
      ASSERT_TRUE(ccreds.ok()) << ccreds.status();
      grpc::ChannelArguments args = pki::ManagerChannelArguments();
      // Every node its own connection (and so its own certificate).
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      if (i == 0) {
        // The slow reader: a flow-control window that does not grow by itself, so that a large
        // message stalls the server's write until the reader reads.
        args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
        args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 * 1024);
        args.SetMaxReceiveMessageSize(64 << 20);
      }
      stubs_.push_back(api::Dispatcher::NewStub(
          grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), *ccreds, args)));
    }
  }

  void TearDown() override {
    dispatcher_->Stop();  // ends every stream
    for (auto& r : sessions_) EXPECT_TRUE(r->WaitDone());
    for (auto& r : assignments_) EXPECT_TRUE(r->WaitDone());
    server_->Shutdown();
  }

  ManualClock clock_;
  store::DirectProposer proposer_;
  store::MemoryStore store_;
  FakeRaftControl raft_;
  std::unique_ptr<pki::RootCA> root_;
  pki::testing::IssuedNode manager_;
  std::vector<pki::testing::IssuedNode> nodes_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::vector<std::unique_ptr<api::Dispatcher::Stub>> stubs_;
  std::vector<api::SessionRequest> session_requests_ = std::vector<api::SessionRequest>(kNodes);
  std::vector<api::AssignmentsRequest> assignment_requests_ =
      std::vector<api::AssignmentsRequest>(kNodes);
  std::vector<std::unique_ptr<Reader<api::SessionMessage>>> sessions_;
  std::vector<std::unique_ptr<Reader<api::AssignmentsMessage>>> assignments_;
};

TEST_F(DispatcherScaleTest, ManyStreamsFewThreadsAndASlowReaderBlocksNobody) {
  // Warm up gRPC's lazily started pools (and a connection) with one unary call.
  {
    grpc::ClientContext ctx;
    api::HeartbeatRequest request;
    request.set_session_id("warm-up");
    api::HeartbeatResponse response;
    EXPECT_EQ(stubs_[0]->Heartbeat(&ctx, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  const int before = Threads();

  for (int i = 0; i < kNodes; ++i) {
    session_requests_[i].mutable_description()->set_hostname(NodeId(i));
    sessions_.push_back(std::make_unique<Reader<api::SessionMessage>>(false));
    stubs_[i]->async()->Session(sessions_[i]->context(), &session_requests_[i], sessions_[i].get());
    sessions_[i]->Begin();
  }
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(sessions_[i]->WaitFor([](const auto& ms) { return !ms.empty(); }))
        << i << ": " << sessions_[i]->status().error_message();
    const api::SessionMessage first = sessions_[i]->messages().front();
    EXPECT_EQ(first.node().id(), NodeId(i));
    assignment_requests_[i].set_session_id(first.session_id());
    // Node 0 reads its COMPLETE set, then stops reading.
    assignments_.push_back(std::make_unique<Reader<api::AssignmentsMessage>>(i == 0));
    stubs_[i]->async()->Assignments(assignments_[i]->context(), &assignment_requests_[i],
                                    assignments_[i].get());
    assignments_[i]->Begin();
  }
  for (int i = 0; i < kNodes; ++i) {
    const std::string task = absl::StrCat("t-", i);
    ASSERT_TRUE(assignments_[i]->WaitFor([&](const auto& ms) { return AnyHasTask(ms, task); }))
        << i << ": " << assignments_[i]->status().error_message();
    EXPECT_EQ(assignments_[i]->messages().front().type(), api::AssignmentsMessage::COMPLETE);
  }
  EXPECT_EQ(dispatcher_->session_count(), static_cast<size_t>(kNodes));
  const int during = Threads();
  std::cout << "threads: " << before << " before, " << during << " with " << kNodes
            << " sessions + " << kNodes << " assignment streams open (growth " << during - before
            << ")\n";
  RecordProperty("threads_before", before);
  RecordProperty("threads_with_streams", during);
  EXPECT_LT(during - before, kMaxThreadGrowth);

  // Node 0 gets a task too large for its flow-control window: the write stalls.
  api::Task big = MakeTask("big-0", NodeId(0));
  (*big.mutable_annotations()->mutable_labels())["blob"] = std::string(2 << 20, 'x');
  ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(big); }).ok());

  // Every node gets a new task; all but node 0 receive it while node 0 is stuck.
  ASSERT_TRUE(store_
                  .Update([](store::WriteTx& tx) -> absl::Status {
                    for (int i = 0; i < kNodes; ++i) {
                      if (absl::Status s = tx.Create(MakeTask(absl::StrCat("u-", i), NodeId(i)));
                          !s.ok()) {
                        return s;
                      }
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  for (int i = 1; i < kNodes; ++i) {
    const std::string task = absl::StrCat("u-", i);
    ASSERT_TRUE(assignments_[i]->WaitFor([&](const auto& ms) { return AnyHasTask(ms, task); }))
        << i << ": " << assignments_[i]->status().error_message();
    const auto ms = assignments_[i]->messages();
    EXPECT_EQ(ms.back().type(), api::AssignmentsMessage::INCREMENTAL);
    EXPECT_EQ(ms.back().applies_to(), ms[ms.size() - 2].results_in());
  }
  ASSERT_EQ(assignments_[0]->messages().size(), 1u);  // still paused

  // While node 0's write is stuck, 100 changes to one of its tasks coalesce into one.
  for (int v = 1; v <= 100; ++v) {
    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) {
                      api::Task t = *tx.Get<api::Task>("t-0");
                      t.mutable_spec_version()->set_index(v);
                      return tx.Update(std::move(t));
                    })
                    .ok());
  }
  assignments_[0]->Resume();
  ASSERT_TRUE(assignments_[0]->WaitFor([](const auto& ms) {
    return AnyHasTask(ms, "big-0") && AnyHasTask(ms, "u-0") && AnyHasTask(ms, "t-0", 100);
  })) << assignments_[0]->status().error_message();
  const auto ms = assignments_[0]->messages();
  int t0_updates = 0;
  for (size_t k = 1; k < ms.size(); ++k) {
    EXPECT_EQ(ms[k].type(), api::AssignmentsMessage::INCREMENTAL);
    EXPECT_EQ(ms[k].applies_to(), ms[k - 1].results_in());
    for (const auto& c : ms[k].changes()) {
      if (c.assignment().has_task() && c.assignment().task().id() == "t-0") ++t0_updates;
    }
  }
  EXPECT_EQ(t0_updates, 1) << "the 100 changes to t-0 should have coalesced into one";
  EXPECT_LE(ms.size(), 4u);

  // Stop ends every stream with UNAVAILABLE.
  dispatcher_->Stop();
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(sessions_[i]->WaitDone());
    ASSERT_TRUE(assignments_[i]->WaitDone());
    EXPECT_EQ(sessions_[i]->status().error_code(), grpc::StatusCode::UNAVAILABLE) << i;
    EXPECT_EQ(assignments_[i]->status().error_code(), grpc::StatusCode::UNAVAILABLE) << i;
  }
  EXPECT_EQ(dispatcher_->session_count(), 0u);
}

}  // namespace
}  // namespace shoal::manager
