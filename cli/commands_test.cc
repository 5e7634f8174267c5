// The swarm and node commands end to end: the real CLI (Run) against a fake Control service on
// a unix socket. The fake keeps nodes and the cluster in memory, checks versions like the store
// (ABORTED when stale) and records what the CLI asked for.
#include <stdlib.h>
#include <unistd.h>

#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "cli/app.h"
#include "cli/ca_rotation.h"
#include "cli/context.h"
#include "common/clock.h"
#include "control.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "pki/test_util.h"

namespace shoal::cli {
namespace {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

class FakeControl final : public api::Control::Service {
 public:
  absl::Mutex mu;
  api::GetInfoResponse info ABSL_GUARDED_BY(mu);
  std::vector<api::Node> nodes ABSL_GUARDED_BY(mu);
  api::Cluster cluster ABSL_GUARDED_BY(mu);
  std::string manager_addr ABSL_GUARDED_BY(mu) = "10.0.0.1:2377";
  std::string unlock_key ABSL_GUARDED_BY(mu);
  std::vector<api::Task> tasks ABSL_GUARDED_BY(mu);
  // Root that a forced rotation moves to at once (the rotation converges inside UpdateCluster).
  std::string next_root ABSL_GUARDED_BY(mu);
  int abort_node_updates ABSL_GUARDED_BY(mu) = 0;  // answer ABORTED to this many UpdateNode
  int update_node_calls ABSL_GUARDED_BY(mu) = 0;
  int rpc_calls ABSL_GUARDED_BY(mu) = 0;
  api::InitSwarmRequest last_init ABSL_GUARDED_BY(mu);
  api::JoinSwarmRequest last_join ABSL_GUARDED_BY(mu);
  api::UpdateClusterRequest last_cluster_update ABSL_GUARDED_BY(mu);
  api::UnlockSwarmRequest last_unlock ABSL_GUARDED_BY(mu);
  api::ListTasksRequest last_list_tasks ABSL_GUARDED_BY(mu);
  std::vector<std::string> removed ABSL_GUARDED_BY(mu);
  bool left ABSL_GUARDED_BY(mu) = false;

  Status GetInfo(ServerContext*, const api::GetInfoRequest*, api::GetInfoResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    *resp = info;
    return Status::OK;
  }
  Status InitSwarm(ServerContext*, const api::InitSwarmRequest* req,
                   api::InitSwarmResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    last_init = *req;
    resp->set_node_id("newnode");
    resp->set_cluster_id("newcluster");
    *resp->mutable_join_tokens() = cluster.root_ca().join_tokens();
    resp->set_manager_addr(manager_addr);
    if (req->spec().encryption_config().auto_lock_managers()) resp->set_unlock_key(unlock_key);
    return Status::OK;
  }
  Status JoinSwarm(ServerContext*, const api::JoinSwarmRequest* req,
                   api::JoinSwarmResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    last_join = *req;
    resp->set_role(absl::StrContains(req->join_token(), "mgr") ? api::NODE_ROLE_MANAGER
                                                               : api::NODE_ROLE_WORKER);
    return Status::OK;
  }
  Status LeaveSwarm(ServerContext*, const api::LeaveSwarmRequest* req,
                    api::LeaveSwarmResponse*) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    if (!req->force()) {
      return Status(StatusCode::FAILED_PRECONDITION,
                    "this node is a manager: leaving may cost quorum; use --force");
    }
    left = true;
    return Status::OK;
  }
  Status UnlockSwarm(ServerContext*, const api::UnlockSwarmRequest* req,
                     api::UnlockSwarmResponse*) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    last_unlock = *req;
    if (req->unlock_key() != unlock_key) {
      return Status(StatusCode::INVALID_ARGUMENT, "invalid unlock key");
    }
    return Status::OK;
  }
  Status GetCluster(ServerContext*, const api::GetClusterRequest*,
                    api::GetClusterResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    *resp->mutable_cluster() = cluster;
    return Status::OK;
  }
  Status UpdateCluster(ServerContext*, const api::UpdateClusterRequest* req,
                       api::UpdateClusterResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    if (req->version().index() != cluster.meta().version().index()) {
      return Status(StatusCode::ABORTED, "update out of sequence");
    }
    last_cluster_update = *req;
    if (req->spec().ca_config().force_rotate() != cluster.spec().ca_config().force_rotate() &&
        !next_root.empty()) {
      cluster.mutable_root_ca()->set_ca_cert(next_root);
      const CertificateIssuer issuer = *IssuerOf(next_root);
      for (api::Node& n : nodes) {
        api::NodeTLSInfo* tls = n.mutable_description()->mutable_tls_info();
        tls->set_trust_root(next_root);
        tls->set_cert_issuer_subject(issuer.subject);
        tls->set_cert_issuer_public_key(issuer.public_key);
      }
    }
    if (req->spec().encryption_config().auto_lock_managers() && unlock_key.empty()) {
      unlock_key = "SWMKEY-1-fresh";
    }
    *cluster.mutable_spec() = req->spec();
    cluster.mutable_meta()->mutable_version()->set_index(cluster.meta().version().index() + 1);
    *resp->mutable_cluster() = cluster;
    return Status::OK;
  }
  Status GetJoinTokens(ServerContext*, const api::GetJoinTokensRequest*,
                       api::GetJoinTokensResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    *resp->mutable_join_tokens() = cluster.root_ca().join_tokens();
    resp->set_manager_addr(manager_addr);
    return Status::OK;
  }
  Status RotateJoinToken(ServerContext*, const api::RotateJoinTokenRequest* req,
                         api::RotateJoinTokenResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    api::JoinTokens* t = cluster.mutable_root_ca()->mutable_join_tokens();
    if (req->role() == api::NODE_ROLE_MANAGER) {
      t->set_manager(t->manager() + "-rotated");
    } else {
      t->set_worker(t->worker() + "-rotated");
    }
    *resp->mutable_join_tokens() = *t;
    resp->set_manager_addr(manager_addr);
    return Status::OK;
  }
  Status GetUnlockKey(ServerContext*, const api::GetUnlockKeyRequest*,
                      api::GetUnlockKeyResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    if (cluster.spec().encryption_config().auto_lock_managers()) resp->set_unlock_key(unlock_key);
    return Status::OK;
  }
  Status RotateUnlockKey(ServerContext*, const api::RotateUnlockKeyRequest*,
                         api::RotateUnlockKeyResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    if (!cluster.spec().encryption_config().auto_lock_managers()) {
      return Status(StatusCode::FAILED_PRECONDITION,
                    "cannot rotate the unlock key: autolock is off");
    }
    unlock_key += "-rotated";
    resp->set_unlock_key(unlock_key);
    return Status::OK;
  }
  Status GetNode(ServerContext*, const api::GetNodeRequest* req,
                 api::GetNodeResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    for (const api::Node& n : nodes) {
      if (n.id() == req->node_id()) {
        *resp->mutable_node() = n;
        return Status::OK;
      }
    }
    return Status(StatusCode::NOT_FOUND, "node " + req->node_id() + " not found");
  }
  Status ListNodes(ServerContext*, const api::ListNodesRequest* req,
                   api::ListNodesResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    const auto& f = req->filters();
    for (const api::Node& n : nodes) {
      if (f.names_size() > 0 && std::find(f.names().begin(), f.names().end(),
                                          n.description().hostname()) == f.names().end()) {
        continue;
      }
      if (f.id_prefixes_size() > 0 &&
          std::none_of(f.id_prefixes().begin(), f.id_prefixes().end(),
                       [&n](const std::string& p) { return absl::StartsWith(n.id(), p); })) {
        continue;
      }
      if (f.roles_size() > 0 &&
          std::find(f.roles().begin(), f.roles().end(), n.role()) == f.roles().end()) {
        continue;
      }
      *resp->add_nodes() = n;
    }
    return Status::OK;
  }
  Status UpdateNode(ServerContext*, const api::UpdateNodeRequest* req,
                    api::UpdateNodeResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    ++update_node_calls;
    for (api::Node& n : nodes) {
      if (n.id() != req->node_id()) continue;
      if (abort_node_updates > 0) {
        --abort_node_updates;
        // Someone else wrote the node meanwhile.
        n.mutable_meta()->mutable_version()->set_index(n.meta().version().index() + 1);
        return Status(StatusCode::ABORTED, "update out of sequence");
      }
      if (req->version().index() != n.meta().version().index()) {
        return Status(StatusCode::ABORTED, "update out of sequence");
      }
      *n.mutable_spec() = req->spec();
      n.mutable_meta()->mutable_version()->set_index(n.meta().version().index() + 1);
      *resp->mutable_node() = n;
      return Status::OK;
    }
    return Status(StatusCode::NOT_FOUND, "node " + req->node_id() + " not found");
  }
  Status RemoveNode(ServerContext*, const api::RemoveNodeRequest* req,
                    api::RemoveNodeResponse*) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    for (auto it = nodes.begin(); it != nodes.end(); ++it) {
      if (it->id() != req->node_id()) continue;
      if (it->status().state() != api::NodeStatus::DOWN && !req->force()) {
        return Status(StatusCode::FAILED_PRECONDITION,
                      "node " + it->id() + " is not down and can't be removed: use --force");
      }
      removed.push_back(it->id());
      nodes.erase(it);
      return Status::OK;
    }
    return Status(StatusCode::NOT_FOUND, "node " + req->node_id() + " not found");
  }
  Status ListTasks(ServerContext*, const api::ListTasksRequest* req,
                   api::ListTasksResponse* resp) override {
    absl::MutexLock l(&mu);
    ++rpc_calls;
    last_list_tasks = *req;
    for (const api::Task& t : tasks) {
      const auto& ids = req->filters().node_ids();
      if (ids.empty() || std::find(ids.begin(), ids.end(), t.node_id()) != ids.end()) {
        *resp->add_tasks() = t;
      }
    }
    return Status::OK;
  }
};

api::Node MakeNode(const std::string& id, const std::string& hostname, api::NodeRole role,
                   api::NodeStatus::State state) {
  api::Node n;
  n.set_id(id);
  n.mutable_meta()->mutable_version()->set_index(10);
  n.set_role(role);
  n.mutable_spec()->set_desired_role(role);
  n.mutable_description()->set_hostname(hostname);
  n.mutable_description()->mutable_engine()->set_engine_version("sim");
  n.mutable_status()->set_state(state);
  if (role == api::NODE_ROLE_MANAGER) {
    n.mutable_manager_status()->set_reachability(api::ManagerStatus::REACHABLE);
    n.mutable_manager_status()->set_addr("10.0.0.1:2377");
  }
  return n;
}

struct Result {
  int code;
  std::string out;
  std::string err;
};

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/shoal-cli-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    host_ = "unix://" + dir_ + "/control.sock";
    grpc::ServerBuilder builder;
    builder.AddListeningPort(host_, grpc::InsecureServerCredentials());
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);

    root_ = std::make_unique<pki::RootCA>(pki::testing::NewRootCA());
    absl::MutexLock l(&fake_.mu);
    fake_.info.set_local_node_state(api::GetInfoResponse::ACTIVE);
    fake_.info.set_node_id("mgr1aaaa");
    fake_.info.set_control_available(true);
    fake_.nodes = {MakeNode("mgr1aaaa", "node1", api::NODE_ROLE_MANAGER, api::NodeStatus::READY),
                   MakeNode("wrk2bbbb", "node10", api::NODE_ROLE_WORKER, api::NodeStatus::DOWN),
                   MakeNode("wrk3cccc", "node2", api::NODE_ROLE_WORKER, api::NodeStatus::READY)};
    fake_.nodes[0].mutable_manager_status()->set_leader(true);
    fake_.cluster.set_id("cluster1");
    fake_.cluster.mutable_meta()->mutable_version()->set_index(7);
    fake_.cluster.mutable_root_ca()->set_ca_cert(root_->cert_pem());
    fake_.cluster.mutable_root_ca()->mutable_join_tokens()->set_worker("SWMTKN-1-abc-wrk");
    fake_.cluster.mutable_root_ca()->mutable_join_tokens()->set_manager("SWMTKN-1-abc-mgr");
    fake_.cluster.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(5);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    ::unlink((dir_ + "/control.sock").c_str());
    ::rmdir(dir_.c_str());
  }

  Result RunCli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {"shoal", "-H", host_});
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    std::istringstream in(input);
    std::ostringstream out, err;
    const int code = cli::Run(static_cast<int>(argv.size()), argv.data(), in, out, err);
    return {code, out.str(), err.str()};
  }

  FakeControl fake_;
  std::unique_ptr<pki::RootCA> root_;
  std::string dir_;
  std::string host_;
  std::unique_ptr<grpc::Server> server_;
};

// --- node ----------------------------------------------------------------------------------

TEST_F(CommandsTest, NodeLsTableSortedWithSelfMarked) {
  const Result r = RunCli({"node", "ls"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID           HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n"
            "mgr1aaaa *   node1      Ready    Active         Leader           sim\n"
            "wrk3cccc     node2      Ready    Active                          sim\n"
            "wrk2bbbb     node10     Down     Active                          sim\n");
}

TEST_F(CommandsTest, NodeLsQuietJsonAndFilter) {
  Result r = RunCli({"node", "ls", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "mgr1aaaa\nwrk3cccc\nwrk2bbbb\n");

  r = RunCli({"node", "ls", "--format", "json", "--filter", "role=manager"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            R"({"Availability":"Active","EngineVersion":"sim","Hostname":"node1","ID":"mgr1aaaa",)"
            R"("ManagerStatus":"Leader","Self":true,"Status":"Ready"})"
            "\n");

  r = RunCli({"node", "ls", "--filter", "colour=blue"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("invalid filter \"colour=blue\""), std::string::npos) << r.err;
}

TEST_F(CommandsTest, NodeInspectResolvesHostnamePrefixAndSelf) {
  Result r = RunCli({"node", "inspect", "node2", "wrk2", "self"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["ID"], "wrk3cccc");
  EXPECT_EQ(j[1]["ID"], "wrk2bbbb");
  EXPECT_EQ(j[2]["ID"], "mgr1aaaa");
  EXPECT_EQ(j[2]["ManagerStatus"]["Leader"], true);
  EXPECT_TRUE(absl::StartsWith(r.out, "[\n    {\n        \"ID\": \"wrk3cccc\",\n")) << r.out;

  r = RunCli({"node", "inspect", "--pretty", "node1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "ID:                     mgr1aaaa\n")) << r.out;
  EXPECT_NE(r.out.find(" Leader:                Yes\n"), std::string::npos) << r.out;
}

TEST_F(CommandsTest, NodeInspectPrintsWhatItFoundAndFailsForTheRest) {
  const Result r = RunCli({"node", "inspect", "node1", "ghost", "wrk"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(nlohmann::json::parse(r.out).size(), 1u);
  EXPECT_EQ(r.err,
            "Error: node ghost not found (`shoal node ls` lists the nodes)\n"
            "node ID prefix wrk is ambiguous (2 matches): give more of the ID\n");
}

TEST_F(CommandsTest, NodeUpdateRetriesAStaleVersion) {
  {
    absl::MutexLock l(&fake_.mu);
    fake_.abort_node_updates = 2;
  }
  const Result r = RunCli({"node", "update", "--availability", "drain", "--label-add", "zone=a",
                           "--label-add", "ssd", "node2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "node2\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.update_node_calls, 3);
  const api::Node& n = fake_.nodes[2];
  EXPECT_EQ(n.spec().availability(), api::NODE_AVAILABILITY_DRAIN);
  EXPECT_EQ(n.spec().annotations().labels().at("zone"), "a");
  EXPECT_EQ(n.spec().annotations().labels().at("ssd"), "");
}

TEST_F(CommandsTest, NodeUpdateRejectsBadValuesAndMissingLabels) {
  Result r = RunCli({"node", "update", "--availability", "sleepy", "node2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("use active, pause or drain"), std::string::npos) << r.err;
  r = RunCli({"node", "update", "--label-rm", "zone", "node2"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: --label-rm: key zone doesn't exist in node's labels (node node2)\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.update_node_calls, 0);
}

TEST_F(CommandsTest, PromoteAndDemote) {
  Result r = RunCli({"node", "promote", "node2", "node1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "Node node2 promoted to a manager in the swarm.\n"
            "Node node1 is already a manager.\n");
  {
    absl::MutexLock l(&fake_.mu);
    EXPECT_EQ(fake_.nodes[2].spec().desired_role(), api::NODE_ROLE_MANAGER);
  }
  r = RunCli({"node", "demote", "wrk3cccc", "node10"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Manager wrk3cccc demoted in the swarm.\nNode node10 is already a worker.\n");
}

TEST_F(CommandsTest, RmRemovesWhatItCanAndReportsTheRest) {
  const Result r = RunCli({"node", "rm", "node10", "node2", "ghost"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "node10\n");
  EXPECT_EQ(r.err,
            "Error: node wrk3cccc is not down and can't be removed: use --force\n"
            "node ghost not found (`shoal node ls` lists the nodes)\n");
  EXPECT_EQ(RunCli({"node", "rm", "--force", "node2"}).out, "node2\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.removed, (std::vector<std::string>{"wrk2bbbb", "wrk3cccc"}));
}

TEST_F(CommandsTest, NodePsListsTheLocalNodesTasks) {
  {
    absl::MutexLock l(&fake_.mu);
    api::Task t;
    t.set_id("task1xxxxxxxxxxxxxxxxxxxx");
    t.set_slot(1);
    t.set_node_id("mgr1aaaa");
    t.mutable_service_annotations()->set_name("web");
    t.mutable_spec()->mutable_container_spec()->set_image("sim/app:1");
    t.mutable_status()->set_state(api::TASK_STATE_RUNNING);
    t.set_desired_state(api::TASK_STATE_RUNNING);
    fake_.tasks.push_back(t);
    t.set_node_id("wrk2bbbb");
    t.set_id("task2");
    fake_.tasks.push_back(t);
  }
  Result r = RunCli({"node", "ps"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "ID             NAME    IMAGE       NODE    DESIRED STATE   CURRENT STATE   ERROR   "
            "PORTS\n"
            "task1xxxxxxx   web.1   sim/app:1   node1   Running         Running\n");
  r = RunCli({"node", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", "node10"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "task2\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.last_list_tasks.filters().desired_states(0), api::TASK_STATE_RUNNING);
}

TEST_F(CommandsTest, ErrorsOfTheDaemonReachTheUser) {
  {
    absl::MutexLock l(&fake_.mu);
    fake_.info.clear_node_id();
  }
  const Result r = RunCli({"node", "ps"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("this node is not part of a swarm"), std::string::npos) << r.err;
}

// --- swarm ---------------------------------------------------------------------------------

TEST_F(CommandsTest, InitSendsTheSettingsAndPrintsTheJoinCommand) {
  {
    absl::MutexLock l(&fake_.mu);
    fake_.unlock_key = "SWMKEY-1-secret";
  }
  const Result r =
      RunCli({"swarm", "init", "--advertise-addr", "10.0.0.1", "--autolock", "--cert-expiry", "90d",
              "--task-history-limit", "3", "--default-addr-pool", "10.20.0.0/16",
              "--default-addr-pool", "10.30.0.0/16", "--default-addr-pool-mask-length", "26",
              "--data-path-port", "7789", "--availability", "drain"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "Swarm initialized: current node (newnode) is now a manager.\n\n"
            "To add a worker to this swarm, run the following command:\n\n"
            "    shoal swarm join --token SWMTKN-1-abc-wrk 10.0.0.1:2377\n\n"
            "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the "
            "instructions.\n\n"
            "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n"
            "command and provide the following key:\n\n"
            "    SWMKEY-1-secret\n\n"
            "Remember to store this key in a password manager, since without it you\n"
            "will not be able to restart the manager.\n");
  absl::MutexLock l(&fake_.mu);
  const api::InitSwarmRequest& req = fake_.last_init;
  EXPECT_EQ(req.advertise_addr(), "10.0.0.1");
  EXPECT_TRUE(req.spec().encryption_config().auto_lock_managers());
  EXPECT_EQ(req.spec().ca_config().node_cert_expiry().seconds(), 90 * 24 * 3600);
  EXPECT_EQ(req.spec().orchestration().task_history_retention_limit(), 3);
  EXPECT_EQ(req.default_addr_pool_size(), 2);
  EXPECT_EQ(req.default_addr_pool(1), "10.30.0.0/16");
  EXPECT_EQ(req.subnet_size(), 26u);
  EXPECT_EQ(req.data_path_port(), 7789u);
  EXPECT_EQ(req.availability(), api::NODE_AVAILABILITY_DRAIN);
  EXPECT_FALSE(req.spec().has_dispatcher());
}

TEST_F(CommandsTest, InitValidatesBeforeCalling) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"swarm", "init", "--cert-expiry", "30m"},
        {"swarm", "init", "--cert-expiry", "ninety"},
        {"swarm", "init", "--default-addr-pool", "10.0.0.0"},
        {"swarm", "init", "--data-path-port", "80"},
        {"swarm", "init", "--availability", "off"},
        {"swarm", "init", "--dispatcher-heartbeat", "0s"}}) {
    const Result r = RunCli(args);
    EXPECT_EQ(r.code, 2) << args.back();
    EXPECT_TRUE(absl::StartsWith(r.err, "Error: ")) << r.err;
  }
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.rpc_calls, 0);
}

TEST_F(CommandsTest, Join) {
  Result r = RunCli({"swarm", "join", "--token", "SWMTKN-1-abc-wrk", "10.0.0.1:2377"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "This node joined a swarm as a worker.\n");
  r = RunCli({"swarm", "join", "--token", "SWMTKN-1-abc-mgr", "--listen-addr", "0.0.0.0:2378",
              "10.0.0.1:2377"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "This node joined a swarm as a manager.\n");
  {
    absl::MutexLock l(&fake_.mu);
    EXPECT_EQ(fake_.last_join.remote_addrs(0), "10.0.0.1:2377");
    EXPECT_EQ(fake_.last_join.listen_addr(), "0.0.0.0:2378");
  }
  r = RunCli({"swarm", "join", "10.0.0.1:2377"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--token"), std::string::npos) << r.err;
}

TEST_F(CommandsTest, JoinToken) {
  Result r = RunCli({"swarm", "join-token", "worker"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "To add a worker to this swarm, run the following command:\n\n"
            "    shoal swarm join --token SWMTKN-1-abc-wrk 10.0.0.1:2377\n\n");
  r = RunCli({"swarm", "join-token", "-q", "manager"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "SWMTKN-1-abc-mgr\n");
  r = RunCli({"swarm", "join-token", "--rotate", "manager"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "Successfully rotated manager join token.\n\n"
            "To add a manager to this swarm, run the following command:\n\n"
            "    shoal swarm join --token SWMTKN-1-abc-mgr-rotated 10.0.0.1:2377\n\n");
  r = RunCli({"swarm", "join-token", "-q", "--rotate", "worker"});
  EXPECT_EQ(r.out, "SWMTKN-1-abc-wrk-rotated\n");
  r = RunCli({"swarm", "join-token", "boss"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "Error: unknown role boss: use worker or manager\n");
}

TEST_F(CommandsTest, Leave) {
  Result r = RunCli({"swarm", "leave"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: this node is a manager: leaving may cost quorum; use --force\n");
  r = RunCli({"swarm", "leave", "--force"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Node left the swarm.\n");
}

TEST_F(CommandsTest, UnlockReadsTheKeyFromStdin) {
  Result r = RunCli({"swarm", "unlock"}, "SWMKEY-1-secret\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: swarm is not locked: nothing to unlock\n");
  {
    absl::MutexLock l(&fake_.mu);
    fake_.info.set_local_node_state(api::GetInfoResponse::LOCKED);
    fake_.unlock_key = "SWMKEY-1-secret";
  }
  r = RunCli({"swarm", "unlock"}, "  SWMKEY-1-secret  \n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");  // no prompt when stdin is not a terminal
  {
    absl::MutexLock l(&fake_.mu);
    EXPECT_EQ(fake_.last_unlock.unlock_key(), "SWMKEY-1-secret");
  }
  r = RunCli({"swarm", "unlock"}, "SWMKEY-1-wrong\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: invalid unlock key\n");
  r = RunCli({"swarm", "unlock"}, "");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no unlock key given"), std::string::npos);
}

TEST_F(CommandsTest, UnlockKey) {
  Result r = RunCli({"swarm", "unlock-key"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no unlock key is set"), std::string::npos) << r.err;
  r = RunCli({"swarm", "unlock-key", "--rotate"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Error: cannot rotate the unlock key: autolock is off\n");
  {
    absl::MutexLock l(&fake_.mu);
    fake_.cluster.mutable_spec()->mutable_encryption_config()->set_auto_lock_managers(true);
    fake_.unlock_key = "SWMKEY-1-k";
  }
  r = RunCli({"swarm", "unlock-key", "-q"});
  EXPECT_EQ(r.out, "SWMKEY-1-k\n");
  r = RunCli({"swarm", "unlock-key", "--rotate"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out,
                               "Successfully rotated manager unlock key.\n\n"
                               "To unlock a swarm manager after it restarts"))
      << r.out;
  EXPECT_NE(r.out.find("    SWMKEY-1-k-rotated\n"), std::string::npos);
}

TEST_F(CommandsTest, UpdateTurningAutolockOnPrintsTheKey) {
  Result r = RunCli({"swarm", "update", "--autolock=true", "--task-history-limit", "10",
                     "--dispatcher-heartbeat", "10s"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "Swarm updated.\nTo unlock a swarm manager")) << r.out;
  EXPECT_NE(r.out.find("    SWMKEY-1-fresh\n"), std::string::npos);
  {
    absl::MutexLock l(&fake_.mu);
    EXPECT_EQ(fake_.last_cluster_update.version().index(), 7u);
    const api::ClusterSpec& spec = fake_.cluster.spec();
    EXPECT_TRUE(spec.encryption_config().auto_lock_managers());
    EXPECT_EQ(spec.orchestration().task_history_retention_limit(), 10);
    EXPECT_EQ(spec.dispatcher().heartbeat_period().seconds(), 10);
  }
  r = RunCli({"swarm", "update", "--autolock=false"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Swarm updated.\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_FALSE(fake_.cluster.spec().encryption_config().auto_lock_managers());
  EXPECT_EQ(fake_.cluster.spec().orchestration().task_history_retention_limit(), 10);
}

TEST_F(CommandsTest, CaPrintsTheRootAndRotates) {
  Result r = RunCli({"swarm", "ca"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(absl::StripAsciiWhitespace(root_->cert_pem())) + "\n");

  r = RunCli({"swarm", "ca", "--cert-expiry", "48h"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "Error: `--cert-expiry` flag requires the `--rotate` flag to update the CA\n");

  const pki::RootCA next = pki::testing::NewRootCA();
  {
    absl::MutexLock l(&fake_.mu);
    fake_.next_root = next.cert_pem();
  }
  r = RunCli({"swarm", "ca", "--rotate", "--cert-expiry", "48h"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "rotated TLS certificates: 3/3 nodes\nrotated CA certificates: 3/3 nodes\n" +
                       std::string(absl::StripAsciiWhitespace(next.cert_pem())) + "\n");
  absl::MutexLock l(&fake_.mu);
  EXPECT_EQ(fake_.cluster.spec().ca_config().force_rotate(), 1u);
  EXPECT_EQ(fake_.cluster.spec().ca_config().node_cert_expiry().seconds(), 48 * 3600);
}

TEST_F(CommandsTest, CaRotateToAGivenRootNeedsBothFiles) {
  const Result r = RunCli({"swarm", "ca", "--rotate", "--ca-cert", dir_ + "/ca.pem"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("needs both --ca-cert and --ca-key"), std::string::npos) << r.err;
}

// A clock whose SleepUntil jumps to the deadline: the wait loop runs without real sleeping.
class JumpingClock : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void SleepUntil(absl::Time deadline) override {
    if (deadline > now_) now_ = deadline;
    ++sleeps;
  }
  int sleeps = 0;

 private:
  absl::Time now_ = absl::FromUnixSeconds(1000);
};

TEST_F(CommandsTest, WaitForRootRotationTimesOutSayingHowFarItGot) {
  const pki::RootCA next = pki::testing::NewRootCA();
  {
    absl::MutexLock l(&fake_.mu);
    fake_.cluster.mutable_root_ca()->mutable_root_rotation()->set_ca_cert(next.cert_pem());
  }
  std::istringstream in;
  std::ostringstream out, err;
  Context ctx(in, out, err);
  ctx.host_flag() = host_;
  JumpingClock clock;
  try {
    WaitForRootRotation(ctx, clock, root_->cert_pem(), true, absl::Seconds(10),
                        absl::Milliseconds(500), /*quiet=*/false);
    FAIL() << "expected a timeout";
  } catch (const CommandError& e) {
    EXPECT_NE(e.message.find("has not finished after 10s (0/3 nodes have a certificate from the "
                             "new root, 0/3 trust it)"),
              std::string::npos)
        << e.message;
  }
  EXPECT_EQ(clock.sleeps, 20);
  // Printed once: the counts never changed.
  EXPECT_EQ(out.str(), "rotated TLS certificates: 0/3 nodes\nrotated CA certificates: 0/3 nodes\n");
}

// --- info ----------------------------------------------------------------------------------

TEST_F(CommandsTest, InfoShowsTheClusterSettings) {
  {
    absl::MutexLock l(&fake_.mu);
    fake_.info.set_cluster_id("cluster1");
    fake_.info.set_managers(1);
    fake_.info.set_nodes(3);
    fake_.info.set_node_addr("10.0.0.1");
    api::Peer* peer = fake_.info.add_remote_managers();
    peer->set_node_id("mgr1aaaa");
    peer->set_addr("10.0.0.1:2377");
    api::Cluster c = fake_.cluster;
    c.add_default_address_pool("10.0.0.0/8");
    c.set_subnet_size(24);
    c.set_vxlan_udp_port(4789);
    c.mutable_spec()->mutable_raft()->set_snapshot_interval(10000);
    c.mutable_spec()->mutable_raft()->set_heartbeat_tick(1);
    c.mutable_spec()->mutable_raft()->set_election_tick(5);
    *fake_.info.mutable_cluster() = c;
  }
  Result r = RunCli({"info"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(" Swarm: active\n"
                       "  NodeID: mgr1aaaa\n"
                       "  Is Manager: true\n"
                       "  ClusterID: cluster1\n"
                       "  Managers: 1\n"
                       "  Nodes: 3\n"
                       "  Default Address Pool: 10.0.0.0/8\n"
                       "  SubnetSize: 24\n"
                       "  Data Path Port: 4789\n"
                       "  Orchestration:\n"
                       "   Task History Retention Limit: 5\n"
                       "  Raft:\n"
                       "   Snapshot Interval: 10000\n"
                       "   Number of Old Snapshots to Retain: 0\n"
                       "   Heartbeat Tick: 1\n"
                       "   Election Tick: 5\n"
                       "  Dispatcher:\n"
                       "   Heartbeat Period: 5 seconds\n"
                       "  CA Configuration:\n"
                       "   Expiry Duration: 3 months\n"
                       "   Force Rotate: 0\n"
                       "  Autolock Managers: false\n"
                       "  Root Rotation In Progress: false\n"
                       "  Node Address: 10.0.0.1\n"
                       "  Manager Addresses:\n"
                       "   10.0.0.1:2377\n"),
            std::string::npos)
      << r.out;

  r = RunCli({"info", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  for (const char* key : {"NodeID", "ClusterID", "LocalNodeState", "ControlAvailable", "Managers",
                          "Nodes", "RemoteManagers", "Autolock"}) {
    EXPECT_TRUE(j["Swarm"].contains(key)) << key;
  }
  EXPECT_EQ(j["Swarm"]["Cluster"]["ID"], "cluster1");
  EXPECT_EQ(j["Swarm"]["Cluster"]["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"], 5);
  EXPECT_EQ(j["Swarm"]["Cluster"]["DataPathPort"], 4789);
  EXPECT_EQ(j["Swarm"]["Cluster"]["TLSInfo"]["TrustRoot"], root_->cert_pem());
  EXPECT_FALSE(j["Swarm"]["Cluster"]["TLSInfo"]["CertIssuerPublicKey"].get<std::string>().empty());
}

}  // namespace
}  // namespace shoal::cli
