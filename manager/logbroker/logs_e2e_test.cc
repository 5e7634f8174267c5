// `shoal service logs` end to end on real shoald processes: three managers and one worker, the
// simulated executor (whose tasks write "sim: task <id> started (image X)" when they start,
// "sim: stopped" when they are stopped and "sim: exiting with code N" when they exit by
// themselves, on stderr when N is not 0).
//
// The path under test: the CLI → its daemon's LogsForwarder (control socket) → the leader's
// LogBroker over mutual TLS → every involved node's LogPublisher (ListenSubscriptions,
// PublishLogs) → back. Covered: every task's lines from every node with docker's
// `service.slot.taskid@node |` prefix, through each of the managers; --tail, --timestamps,
// --no-task-ids, --raw, stderr lines on stderr; a task ID (and a unique prefix of one) instead of
// a service; clear errors for an unknown name and on a worker; -f printing new tasks' lines and
// lines existing tasks write later; and -f going on across the death of the leader, printing no
// line twice.
//
// `-f` runs as a child process whose stdout and stderr are read as they come (StreamingProcess);
// every wait is on a condition with a deadline.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/child_process.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/daemon.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

constexpr absl::Duration kConverge = absl::Seconds(60);
// How long a line may take from being written (a task running) to a follower's output. The
// publisher polls every 250 ms and the broker sees new tasks as they are assigned; this bound
// leaves room for a loaded machine.
constexpr absl::Duration kFollowDeadline = absl::Seconds(20);
constexpr absl::Duration kPoll = absl::Milliseconds(20);

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::vector<nlohmann::json> JsonLines(const CommandResult& r) {
  std::vector<nlohmann::json> out;
  if (r.exit_code != 0) return out;
  for (const std::string& line : Lines(r.out)) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(j);
  }
  return out;
}

std::string StartedLine(const std::string& task_id, const std::string& image) {
  return absl::StrCat("sim: task ", task_id, " started (image ", image, ")");
}

// One line of `service logs` without --raw: "<service>.<slot>[.<task ID, 12>]@<node> <pad>| data".
struct PrettyLine {
  std::string service;
  std::string slot;
  std::string task;  // empty with --no-task-ids
  std::string node;
  std::string data;
  size_t bar = 0;  // where " | " starts: the same on every line of one output
};

std::optional<PrettyLine> ParsePretty(const std::string& line, bool task_ids = true) {
  static const std::regex with_ids(
      R"(^([a-z0-9-]+)\.([0-9]+)\.([0-9a-z]{12})@([a-z0-9-]+) *( \| )(.*)$)");
  static const std::regex without_ids(R"(^([a-z0-9-]+)\.([0-9]+)@([a-z0-9-]+) *( \| )(.*)$)");
  std::smatch m;
  PrettyLine p;
  if (task_ids) {
    if (!std::regex_match(line, m, with_ids)) return std::nullopt;
    p.service = m[1];
    p.slot = m[2];
    p.task = m[3];
    p.node = m[4];
    p.bar = m.position(5);
    p.data = m[6];
  } else {
    if (!std::regex_match(line, m, without_ids)) return std::nullopt;
    p.service = m[1];
    p.slot = m[2];
    p.node = m[3];
    p.bar = m.position(4);
    p.data = m[5];
  }
  return p;
}

// A child process whose stdout and stderr are pipes, read by a thread as the child writes them:
// what a user sees of `shoal service logs -f`, line by line. Ended by its PID (SIGTERM, then
// SIGKILL) and reaped when stopped or destroyed; the kernel kills it if the test dies first.
class StreamingProcess {
 public:
  static absl::StatusOr<std::unique_ptr<StreamingProcess>> Start(
      const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
    if (::pipe2(err, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      return absl::InternalError("pipe2 failed");
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      PrepareForkedChild(parent);
      const int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull < 0) ::_exit(127);
      ::dup2(devnull, 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    if (pid < 0) {
      ::close(out[0]);
      ::close(err[0]);
      return absl::InternalError("fork failed");
    }
    std::unique_ptr<StreamingProcess> p(new StreamingProcess(pid, out[0], err[0]));
    p->reader_ = std::thread([raw = p.get()] { raw->Read(); });
    return p;
  }

  ~StreamingProcess() { (void)Stop(absl::Seconds(5)); }

  std::string out() const {
    absl::MutexLock lock(&mu_);
    return out_;
  }
  std::string err() const {
    absl::MutexLock lock(&mu_);
    return err_;
  }
  std::string Describe() const {
    return absl::StrCat("---- stdout ----\n", out(), "---- stderr ----\n", err());
  }

  // Whether the process is still running (it is reaped once it has exited).
  bool running() {
    if (pid_ <= 0) return false;
    absl::StatusOr<int> status = WaitPid(pid_, absl::ZeroDuration());
    if (!status.ok()) return true;
    exit_status_ = *status;
    pid_ = -1;
    return false;
  }

  // SIGTERM, then SIGKILL after `grace`; reaps, and collects the rest of the output.
  absl::Status Stop(absl::Duration grace) {
    absl::Status result;
    if (running()) {
      ::kill(pid_, SIGTERM);
      absl::StatusOr<int> status = WaitPid(pid_, grace);
      if (!status.ok()) {
        ::kill(pid_, SIGKILL);
        status = WaitPid(pid_, absl::Seconds(10));
        result = absl::DeadlineExceededError("the process ignored SIGTERM; killed it");
      }
      if (status.ok()) exit_status_ = *status;
      pid_ = -1;
    }
    if (reader_.joinable()) reader_.join();
    return result;
  }

 private:
  StreamingProcess(pid_t pid, int out_fd, int err_fd)
      : pid_(pid), out_fd_(out_fd), err_fd_(err_fd) {}

  void Read() {
    int fds[2] = {out_fd_, err_fd_};
    std::string* sinks[2] = {&out_, &err_};
    char buf[4096];
    while (fds[0] >= 0 || fds[1] >= 0) {
      pollfd p[2];
      for (int i = 0; i < 2; ++i) p[i] = pollfd{fds[i], POLLIN, 0};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i] < 0 || p[i].revents == 0) continue;
        const ssize_t n = ::read(fds[i], buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          ::close(fds[i]);
          fds[i] = -1;
          continue;
        }
        absl::MutexLock lock(&mu_);
        sinks[i]->append(buf, static_cast<size_t>(n));
      }
    }
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }

  pid_t pid_;
  const int out_fd_;
  const int err_fd_;
  std::optional<int> exit_status_;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::string out_ ABSL_GUARDED_BY(mu_);
  std::string err_ ABSL_GUARDED_BY(mu_);
};

// A task as `service ps --no-trunc --format json` shows it.
struct TaskRow {
  std::string id;    // full
  std::string name;  // "web.3" (history rows too)
  std::string slot;  // "3"
  std::string node;  // hostname
  bool running = false;
};

// Three managers (m1 inits, m2 and m3 join) and one worker, every node running tasks. The
// worker's longer name makes the prefixes of its tasks' lines longer than the others'.
class LogsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"m1", "m2", "m3"}) {
      managers_.push_back(&cluster_.Add(ShoaldOptions{.node_name = name}));
      ASSERT_TRUE(managers_.back()->running());
    }
    ShoaldProcess& m1 = *managers_[0];
    // A 1 s heartbeat: nodes of a dead leader's agents reconnect, and a dead node is noticed,
    // within a few seconds.
    CommandResult init =
        m1.Cli({"swarm", "init", "--listen-addr", m1.swarm_addr(), "--advertise-addr",
                m1.swarm_addr(), "--dispatcher-heartbeat", "1s"});
    ASSERT_EQ(init.exit_code, 0) << init.err << m1.LogText();
    const std::string manager_token = Trim(m1.Cli({"swarm", "join-token", "-q", "manager"}).out);
    const std::string worker_token = Trim(m1.Cli({"swarm", "join-token", "-q", "worker"}).out);
    for (size_t i = 1; i < managers_.size(); ++i) {
      ShoaldProcess& m = *managers_[i];
      CommandResult join =
          m.Cli({"swarm", "join", "--token", manager_token, "--listen-addr", m.swarm_addr(),
                 "--advertise-addr", m.swarm_addr(), m1.swarm_addr()});
      ASSERT_EQ(join.exit_code, 0) << join.err << m.LogText();
    }
    worker_ = &cluster_.Add(ShoaldOptions{.node_name = "worker-1"});
    ASSERT_TRUE(worker_->running());
    CommandResult join = worker_->Cli({"swarm", "join", "--token", worker_token, m1.swarm_addr()});
    ASSERT_EQ(join.exit_code, 0) << join.err << worker_->LogText();
    ASSERT_TRUE(WaitFor(
        [&] {
          std::vector<nlohmann::json> nodes = JsonLines(m1.Cli({"node", "ls", "--format", "json"}));
          if (nodes.size() != 4) return false;
          int leaders = 0, reachable = 0;
          for (const nlohmann::json& n : nodes) {
            if (n.value("Status", "") != "Ready") return false;
            if (n.value("ManagerStatus", "") == "Leader") ++leaders;
            if (n.value("ManagerStatus", "") == "Reachable") ++reachable;
          }
          return leaders == 1 && reachable == 2;
        },
        kConverge, absl::Milliseconds(100)))
        << m1.Cli({"node", "ls"}).out << Logs();
  }

  static CommandResult Cli(const ShoaldProcess& via, const std::vector<std::string>& args) {
    return via.Cli(args, {.timeout = absl::Seconds(120)});
  }
  CommandResult Cli(const std::vector<std::string>& args) { return Cli(*managers_[0], args); }

  // Every task of `service`, history included.
  static std::vector<TaskRow> Tasks(const ShoaldProcess& via, const std::string& service) {
    std::vector<TaskRow> out;
    for (const nlohmann::json& t :
         JsonLines(Cli(via, {"service", "ps", "--no-trunc", "--format", "json", service}))) {
      TaskRow row;
      row.id = t.value("ID", "");
      row.name = std::string(absl::StripPrefix(t.value("Name", ""), " \\_ "));
      row.slot = row.name.substr(row.name.rfind('.') + 1);
      row.node = t.value("Node", "");
      row.running = absl::StartsWith(t.value("DesiredState", ""), "Running") &&
                    absl::StartsWith(t.value("CurrentState", ""), "Running");
      out.push_back(row);
    }
    return out;
  }
  static std::vector<TaskRow> RunningTasks(const ShoaldProcess& via, const std::string& service) {
    std::vector<TaskRow> out;
    for (TaskRow& t : Tasks(via, service)) {
      if (t.running) out.push_back(std::move(t));
    }
    return out;
  }

  // The hostname of the manager `via` names as leader; "" while there is none.
  static std::string LeaderName(const ShoaldProcess& via) {
    for (const nlohmann::json& n : JsonLines(via.Cli({"node", "ls", "--format", "json"}))) {
      if (n.value("ManagerStatus", "") == "Leader") return n.value("Hostname", "");
    }
    return "";
  }

  ShoaldProcess* Manager(const std::string& name) {
    for (ShoaldProcess* m : managers_) {
      if (m->node_name() == name) return m;
    }
    return nullptr;
  }

  // `shoal -H <via> service logs args...` as a streaming child process.
  static std::unique_ptr<StreamingProcess> Follow(const ShoaldProcess& via,
                                                  const std::vector<std::string>& args) {
    std::vector<std::string> argv = {ShoalBinary(), "-H", via.host(), "service", "logs"};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<std::unique_ptr<StreamingProcess>> p = StreamingProcess::Start(argv);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // Every daemon's log, for failure messages.
  std::string Logs() {
    std::string out;
    for (size_t i = 0; i < cluster_.size(); ++i) {
      absl::StrAppend(&out, "\n---- ", cluster_[i].node_name(), " ----\n", cluster_[i].LogText());
    }
    return out;
  }

  TestCluster cluster_;
  std::vector<ShoaldProcess*> managers_;
  ShoaldProcess* worker_ = nullptr;
};

// Without -f: every task's lines from all four nodes, through each manager (the leader serves the
// broker; the others relay), formatted as docker's; then the flags, a task ID, and the errors.
TEST_F(LogsE2eTest, ServiceLogsFromEveryNode) {
  CommandResult create = Cli({"service", "create", "-d", "--name", "web", "--replicas", "4",
                              "--replicas-max-per-node", "1", "sim/web:1"});
  ASSERT_EQ(create.exit_code, 0) << create.err << Logs();
  std::vector<TaskRow> tasks;
  ASSERT_TRUE(WaitFor([&] { return (tasks = RunningTasks(*managers_[0], "web")).size() == 4; },
                      kConverge, absl::Milliseconds(100)))
      << Cli({"service", "ps", "web"}).out << Logs();
  std::map<std::string, TaskRow> by_id;
  for (const TaskRow& t : tasks) by_id[t.id] = t;
  std::set<std::string> nodes;
  for (const TaskRow& t : tasks) nodes.insert(t.node);
  ASSERT_EQ(nodes, (std::set<std::string>{"m1", "m2", "m3", "worker-1"}));

  // Checks a plain `service logs web` output: one "started" line per task, prefixed
  // web.<slot>.<task ID, 12>@<node>, the " | " aligned.
  auto check_pretty = [&](const CommandResult& r, const std::string& via) {
    SCOPED_TRACE(via);
    ASSERT_EQ(r.exit_code, 0) << r.err << Logs();
    EXPECT_EQ(r.err, "");
    std::vector<std::string> lines = Lines(r.out);
    ASSERT_EQ(lines.size(), 4u) << r.out;
    std::set<std::string> seen;
    std::optional<size_t> bar;
    for (const std::string& line : lines) {
      std::optional<PrettyLine> p = ParsePretty(line);
      ASSERT_TRUE(p.has_value()) << "not `service.slot.task@node | data`: " << line;
      ASSERT_TRUE(absl::StartsWith(p->data, "sim: task ")) << line;
      const std::string id = p->data.substr(10, p->data.find(' ', 10) - 10);
      ASSERT_EQ(by_id.count(id), 1u) << "a line of an unknown task: " << line;
      const TaskRow& t = by_id[id];
      EXPECT_EQ(p->data, StartedLine(id, "sim/web:1")) << line;
      EXPECT_EQ(p->service, "web") << line;
      EXPECT_EQ(p->slot, t.slot) << line;
      EXPECT_EQ(p->task, id.substr(0, 12)) << line;
      EXPECT_EQ(p->node, t.node) << line;
      if (bar.has_value()) {
        EXPECT_EQ(p->bar, *bar) << "prefixes not padded alike:\n" << r.out;
      }
      bar = p->bar;
      EXPECT_TRUE(seen.insert(id).second) << "a line printed twice:\n" << r.out;
    }
  };
  for (ShoaldProcess* m : managers_) {
    check_pretty(Cli(*m, {"service", "logs", "web"}), m->node_name());
  }

  // --no-task-ids: web.<slot>@<node> | ...
  {
    CommandResult r = Cli({"service", "logs", "--no-task-ids", "web"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> lines = Lines(r.out);
    ASSERT_EQ(lines.size(), 4u) << r.out;
    std::set<std::string> slots;
    for (const std::string& line : lines) {
      std::optional<PrettyLine> p = ParsePretty(line, /*task_ids=*/false);
      ASSERT_TRUE(p.has_value()) << "not `service.slot@node | data`: " << line;
      const std::string id = p->data.substr(10, p->data.find(' ', 10) - 10);
      ASSERT_EQ(by_id.count(id), 1u) << line;
      EXPECT_EQ(p->slot, by_id[id].slot) << line;
      EXPECT_EQ(p->node, by_id[id].node) << line;
      slots.insert(p->slot);
    }
    EXPECT_EQ(slots, (std::set<std::string>{"1", "2", "3", "4"})) << r.out;
  }

  // --raw: the bare lines.
  {
    CommandResult r = Cli({"service", "logs", "--raw", "web"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> lines = Lines(r.out);
    std::sort(lines.begin(), lines.end());
    std::vector<std::string> want;
    for (const TaskRow& t : tasks) want.push_back(StartedLine(t.id, "sim/web:1"));
    std::sort(want.begin(), want.end());
    EXPECT_EQ(lines, want) << r.out;
  }

  // --timestamps: the line's RFC 3339 time with nanoseconds before it, a time of this test.
  {
    const absl::Time now = absl::Now();
    CommandResult r = Cli({"service", "logs", "--timestamps", "web"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> lines = Lines(r.out);
    ASSERT_EQ(lines.size(), 4u) << r.out;
    static const std::regex stamped(
        R"(^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) sim: task [0-9a-z]{25} started \(image sim/web:1\)$)");
    for (const std::string& line : lines) {
      std::optional<PrettyLine> p = ParsePretty(line);
      ASSERT_TRUE(p.has_value()) << line;
      std::smatch m;
      ASSERT_TRUE(std::regex_match(p->data, m, stamped)) << line;
      absl::Time t;
      std::string why;
      ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, m[1].str(), &t, &why)) << why;
      EXPECT_LE(t, now) << line;
      EXPECT_GE(t, now - absl::Minutes(10)) << line;
    }
  }

  // --tail: tasks with two lines each. sim/exit:3 writes "started" on stdout and its exit on
  // stderr, which the CLI prints on its stderr.
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "batch", "--replicas", "2",
                 "--replicas-max-per-node", "1", "--restart-condition", "none", "sim/exit:3"})
                .exit_code,
            0);
  CommandResult all;
  ASSERT_TRUE(WaitFor(
      [&] {
        all = Cli({"service", "logs", "batch"});
        return all.exit_code == 0 && Count(all.out, " started (image sim/exit:3)") == 2 &&
               Count(all.err, "| sim: exiting with code 3") == 2;
      },
      kConverge, absl::Milliseconds(200)))
      << all.out << all.err << Cli({"service", "ps", "batch"}).out;
  EXPECT_EQ(Lines(all.out).size(), 2u) << all.out;
  EXPECT_EQ(Lines(all.err).size(), 2u) << all.err;
  {
    CommandResult r = Cli({"service", "logs", "--tail", "1", "batch"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "");  // the last line of each task is its exit, on stderr
    std::vector<std::string> lines = Lines(r.err);
    ASSERT_EQ(lines.size(), 2u) << r.err;
    std::set<std::string> task_ids;
    for (const std::string& line : lines) {
      std::optional<PrettyLine> p = ParsePretty(line);
      ASSERT_TRUE(p.has_value()) << line;
      EXPECT_EQ(p->service, "batch");
      EXPECT_EQ(p->data, "sim: exiting with code 3");
      task_ids.insert(p->task);
    }
    EXPECT_EQ(task_ids.size(), 2u) << r.err;
  }
  {
    CommandResult r = Cli({"service", "logs", "--tail", "2", "batch"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The same lines (the nodes' order varies).
    std::vector<std::string> got = Lines(r.out), want = Lines(all.out);
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want);
    EXPECT_EQ(Lines(r.err).size(), 2u) << r.err;
  }
  {
    CommandResult r = Cli({"service", "logs", "--tail", "0", "batch"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "");
  }
  {
    CommandResult r = Cli({"service", "logs", "--tail", "1", "web"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Lines(r.out).size(), 4u) << r.out;  // one line per task: all of them
  }
  {
    CommandResult r = Cli({"service", "logs", "--tail", "many", "web"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(absl::StrContains(r.err, "--tail")) << r.err;
  }

  // A task instead of a service: its ID, and a unique prefix of it, through a non-leader too.
  const TaskRow& one = tasks[0];
  for (const std::string& ref : {one.id, one.id.substr(0, 10)}) {
    for (ShoaldProcess* m : managers_) {
      CommandResult r = Cli(*m, {"service", "logs", ref});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      std::vector<std::string> lines = Lines(r.out);
      ASSERT_EQ(lines.size(), 1u) << r.out;
      std::optional<PrettyLine> p = ParsePretty(lines[0]);
      ASSERT_TRUE(p.has_value()) << lines[0];
      EXPECT_EQ(p->service, "web");
      EXPECT_EQ(p->slot, one.slot);
      EXPECT_EQ(p->task, one.id.substr(0, 12));
      EXPECT_EQ(p->node, one.node);
      EXPECT_EQ(p->data, StartedLine(one.id, "sim/web:1"));
    }
  }

  // Errors name the problem.
  CommandResult unknown = Cli({"service", "logs", "nosuch"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_EQ(unknown.out, "");
  EXPECT_TRUE(absl::StrContains(unknown.err, "nosuch")) << unknown.err;
  EXPECT_TRUE(absl::StrContains(unknown.err, "no such service or task")) << unknown.err;
  CommandResult unknown_f = Cli({"service", "logs", "-f", "nosuch"});
  EXPECT_NE(unknown_f.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(unknown_f.err, "nosuch")) << unknown_f.err;
  CommandResult on_worker = Cli(*worker_, {"service", "logs", "web"});
  EXPECT_NE(on_worker.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(on_worker.err, "manager")) << on_worker.err;
}

// -f: the existing lines, then the lines of tasks that start later (a scale-up) and the lines
// existing tasks write later (an update stops them), each once; --tail 0 shows only the new ones.
TEST_F(LogsE2eTest, FollowPrintsNewLines) {
  ShoaldProcess& m1 = *managers_[0];
  ASSERT_EQ(Cli({"service", "create", "-d", "--name", "app", "--replicas", "2",
                 "--update-parallelism", "0", "sim/app:1"})
                .exit_code,
            0);
  std::vector<TaskRow> first;
  ASSERT_TRUE(WaitFor([&] { return (first = RunningTasks(m1, "app")).size() == 2; }, kConverge,
                      absl::Milliseconds(100)));

  // Through a manager that is not the leader: relayed by its forwarder.
  const std::string leader = LeaderName(m1);
  ShoaldProcess* via = nullptr;
  for (ShoaldProcess* m : managers_) {
    if (m->node_name() != leader) via = m;
  }
  ASSERT_NE(via, nullptr);
  ShoaldProcess* leader_process = Manager(leader);
  ASSERT_NE(leader_process, nullptr) << leader;
  auto subscriptions = [&] { return Count(leader_process->LogText(), " opened, following: "); };
  // `--tail 0` prints nothing at first: its subscription is seen in the leader's (debug) log.
  std::unique_ptr<StreamingProcess> only_new = Follow(*via, {"-f", "--tail", "0", "app"});
  ASSERT_NE(only_new, nullptr);
  ASSERT_TRUE(
      WaitFor([&] { return subscriptions() == 1; }, kFollowDeadline, absl::Milliseconds(50)))
      << only_new->Describe() << leader_process->LogText();
  std::unique_ptr<StreamingProcess> follow = Follow(*via, {"-f", "app"});
  ASSERT_NE(follow, nullptr);
  for (const TaskRow& t : first) {
    ASSERT_TRUE(WaitFor([&] { return Count(follow->out(), StartedLine(t.id, "sim/app:1")) == 1; },
                        kFollowDeadline, kPoll))
        << follow->Describe() << Logs();
  }

  // Two more tasks: their "started" lines reach both followers.
  ASSERT_EQ(Cli({"service", "scale", "-d", "app=4"}).exit_code, 0);
  std::vector<TaskRow> scaled;
  ASSERT_TRUE(WaitFor([&] { return (scaled = RunningTasks(m1, "app")).size() == 4; }, kConverge,
                      absl::Milliseconds(50)));
  const absl::Time running_at = absl::Now();
  std::vector<TaskRow> added;
  for (const TaskRow& t : scaled) {
    if (std::none_of(first.begin(), first.end(), [&](const TaskRow& f) { return f.id == t.id; })) {
      added.push_back(t);
    }
  }
  ASSERT_EQ(added.size(), 2u);
  for (const TaskRow& t : added) {
    ASSERT_TRUE(WaitFor(
        [&] {
          return Count(follow->out(), StartedLine(t.id, "sim/app:1")) == 1 &&
                 Count(only_new->out(), StartedLine(t.id, "sim/app:1")) == 1;
        },
        kFollowDeadline, kPoll))
        << "follow:\n"
        << follow->Describe() << "--tail 0 follow:\n"
        << only_new->Describe() << Logs();
    // The prefix of a task that started after the stream began is resolved too.
    for (const std::string& line : Lines(follow->out())) {
      if (!absl::EndsWith(line, StartedLine(t.id, "sim/app:1"))) continue;
      std::optional<PrettyLine> p = ParsePretty(line);
      ASSERT_TRUE(p.has_value()) << line;
      EXPECT_EQ(p->service, "app");
      EXPECT_EQ(p->slot, t.slot);
      EXPECT_EQ(p->node, t.node);
    }
  }
  std::cout << "[ metric ] new tasks' lines followed "
            << absl::FormatDuration(absl::Now() - running_at) << " after they ran\n";

  // An update stops the four tasks (they write "sim: stopped", kept as history) and starts four
  // new ones.
  ASSERT_EQ(Cli({"service", "update", "-d", "--image", "sim/app:2", "app"}).exit_code, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string out = follow->out();
        return Count(out, "| sim: stopped\n") == 4 && Count(out, " started (image sim/app:2)") == 4;
      },
      kConverge, kPoll))
      << follow->Describe() << Cli({"service", "ps", "app"}).out << Logs();
  for (const TaskRow& t : scaled) {
    EXPECT_EQ(Count(follow->out(), absl::StrCat(".", t.id.substr(0, 12), "@")), 2u)
        << "task " << t.id << " should show its start and its stop:\n"
        << follow->out();
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string out = only_new->out();
        return Count(out, "| sim: stopped\n") == 4 && Count(out, " started (image sim/app:2)") == 4;
      },
      kFollowDeadline, kPoll))
      << only_new->Describe();

  // Each follower printed every line once, on stdout, and is still following.
  for (StreamingProcess* p : {follow.get(), only_new.get()}) {
    std::vector<std::string> lines = Lines(p->out());
    std::set<std::string> unique(lines.begin(), lines.end());
    EXPECT_EQ(unique.size(), lines.size()) << "a line was printed twice:\n" << p->Describe();
    EXPECT_EQ(p->err(), "");
    EXPECT_TRUE(p->running()) << p->Describe();
  }
  EXPECT_EQ(Lines(follow->out()).size(), 12u) << follow->out();      // 4 + 4 started, 4 stopped
  EXPECT_EQ(Lines(only_new->out()).size(), 10u) << only_new->out();  // all but the first two
  EXPECT_EQ(Count(only_new->out(), StartedLine(first[0].id, "sim/app:1")), 0u);
  EXPECT_TRUE(follow->Stop(absl::Seconds(5)).ok());
  EXPECT_TRUE(only_new->Stop(absl::Seconds(5)).ok());
}

// -f through a manager that stays up while the leader is killed: the CLI resumes on UNAVAILABLE
// through the new leader, which hands the subscription to the agents once they reconnect; lines
// written after the failover (new tasks', and old tasks' stops) arrive, and none is printed
// twice.
TEST_F(LogsE2eTest, FollowSurvivesTheLeadersDeath) {
  ShoaldProcess& m1 = *managers_[0];
  ASSERT_EQ(
      Cli({"service", "create", "-d", "--name", "app", "--replicas", "4", "sim/app:1"}).exit_code,
      0);
  std::vector<TaskRow> before;
  ASSERT_TRUE(WaitFor([&] { return (before = RunningTasks(m1, "app")).size() == 4; }, kConverge,
                      absl::Milliseconds(100)));
  const std::string leader_name = LeaderName(m1);
  ShoaldProcess* leader = Manager(leader_name);
  ASSERT_NE(leader, nullptr) << leader_name;
  ShoaldProcess* via = nullptr;
  for (ShoaldProcess* m : managers_) {
    if (m != leader) via = m;
  }

  std::unique_ptr<StreamingProcess> follow = Follow(*via, {"-f", "app"});
  ASSERT_NE(follow, nullptr);
  for (const TaskRow& t : before) {
    ASSERT_TRUE(WaitFor([&] { return Count(follow->out(), StartedLine(t.id, "sim/app:1")) == 1; },
                        kFollowDeadline, kPoll))
        << follow->Describe() << Logs();
  }

  const absl::Time killed = absl::Now();
  leader->Kill();
  // A new leader takes writes: two more tasks, on the surviving nodes.
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string l = LeaderName(*via);
        return !l.empty() && l != leader_name;
      },
      kConverge, absl::Milliseconds(100)))
      << via->LogText();
  ASSERT_TRUE(WaitFor(
      [&] {
        return Cli(*via, {"service", "scale", "-d", "app=6"}).exit_code == 0;
      },
      kConverge, absl::Milliseconds(200)))
      << via->LogText();
  // Every task running now — the two new ones, and the replacement of the dead node's task once
  // that node is marked down — shows its "started" line, once, in the same follower.
  std::vector<TaskRow> after;
  ASSERT_TRUE(WaitFor(
      [&] {
        after = RunningTasks(*via, "app");
        if (after.size() != 6) return false;
        const std::string out = follow->out();
        for (const TaskRow& t : after) {
          if (Count(out, StartedLine(t.id, "sim/app:1")) != 1) return false;
        }
        return true;
      },
      kConverge, kPoll))
      << follow->Describe() << Cli(*via, {"service", "ps", "app"}).out << Logs();
  std::cout << "[ metric ] every task's lines followed "
            << absl::FormatDuration(absl::Now() - killed) << " after the leader (" << leader_name
            << ") was killed\n";

  // Tasks that ran before the failover write again: draining the worker stops its tasks ("sim:
  // stopped") and starts replacements elsewhere. Both reach the follower.
  std::vector<TaskRow> on_worker;
  for (const TaskRow& t : after) {
    if (t.node == worker_->node_name()) on_worker.push_back(t);
  }
  ASSERT_FALSE(on_worker.empty()) << Cli(*via, {"service", "ps", "app"}).out;
  ASSERT_EQ(
      Cli(*via, {"node", "update", "--availability", "drain", worker_->node_name()}).exit_code, 0);
  auto has_line = [](const std::string& out, const std::string& task_id, const std::string& data) {
    for (const std::string& line : Lines(out)) {
      std::optional<PrettyLine> p = ParsePretty(line);
      if (p.has_value() && p->task == task_id.substr(0, 12) && p->data == data) return true;
    }
    return false;
  };
  std::vector<TaskRow> drained;
  ASSERT_TRUE(WaitFor(
      [&] {
        drained = RunningTasks(*via, "app");
        if (drained.size() != 6) return false;
        const std::string out = follow->out();
        for (const TaskRow& t : drained) {
          if (t.node == worker_->node_name()) return false;
          if (!has_line(out, t.id, StartedLine(t.id, "sim/app:1"))) return false;
        }
        for (const TaskRow& t : on_worker) {
          if (!has_line(out, t.id, "sim: stopped")) return false;
        }
        return true;
      },
      kConverge, kPoll))
      << follow->Describe() << Cli(*via, {"service", "ps", "app"}).out << Logs();

  // Still following; every line printed once, well formed, on stdout.
  EXPECT_TRUE(follow->running()) << follow->Describe();
  std::vector<std::string> lines = Lines(follow->out());
  std::set<std::string> unique(lines.begin(), lines.end());
  EXPECT_EQ(unique.size(), lines.size()) << "a line was printed twice:\n" << follow->Describe();
  for (const std::string& line : lines) {
    EXPECT_TRUE(ParsePretty(line).has_value()) << line;
  }
  // 4 started before the kill, 2 new + 1 replacement; per task drained, its stop and the start
  // of its replacement.
  EXPECT_EQ(lines.size(), 7 + 2 * on_worker.size()) << follow->Describe();
  EXPECT_EQ(follow->err(), "");
  EXPECT_TRUE(follow->Stop(absl::Seconds(5)).ok());
}

}  // namespace
}  // namespace shoal::testing
