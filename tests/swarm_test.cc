// The secure cluster end to end: real shoald processes on loopback forming a swarm through the
// shoal CLI — init, join by token, node ls agreement, certificates, mutual-TLS authorisation,
// leader failover, autolock, encryption at rest, demote/promote/rm, --force-new-cluster.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/ca.grpc.pb.h"
#include "proto/control.grpc.pb.h"
#include "proto/raft_transport.grpc.pb.h"
#include "tests/harness/daemon.h"
#include "tests/harness/process.h"

namespace shoal::testing {
namespace {

constexpr absl::Duration kConverge = absl::Seconds(60);

std::string Trim(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `node ls --format json` as a list of objects; empty on failure.
std::vector<nlohmann::json> NodeList(const ShoaldProcess& d) {
  CommandResult r = d.Cli({"node", "ls", "--format", "json"});
  std::vector<nlohmann::json> out;
  if (r.exit_code != 0) return out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(j);
  }
  return out;
}

nlohmann::json Info(const ShoaldProcess& d) {
  CommandResult r = d.Cli({"info", "--format", "json"});
  if (r.exit_code != 0) return nlohmann::json::object();
  return nlohmann::json::parse(r.out, nullptr, false);
}

std::string NodeId(const ShoaldProcess& d) {
  nlohmann::json info = Info(d);
  return info.contains("Swarm") ? info["Swarm"].value("NodeID", "") : "";
}

// A summary "hostname:status:managerstatus" per node, sorted — what managers must agree on.
std::string Summary(const std::vector<nlohmann::json>& nodes) {
  std::vector<std::string> rows;
  for (const nlohmann::json& n : nodes) {
    rows.push_back(absl::StrCat(n.value("Hostname", "?"), ":", n.value("Status", "?"), ":",
                                n.value("ManagerStatus", "")));
  }
  std::sort(rows.begin(), rows.end());
  return absl::StrJoin(rows, ",");
}

class SwarmTest : public ::testing::Test {
 protected:
  ShoaldProcess& AddNode(const std::string& name) {
    return cluster_.Add(ShoaldOptions{.node_name = name});
  }

  // `swarm init` on d, listening on its loopback swarm port.
  void Init(ShoaldProcess& d, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "swarm", "init", "--listen-addr", d.swarm_addr(), "--advertise-addr", d.swarm_addr()};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = d.Cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err << d.LogText();
    init_out_ = r.out;
  }

  std::string Token(ShoaldProcess& manager, const std::string& role) {
    CommandResult r = manager.Cli({"swarm", "join-token", "-q", role});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Trim(r.out);
  }

  CommandResult Join(ShoaldProcess& d, const std::string& token, const ShoaldProcess& via) {
    return d.Cli({"swarm", "join", "--token", token, "--listen-addr", d.swarm_addr(),
                  "--advertise-addr", d.swarm_addr(), via.swarm_addr()});
  }

  // Waits until `manager` lists `n` nodes, all Ready, with `managers` manager entries of which one
  // is the Leader and the rest Reachable.
  bool WaitConverged(const ShoaldProcess& manager, size_t n, size_t managers,
                     absl::Duration timeout = kConverge) {
    return WaitFor(
        [&] {
          std::vector<nlohmann::json> nodes = NodeList(manager);
          if (nodes.size() != n) return false;
          size_t leaders = 0, reachable = 0;
          for (const nlohmann::json& node : nodes) {
            if (node.value("Status", "") != "Ready") return false;
            const std::string ms = node.value("ManagerStatus", "");
            if (ms == "Leader") ++leaders;
            if (ms == "Reachable") ++reachable;
          }
          return leaders == 1 && leaders + reachable == managers;
        },
        timeout, absl::Milliseconds(200));
  }

  // Builds 3 managers and 2 workers.
  void BuildFiveNodeSwarm() {
    for (const char* name : {"m1", "m2", "m3", "w1", "w2"}) nodes_.push_back(&AddNode(name));
    Init(*nodes_[0]);
    const std::string mtok = Token(*nodes_[0], "manager");
    const std::string wtok = Token(*nodes_[0], "worker");
    for (int i = 1; i < 3; ++i) {
      CommandResult r = Join(*nodes_[i], mtok, *nodes_[0]);
      ASSERT_EQ(r.exit_code, 0) << r.err << nodes_[i]->LogText();
      EXPECT_NE(r.out.find("joined a swarm as a manager"), std::string::npos) << r.out;
    }
    for (int i = 3; i < 5; ++i) {
      CommandResult r = Join(*nodes_[i], wtok, *nodes_[0]);
      ASSERT_EQ(r.exit_code, 0) << r.err << nodes_[i]->LogText();
      EXPECT_NE(r.out.find("joined a swarm as a worker"), std::string::npos) << r.out;
    }
    ASSERT_TRUE(WaitConverged(*nodes_[0], 5, 3))
        << Summary(NodeList(*nodes_[0])) << nodes_[0]->LogText();
  }

  TestCluster cluster_;
  std::vector<ShoaldProcess*> nodes_;
  std::string init_out_;
};

TEST_F(SwarmTest, ThreeManagersAndTwoWorkersAgreeOnNodeLs) {
  BuildFiveNodeSwarm();
  EXPECT_NE(init_out_.find("shoal swarm join --token SWMTKN-1-"), std::string::npos) << init_out_;
  const std::string expected = Summary(NodeList(*nodes_[0]));
  for (int i = 1; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return Summary(NodeList(*nodes_[i])) == expected; }, kConverge,
                        absl::Milliseconds(200)))
        << "manager " << i << ": " << Summary(NodeList(*nodes_[i])) << " vs " << expected;
  }
  // Workers cannot read cluster state, and say why.
  CommandResult r = nodes_[3]->Cli({"node", "ls"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not a swarm manager"), std::string::npos) << r.err;
  nlohmann::json info = Info(*nodes_[1]);
  EXPECT_EQ(info["Swarm"]["LocalNodeState"], "active");
  EXPECT_EQ(info["Swarm"]["ControlAvailable"], true);
  EXPECT_EQ(info["Swarm"]["Managers"], 3);
  EXPECT_EQ(info["Swarm"]["Nodes"], 5);
}

TEST_F(SwarmTest, WrongAndRotatedTokensAreRefused) {
  ShoaldProcess& m = AddNode("m1");
  ShoaldProcess& w = AddNode("w1");
  Init(m);
  const std::string good = Token(m, "worker");
  // Same CA digest, wrong secret.
  std::string wrong = good;
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  CommandResult r = Join(w, wrong, m);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("invalid join token"), std::string::npos) << r.err;
  // Rotate: the old token stops working, the new one works.
  CommandResult rot = m.Cli({"swarm", "join-token", "--rotate", "-q", "worker"});
  ASSERT_EQ(rot.exit_code, 0) << rot.err;
  const std::string fresh = Trim(rot.out);
  EXPECT_NE(fresh, good);
  r = Join(w, good, m);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("invalid join token"), std::string::npos) << r.err;
  // Nothing was left behind by the failed joins.
  EXPECT_FALSE(std::filesystem::exists(w.state_dir() + "/certificates/swarm-node.crt"));
  r = Join(w, fresh, m);
  ASSERT_EQ(r.exit_code, 0) << r.err << w.LogText();
}

TEST_F(SwarmTest, CertificatesCarryTheIdentityAndValidity) {
  ShoaldProcess& m = AddNode("m1");
  ShoaldProcess& w = AddNode("w1");
  Init(m, {"--cert-expiry", "48h"});
  ASSERT_EQ(Join(w, Token(m, "worker"), m).exit_code, 0);
  const nlohmann::json info = Info(w);
  const std::string node_id = info["Swarm"]["NodeID"];
  const std::string cluster_id = info["Swarm"]["ClusterID"];
  CommandResult r =
      RunCommand({"/usr/bin/openssl", "x509", "-noout", "-subject", "-startdate", "-enddate",
                  "-nameopt", "RFC2253", "-in", w.state_dir() + "/certificates/swarm-node.crt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("CN=" + node_id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("OU=swarm-worker"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("O=" + cluster_id), std::string::npos) << r.out;
  // 48 h of validity plus the 1 h backdate: check with openssl's own arithmetic.
  CommandResult ends49 =
      RunCommand({"/usr/bin/openssl", "x509", "-noout", "-checkend", std::to_string(47 * 3600),
                  "-in", w.state_dir() + "/certificates/swarm-node.crt"});
  EXPECT_EQ(ends49.exit_code, 0) << "certificate expires within 47 h";
  CommandResult ends =
      RunCommand({"/usr/bin/openssl", "x509", "-noout", "-checkend", std::to_string(49 * 3600),
                  "-in", w.state_dir() + "/certificates/swarm-node.crt"});
  EXPECT_NE(ends.exit_code, 0) << "certificate outlives --cert-expiry 48h";
  CommandResult mr = RunCommand({"/usr/bin/openssl", "x509", "-noout", "-subject", "-nameopt",
                                 "RFC2253", "-in", m.state_dir() + "/certificates/swarm-node.crt"});
  EXPECT_NE(mr.out.find("OU=swarm-manager"), std::string::npos) << mr.out;
  struct stat st;
  ASSERT_EQ(::stat((w.state_dir() + "/certificates/swarm-node.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A gRPC channel to a manager's port using a node's certificate files.
std::shared_ptr<grpc::Channel> ChannelAs(const std::string& cert_dir, const std::string& addr) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadAll(cert_dir + "/swarm-root-ca.crt");
  o.pem_cert_chain = ReadAll(cert_dir + "/swarm-node.crt");
  o.pem_private_key = ReadAll(cert_dir + "/swarm-node.key");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("swarm-manager");
  return grpc::CreateCustomChannel(addr, grpc::SslCredentials(o), args);
}

TEST_F(SwarmTest, CertificatesAreAuthorisedByRoleAndCluster) {
  ShoaldProcess& m = AddNode("m1");
  ShoaldProcess& w = AddNode("w1");
  ShoaldProcess& other = AddNode("other");
  Init(m);
  ASSERT_EQ(Join(w, Token(m, "worker"), m).exit_code, 0);
  Init(other);

  auto deadline = [] { return absl::ToChronoTime(absl::Now() + absl::Seconds(10)); };
  // A worker certificate may not use the Raft transport or the managers' CA service.
  auto worker_channel = ChannelAs(w.state_dir() + "/certificates", m.swarm_addr());
  {
    auto stub = api::RaftTransport::NewStub(worker_channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    api::ResolveAddressResponse resp;
    grpc::Status s = stub->ResolveAddress(&ctx, api::ResolveAddressRequest{}, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_NE(s.error_message().find("swarm-manager"), std::string::npos) << s.error_message();
  }
  {
    auto stub = api::CA::NewStub(worker_channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    api::GetManagerUnlockKeyResponse resp;
    grpc::Status s = stub->GetManagerUnlockKey(&ctx, api::GetManagerUnlockKeyRequest{}, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  }
  {
    // The Control API is not served on the manager port at all: only on the local socket.
    auto stub = api::Control::NewStub(worker_channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    api::ListNodesResponse resp;
    grpc::Status s = stub->ListNodes(&ctx, api::ListNodesRequest{}, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
  }
  {
    // A manager certificate of another swarm (another CA) fails the TLS handshake.
    auto stub =
        api::RaftTransport::NewStub(ChannelAs(other.state_dir() + "/certificates", m.swarm_addr()));
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    api::ResolveAddressResponse resp;
    grpc::Status s = stub->ResolveAddress(&ctx, api::ResolveAddressRequest{}, &resp);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    // The manager's own certificate is accepted.
    auto stub =
        api::RaftTransport::NewStub(ChannelAs(m.state_dir() + "/certificates", m.swarm_addr()));
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline());
    api::ResolveAddressRequest req;
    req.set_raft_id(12345);
    api::ResolveAddressResponse resp;
    grpc::Status s = stub->ResolveAddress(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  }
}

TEST_F(SwarmTest, KillingTheLeaderElectsANewOneAndTheSwarmKeepsServing) {
  BuildFiveNodeSwarm();
  // m1 founded the swarm and leads; kill it.
  const absl::Time killed = absl::Now();
  nodes_[0]->Kill();
  ShoaldProcess& m2 = *nodes_[1];
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const nlohmann::json& n : NodeList(m2)) {
          if (n.value("ManagerStatus", "") == "Leader" && n.value("Hostname", "") != "m1") {
            return true;
          }
        }
        return false;
      },
      kConverge, absl::Milliseconds(100)))
      << m2.LogText();
  const absl::Duration failover = absl::Now() - killed;
  std::cout << "[ metric ] leader failover observed through the CLI in "
            << absl::FormatDuration(failover) << "\n";
  // Writes still work: label a worker through the other surviving manager.
  CommandResult r = nodes_[2]->Cli({"node", "update", "--label-add", "zone=b", NodeId(*nodes_[3])});
  ASSERT_EQ(r.exit_code, 0) << r.err << nodes_[2]->LogText();
  // The dead manager is reported unreachable, and goes Down.
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const nlohmann::json& n : NodeList(m2)) {
          if (n.value("Hostname", "") == "m1") {
            return n.value("ManagerStatus", "") == "Unreachable" && n.value("Status", "") == "Down";
          }
        }
        return false;
      },
      kConverge, absl::Milliseconds(200)))
      << Summary(NodeList(m2));
}

TEST_F(SwarmTest, AutolockedManagerStaysLockedUntilUnlocked) {
  ShoaldProcess& m = AddNode("m1");
  Init(m, {"--autolock"});
  const size_t at = init_out_.find("SWMKEY-1-");
  ASSERT_NE(at, std::string::npos) << init_out_;
  const std::string key = init_out_.substr(at, init_out_.find_first_of(" \n", at) - at);
  // The key file on disk is wrapped.
  EXPECT_TRUE(absl::StartsWith(ReadAll(m.state_dir() + "/certificates/swarm-node.key"),
                               "-----BEGIN SHOAL ENCRYPTED PRIVATE KEY-----"));
  ASSERT_TRUE(m.Stop().ok()) << m.LogText();
  ASSERT_TRUE(m.Start().ok()) << m.LogText();
  EXPECT_EQ(Info(m)["Swarm"]["LocalNodeState"], "locked");
  CommandResult ls = m.Cli({"node", "ls"});
  EXPECT_NE(ls.exit_code, 0);
  EXPECT_NE(ls.err.find("locked"), std::string::npos) << ls.err;
  // A wrong key is refused and changes nothing.
  CommandResult bad =
      m.Cli({"swarm", "unlock"},
            {.stdin_data = "SWMKEY-1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("invalid unlock key"), std::string::npos) << bad.err;
  EXPECT_EQ(Info(m)["Swarm"]["LocalNodeState"], "locked");
  CommandResult ok = m.Cli({"swarm", "unlock"}, {.stdin_data = key + "\n"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err << m.LogText();
  EXPECT_TRUE(WaitConverged(m, 1, 1)) << m.LogText();
  // Turning autolock off stores the key in the clear again; a restart then needs no key.
  CommandResult off = m.Cli({"swarm", "update", "--autolock=false"});
  ASSERT_EQ(off.exit_code, 0) << off.err;
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StartsWith(ReadAll(m.state_dir() + "/certificates/swarm-node.key"),
                                "-----BEGIN PRIVATE KEY-----");
      },
      kConverge, absl::Milliseconds(100)));
  ASSERT_TRUE(m.Stop().ok());
  ASSERT_TRUE(m.Start().ok());
  EXPECT_TRUE(WaitConverged(m, 1, 1)) << m.LogText();
}

TEST_F(SwarmTest, StoreContentIsNeverOnDiskInPlaintext) {
  ShoaldProcess& m1 = AddNode("m1");
  ShoaldProcess& m2 = AddNode("m2");
  Init(m1);
  ASSERT_EQ(Join(m2, Token(m1, "manager"), m1).exit_code, 0) << m2.LogText();
  ASSERT_TRUE(WaitConverged(m1, 2, 2)) << m1.LogText();
  const std::string marker = "shoal-plaintext-marker-7f3a9c";
  CommandResult r = m1.Cli({"node", "update", "--label-add", "secret=" + marker, NodeId(m2)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Replicated: m2 sees the label.
  ASSERT_TRUE(WaitFor(
      [&] {
        CommandResult i = m2.Cli({"node", "inspect", NodeId(m2)});
        return i.out.find(marker) != std::string::npos;
      },
      kConverge, absl::Milliseconds(100)));
  // Stop both so that everything is flushed, then search every file under both state dirs.
  ASSERT_TRUE(m1.Stop().ok());
  ASSERT_TRUE(m2.Stop().ok());
  int files = 0;
  for (const ShoaldProcess* d : {&m1, &m2}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(d->state_dir())) {
      if (!entry.is_regular_file()) continue;
      ++files;
      EXPECT_EQ(ReadAll(entry.path()).find(marker), std::string::npos) << entry.path();
    }
  }
  EXPECT_GT(files, 10);
}

TEST_F(SwarmTest, DemotePromoteAndRemoveKeepQuorum) {
  BuildFiveNodeSwarm();
  ShoaldProcess& m1 = *nodes_[0];
  const std::string m3 = NodeId(*nodes_[2]);
  const std::string w1 = NodeId(*nodes_[3]);
  // Demote m3: Raft shrinks to 2 voters, m3 becomes a worker.
  CommandResult r = m1.Cli({"node", "demote", m3});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitConverged(m1, 5, 2)) << Summary(NodeList(m1)) << m1.LogText();
  EXPECT_TRUE(WaitFor([&] { return Info(*nodes_[2])["Swarm"]["ControlAvailable"] == false; },
                      kConverge, absl::Milliseconds(200)))
      << nodes_[2]->LogText();
  // Promote w1: it renews as a manager, joins Raft, and is Reachable.
  r = m1.Cli({"node", "promote", w1});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(WaitConverged(m1, 5, 3)) << Summary(NodeList(m1)) << nodes_[3]->LogText();
  EXPECT_TRUE(WaitFor([&] { return Info(*nodes_[3])["Swarm"]["ControlAvailable"] == true; },
                      kConverge, absl::Milliseconds(200)));
  // A manager cannot be removed; a live worker only with --force.
  r = m1.Cli({"node", "rm", w1});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("demoted"), std::string::npos) << r.err;
  r = m1.Cli({"node", "rm", m3});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  r = m1.Cli({"node", "rm", "--force", m3});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(
      WaitFor([&] { return NodeList(m1).size() == 4; }, kConverge, absl::Milliseconds(200)));
  // Demoting down to one manager is fine; demoting the last one is refused.
  ASSERT_EQ(m1.Cli({"node", "demote", w1}).exit_code, 0);
  ASSERT_TRUE(WaitConverged(m1, 4, 2)) << Summary(NodeList(m1));
  ASSERT_EQ(m1.Cli({"node", "demote", NodeId(*nodes_[1])}).exit_code, 0);
  ASSERT_TRUE(WaitConverged(m1, 4, 1)) << Summary(NodeList(m1));
  r = m1.Cli({"node", "demote", NodeId(m1)});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("last manager"), std::string::npos) << r.err;
}

TEST_F(SwarmTest, ForceNewClusterKeepsTheData) {
  BuildFiveNodeSwarm();
  ShoaldProcess& m1 = *nodes_[0];
  const std::string w1 = NodeId(*nodes_[3]);
  ASSERT_EQ(m1.Cli({"node", "update", "--label-add", "kept=yes", w1}).exit_code, 0);
  // Lose two of three managers for good: no quorum.
  nodes_[1]->Kill();
  nodes_[2]->Kill();
  ASSERT_TRUE(m1.Stop().ok());
  ASSERT_TRUE(m1.Start().ok());
  CommandResult r = m1.Cli({"swarm", "init", "--force-new-cluster", "--listen-addr",
                            m1.swarm_addr(), "--advertise-addr", m1.swarm_addr()});
  ASSERT_EQ(r.exit_code, 0) << r.err << m1.LogText();
  ASSERT_TRUE(WaitFor(
      [&] {
        CommandResult i = m1.Cli({"node", "inspect", w1});
        return i.exit_code == 0 && i.out.find("\"kept\"") != std::string::npos;
      },
      kConverge, absl::Milliseconds(200)))
      << m1.LogText();
  // One manager, the leader; writes work.
  ASSERT_EQ(m1.Cli({"node", "update", "--label-add", "after=1", w1}).exit_code, 0);
  nlohmann::json info = Info(m1);
  EXPECT_EQ(info["Swarm"]["Managers"], 3);  // the others are still nodes until removed
}

TEST_F(SwarmTest, RootCaRotationReissuesEveryCertificate) {
  ShoaldProcess& m1 = AddNode("m1");
  ShoaldProcess& m2 = AddNode("m2");
  ShoaldProcess& w1 = AddNode("w1");
  Init(m1);
  ASSERT_EQ(Join(m2, Token(m1, "manager"), m1).exit_code, 0) << m2.LogText();
  const std::string old_token = Token(m1, "worker");
  ASSERT_EQ(Join(w1, old_token, m1).exit_code, 0) << w1.LogText();
  ASSERT_TRUE(WaitConverged(m1, 3, 2)) << Summary(NodeList(m1));
  const std::string old_root = ReadAll(m1.state_dir() + "/certificates/swarm-root-ca.crt");

  const absl::Time start = absl::Now();
  CommandResult r = m1.Cli({"swarm", "ca", "--rotate"}, {.timeout = absl::Seconds(150)});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out << m1.LogText();
  std::cout << "[ metric ] root CA rotation of 3 nodes took "
            << absl::FormatDuration(absl::Now() - start) << "\n";
  const std::string new_root = r.out.substr(r.out.find("-----BEGIN CERTIFICATE-----"));
  ASSERT_NE(Trim(new_root), Trim(old_root));
  // Every node ends up trusting only the new root, with a certificate it issued.
  for (const ShoaldProcess* d : {&m1, &m2, &w1}) {
    const std::string certs = d->state_dir() + "/certificates";
    EXPECT_TRUE(WaitFor(
        [&] {
          return Trim(ReadAll(certs + "/swarm-root-ca.crt")) == Trim(new_root) &&
                 RunCommand({"/usr/bin/openssl", "verify", "-CAfile", certs + "/swarm-root-ca.crt",
                             certs + "/swarm-node.crt"})
                         .exit_code == 0;
        },
        kConverge, absl::Milliseconds(200)))
        << d->node_name() << "\n"
        << d->LogText();
  }
  // Tokens now pin the new root: the old one is refused, and the swarm still works.
  EXPECT_NE(Token(m1, "worker"), old_token);
  EXPECT_TRUE(WaitConverged(m1, 3, 2)) << Summary(NodeList(m1));
  EXPECT_TRUE(WaitConverged(m2, 3, 2)) << Summary(NodeList(m2));
}

TEST_F(SwarmTest, UnlockKeyRotationRewrapsAndTheOldKeyStopsWorking) {
  ShoaldProcess& m = AddNode("m1");
  Init(m, {"--autolock"});
  const size_t at = init_out_.find("SWMKEY-1-");
  ASSERT_NE(at, std::string::npos) << init_out_;
  const std::string old_key = init_out_.substr(at, init_out_.find_first_of(" \n", at) - at);
  const std::string key_file = m.state_dir() + "/certificates/swarm-node.key";
  const std::string before = ReadAll(key_file);
  CommandResult r = m.Cli({"swarm", "unlock-key", "--rotate", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string new_key = Trim(r.out);
  ASSERT_TRUE(absl::StartsWith(new_key, "SWMKEY-1-")) << r.out;
  ASSERT_NE(new_key, old_key);
  // The manager re-wraps its keys under the new key once it sees the rotation committed: wait
  // until the key file changed.
  ASSERT_TRUE(
      WaitFor([&] { return ReadAll(key_file) != before; }, kConverge, absl::Milliseconds(100)));
  ASSERT_TRUE(m.Stop().ok());
  ASSERT_TRUE(m.Start().ok());
  CommandResult bad = m.Cli({"swarm", "unlock"}, {.stdin_data = old_key + "\n"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("invalid unlock key"), std::string::npos) << bad.err;
  CommandResult ok = m.Cli({"swarm", "unlock"}, {.stdin_data = new_key + "\n"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err << m.LogText();
  EXPECT_TRUE(WaitConverged(m, 1, 1)) << m.LogText();
}

TEST_F(SwarmTest, TurningAutolockOnRotatesTheDataKeyAndKeepsTheData) {
  ShoaldProcess& m = AddNode("m1");
  Init(m);
  const std::string id = NodeId(m);
  ASSERT_EQ(m.Cli({"node", "update", "--label-add", "before=autolock", id}).exit_code, 0);
  CommandResult on = m.Cli({"swarm", "update", "--autolock=true"});
  ASSERT_EQ(on.exit_code, 0) << on.err;
  const size_t at = on.out.find("SWMKEY-1-");
  ASSERT_NE(at, std::string::npos) << on.out;
  const std::string key = on.out.substr(at, on.out.find_first_of(" \n", at) - at);
  // The manager re-seals its whole Raft log under a fresh data key and drops the old one.
  ASSERT_TRUE(WaitFor([&] { return m.LogText().find("data key rotated") != std::string::npos; },
                      kConverge, absl::Milliseconds(100)))
      << m.LogText();
  ASSERT_TRUE(absl::StartsWith(ReadAll(m.state_dir() + "/raft/dek.pem"),
                               "-----BEGIN SHOAL ENCRYPTED PRIVATE KEY-----"));
  ASSERT_EQ(m.Cli({"node", "update", "--label-add", "after=autolock", id}).exit_code, 0);
  ASSERT_TRUE(m.Stop().ok());
  ASSERT_TRUE(m.Start().ok());
  EXPECT_EQ(Info(m)["Swarm"]["LocalNodeState"], "locked");
  ASSERT_EQ(m.Cli({"swarm", "unlock"}, {.stdin_data = key + "\n"}).exit_code, 0) << m.LogText();
  ASSERT_TRUE(WaitFor(
      [&] {
        CommandResult i = m.Cli({"node", "inspect", id});
        return i.exit_code == 0 && i.out.find("\"before\"") != std::string::npos &&
               i.out.find("\"after\"") != std::string::npos;
      },
      kConverge, absl::Milliseconds(100)))
      << m.LogText();
}

TEST_F(SwarmTest, LeaveWipesTheNodeAndItCanJoinAgain) {
  ShoaldProcess& m = AddNode("m1");
  ShoaldProcess& w = AddNode("w1");
  Init(m);
  const std::string token = Token(m, "worker");
  ASSERT_EQ(Join(w, token, m).exit_code, 0) << w.LogText();
  ASSERT_TRUE(WaitConverged(m, 2, 1));
  const std::string first_id = NodeId(w);
  // A manager may not simply leave: it is told to demote first (or to force).
  CommandResult r = m.Cli({"swarm", "leave"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("demote"), std::string::npos) << r.err;
  // A worker leaves: its swarm state is gone, the managers see it Down.
  r = w.Cli({"swarm", "leave"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Info(w)["Swarm"]["LocalNodeState"], "inactive");
  EXPECT_FALSE(std::filesystem::exists(w.state_dir() + "/certificates"));
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const nlohmann::json& n : NodeList(m)) {
          if (n.value("ID", "") == first_id) return n.value("Status", "") == "Down";
        }
        return false;
      },
      kConverge, absl::Milliseconds(200)))
      << Summary(NodeList(m));
  // It can join again, as a new node.
  ASSERT_EQ(Join(w, token, m).exit_code, 0) << w.LogText();
  EXPECT_NE(NodeId(w), first_id);
  EXPECT_TRUE(WaitFor([&] { return NodeList(m).size() == 3; }, kConverge, absl::Milliseconds(200)));
  ASSERT_EQ(m.Cli({"node", "rm", first_id}).exit_code, 0);
  EXPECT_TRUE(WaitConverged(m, 2, 1)) << Summary(NodeList(m));
}

TEST_F(SwarmTest, ManagerExportsRaftAndStoreMetrics) {
  const int port = PickFreeLoopbackPort();
  ShoaldProcess& m = cluster_.Add(ShoaldOptions{
      .node_name = "m1", .extra_args = {"--metrics-addr", absl::StrCat("127.0.0.1:", port)}});
  Init(m);
  ASSERT_TRUE(WaitConverged(m, 1, 1));
  std::string body;
  ASSERT_TRUE(WaitFor(
      [&] {
        CommandResult c = RunCommand(
            {"/usr/bin/curl", "-sf", absl::StrCat("http://127.0.0.1:", port, "/metrics")});
        body = c.out;
        return c.exit_code == 0 && body.find("shoal_raft_is_leader 1") != std::string::npos &&
               body.find("shoal_nodes{state=\"ready\"} 1") != std::string::npos;
      },
      kConverge, absl::Milliseconds(200)))
      << body;
  for (const char* name :
       {"shoal_raft_term", "shoal_raft_commit_index", "shoal_raft_voters 1",
        "shoal_store_proposals_total{result=\"ok\"}", "shoal_store_apply_seconds_count",
        "shoal_store_objects{kind=\"node\"} 1", "shoal_store_objects{kind=\"cluster\"} 1"}) {
    EXPECT_NE(body.find(name), std::string::npos) << name << "\n" << body;
  }
}

}  // namespace
}  // namespace shoal::testing
