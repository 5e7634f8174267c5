// LogPublisher against a fake LogBroker on 127.0.0.1 and a fake TaskLogSource: subscriptions are
// served (tail, batching, close), follow sends only new lines (also with --tail 0) and picks up
// added tasks (all their lines, whatever the tail), notices a broken publish stream though nothing
// is written, close from the broker ends a subscription, and a new session reopens the listening
// stream (also during a backoff).
#include "agent/logs/log_publisher.h"

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/logs/log_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/logs.grpc.pb.h"

namespace shoal::agent::logs {
namespace {

using ::testing::ElementsAre;

// Polls `cond` until it holds or `timeout` passes (a condition with a deadline, not a sleep).
bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!cond()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

absl::Time T(int64_t s) { return absl::FromUnixSeconds(1700000000 + s); }

// Lines in memory, per task.
class FakeSource : public TaskLogSource {
 public:
  void Append(const std::string& task, const std::string& data, absl::Time when,
              api::LogStream stream = api::LOG_STREAM_STDOUT) {
    api::LogMessage m;
    m.mutable_context()->set_task_id(task);
    const int64_t s = absl::ToUnixSeconds(when);
    m.mutable_timestamp()->set_seconds(s);
    m.mutable_timestamp()->set_nanos(
        static_cast<int32_t>((when - absl::FromUnixSeconds(s)) / absl::Nanoseconds(1)));
    m.set_stream(stream);
    m.set_data(data);
    absl::MutexLock lock(&mu_);
    lines_[task].push_back(m);
  }

  // With cursors, follow reads through OpenCursor (each cursor remembers its index).
  void EnableCursors() {
    absl::MutexLock lock(&mu_);
    cursors_ = true;
  }
  int reads() {
    absl::MutexLock lock(&mu_);
    return reads_;
  }

  class Cursor : public TaskLogCursor {
   public:
    Cursor(FakeSource* source, std::string task) : source_(source), task_(std::move(task)) {}
    absl::Status ReadNew(const std::function<bool(const api::LogMessage&)>& sink) override {
      std::vector<api::LogMessage> fresh;
      {
        absl::MutexLock lock(&source_->mu_);
        const auto& lines = source_->lines_[task_];
        fresh.assign(lines.begin() + next_, lines.end());
      }
      for (const api::LogMessage& m : fresh) {
        ++next_;
        if (!sink(m)) break;
      }
      return absl::OkStatus();
    }

   private:
    FakeSource* const source_;
    const std::string task_;
    size_t next_ = 0;
  };

  std::unique_ptr<TaskLogCursor> OpenCursor(const std::string& task_id,
                                            const LogReadOptions&) override {
    absl::MutexLock lock(&mu_);
    if (!cursors_) return nullptr;
    return std::make_unique<Cursor>(this, task_id);
  }

  absl::Status ReadLogs(const std::string& task_id, const LogReadOptions& options,
                        const LogSink& sink, exec::Cancellation& cancel) override {
    EXPECT_FALSE(options.follow) << "the publisher polls; it never blocks a thread per task";
    std::vector<api::LogMessage> selected;
    {
      absl::MutexLock lock(&mu_);
      ++reads_;
      for (const api::LogMessage& m : lines_[task_id]) {
        const absl::Time t = absl::FromUnixSeconds(m.timestamp().seconds()) +
                             absl::Nanoseconds(m.timestamp().nanos());
        if (t < options.since) continue;
        if (m.stream() == api::LOG_STREAM_STDERR ? !options.want_stderr : !options.want_stdout) {
          continue;
        }
        selected.push_back(m);
      }
    }
    if (options.tail.has_value() && selected.size() > *options.tail) {
      selected.erase(selected.begin(), selected.end() - *options.tail);
    }
    for (const api::LogMessage& m : selected) {
      if (cancel.cancelled() || !sink(m)) break;
    }
    return absl::OkStatus();
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::vector<api::LogMessage>> lines_ ABSL_GUARDED_BY(mu_);
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
  bool cursors_ ABSL_GUARDED_BY(mu_) = false;
};

// The broker's side, played by the test: subscriptions to hand out, what was published.
class FakeBroker final : public api::LogBroker::Service {
 public:
  grpc::Status ListenSubscriptions(grpc::ServerContext* ctx, const api::ListenSubscriptionsRequest*,
                                   grpc::ServerWriter<api::SubscriptionMessage>* writer) override {
    {
      absl::MutexLock lock(&mu_);
      ++listens_;
    }
    size_t next = 0;
    while (!ctx->IsCancelled()) {
      api::SubscriptionMessage m;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this, &next]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return next < outbox_.size() || ending_;
        };
        // Bounded waits, to notice the client's cancellation.
        if (!mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(20))) continue;
        if (ending_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "test ends");
        m = outbox_[next++];
      }
      if (!writer->Write(m)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status PublishLogs(grpc::ServerContext* ctx,
                           grpc::ServerReader<api::PublishLogsMessage>* reader,
                           api::PublishLogsResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      publish_ctxs_.insert(ctx);
    }
    api::PublishLogsMessage m;
    while (reader->Read(&m)) {
      absl::MutexLock lock(&mu_);
      published_.push_back(m);
    }
    absl::MutexLock lock(&mu_);
    publish_ctxs_.erase(ctx);
    return grpc::Status::OK;
  }

  // Breaks every open publish stream, as a manager that dies does.
  void BreakPublishStreams() {
    absl::MutexLock lock(&mu_);
    for (grpc::ServerContext* ctx : publish_ctxs_) ctx->TryCancel();
  }
  int open_publish_streams() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(publish_ctxs_.size());
  }

  // Every listening stream (past and future) delivers `m` (each stream from the start).
  void Send(api::SubscriptionMessage m) {
    absl::MutexLock lock(&mu_);
    outbox_.push_back(std::move(m));
  }
  void End() {
    absl::MutexLock lock(&mu_);
    ending_ = true;
  }
  int listens() {
    absl::MutexLock lock(&mu_);
    return listens_;
  }
  std::vector<api::PublishLogsMessage> published() {
    absl::MutexLock lock(&mu_);
    return published_;
  }
  // Data of every line published for `sub`, in order; *closed tells whether close came.
  std::vector<std::string> Lines(const std::string& sub, bool* closed = nullptr) {
    std::vector<std::string> out;
    if (closed != nullptr) *closed = false;
    for (const api::PublishLogsMessage& m : published()) {
      if (m.subscription_id() != sub) continue;
      for (const api::LogMessage& l : m.messages()) out.push_back(l.data());
      if (m.close() && closed != nullptr) *closed = true;
    }
    return out;
  }

 private:
  absl::Mutex mu_;
  std::vector<api::SubscriptionMessage> outbox_ ABSL_GUARDED_BY(mu_);
  std::vector<api::PublishLogsMessage> published_ ABSL_GUARDED_BY(mu_);
  std::set<grpc::ServerContext*> publish_ctxs_ ABSL_GUARDED_BY(mu_);
  int listens_ ABSL_GUARDED_BY(mu_) = 0;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
};

api::SubscriptionMessage Sub(const std::string& id, std::vector<std::string> tasks,
                             bool follow = false) {
  api::SubscriptionMessage m;
  m.set_id(id);
  for (const std::string& t : tasks) m.mutable_selector()->add_task_ids(t);
  m.mutable_options()->set_follow(follow);
  return m;
}

class LogPublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&broker_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = api::LogBroker::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (publisher_ != nullptr) publisher_->Stop();
    broker_.End();
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  }

  void StartPublisher(size_t max_batch_lines = 500,
                      absl::Duration keepalive_interval = absl::Seconds(5)) {
    LogPublisherOptions o;
    o.keepalive_interval = keepalive_interval;
    o.connection = [this]() -> LogBrokerConnection {
      absl::MutexLock lock(&mu_);
      return LogBrokerConnection{session_, stub_};
    };
    o.source = &source_;
    o.poll_interval = absl::Milliseconds(10);
    o.follow_interval = absl::Milliseconds(10);
    o.min_backoff = absl::Milliseconds(10);
    o.max_batch_lines = max_batch_lines;
    auto p = LogPublisher::Start(o);
    ASSERT_TRUE(p.ok()) << p.status();
    publisher_ = std::move(*p);
  }

  FakeBroker broker_;
  FakeSource source_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Mutex mu_;
  std::string session_ ABSL_GUARDED_BY(mu_) = "session-1";
  std::shared_ptr<api::LogBroker::StubInterface> stub_;
  std::unique_ptr<LogPublisher> publisher_;
};

TEST_F(LogPublisherTest, RefusesUnusableOptions) {
  EXPECT_FALSE(LogPublisher::Start({}).ok());
  LogPublisherOptions o;
  o.connection = [] { return LogBrokerConnection{}; };
  EXPECT_FALSE(LogPublisher::Start(o).ok());
}

TEST_F(LogPublisherTest, PublishesTheSelectedTasksInBatchesThenCloses) {
  for (int i = 0; i < 5; ++i) source_.Append("t1", absl::StrCat("a", i, "\n"), T(i));
  source_.Append("t2", "b0\n", T(0));
  source_.Append("t3", "not selected\n", T(0));
  StartPublisher(/*max_batch_lines=*/2);
  api::SubscriptionMessage m = Sub("s1", {"t1", "t2"});
  m.mutable_options()->set_tail(3);
  broker_.Send(m);

  bool closed = false;
  ASSERT_TRUE(WaitFor([&] {
    broker_.Lines("s1", &closed);
    return closed;
  }));
  EXPECT_THAT(broker_.Lines("s1"), ElementsAre("a2\n", "a3\n", "a4\n", "b0\n"));
  for (const api::PublishLogsMessage& p : broker_.published()) {
    EXPECT_LE(p.messages_size(), 2);
  }
  EXPECT_TRUE(WaitFor([&] { return publisher_->stats().subscriptions_active == 0; }));
  EXPECT_EQ(publisher_->stats().subscriptions_started, 1);
}

TEST_F(LogPublisherTest, FollowSendsOnlyNewLinesPicksUpAddedTasksAndStopsOnClose) {
  source_.Append("t1", "old\n", T(0));
  StartPublisher();
  broker_.Send(Sub("s2", {"t1"}, /*follow=*/true));
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s2").size() == 1; }));

  // Two lines at the same time as the last one sent, and a later one: only the new ones go.
  source_.Append("t1", "same time\n", T(0));
  source_.Append("t1", "later\n", T(5));
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s2").size() == 3; }));

  // The broker adds a task to the subscription.
  source_.Append("t2", "second task\n", T(1));
  broker_.Send(Sub("s2", {"t1", "t2"}, true));
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s2").size() == 4; }));
  EXPECT_THAT(broker_.Lines("s2"), ElementsAre("old\n", "same time\n", "later\n", "second task\n"));
  EXPECT_EQ(publisher_->stats().subscriptions_started, 1);

  api::SubscriptionMessage close;
  close.set_id("s2");
  close.set_close(true);
  broker_.Send(close);
  // Its thread ends (so nothing more is read for it), without close of its own.
  ASSERT_TRUE(WaitFor([&] { return publisher_->stats().subscriptions_active == 0; }));
  bool closed = true;
  EXPECT_EQ(broker_.Lines("s2", &closed).size(), 4u);
  EXPECT_FALSE(closed);
}

// `-f --tail 0`: none of the existing lines, then every new one. (The first read must remember
// where the log ended though it sent nothing, or the next pass sends the whole log.)
TEST_F(LogPublisherTest, FollowWithTailZeroSendsOnlyNewLines) {
  source_.Append("t1", "old 1\n", T(0));
  source_.Append("t1", "old 2\n", T(1));
  StartPublisher();
  api::SubscriptionMessage m = Sub("s5", {"t1"}, /*follow=*/true);
  m.mutable_options()->set_tail(0);
  broker_.Send(m);
  // Several passes over the log.
  ASSERT_TRUE(WaitFor([&] { return source_.reads() >= 4; }));
  source_.Append("t1", "new\n", T(2));
  ASSERT_TRUE(WaitFor([&] { return !broker_.Lines("s5").empty(); }));
  const int reads = source_.reads();
  ASSERT_TRUE(WaitFor([&] { return source_.reads() >= reads + 3; }));
  EXPECT_THAT(broker_.Lines("s5"), ElementsAre("new\n"));
}

// The tail counts the lines that existed when the subscription began: a task added to it later
// (it started since) has all its lines sent. So has --tail N for the tasks that existed.
TEST_F(LogPublisherTest, FollowWithTailSendsEveryLineOfTasksAddedLater) {
  source_.Append("t1", "a\n", T(0));
  source_.Append("t1", "b\n", T(1));
  StartPublisher();
  api::SubscriptionMessage m = Sub("s6", {"t1"}, /*follow=*/true);
  m.mutable_options()->set_tail(1);
  broker_.Send(m);
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s6").size() == 1; }));
  // t2 starts and writes before the publisher hears of it.
  source_.Append("t2", "x\n", T(2));
  source_.Append("t2", "y\n", T(3));
  api::SubscriptionMessage more = Sub("s6", {"t1", "t2"}, true);
  more.mutable_options()->set_tail(1);
  broker_.Send(more);
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s6").size() == 3; }));
  source_.Append("t1", "c\n", T(4));
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s6").size() == 4; }));
  EXPECT_THAT(broker_.Lines("s6"), ElementsAre("b\n", "x\n", "y\n", "c\n"));
}

// A follow subscription whose tasks write nothing more still notices that its publish stream is
// gone (the manager died): its thread ends instead of polling the logs forever.
TEST_F(LogPublisherTest, FollowEndsWhenItsStreamBreaksThoughNothingIsWritten) {
  source_.Append("t1", "one\n", T(0));
  StartPublisher(500, /*keepalive_interval=*/absl::Milliseconds(50));
  broker_.Send(Sub("s7", {"t1"}, /*follow=*/true));
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s7").size() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return broker_.open_publish_streams() == 1; }));
  EXPECT_EQ(publisher_->stats().subscriptions_active, 1);
  broker_.BreakPublishStreams();
  ASSERT_TRUE(WaitFor([&] { return publisher_->stats().subscriptions_active == 0; }));
  EXPECT_EQ(publisher_->stats().publish_failures, 1);
  EXPECT_THAT(broker_.Lines("s7"), ElementsAre("one\n"));
}

TEST_F(LogPublisherTest, FollowUsesTheSourcesCursorsWhenItHasThem) {
  source_.EnableCursors();
  source_.Append("t1", "one\n", T(0));
  StartPublisher();
  broker_.Send(Sub("s4", {"t1"}, /*follow=*/true));
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s4").size() == 1; }));
  source_.Append("t1", "two\n", T(0));  // same time: a cursor needs no timestamps
  ASSERT_TRUE(WaitFor([&] { return broker_.Lines("s4").size() == 2; }));
  EXPECT_THAT(broker_.Lines("s4"), ElementsAre("one\n", "two\n"));
  EXPECT_EQ(source_.reads(), 0);  // never re-read from since
}

TEST_F(LogPublisherTest, ANewSessionReopensTheListeningStream) {
  StartPublisher();
  ASSERT_TRUE(WaitFor([&] { return broker_.listens() == 1; }));
  {
    absl::MutexLock lock(&mu_);
    session_ = "session-2";
  }
  publisher_->Kick();
  ASSERT_TRUE(WaitFor([&] { return broker_.listens() == 2; }));
  EXPECT_GE(publisher_->stats().listen_streams, 2);
}

// While the listener waits out its backoff after failed streams, a new session (a new leader)
// is listened on at once — nobody needs to Kick().
TEST_F(LogPublisherTest, ANewSessionEndsTheListenersBackoff) {
  broker_.End();  // every listening stream fails at once
  LogPublisherOptions o;
  o.connection = [this]() -> LogBrokerConnection {
    absl::MutexLock lock(&mu_);
    return LogBrokerConnection{session_, stub_};
  };
  o.source = &source_;
  o.poll_interval = absl::Milliseconds(10);
  o.min_backoff = absl::Minutes(5);
  o.max_backoff = absl::Minutes(10);
  auto p = LogPublisher::Start(o);
  ASSERT_TRUE(p.ok()) << p.status();
  publisher_ = std::move(*p);
  ASSERT_TRUE(WaitFor([&] { return broker_.listens() == 1; }));
  {
    absl::MutexLock lock(&mu_);
    session_ = "session-2";
  }
  ASSERT_TRUE(WaitFor([&] { return broker_.listens() == 2; }, absl::Seconds(10)));
}

TEST_F(LogPublisherTest, WaitsForASessionAndStopsPromptlyWhileFollowing) {
  {
    absl::MutexLock lock(&mu_);
    session_ = "";
  }
  LogPublisherOptions o;
  o.connection = [] { return LogBrokerConnection{}; };  // no session yet
  o.source = &source_;
  o.poll_interval = absl::Milliseconds(10);
  auto idle = LogPublisher::Start(o);
  ASSERT_TRUE(idle.ok());
  (*idle)->Stop();
  EXPECT_EQ(broker_.listens(), 0);

  {
    absl::MutexLock lock(&mu_);
    session_ = "session-3";
  }
  StartPublisher();
  broker_.Send(Sub("s3", {"t1"}, /*follow=*/true));
  ASSERT_TRUE(WaitFor([&] { return publisher_->stats().subscriptions_active == 1; }));
  const absl::Time start = absl::Now();
  publisher_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(publisher_->stats().subscriptions_active, 0);
}

}  // namespace
}  // namespace shoal::agent::logs
