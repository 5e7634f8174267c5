// The agent's dispatcher session against fake Dispatchers served in-process over mutual TLS on
// 127.0.0.1. Real clock with short periods (the dispatcher returns a 200 ms heartbeat period);
// every wait is on a condition with a deadline.
//
// gRPC checks certificate dates against the real clock, so certificates are issued relative to
// absl::Now().
#include "agent/session.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/grpc_tls.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"
#include "proto/dispatcher.grpc.pb.h"

namespace shoal::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr char kCluster[] = "c1";
constexpr absl::Duration kPeriod = absl::Milliseconds(200);
constexpr absl::Duration kWait = absl::Seconds(15);

// Polls `cond` until it holds or `timeout` passes.
bool Eventually(const std::function<bool()>& cond, absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!cond()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// A Dispatcher as the leader (or a follower) serves it, with knobs for the tests.
class FakeDispatcher final : public api::Dispatcher::Service {
 public:
  enum class Mode {
    kServe,     // Open sessions: one SessionMessage, then hold the stream.
    kRedirect,  // Answer UNAVAILABLE with `redirect_message`.
    kHang,      // Accept the stream and never send anything.
  };

  explicit FakeDispatcher(std::string name) : name_(std::move(name)) {}

  void set_mode(Mode mode, std::string redirect_message = "") {
    absl::MutexLock lock(&mu_);
    mode_ = mode;
    redirect_message_ = std::move(redirect_message);
  }
  void set_managers(std::vector<std::string> managers) {
    absl::MutexLock lock(&mu_);
    managers_ = std::move(managers);
  }
  // Forgets every session: heartbeats and resumptions then get NOT_FOUND / a new ID.
  void ForgetSessions() {
    absl::MutexLock lock(&mu_);
    known_sessions_.clear();
  }
  // Ends every open stream with OK.
  void EndStreams() {
    absl::MutexLock lock(&mu_);
    ++end_generation_;
  }
  // Makes every handler return (before the server shuts down).
  void Shutdown() {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }

  int session_calls() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(requests_.size());
  }
  int open_streams() const {
    absl::MutexLock lock(&mu_);
    return open_streams_;
  }
  int heartbeats() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(heartbeat_times_.size());
  }
  std::vector<absl::Time> heartbeat_times() const {
    absl::MutexLock lock(&mu_);
    return heartbeat_times_;
  }
  std::vector<api::SessionRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::string last_caller() const {
    absl::MutexLock lock(&mu_);
    return last_caller_;
  }

  grpc::Status Session(grpc::ServerContext* context, const api::SessionRequest* request,
                       grpc::ServerWriter<api::SessionMessage>* writer) override {
    auto caller = pki::PeerIdentity(*context->auth_context());
    if (!caller.ok()) return pki::ToGrpcStatus(caller.status());
    api::SessionMessage message;
    uint64_t end_generation;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(*request);
      last_caller_ = caller->node_id;
      if (mode_ == Mode::kRedirect) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, redirect_message_);
      }
      end_generation = end_generation_;
      ++open_streams_;
      if (mode_ == Mode::kServe) {
        std::string id = request->session_id();
        if (id.empty() || known_sessions_.count(id) == 0) {
          id = absl::StrCat(name_, "-session-", ++sessions_issued_);
        }
        known_sessions_.insert({id, caller->node_id});
        message.set_session_id(id);
        message.mutable_node()->set_id(caller->node_id);
        for (const std::string& addr : managers_) {
          api::WeightedPeer* peer = message.add_managers();
          peer->mutable_peer()->set_addr(addr);
          peer->set_weight(1);
        }
      }
    }
    bool write_ok = true;
    if (message.session_id().size() > 0) write_ok = writer->Write(message);
    // Hold the stream until the client goes away or the test ends it.
    for (;;) {
      absl::MutexLock lock(&mu_);
      if (!write_ok || context->IsCancelled() || shutting_down_ ||
          end_generation_ != end_generation) {
        break;
      }
      mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), absl::Milliseconds(5));
    }
    absl::MutexLock lock(&mu_);
    --open_streams_;
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext* context, const api::HeartbeatRequest* request,
                         api::HeartbeatResponse* response) override {
    auto caller = pki::PeerIdentity(*context->auth_context());
    if (!caller.ok()) return pki::ToGrpcStatus(caller.status());
    absl::MutexLock lock(&mu_);
    auto it = known_sessions_.find(request->session_id());
    if (it == known_sessions_.end() || it->second != caller->node_id) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("unknown session ", request->session_id()));
    }
    heartbeat_times_.push_back(absl::Now());
    response->mutable_period()->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(kPeriod)));
    return grpc::Status::OK;
  }

 private:
  const std::string name_;
  mutable absl::Mutex mu_;
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kServe;
  std::string redirect_message_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> managers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> known_sessions_ ABSL_GUARDED_BY(mu_);  // ID -> node
  int sessions_issued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t end_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  int open_streams_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<api::SessionRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> heartbeat_times_ ABSL_GUARDED_BY(mu_);
  std::string last_caller_ ABSL_GUARDED_BY(mu_);
};

// One fake manager: a Dispatcher on its own mTLS server.
struct FakeManager {
  std::unique_ptr<FakeDispatcher> dispatcher;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string addr() const { return absl::StrCat("127.0.0.1:", port); }

  void Stop() {
    if (server == nullptr) return;
    dispatcher->Shutdown();
    server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    server->Wait();
    server.reset();
  }
  ~FakeManager() { Stop(); }
};

class SessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const absl::Time now = absl::Now();
    ca_ = new pki::RootCA(pki::testing::NewRootCA(now - absl::Hours(2)));
    manager_ = new pki::testing::IssuedNode(
        pki::testing::IssueNode(*ca_, "m1", pki::Role::kManager, kCluster, absl::Hours(24), now));
    worker_ = new pki::testing::IssuedNode(
        pki::testing::IssueNode(*ca_, "w1", pki::Role::kWorker, kCluster, absl::Hours(24), now));
  }
  static void TearDownTestSuite() {
    delete worker_;
    delete manager_;
    delete ca_;
  }

  void TearDown() override {
    if (session_ != nullptr) session_->Stop();
    session_.reset();
    managers_.clear();
  }

  FakeManager* AddManager(const std::string& name) {
    auto m = std::make_unique<FakeManager>();
    m->dispatcher = std::make_unique<FakeDispatcher>(name);
    auto creds = pki::ServerCredentials({manager_->cert_pem, manager_->key_pem}, ca_->cert_pem(),
                                        pki::ClientCertPolicy::kVerifyIfPresent);
    EXPECT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &m->port);
    builder.RegisterService(m->dispatcher.get());
    m->server = builder.BuildAndStart();
    EXPECT_NE(m->server, nullptr);
    EXPECT_GT(m->port, 0);
    managers_.push_back(std::move(m));
    return managers_.back().get();
  }

  SessionOptions Options(std::vector<std::string> managers) {
    SessionOptions options;
    options.managers = std::move(managers);
    options.credentials = [this]() -> std::shared_ptr<grpc::ChannelCredentials> {
      credentials_calls_++;
      auto creds = pki::ChannelCredentials({worker_->cert_pem, worker_->key_pem}, ca_->cert_pem());
      EXPECT_TRUE(creds.ok()) << creds.status();
      return creds.ok() ? *creds : nullptr;
    };
    options.description.set_hostname("worker-host");
    return options;
  }

  void StartSession(SessionOptions options) {
    session_ = Session::Start(std::move(options), [this](const api::SessionMessage& m) {
      absl::MutexLock lock(&messages_mu_);
      messages_.push_back(m);
    });
    ASSERT_NE(session_, nullptr);
  }

  std::vector<api::SessionMessage> messages() {
    absl::MutexLock lock(&messages_mu_);
    return messages_;
  }

  static pki::RootCA* ca_;
  static pki::testing::IssuedNode* manager_;
  static pki::testing::IssuedNode* worker_;

  std::vector<std::unique_ptr<FakeManager>> managers_;
  std::atomic<int> credentials_calls_{0};
  absl::Mutex messages_mu_;
  std::vector<api::SessionMessage> messages_ ABSL_GUARDED_BY(messages_mu_);
  std::unique_ptr<Session> session_;
};

pki::RootCA* SessionTest::ca_;
pki::testing::IssuedNode* SessionTest::manager_;
pki::testing::IssuedNode* SessionTest::worker_;

TEST(ParseLeaderAddressTest, FindsTheAddress) {
  EXPECT_EQ(Session::ParseLeaderAddress("this manager is not the leader: the leader is at "
                                        "10.0.0.1:2377"),
            "10.0.0.1:2377");
  EXPECT_EQ(Session::ParseLeaderAddress("not the leader; the leader is at m2.example:2377."),
            "m2.example:2377");
  EXPECT_EQ(Session::ParseLeaderAddress("the leader is at [::1]:2377 (retry there)"), "[::1]:2377");
  EXPECT_EQ(Session::ParseLeaderAddress("no leader elected yet"), "");
  EXPECT_EQ(Session::ParseLeaderAddress("the leader is at "), "");
  EXPECT_EQ(Session::ParseLeaderAddress("the leader is at nowhere"), "");
}

TEST_F(SessionTest, StartRefusesUnusableOptions) {
  EXPECT_EQ(Session::Start(SessionOptions{}, nullptr), nullptr);
  SessionOptions no_creds;
  no_creds.managers = {"127.0.0.1:1"};
  EXPECT_EQ(Session::Start(no_creds, nullptr), nullptr);
}

TEST_F(SessionTest, FirstMessageIsDeliveredAndHeartbeatsKeepComing) {
  FakeManager* m = AddManager("a");
  m->dispatcher->set_managers({m->addr(), "127.0.0.1:1"});
  StartSession(Options({m->addr()}));

  ASSERT_TRUE(Eventually([&] { return !messages().empty(); }));
  const api::SessionMessage first = messages().front();
  EXPECT_EQ(first.session_id(), "a-session-1");
  EXPECT_EQ(first.node().id(), "w1");  // The dispatcher saw the worker's certificate.
  EXPECT_EQ(m->dispatcher->last_caller(), "w1");
  ASSERT_EQ(m->dispatcher->requests().size(), 1u);
  EXPECT_EQ(m->dispatcher->requests()[0].session_id(), "");
  EXPECT_EQ(m->dispatcher->requests()[0].description().hostname(), "worker-host");
  EXPECT_TRUE(Eventually([&] { return session_->connected(); }));
  EXPECT_EQ(session_->session_id(), "a-session-1");
  EXPECT_EQ(session_->current_manager(), m->addr());
  // The dispatcher's list replaces the configured one.
  EXPECT_THAT(session_->managers(), ElementsAre(m->addr(), "127.0.0.1:1"));

  // Heartbeats: the first at once, then within the 200 ms period.
  ASSERT_TRUE(Eventually([&] { return m->dispatcher->heartbeats() >= 8; }));
  const std::vector<absl::Time> times = m->dispatcher->heartbeat_times();
  absl::Duration max_gap;
  for (size_t i = 1; i < times.size(); ++i) max_gap = std::max(max_gap, times[i] - times[i - 1]);
  // Sent every period/2; the dispatcher's grace is 3 periods, which absorbs a loaded machine.
  EXPECT_LT(max_gap, 3 * kPeriod);
  EXPECT_TRUE(Eventually([&] { return session_->heartbeats_sent() >= 8; }));
  EXPECT_EQ(m->dispatcher->session_calls(), 1);  // One stream all along.
  EXPECT_EQ(credentials_calls_.load(), 1);
}

TEST_F(SessionTest, FailsOverToTheNextManagerWhenTheFirstStops) {
  FakeManager* a = AddManager("a");
  FakeManager* b = AddManager("b");
  a->dispatcher->set_managers({a->addr(), b->addr()});
  b->dispatcher->set_managers({a->addr(), b->addr()});
  StartSession(Options({a->addr(), b->addr()}));

  ASSERT_TRUE(Eventually([&] { return a->dispatcher->heartbeats() >= 1; }));
  EXPECT_EQ(b->dispatcher->session_calls(), 0);  // The first manager is tried first.

  a->Stop();
  ASSERT_TRUE(Eventually([&] { return b->dispatcher->heartbeats() >= 2; }));
  EXPECT_EQ(session_->current_manager(), b->addr());
  EXPECT_TRUE(session_->connected());
  EXPECT_EQ(session_->session_id(), "b-session-1");
  // It resumed with the session it had.
  ASSERT_GE(b->dispatcher->requests().size(), 1u);
  EXPECT_EQ(b->dispatcher->requests()[0].session_id(), "a-session-1");
  EXPECT_GE(credentials_calls_.load(), 2);  // Fresh credentials for the new connection.
}

TEST_F(SessionTest, FirstManagerDownAtStart) {
  FakeManager* down = AddManager("down");
  FakeManager* b = AddManager("b");
  const std::string down_addr = down->addr();
  down->Stop();  // After b is listening, so b cannot be given the freed port.
  StartSession(Options({down_addr, b->addr()}));
  ASSERT_TRUE(Eventually([&] { return b->dispatcher->heartbeats() >= 1; }));
  EXPECT_EQ(session_->current_manager(), b->addr());
}

TEST_F(SessionTest, EndedStreamReconnects) {
  FakeManager* a = AddManager("a");
  a->dispatcher->set_managers({a->addr()});
  StartSession(Options({a->addr()}));
  ASSERT_TRUE(Eventually([&] { return a->dispatcher->heartbeats() >= 1; }));
  a->dispatcher->EndStreams();
  ASSERT_TRUE(
      Eventually([&] { return a->dispatcher->session_calls() >= 2 && session_->connected(); }));
  // Resumed: same session.
  EXPECT_EQ(a->dispatcher->requests()[1].session_id(), "a-session-1");
  EXPECT_EQ(session_->session_id(), "a-session-1");
}

TEST_F(SessionTest, FollowsTheLeaderRedirect) {
  FakeManager* f1 = AddManager("f1");
  FakeManager* f2 = AddManager("f2");
  FakeManager* leader = AddManager("leader");
  const std::vector<std::string> all = {f1->addr(), f2->addr(), leader->addr()};
  f1->dispatcher->set_mode(
      FakeDispatcher::Mode::kRedirect,
      absl::StrCat("this manager is not the leader: the leader is at ", leader->addr()));
  f2->dispatcher->set_mode(FakeDispatcher::Mode::kRedirect,
                           absl::StrCat("not the leader; the leader is at ", f1->addr()));
  leader->dispatcher->set_managers(all);
  SessionOptions options = Options(all);
  options.min_backoff = absl::Seconds(30);  // Only an immediate redirect can get there in time.
  StartSession(std::move(options));

  ASSERT_TRUE(Eventually([&] { return leader->dispatcher->heartbeats() >= 1; }));
  EXPECT_EQ(session_->current_manager(), leader->addr());
  EXPECT_EQ(f1->dispatcher->session_calls(), 1);
  EXPECT_EQ(f2->dispatcher->session_calls(), 0);  // Went straight to the named leader.
  EXPECT_THAT(session_->managers(), ElementsAreArray(all));
}

TEST_F(SessionTest, NonLeaderWithoutAHintSendsToTheNextManagerAtOnce) {
  FakeManager* f1 = AddManager("f1");
  FakeManager* leader = AddManager("leader");
  f1->dispatcher->set_mode(FakeDispatcher::Mode::kRedirect,
                           "this manager is not the leader and does not know one yet");
  SessionOptions options = Options({f1->addr(), leader->addr()});
  options.min_backoff = absl::Seconds(30);
  StartSession(std::move(options));
  ASSERT_TRUE(Eventually([&] { return leader->dispatcher->heartbeats() >= 1; }));
  EXPECT_EQ(f1->dispatcher->session_calls(), 1);
}

TEST_F(SessionTest, RedirectLoopFallsBackToBackoff) {
  FakeManager* f1 = AddManager("f1");
  FakeManager* f2 = AddManager("f2");
  f1->dispatcher->set_mode(FakeDispatcher::Mode::kRedirect,
                           absl::StrCat("the leader is at ", f2->addr()));
  f2->dispatcher->set_mode(FakeDispatcher::Mode::kRedirect,
                           absl::StrCat("the leader is at ", f1->addr()));
  ManualClock clock;
  SessionOptions options = Options({f1->addr(), f2->addr()});
  options.clock = &clock;
  StartSession(std::move(options));
  // managers + 1 immediate retries after the first attempt, then the backoff, which the manual
  // clock holds.
  auto calls = [&] { return f1->dispatcher->session_calls() + f2->dispatcher->session_calls(); };
  ASSERT_TRUE(Eventually([&] { return session_->stream_failures() == 4; }));
  EXPECT_EQ(calls(), 4);
  // Once the backoff has passed, the next round starts, and ends in a (doubled) backoff again.
  clock.Advance(absl::Milliseconds(100));
  ASSERT_TRUE(Eventually([&] { return session_->stream_failures() == 8; }));
  EXPECT_EQ(calls(), 8);
  // And the leader is finally found.
  f2->dispatcher->set_mode(FakeDispatcher::Mode::kServe);
  clock.Advance(absl::Milliseconds(200));
  ASSERT_TRUE(Eventually([&] { return f2->dispatcher->heartbeats() >= 1; }));
  EXPECT_TRUE(session_->connected());
}

TEST_F(SessionTest, BackoffIsRoundRobinOnTheInjectedClock) {
  FakeManager* d1 = AddManager("d1");
  FakeManager* d2 = AddManager("d2");
  const std::string a1 = d1->addr(), a2 = d2->addr();
  d1->Stop();
  d2->Stop();
  ManualClock clock;
  SessionOptions options = Options({a1, a2});
  options.clock = &clock;
  StartSession(std::move(options));

  ASSERT_TRUE(Eventually([&] { return session_->stream_failures() == 1; }));
  // The next attempt waits for the backoff (100 ms) on the injected clock: give it a chance to
  // misbehave, in real time.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(credentials_calls_.load(), 1);
  clock.Advance(absl::Milliseconds(100));
  ASSERT_TRUE(Eventually([&] { return session_->stream_failures() == 2; }));
  EXPECT_EQ(credentials_calls_.load(), 2);
  EXPECT_EQ(session_->current_manager(), a2);  // Round robin.
  // Doubled: 200 ms now.
  clock.Advance(absl::Milliseconds(150));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(credentials_calls_.load(), 2);
  clock.Advance(absl::Milliseconds(50));
  ASSERT_TRUE(Eventually([&] { return session_->stream_failures() == 3; }));
  EXPECT_EQ(credentials_calls_.load(), 3);
  EXPECT_EQ(session_->current_manager(), a1);
  EXPECT_FALSE(session_->connected());
}

TEST_F(SessionTest, ReconnectUsesFreshCredentialsAndResumes) {
  FakeManager* a = AddManager("a");
  StartSession(Options({a->addr()}));
  ASSERT_TRUE(Eventually([&] { return a->dispatcher->heartbeats() >= 1; }));
  EXPECT_EQ(credentials_calls_.load(), 1);

  session_->Reconnect();
  ASSERT_TRUE(
      Eventually([&] { return a->dispatcher->session_calls() == 2 && session_->connected(); }));
  EXPECT_EQ(credentials_calls_.load(), 2);
  EXPECT_EQ(a->dispatcher->requests()[1].session_id(), "a-session-1");
  EXPECT_TRUE(Eventually([&] { return a->dispatcher->open_streams() == 1; }));
}

TEST_F(SessionTest, HeartbeatNotFoundStartsANewSession) {
  FakeManager* a = AddManager("a");
  StartSession(Options({a->addr()}));
  ASSERT_TRUE(Eventually([&] { return a->dispatcher->heartbeats() >= 1; }));
  EXPECT_EQ(session_->session_id(), "a-session-1");

  a->dispatcher->ForgetSessions();  // e.g. a new leader that never saw this session
  ASSERT_TRUE(Eventually([&] { return session_->session_id() == "a-session-2"; }));
  ASSERT_GE(a->dispatcher->requests().size(), 2u);
  EXPECT_EQ(a->dispatcher->requests()[1].session_id(), "");  // Forgotten, not resumed.
  const int before = a->dispatcher->heartbeats();
  ASSERT_TRUE(Eventually([&] { return a->dispatcher->heartbeats() >= before + 2; }));
  EXPECT_EQ(session_->current_manager(), a->addr());
}

TEST_F(SessionTest, SilentManagerIsLeftAfterTheOpenTimeout) {
  FakeManager* hang = AddManager("hang");
  FakeManager* b = AddManager("b");
  hang->dispatcher->set_mode(FakeDispatcher::Mode::kHang);
  SessionOptions options = Options({hang->addr(), b->addr()});
  options.session_open_timeout = absl::Milliseconds(300);
  StartSession(std::move(options));
  ASSERT_TRUE(Eventually([&] { return b->dispatcher->heartbeats() >= 1; }));
  EXPECT_EQ(hang->dispatcher->session_calls(), 1);
  EXPECT_TRUE(Eventually([&] { return hang->dispatcher->open_streams() == 0; }));
}

TEST_F(SessionTest, StopIsPromptWhileConnected) {
  FakeManager* a = AddManager("a");
  SessionOptions options = Options({a->addr()});
  options.heartbeat_timeout = absl::Seconds(30);
  StartSession(std::move(options));
  ASSERT_TRUE(Eventually([&] { return a->dispatcher->heartbeats() >= 1; }));

  const absl::Time start = absl::Now();
  session_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_FALSE(session_->connected());
  // The stream was cancelled, so the dispatcher sees it go.
  EXPECT_TRUE(Eventually([&] { return a->dispatcher->open_streams() == 0; }));
  const size_t delivered = messages().size();
  session_->Stop();  // Idempotent.
  session_.reset();
  EXPECT_EQ(messages().size(), delivered);
}

TEST_F(SessionTest, StopIsPromptWhileBackingOff) {
  FakeManager* d = AddManager("d");
  const std::string addr = d->addr();
  d->Stop();
  SessionOptions options = Options({addr});
  options.min_backoff = absl::Seconds(60);
  StartSession(std::move(options));
  ASSERT_TRUE(Eventually([&] { return credentials_calls_ >= 1; }));
  const absl::Time start = absl::Now();
  session_.reset();  // The destructor stops.
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST_F(SessionTest, StopIsPromptWhileWaitingForTheFirstMessage) {
  FakeManager* hang = AddManager("hang");
  hang->dispatcher->set_mode(FakeDispatcher::Mode::kHang);
  StartSession(Options({hang->addr()}));
  ASSERT_TRUE(Eventually([&] { return hang->dispatcher->open_streams() == 1; }));
  const absl::Time start = absl::Now();
  session_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST_F(SessionTest, ConnectionSharesTheOpenSessionForOtherCalls) {
  FakeManager* m = AddManager("a");
  StartSession(Options({m->addr()}));
  ASSERT_TRUE(Eventually([&] { return session_->connection().stub != nullptr; }));
  const DispatcherConnection conn = session_->connection();
  EXPECT_EQ(conn.session_id, "a-session-1");
  // Calls on it go over the session's mutual-TLS channel, as the node.
  grpc::ClientContext ctx;
  api::HeartbeatRequest request;
  request.set_session_id(conn.session_id);
  api::HeartbeatResponse response;
  EXPECT_TRUE(conn.stub->Heartbeat(&ctx, request, &response).ok());
  m->Stop();
  EXPECT_TRUE(Eventually([&] { return session_->connection().stub == nullptr; }));
  EXPECT_EQ(session_->connection().session_id, "");
}

}  // namespace
}  // namespace shoal::agent
