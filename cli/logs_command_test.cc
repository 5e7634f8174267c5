// `shoal service logs`: the line format (docker's), the flags' parsing, duplicate dropping, and
// StreamLogs against a fake Logs service on 127.0.0.1 — stdout/stderr routing, errors after the
// lines, and following across stream ends (resubscribing with since, nothing printed twice).
#include "cli/logs_command.h"

#include <deque>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cli/context.h"
#include "gtest/gtest.h"
#include "logs.grpc.pb.h"

namespace shoal::cli {
namespace {

constexpr char kTaskId[] = "k2x8e3hq0lqdabcdefghijkl";

api::LogMessage Line(const std::string& task, const std::string& node, const std::string& data,
                     int64_t seconds, int32_t nanos = 0,
                     api::LogStream stream = api::LOG_STREAM_STDOUT) {
  api::LogMessage m;
  m.mutable_context()->set_service_id("svc1");
  m.mutable_context()->set_node_id(node);
  m.mutable_context()->set_task_id(task);
  m.mutable_timestamp()->set_seconds(seconds);
  m.mutable_timestamp()->set_nanos(nanos);
  m.set_stream(stream);
  m.set_data(data);
  return m;
}

LogNames Names() {
  LogNames n;
  n.services["svc1"] = "web";
  n.nodes["n1"] = "node-1";
  n.nodes["n22"] = "node-22";
  api::Task t;
  t.set_id(kTaskId);
  t.set_service_id("svc1");
  t.set_node_id("n1");
  t.set_slot(1);
  n.tasks[kTaskId] = t;
  api::Task g;
  g.set_id("globaltask0123456789");
  g.set_service_id("svc1");
  g.set_node_id("n22");
  g.set_slot(0);
  n.tasks[g.id()] = g;
  return n;
}

TEST(LogFormatTest, PrefixIsDockers) {
  const LogNames names = Names();
  LogFormat f;
  api::LogContext c = Line(kTaskId, "n1", "", 0).context();
  EXPECT_EQ(LogContextPrefix(c, names, f), "web.1.k2x8e3hq0lqd@node-1");
  f.no_trunc = true;
  EXPECT_EQ(LogContextPrefix(c, names, f), absl::StrCat("web.1.", kTaskId, "@node-1"));
  f.no_task_ids = true;
  EXPECT_EQ(LogContextPrefix(c, names, f), "web.1@node-1");

  // Global services: the node ID takes the slot's place.
  api::LogContext g = Line("globaltask0123456789", "n22", "", 0).context();
  EXPECT_EQ(LogContextPrefix(g, names, LogFormat{}), "web.n22.globaltask01@node-22");

  // Unknown names show as IDs.
  api::LogContext u = Line("othertask", "n9", "", 0).context();
  u.set_service_id("svc9");
  EXPECT_EQ(LogContextPrefix(u, names, LogFormat{}), "svc9.othertask@n9");
}

TEST(LogFormatTest, LinesArePaddedAndOptionallyTimestamped) {
  const LogNames names = Names();
  api::LogMessage m = Line(kTaskId, "n1", "hello\n", 1700000000, 5000);
  EXPECT_EQ(FormatLogLine(m, names, LogFormat{}, 0), "web.1.k2x8e3hq0lqd@node-1 | hello\n");
  EXPECT_EQ(FormatLogLine(m, names, LogFormat{}, 30), "web.1.k2x8e3hq0lqd@node-1      | hello\n");
  LogFormat t;
  t.timestamps = true;
  EXPECT_EQ(FormatLogLine(m, names, t, 0),
            "web.1.k2x8e3hq0lqd@node-1 | 2023-11-14T22:13:20.000005000Z hello\n");
  LogFormat raw;
  raw.raw = true;
  EXPECT_EQ(FormatLogLine(m, names, raw, 40), "hello\n");
  // A last line without its newline still ends one.
  m.set_data("partial");
  EXPECT_EQ(FormatLogLine(m, names, raw, 0), "partial\n");
}

TEST(LogFlagsTest, Tail) {
  EXPECT_FALSE(ParseTail("all")->has_value());
  EXPECT_FALSE(ParseTail("")->has_value());
  EXPECT_EQ(**ParseTail("20"), 20u);
  EXPECT_EQ(**ParseTail("0"), 0u);
  for (const char* bad : {"-1", "ten", "1.5", "+3"}) {
    absl::StatusOr<std::optional<uint64_t>> t = ParseTail(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_NE(t.status().message().find("--tail"), std::string::npos);
  }
}

TEST(LogFlagsTest, Since) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(*ParseSince("10m", now), now - absl::Minutes(10));
  EXPECT_EQ(*ParseSince("1h30m", now), now - absl::Minutes(90));
  EXPECT_EQ(*ParseSince("2023-11-14T22:13:20Z", now), now);
  EXPECT_EQ(*ParseSince("2023-11-14T22:13:20.5Z", now), now + absl::Milliseconds(500));
  EXPECT_EQ(*ParseSince("1700000000", now), now);
  EXPECT_EQ(*ParseSince("1700000000.25", now), now + absl::Milliseconds(250));
  EXPECT_FALSE(ParseSince("yesterday", now).ok());
  EXPECT_FALSE(ParseSince("-5m", now).ok());
}

TEST(LogDeduplicatorTest, DropsWhatAResumedStreamRepeats) {
  LogDeduplicator d;
  EXPECT_FALSE(d.ResumeSince().has_value());
  EXPECT_TRUE(d.Accept(Line("a", "n", "1", 10)));
  EXPECT_TRUE(d.Accept(Line("a", "n", "2", 20)));
  EXPECT_TRUE(d.Accept(Line("a", "n", "3", 20)));  // same time: both count
  EXPECT_TRUE(d.Accept(Line("b", "n", "x", 15)));
  EXPECT_EQ(*d.ResumeSince(), absl::FromUnixSeconds(15));  // the slower task decides
  d.Resume();
  // The new stream repeats from since = 15.
  EXPECT_FALSE(d.Accept(Line("b", "n", "x", 15)));
  EXPECT_FALSE(d.Accept(Line("a", "n", "2", 20)));
  EXPECT_FALSE(d.Accept(Line("a", "n", "3", 20)));
  EXPECT_TRUE(d.Accept(Line("a", "n", "4", 20)));  // a third line at that time is new
  EXPECT_TRUE(d.Accept(Line("b", "n", "y", 16)));
  EXPECT_TRUE(d.Accept(Line("a", "n", "5", 30)));
}

// Each call pops the next scripted answer: lines to send, then a status.
class FakeLogs final : public api::Logs::Service {
 public:
  struct Answer {
    std::vector<api::LogMessage> lines;
    grpc::Status status;
  };
  void Script(Answer a) {
    absl::MutexLock lock(&mu_);
    answers_.push_back(std::move(a));
  }
  std::vector<api::SubscribeLogsRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  grpc::Status SubscribeLogs(grpc::ServerContext*, const api::SubscribeLogsRequest* request,
                             grpc::ServerWriter<api::SubscribeLogsMessage>* writer) override {
    Answer a;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(*request);
      if (answers_.empty()) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no leader right now");
      }
      a = std::move(answers_.front());
      answers_.pop_front();
    }
    for (const api::LogMessage& l : a.lines) {
      api::SubscribeLogsMessage m;
      *m.add_messages() = l;
      writer->Write(m);
    }
    return a.status;
  }

 private:
  absl::Mutex mu_;
  std::deque<Answer> answers_ ABSL_GUARDED_BY(mu_);
  std::vector<api::SubscribeLogsRequest> requests_ ABSL_GUARDED_BY(mu_);
};

class StreamLogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials());
  }
  void TearDown() override { server_->Shutdown(); }

  // Runs StreamLogs; returns the CommandError's message, or "" when it returned.
  std::string Stream(const api::SubscribeLogsRequest& request, LogFormat format = {}) {
    Context ctx(in_, out_, err_);
    StreamLogsOptions o;
    o.min_backoff = absl::Milliseconds(1);
    o.max_backoff = absl::Milliseconds(4);
    o.max_attempts = 3;
    try {
      StreamLogs(
          ctx, [this] { return api::Logs::NewStub(channel_); }, request, Names(), format, nullptr,
          o);
    } catch (const CommandError& e) {
      return e.message;
    }
    return "";
  }

  static api::SubscribeLogsRequest Request(bool follow) {
    api::SubscribeLogsRequest r;
    r.mutable_selector()->add_service_ids("svc1");
    r.mutable_options()->set_follow(follow);
    r.mutable_options()->set_tail(10);
    return r;
  }

  FakeLogs fake_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  int port_ = 0;
  std::istringstream in_;
  std::ostringstream out_, err_;
};

TEST_F(StreamLogsTest, StdoutAndStderrGoTheirWays) {
  fake_.Script({{Line(kTaskId, "n1", "out\n", 1),
                 Line(kTaskId, "n1", "err\n", 2, 0, api::LOG_STREAM_STDERR)},
                grpc::Status::OK});
  EXPECT_EQ(Stream(Request(false)), "");
  // Padded to the widest prefix of the service's tasks (the global task's).
  EXPECT_EQ(out_.str(), "web.1.k2x8e3hq0lqd@node-1    | out\n");
  EXPECT_EQ(err_.str(), "web.1.k2x8e3hq0lqd@node-1    | err\n");
}

TEST_F(StreamLogsTest, AnIncompleteStreamFailsAfterItsLines) {
  fake_.Script({{Line(kTaskId, "n1", "out\n", 1)},
                grpc::Status(grpc::StatusCode::UNAVAILABLE,
                             "incomplete log stream: some logs could not be retrieved: node "
                             "node-22 (n22) is not connected to the leader")});
  const std::string error = Stream(Request(false));
  EXPECT_EQ(error.rfind("incomplete log stream", 0), 0u) << error;
  EXPECT_NE(error.find("node-22"), std::string::npos);
  EXPECT_EQ(out_.str(), "web.1.k2x8e3hq0lqd@node-1    | out\n");
  EXPECT_EQ(fake_.requests().size(), 1u);  // no retry without follow
}

TEST_F(StreamLogsTest, FollowResumesAcrossStreamEndsWithoutRepeating) {
  const std::string t2 = "globaltask0123456789";
  fake_.Script({{Line(kTaskId, "n1", "a1\n", 10), Line(t2, "n22", "b1\n", 12)},
                grpc::Status(grpc::StatusCode::UNAVAILABLE, "this manager stopped leading")});
  // The new leader's stream repeats from since (= 10) and continues.
  fake_.Script({{Line(kTaskId, "n1", "a1\n", 10), Line(t2, "n22", "b1\n", 12),
                 Line(kTaskId, "n1", "a2\n", 13)},
                grpc::Status::OK});  // a stream ending without a status is resumed too
  fake_.Script({{Line(kTaskId, "n1", "a3\n", 14)},
                grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "not allowed")});
  const std::string error = Stream(Request(true));
  EXPECT_EQ(error, "not allowed");
  EXPECT_EQ(out_.str(),
            "web.1.k2x8e3hq0lqd@node-1    | a1\n"
            "web.n22.globaltask01@node-22 | b1\n"
            "web.1.k2x8e3hq0lqd@node-1    | a2\n"
            "web.1.k2x8e3hq0lqd@node-1    | a3\n");
  std::vector<api::SubscribeLogsRequest> requests = fake_.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_TRUE(requests[0].options().has_tail());
  EXPECT_FALSE(requests[0].options().has_since());
  EXPECT_FALSE(requests[1].options().has_tail());
  EXPECT_EQ(requests[1].options().since().seconds(), 10);
  EXPECT_TRUE(requests[1].options().follow());
  EXPECT_EQ(requests[2].options().since().seconds(), 12);
}

TEST_F(StreamLogsTest, FollowGivesUpAfterBoundedRetries) {
  const std::string error = Stream(Request(true));  // every call: UNAVAILABLE, no lines
  EXPECT_NE(error.find("could not resume it after 3 attempts"), std::string::npos) << error;
  EXPECT_EQ(fake_.requests().size(), 4u);  // the first call and three retries
}

}  // namespace
}  // namespace shoal::cli
