// The service, secret and config commands end to end: the real CLI (Run) against a fake Control
// service on a unix socket. The fake keeps services, tasks, secrets and configs in memory, checks
// versions like the store (ABORTED when stale), and plays the orchestrator: after every change
// (and every ListTasks, to model restarts) each replicated slot / global node gets a task of the
// current template in `task_state`.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "cli/app.h"
#include "cli/context.h"
#include "cli/service_command.h"
#include "cli/service_progress.h"
#include "common/clock.h"
#include "control.grpc.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace shoal::cli {
namespace {

using google::protobuf::util::MessageDifferencer;
using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

template <typename Filters>
bool NameMatches(const std::string& id, const std::string& name, const Filters& f) {
  if (f.names_size() > 0 &&
      std::find(f.names().begin(), f.names().end(), name) == f.names().end()) {
    return false;
  }
  if (f.id_prefixes_size() > 0 &&
      std::none_of(f.id_prefixes().begin(), f.id_prefixes().end(),
                   [&id](const std::string& p) { return absl::StartsWith(id, p); })) {
    return false;
  }
  if (f.name_prefixes_size() > 0 &&
      std::none_of(f.name_prefixes().begin(), f.name_prefixes().end(),
                   [&name](const std::string& p) { return absl::StartsWith(name, p); })) {
    return false;
  }
  return true;
}

class FakeControl final : public api::Control::Service {
 public:
  absl::Mutex mu;
  std::vector<api::Service> services ABSL_GUARDED_BY(mu);
  std::vector<api::Task> tasks ABSL_GUARDED_BY(mu);
  std::vector<api::Node> nodes ABSL_GUARDED_BY(mu);
  std::vector<api::Secret> secrets ABSL_GUARDED_BY(mu);
  std::vector<api::Config> configs ABSL_GUARDED_BY(mu);
  std::vector<api::Network> networks ABSL_GUARDED_BY(mu);
  api::TaskState task_state ABSL_GUARDED_BY(mu) = api::TASK_STATE_RUNNING;
  std::string task_err ABSL_GUARDED_BY(mu);
  bool send_statuses ABSL_GUARDED_BY(mu) = true;
  int abort_service_updates ABSL_GUARDED_BY(mu) = 0;
  int update_service_calls ABSL_GUARDED_BY(mu) = 0;
  int list_tasks_calls ABSL_GUARDED_BY(mu) = 0;
  int rpc_calls ABSL_GUARDED_BY(mu) = 0;
  int next_id ABSL_GUARDED_BY(mu) = 0;
  int64_t clock ABSL_GUARDED_BY(mu) = 1700000000;

  std::string NewId(const std::string& prefix) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ++next_id;
    return prefix + std::to_string(next_id) + std::string(20, 'x');
  }

  api::Task NewTask(const api::Service& s, uint64_t slot, const std::string& node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    api::Task t;
    t.set_id(NewId("task"));
    t.set_service_id(s.id());
    t.set_slot(slot);
    t.set_node_id(node);
    *t.mutable_spec() = s.spec().task_template();
    *t.mutable_service_annotations() = s.spec().annotations();
    t.mutable_meta()->mutable_created_at()->set_seconds(++clock);
    t.mutable_status()->set_state(task_state);
    t.mutable_status()->set_err(task_err);
    t.mutable_status()->mutable_timestamp()->set_seconds(clock);
    t.set_desired_state(api::TASK_STATE_RUNNING);
    return t;
  }

  // What an orchestrator does: one live task of the current template per slot (or node).
  void Reconcile(const api::Service& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<std::pair<uint64_t, std::string>> wanted;  // (slot, node)
    if (s.spec().has_replicated()) {
      for (uint64_t i = 1; i <= s.spec().replicated().replicas(); ++i) {
        wanted.push_back({i, nodes[(i - 1) % nodes.size()].id()});
      }
      for (api::Task& t : tasks) {
        if (t.service_id() == s.id() && t.slot() > s.spec().replicated().replicas()) {
          t.set_desired_state(api::TASK_STATE_REMOVE);
        }
      }
    } else if (s.spec().has_global()) {
      for (const api::Node& n : nodes) wanted.push_back({0, n.id()});
    }
    for (const auto& [slot, node] : wanted) {
      bool ok = false;
      for (api::Task& t : tasks) {
        if (t.service_id() != s.id() || t.slot() != slot || (slot == 0 && t.node_id() != node)) {
          continue;
        }
        if (t.desired_state() == api::TASK_STATE_RUNNING &&
            t.status().state() <= api::TASK_STATE_RUNNING &&
            MessageDifferencer::Equals(t.spec(), s.spec().task_template())) {
          ok = true;
        } else if (t.desired_state() == api::TASK_STATE_RUNNING) {
          t.set_desired_state(api::TASK_STATE_SHUTDOWN);
          if (t.status().state() <= api::TASK_STATE_RUNNING) {
            t.mutable_status()->set_state(api::TASK_STATE_SHUTDOWN);
          }
        }
      }
      if (!ok) tasks.push_back(NewTask(s, slot, node));
    }
  }

  api::Service* FindService(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (api::Service& s : services) {
      if (s.id() == id) return &s;
    }
    return nullptr;
  }

  Status CreateService(ServerContext*, const api::CreateServiceRequest* req,
                       api::CreateServiceResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    for (const api::Service& s : services) {
      if (s.spec().annotations().name() == req->spec().annotations().name()) {
        return Status(StatusCode::ALREADY_EXISTS,
                      "a service named \"" + s.spec().annotations().name() + "\" already exists");
      }
    }
    api::Service s;
    s.set_id(NewId("svc"));
    *s.mutable_spec() = req->spec();
    if (s.spec().annotations().name().empty()) {
      s.mutable_spec()->mutable_annotations()->set_name("auto_" + s.id().substr(0, 5));
    }
    s.mutable_meta()->mutable_version()->set_index(1);
    s.mutable_meta()->mutable_created_at()->set_seconds(clock);
    services.push_back(s);
    Reconcile(s);
    *resp->mutable_service() = s;
    return Status::OK;
  }
  Status GetService(ServerContext*, const api::GetServiceRequest* req,
                    api::GetServiceResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    if (api::Service* s = FindService(req->service_id())) {
      *resp->mutable_service() = *s;
      return Status::OK;
    }
    return Status(StatusCode::NOT_FOUND, "service " + req->service_id() + " not found");
  }
  Status ListServices(ServerContext*, const api::ListServicesRequest* req,
                      api::ListServicesResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    for (const api::Service& s : services) {
      if (!NameMatches(s.id(), s.spec().annotations().name(), req->filters())) continue;
      *resp->add_services() = s;
      if (req->include_status() && send_statuses) {
        api::ServiceStatus& st = (*resp->mutable_statuses())[s.id()];
        for (const api::Task& t : tasks) {
          if (t.service_id() == s.id() && t.status().state() == api::TASK_STATE_RUNNING) {
            st.set_running_tasks(st.running_tasks() + 1);
          }
        }
        st.set_desired_tasks(s.spec().has_replicated() ? s.spec().replicated().replicas()
                                                       : nodes.size());
      }
    }
    return Status::OK;
  }
  Status UpdateService(ServerContext*, const api::UpdateServiceRequest* req,
                       api::UpdateServiceResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    ++update_service_calls;
    api::Service* s = FindService(req->service_id());
    if (s == nullptr) return Status(StatusCode::NOT_FOUND, "service not found");
    if (abort_service_updates > 0) {
      --abort_service_updates;
      s->mutable_meta()->mutable_version()->set_index(s->meta().version().index() + 1);
      return Status(StatusCode::ABORTED, "update out of sequence");
    }
    if (req->version().index() != s->meta().version().index()) {
      return Status(StatusCode::ABORTED, "update out of sequence");
    }
    if (req->rollback()) {
      if (!s->has_previous_spec()) {
        return Status(StatusCode::FAILED_PRECONDITION,
                      "service has no previous spec to roll back to");
      }
      std::swap(*s->mutable_spec(), *s->mutable_previous_spec());
      s->mutable_update_status()->set_state(api::UpdateStatus::ROLLBACK_STARTED);
      s->mutable_update_status()->set_message("manually requested rollback");
    } else {
      *s->mutable_previous_spec() = s->spec();
      *s->mutable_spec() = req->spec();
      s->clear_update_status();
    }
    s->mutable_meta()->mutable_version()->set_index(s->meta().version().index() + 1);
    Reconcile(*s);
    *resp->mutable_service() = *s;
    return Status::OK;
  }
  Status RemoveService(ServerContext*, const api::RemoveServiceRequest* req,
                       api::RemoveServiceResponse*) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    for (auto it = services.begin(); it != services.end(); ++it) {
      if (it->id() == req->service_id()) {
        services.erase(it);
        return Status::OK;
      }
    }
    return Status(StatusCode::NOT_FOUND, "service not found");
  }
  Status ListTasks(ServerContext*, const api::ListTasksRequest* req,
                   api::ListTasksResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    ++list_tasks_calls;
    for (const api::Service& s : services) Reconcile(s);  // restarts
    const auto& f = req->filters();
    for (const api::Task& t : tasks) {
      if (f.service_ids_size() > 0 && std::find(f.service_ids().begin(), f.service_ids().end(),
                                                t.service_id()) == f.service_ids().end()) {
        continue;
      }
      if (f.node_ids_size() > 0 &&
          std::find(f.node_ids().begin(), f.node_ids().end(), t.node_id()) == f.node_ids().end()) {
        continue;
      }
      if (f.desired_states_size() > 0 &&
          std::find(f.desired_states().begin(), f.desired_states().end(), t.desired_state()) ==
              f.desired_states().end()) {
        continue;
      }
      *resp->add_tasks() = t;
    }
    return Status::OK;
  }
  Status GetNode(ServerContext*, const api::GetNodeRequest* req,
                 api::GetNodeResponse* resp) override {
    absl::MutexLock l(&mu);
    for (const api::Node& n : nodes) {
      if (n.id() == req->node_id()) {
        *resp->mutable_node() = n;
        return Status::OK;
      }
    }
    return Status(StatusCode::NOT_FOUND, "node not found");
  }
  Status ListNodes(ServerContext*, const api::ListNodesRequest* req,
                   api::ListNodesResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    for (const api::Node& n : nodes) {
      if (NameMatches(n.id(), n.description().hostname(), req->filters())) *resp->add_nodes() = n;
    }
    return Status::OK;
  }
  Status GetNetwork(ServerContext*, const api::GetNetworkRequest* req,
                    api::GetNetworkResponse* resp) override {
    absl::MutexLock l(&mu);
    for (const api::Network& n : networks) {
      if (n.id() == req->network_id()) {
        *resp->mutable_network() = n;
        return Status::OK;
      }
    }
    return Status(StatusCode::NOT_FOUND, "network not found");
  }
  Status ListNetworks(ServerContext*, const api::ListNetworksRequest* req,
                      api::ListNetworksResponse* resp) override {
    absl::MutexLock l(&mu);
    for (const api::Network& n : networks) {
      if (NameMatches(n.id(), n.spec().annotations().name(), req->filters())) {
        *resp->add_networks() = n;
      }
    }
    return Status::OK;
  }

  template <typename T, typename Spec>
  Status CreateObject(std::vector<T>* list, const std::string& prefix, const Spec& spec, T* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ++rpc_calls;
    for (const T& o : *list) {
      if (o.spec().annotations().name() == spec.annotations().name()) {
        return Status(StatusCode::ALREADY_EXISTS, "name taken");
      }
    }
    T o;
    o.set_id(NewId(prefix));
    *o.mutable_spec() = spec;
    o.mutable_meta()->mutable_created_at()->set_seconds(clock - 3600);
    o.mutable_meta()->mutable_updated_at()->set_seconds(clock - 3600);
    list->push_back(o);
    *out = o;
    return Status::OK;
  }
  template <typename T>
  Status GetObject(const std::vector<T>& list, const std::string& id, T* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (const T& o : list) {
      if (o.id() == id) {
        *out = o;
        return Status::OK;
      }
    }
    return Status(StatusCode::NOT_FOUND, id + " not found");
  }
  template <typename T>
  Status RemoveObject(std::vector<T>* list, const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto it = list->begin(); it != list->end(); ++it) {
      if (it->id() == id) {
        list->erase(it);
        return Status::OK;
      }
    }
    return Status(StatusCode::NOT_FOUND, id + " not found");
  }

  Status CreateSecret(ServerContext*, const api::CreateSecretRequest* req,
                      api::CreateSecretResponse* resp) override {
    absl::MutexLock l(&mu);
    Status s = CreateObject(&secrets, "sec", req->spec(), resp->mutable_secret());
    resp->mutable_secret()->mutable_spec()->clear_data();
    return s;
  }
  Status GetSecret(ServerContext*, const api::GetSecretRequest* req,
                   api::GetSecretResponse* resp) override {
    absl::MutexLock l(&mu);
    Status s = GetObject(secrets, req->secret_id(), resp->mutable_secret());
    resp->mutable_secret()->mutable_spec()->clear_data();
    return s;
  }
  Status ListSecrets(ServerContext*, const api::ListSecretsRequest* req,
                     api::ListSecretsResponse* resp) override {
    absl::MutexLock l(&mu);
    for (const api::Secret& s : secrets) {
      if (!NameMatches(s.id(), s.spec().annotations().name(), req->filters())) continue;
      api::Secret* out = resp->add_secrets();
      *out = s;
      out->mutable_spec()->clear_data();
    }
    return Status::OK;
  }
  Status RemoveSecret(ServerContext*, const api::RemoveSecretRequest* req,
                      api::RemoveSecretResponse*) override {
    absl::MutexLock l(&mu);
    return RemoveObject(&secrets, req->secret_id());
  }
  Status CreateConfig(ServerContext*, const api::CreateConfigRequest* req,
                      api::CreateConfigResponse* resp) override {
    absl::MutexLock l(&mu);
    return CreateObject(&configs, "cfg", req->spec(), resp->mutable_config());
  }
  Status GetConfig(ServerContext*, const api::GetConfigRequest* req,
                   api::GetConfigResponse* resp) override {
    absl::MutexLock l(&mu);
    return GetObject(configs, req->config_id(), resp->mutable_config());
  }
  Status ListConfigs(ServerContext*, const api::ListConfigsRequest* req,
                     api::ListConfigsResponse* resp) override {
    absl::MutexLock l(&mu);
    for (const api::Config& c : configs) {
      if (NameMatches(c.id(), c.spec().annotations().name(), req->filters())) {
        *resp->add_configs() = c;
      }
    }
    return Status::OK;
  }
  Status RemoveConfig(ServerContext*, const api::RemoveConfigRequest* req,
                      api::RemoveConfigResponse*) override {
    absl::MutexLock l(&mu);
    return RemoveObject(&configs, req->config_id());
  }
};

// A clock whose SleepUntil jumps to the deadline: waits run without real sleeping.
class JumpingClock : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void SleepUntil(absl::Time deadline) override {
    if (deadline > now_) now_ = deadline;
    ++sleeps;
  }
  int sleeps = 0;

 private:
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

api::Node MakeNode(const std::string& id, const std::string& hostname) {
  api::Node n;
  n.set_id(id);
  n.mutable_description()->set_hostname(hostname);
  n.mutable_status()->set_state(api::NodeStatus::READY);
  return n;
}

struct Result {
  int code;
  std::string out;
  std::string err;
};

class ServiceCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/shoal-svc-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    host_ = "unix://" + dir_ + "/control.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort(host_, grpc::InsecureServerCredentials());
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    absl::MutexLock l(&fake_.mu);
    fake_.nodes = {MakeNode("node1id", "node1"), MakeNode("node2id", "node2")};
    api::Network net;
    net.set_id("netid0123456789");
    net.mutable_spec()->mutable_annotations()->set_name("backend");
    fake_.networks.push_back(net);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    ::unlink((dir_ + "/control.sock").c_str());
    ::unlink((dir_ + "/data").c_str());
    ::rmdir(dir_.c_str());
  }

  Result RunCli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"shoal", "-H", host_});
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    std::istringstream in(input);
    std::ostringstream out, err;
    const int code = cli::Run(static_cast<int>(argv.size()), argv.data(), in, out, err, clock_);
    return {code, out.str(), err.str()};
  }

  // Creates "web" (2 replicas) without waiting; returns its ID.
  std::string CreateWeb() {
    const Result r = RunCli({"service", "create", "-d", "--name", "web", "--replicas", "2",
                             "--publish", "8080:80", "sim/app:1"});
    EXPECT_EQ(r.code, 0) << r.err;
    return std::string(absl::StripTrailingAsciiWhitespace(r.out));
  }

  api::Service Stored(const std::string& name) {
    absl::MutexLock l(&fake_.mu);
    for (const api::Service& s : fake_.services) {
      if (s.spec().annotations().name() == name) return s;
    }
    ADD_FAILURE() << "no service " << name;
    return api::Service();
  }

  FakeControl fake_;
  JumpingClock clock_;
  std::string dir_;
  std::string host_;
  std::unique_ptr<grpc::Server> server_;
};

// --- create --------------------------------------------------------------------------------

TEST_F(ServiceCommandsTest, CreateSendsTheSpecAndWaitsForConvergence) {
  const Result r = RunCli({"service", "create", "--name", "web", "--replicas", "2", "-p", "8080:80",
                           "-e", "A=1", "--limit-memory", "512M", "--constraint",
                           "node.role==worker", "sim/app:1", "serve", "-v", "--port", "80"});
  ASSERT_EQ(r.code, 0) << r.err;
  const api::Service s = Stored("web");
  EXPECT_EQ(r.out, s.id() +
                       "\n"
                       "overall progress: 2 out of 2 tasks\n"
                       "1/2: running\n"
                       "2/2: running\n"
                       "verify: Waiting 5 seconds to verify that tasks are stable...\n"
                       "verify: Service converged\n");
  EXPECT_EQ(clock_.sleeps, 10);  // 5 s of verification in 500 ms polls
  const api::ServiceSpec& spec = s.spec();
  EXPECT_EQ(spec.replicated().replicas(), 2u);
  EXPECT_EQ(spec.endpoint_spec().ports(0).published_port(), 8080u);
  EXPECT_EQ(spec.task_template().container_spec().env(0), "A=1");
  EXPECT_EQ(spec.task_template().resources().limits().memory_bytes(), 512 << 20);
  EXPECT_EQ(spec.task_template().placement().constraints(0), "node.role==worker");
  // Everything after the image is the command, options included.
  const auto& args = spec.task_template().container_spec().args();
  EXPECT_EQ(std::vector<std::string>(args.begin(), args.end()),
            (std::vector<std::string>{"serve", "-v", "--port", "80"}));
}

TEST_F(ServiceCommandsTest, CreateDetachedAndQuiet) {
  Result r = RunCli({"service", "create", "-d", "--name", "a", "sim/app:1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, Stored("a").id() + "\n");
  {
    absl::MutexLock l(&fake_.mu);
    EXPECT_EQ(fake_.list_tasks_calls, 0);
  }
  r = RunCli({"service", "create", "-q", "--name", "b", "sim/app:1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, Stored("b").id() + "\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_GT(fake_.list_tasks_calls, 0);  // waited, silently
}

TEST_F(ServiceCommandsTest, CreateRefusesBadFlagsBeforeCalling) {
  Result r = RunCli({"service", "create", "--publish", "80:http", "sim/app:1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(absl::StartsWith(r.err, "Error: --publish: invalid port \"80:http\"")) << r.err;
  r = RunCli({"service", "create", "--mode", "global", "--replicas", "3", "sim/app:1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "Error: --replicas: can only be used with --mode replicated or replicated-job\n");
  r = RunCli({"service", "create", "--name", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("IMAGE"), std::string::npos) << r.err;
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.rpc_calls, 0);
}

TEST_F(ServiceCommandsTest, CreateStopsWaitingWhenTasksKeepFailing) {
  {
    absl::MutexLock l(&fake_.mu);
    fake_.task_state = api::TASK_STATE_FAILED;
    fake_.task_err = "task: non-zero exit (1)";
  }
  const Result r = RunCli({"service", "create", "--name", "crash", "sim/exit:1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "Error: tasks of service crash keep failing: \"task: non-zero exit (1)\" (3 times); "
            "`shoal service ps crash` shows its tasks\n");
  EXPECT_NE(r.out.find("1/1: task: non-zero exit (1)\n"), std::string::npos) << r.out;
}

TEST_F(ServiceCommandsTest, WaitGivesUpAfterTheTimeoutSayingHowFarItGot) {
  {
    absl::MutexLock l(&fake_.mu);
    fake_.task_state = api::TASK_STATE_PENDING;
  }
  const std::string id = CreateWeb();
  std::istringstream in;
  std::ostringstream out, err;
  Context ctx(in, out, err);
  ctx.host_flag() = host_;
  ctx.set_clock(&clock_);
  WaitOptions options;
  options.timeout = absl::Seconds(3);
  try {
    WaitForService(ctx, id, "web", options);
    FAIL() << "expected a timeout";
  } catch (const CommandError& e) {
    EXPECT_EQ(e.message,
              "service web has not converged after 3s (0 out of 2 tasks); shoal stopped waiting, "
              "the managers go on in the background: `shoal service ps web` shows its tasks (use "
              "-d not to wait)");
  }
  EXPECT_EQ(clock_.sleeps, 6);
  EXPECT_EQ(out.str(), "overall progress: 0 out of 2 tasks\n1/2: pending\n2/2: pending\n");
}

// --- ls, ps, inspect, rm -----------------------------------------------------------------------

TEST_F(ServiceCommandsTest, LsTableJsonQuietAndFilters) {
  const std::string web = CreateWeb();
  ASSERT_EQ(RunCli({"service", "create", "-d", "--name", "agent", "--mode", "global",
                    "sim/agent:2@sha256:0123"})
                .code,
            0);
  const std::string agent = Stored("agent").id();
  Result r = RunCli({"service", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "ID             NAME    MODE         REPLICAS   IMAGE         PORTS\n" +
                       agent.substr(0, 12) + "   agent   global       2/2        sim/agent:2\n" +
                       web.substr(0, 12) + "   web     replicated   2/2        sim/app:1\n");
  r = RunCli({"service", "ls", "-q", "--filter", "mode=global"});
  EXPECT_EQ(r.out, agent + "\n");
  r = RunCli({"service", "ls", "--format", "json", "--filter", "name=we"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["Name"], "web");
  EXPECT_EQ(j["Replicas"], "2/2");
  EXPECT_EQ(j["Mode"], "replicated");
  r = RunCli({"service", "ls", "--filter", "size=big"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("invalid filter \"size=big\""), std::string::npos);
}

TEST_F(ServiceCommandsTest, LsCountsTasksItselfWhenTheDaemonDoesNot) {
  CreateWeb();
  {
    absl::MutexLock l(&fake_.mu);
    fake_.send_statuses = false;
    fake_.tasks[1].mutable_status()->set_state(api::TASK_STATE_PREPARING);
  }
  const Result r = RunCli({"service", "ls", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["Replicas"], "1/2");
}

TEST_F(ServiceCommandsTest, PsShowsTasksWithHistory) {
  CreateWeb();
  {
    absl::MutexLock l(&fake_.mu);
    // Slot 1 failed once before its current task.
    api::Task old = fake_.tasks[0];
    old.set_id("oldtask0123456789");
    old.mutable_meta()->mutable_created_at()->set_seconds(10);
    old.mutable_status()->set_state(api::TASK_STATE_FAILED);
    old.mutable_status()->set_err("exit 1");
    old.set_desired_state(api::TASK_STATE_SHUTDOWN);
    fake_.tasks.push_back(old);
  }
  Result r = RunCli({"service", "ps", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_TRUE(absl::StartsWith(lines[0],
                               "ID             NAME        IMAGE       NODE    DESIRED "
                               "STATE   CURRENT STATE"))
      << lines[0];
  EXPECT_NE(lines[1].find("   web.1       sim/app:1   node1   Running         Running"),
            std::string::npos)
      << r.out;
  EXPECT_NE(lines[2].find("oldtask01234    \\_ web.1   sim/app:1   node1   Shutdown        Failed"),
            std::string::npos)
      << r.out;
  EXPECT_NE(lines[2].find("\"exit 1\""), std::string::npos);
  EXPECT_NE(lines[3].find("web.2       sim/app:1   node2"), std::string::npos) << r.out;

  r = RunCli({"service", "ps", "-q", "--filter", "node=node2", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  r = RunCli({"service", "ps", "--format", "json", "--filter", "desired-state=shutdown", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["Error"], "\"exit 1\"");
  r = RunCli({"service", "ps", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: service nope not found (`shoal service ls` lists the services)\n");
}

TEST_F(ServiceCommandsTest, InspectJsonPrettyAndMissing) {
  const std::string id = CreateWeb();
  Result r = RunCli({"service", "inspect", "web", id.substr(0, 5)});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["ID"], id);
  EXPECT_EQ(j[0]["Spec"]["Mode"]["Replicated"]["Replicas"], 2);
  EXPECT_EQ(j[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"], "sim/app:1");
  EXPECT_EQ(j[1]["ID"], id);
  EXPECT_TRUE(absl::StartsWith(r.out, "[\n    {\n        \"ID\": \"" + id + "\",\n")) << r.out;

  r = RunCli({"service", "inspect", "--pretty", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "ID:\t\t" + id + "\nName:\t\tweb\n")) << r.out;
  EXPECT_NE(r.out.find("Endpoint Mode:\tvip\n"), std::string::npos) << r.out;

  r = RunCli({"service", "inspect", "web", "ghost"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 1u);
  EXPECT_EQ(r.err, "Error: service ghost not found (`shoal service ls` lists the services)\n");
}

TEST_F(ServiceCommandsTest, RmRemovesWhatItCan) {
  CreateWeb();
  const Result r = RunCli({"service", "rm", "web", "ghost"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "web\n");
  EXPECT_EQ(r.err, "Error: service ghost not found (`shoal service ls` lists the services)\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_TRUE(fake_.services.empty());
}

// --- update, rollback, scale -------------------------------------------------------------------

TEST_F(ServiceCommandsTest, UpdateChangesTheSpecRetriesAndWaits) {
  CreateWeb();
  {
    absl::MutexLock l(&fake_.mu);
    fake_.abort_service_updates = 1;
    // The service uses the backend network, by ID as the managers store it.
    fake_.services[0].mutable_spec()->mutable_task_template()->add_networks()->set_target(
        "netid0123456789");
  }
  const Result r = RunCli({"service", "update", "--image", "sim/app:2", "--env-add", "B=2",
                           "--publish-rm", "80", "--publish-add", "9090:80", "--network-rm",
                           "backend", "--update-monitor", "1s", "--force", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "web\n"
            "overall progress: 2 out of 2 tasks\n"
            "1/2: running\n"
            "2/2: running\n"
            "verify: Waiting 1 seconds to verify that tasks are stable...\n"
            "verify: Service converged\n");
  const api::Service s = Stored("web");
  const api::ServiceSpec& spec = s.spec();
  EXPECT_EQ(spec.task_template().container_spec().image(), "sim/app:2");
  EXPECT_EQ(spec.task_template().container_spec().env(0), "B=2");
  ASSERT_EQ(spec.endpoint_spec().ports_size(), 1);
  EXPECT_EQ(spec.endpoint_spec().ports(0).published_port(), 9090u);
  EXPECT_EQ(spec.task_template().networks_size(), 0);
  EXPECT_EQ(spec.task_template().force_update(), 1u);
  EXPECT_EQ(spec.update_config().monitor().seconds(), 1);
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.update_service_calls, 2);  // one ABORTED, then the retry
}

TEST_F(ServiceCommandsTest, UpdateErrors) {
  CreateWeb();
  Result r = RunCli({"service", "update", "--restart-condition", "sometimes", "web"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "Error: --restart-condition: invalid condition \"sometimes\": use none, on-failure "
            "or any\n");
  r = RunCli({"service", "update", "--rollback", "--image", "x", "web"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--rollback returns to the previous spec"), std::string::npos);
  r = RunCli({"service", "update", "--env-add", "A=1", "ghost"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: service ghost not found (`shoal service ls` lists the services)\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.update_service_calls, 0);
}

TEST_F(ServiceCommandsTest, RollbackReturnsToThePreviousSpec) {
  CreateWeb();
  ASSERT_EQ(RunCli({"service", "update", "-d", "--image", "sim/app:2", "web"}).code, 0);
  Result r = RunCli({"service", "rollback", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out,
                               "web\n"
                               "rollback: manually requested rollback\n"
                               "overall progress: rolling back update: 2 out of 2 tasks\n"))
      << r.out;
  EXPECT_TRUE(absl::EndsWith(r.out, "verify: Service converged\n")) << r.out;
  EXPECT_EQ(Stored("web").spec().task_template().container_spec().image(), "sim/app:1");

  r = RunCli({"service", "update", "--rollback", "-d", "web"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "web\n");
  EXPECT_EQ(Stored("web").spec().task_template().container_spec().image(), "sim/app:2");
}

TEST_F(ServiceCommandsTest, Scale) {
  CreateWeb();
  ASSERT_EQ(
      RunCli({"service", "create", "-d", "--name", "agent", "--mode", "global", "sim/agent:1"})
          .code,
      0);
  Result r = RunCli({"service", "scale", "web=3", "agent"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "Error: invalid scale specifier \"agent\": use SERVICE=REPLICAS, e.g. web=3\n");
  r = RunCli({"service", "scale", "web=3", "agent=2", "ghost=1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StartsWith(r.out,
                               "web scaled to 3\n"
                               "overall progress: 3 out of 3 tasks\n"))
      << r.out;
  EXPECT_EQ(r.err,
            "Error: scale can only be used with replicated or replicated-job mode (service agent "
            "is global)\n"
            "service ghost not found (`shoal service ls` lists the services)\n");
  EXPECT_EQ(Stored("web").spec().replicated().replicas(), 3u);
  r = RunCli({"service", "scale", "-d", "web=0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "web scaled to 0\n");
}

TEST(ScaleSpecifierTest, Parses) {
  EXPECT_EQ(ParseScaleSpecifier("web=3")->replicas, 3u);
  EXPECT_EQ(ParseScaleSpecifier("web=3")->service, "web");
  for (const char* bad : {"web", "=3", "web=", "web=-1", "web=x", "web=3.5"}) {
    EXPECT_FALSE(ParseScaleSpecifier(bad).ok()) << bad;
  }
}

// --- secrets and configs -----------------------------------------------------------------------

TEST_F(ServiceCommandsTest, SecretLifecycle) {
  Result r = RunCli({"secret", "create", "--label", "env=prod", "db_pass", "-"}, "s3cr3t\n");
  ASSERT_EQ(r.code, 0) << r.err;
  std::string id;
  {
    absl::MutexLock l(&fake_.mu);
    ASSERT_EQ(fake_.secrets.size(), 1u);
    id = fake_.secrets[0].id();
    EXPECT_EQ(fake_.secrets[0].spec().data(), "s3cr3t\n");
    EXPECT_EQ(fake_.secrets[0].spec().annotations().labels().at("env"), "prod");
  }
  EXPECT_EQ(r.out, id + "\n");
  {
    std::ofstream f(dir_ + "/data");
    f << "key";
  }
  r = RunCli({"secret", "create", "api_key", dir_ + "/data"});
  ASSERT_EQ(r.code, 0) << r.err;

  r = RunCli({"secret", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "ID   ")) << r.out;
  EXPECT_NE(r.out.find("   api_key   "), std::string::npos) << r.out;
  EXPECT_LT(r.out.find("api_key"), r.out.find("db_pass"));  // sorted by name
  EXPECT_NE(r.out.find("About an hour ago"), std::string::npos) << r.out;

  r = RunCli({"secret", "inspect", "db_pass"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j[0]["Spec"]["Name"], "db_pass");
  EXPECT_FALSE(j[0]["Spec"].contains("Data"));
  EXPECT_EQ(r.out.find("s3cr3t"), std::string::npos);

  r = RunCli({"secret", "rm", "db_pass", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "db_pass\n");
  EXPECT_EQ(r.err, "Error: secret nope not found (`shoal secret ls` lists the secrets)\n");
}

TEST_F(ServiceCommandsTest, SecretCreateRefusesTooMuchDataAndMissingFiles) {
  Result r = RunCli({"secret", "create", "big", "-"}, std::string(500 * 1024 + 1, 'x'));
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "Error: secret data is too large: more than 500 KiB (512000 bytes) is not allowed; "
            "secrets are for small items (keys, certificates, configuration files)\n");
  r = RunCli({"secret", "create", "x", dir_ + "/missing"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: cannot read secret file " + dir_ +
                       "/missing: No such file or directory; check the path, or give - to read "
                       "STDIN\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_TRUE(fake_.secrets.empty());
}

TEST_F(ServiceCommandsTest, ConfigShowsItsData) {
  Result r = RunCli({"config", "create", "app.conf", "-"}, "listen 80;\n");
  ASSERT_EQ(r.code, 0) << r.err;
  r = RunCli({"config", "inspect", "app.conf"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)[0]["Spec"]["Data"], "bGlzdGVuIDgwOwo=");
  r = RunCli({"config", "inspect", "--pretty", "app.conf"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::EndsWith(r.out, "Data:\nlisten 80;\n")) << r.out;
  r = RunCli({"config", "ls", "--format", "json"});
  EXPECT_EQ(nlohmann::json::parse(r.out)["Name"], "app.conf");
  r = RunCli({"config", "ls", "-q"});
  EXPECT_TRUE(absl::StartsWith(r.out, "cfg")) << r.out;
  r = RunCli({"config", "rm", "app.conf"});
  EXPECT_EQ(r.out, "app.conf\n");
}

}  // namespace
}  // namespace shoal::cli
