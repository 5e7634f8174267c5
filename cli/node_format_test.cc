// Node presentation: `node ls` rows and JSON, `node inspect` JSON shape and --pretty text.
#include <sstream>

#include "cli/json_util.h"
#include "cli/node_format.h"
#include "cli/node_json.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

api::Node Manager() {
  api::Node n;
  n.set_id("abc123");
  n.mutable_meta()->mutable_version()->set_index(9);
  n.mutable_meta()->mutable_created_at()->set_seconds(1700000000);
  n.mutable_meta()->mutable_created_at()->set_nanos(500000000);
  n.mutable_meta()->mutable_updated_at()->set_seconds(1700000100);
  (*n.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "a";
  (*n.mutable_spec()->mutable_annotations()->mutable_labels())["ssd"] = "";
  n.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
  n.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  n.set_role(api::NODE_ROLE_MANAGER);
  api::NodeDescription* d = n.mutable_description();
  d->set_hostname("node-1");
  d->mutable_platform()->set_os("linux");
  d->mutable_platform()->set_architecture("x86_64");
  d->mutable_resources()->set_nano_cpus(4000000000);
  d->mutable_resources()->set_memory_bytes(8272408576);
  d->mutable_engine()->set_engine_version("sim");
  d->mutable_tls_info()->set_trust_root(
      "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n");
  d->mutable_tls_info()->set_cert_issuer_subject(std::string("\x30\x01\x02", 3));
  d->mutable_tls_info()->set_cert_issuer_public_key("key");
  n.mutable_status()->set_state(api::NodeStatus::READY);
  n.mutable_status()->set_addr("10.0.0.1");
  n.mutable_manager_status()->set_leader(true);
  n.mutable_manager_status()->set_reachability(api::ManagerStatus::REACHABLE);
  n.mutable_manager_status()->set_addr("10.0.0.1:2377");
  return n;
}

api::Node Worker(const std::string& id, const std::string& hostname) {
  api::Node n;
  n.set_id(id);
  n.mutable_description()->set_hostname(hostname);
  n.mutable_status()->set_state(api::NodeStatus::DOWN);
  n.mutable_status()->set_message("heartbeat failure");
  return n;
}

TEST(NodeJsonTest, DockerShapeAndOrder) {
  const nlohmann::ordered_json j = NodeJson(Manager());
  std::vector<std::string> keys;
  for (const auto& item : j.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"ID", "Version", "CreatedAt", "UpdatedAt", "Spec",
                                            "Description", "Status", "ManagerStatus"}));
  EXPECT_EQ(j["ID"], "abc123");
  EXPECT_EQ(j["Version"]["Index"], 9);
  EXPECT_EQ(j["CreatedAt"], "2023-11-14T22:13:20.5Z");
  EXPECT_EQ(j["UpdatedAt"], "2023-11-14T22:15:00Z");
  EXPECT_EQ(j["Spec"].dump(),
            R"({"Labels":{"ssd":"","zone":"a"},"Role":"manager","Availability":"drain"})");
  EXPECT_EQ(j["Description"]["Hostname"], "node-1");
  EXPECT_EQ(j["Description"]["Platform"].dump(), R"({"Architecture":"x86_64","OS":"linux"})");
  EXPECT_EQ(j["Description"]["Resources"].dump(),
            R"({"NanoCPUs":4000000000,"MemoryBytes":8272408576})");
  EXPECT_EQ(j["Description"]["Engine"].dump(), R"({"EngineVersion":"sim"})");
  EXPECT_EQ(j["Description"]["TLSInfo"]["CertIssuerSubject"], "MAEC");
  EXPECT_EQ(j["Description"]["TLSInfo"]["CertIssuerPublicKey"], "a2V5");
  EXPECT_EQ(j["Status"].dump(), R"({"State":"ready","Addr":"10.0.0.1"})");
  EXPECT_EQ(j["ManagerStatus"].dump(),
            R"({"Leader":true,"Reachability":"reachable","Addr":"10.0.0.1:2377"})");
}

TEST(NodeJsonTest, WorkerHasNoManagerStatusAndZeroTimes) {
  const nlohmann::ordered_json j = NodeJson(Worker("w1", "node-2"));
  EXPECT_FALSE(j.contains("ManagerStatus"));
  EXPECT_EQ(j["CreatedAt"], "0001-01-01T00:00:00Z");
  EXPECT_EQ(j["Spec"]["Role"], "worker");
  EXPECT_EQ(j["Spec"]["Availability"], "active");
  EXPECT_EQ(j["Spec"]["Labels"], nlohmann::ordered_json::object());
  EXPECT_EQ(j["Status"].dump(), R"({"State":"down","Message":"heartbeat failure"})");
  EXPECT_EQ(j["Description"]["TLSInfo"], nlohmann::ordered_json::object());
}

TEST(NodeListTest, RowsAndJson) {
  const NodeListRow leader = MakeNodeListRow(Manager(), "abc123");
  EXPECT_TRUE(leader.self);
  EXPECT_EQ(leader.status, "Ready");
  EXPECT_EQ(leader.availability, "Drain");
  EXPECT_EQ(leader.manager_status, "Leader");
  EXPECT_EQ(leader.engine_version, "sim");
  api::Node unreachable = Manager();
  unreachable.mutable_manager_status()->set_leader(false);
  unreachable.mutable_manager_status()->set_reachability(api::ManagerStatus::UNREACHABLE);
  EXPECT_EQ(MakeNodeListRow(unreachable, "").manager_status, "Unreachable");
  EXPECT_FALSE(MakeNodeListRow(unreachable, "").self);
  const NodeListRow worker = MakeNodeListRow(Worker("w1", "node-2"), "abc123");
  EXPECT_EQ(worker.manager_status, "");
  EXPECT_EQ(worker.status, "Down");
  EXPECT_EQ(NodeListRowJson(leader).dump(),
            R"({"Availability":"Drain","EngineVersion":"sim","Hostname":"node-1","ID":"abc123",)"
            R"("ManagerStatus":"Leader","Self":true,"Status":"Ready"})");

  std::ostringstream out;
  PrintNodeTable(out, {leader, worker});
  EXPECT_EQ(out.str(),
            "ID         HOSTNAME   STATUS   AVAILABILITY   MANAGER STATUS   ENGINE VERSION\n"
            "abc123 *   node-1     Ready    Drain          Leader           sim\n"
            "w1         node-2     Down     Active\n");
}

TEST(NodeListTest, NaturalOrderByHostnameThenId) {
  EXPECT_TRUE(NaturalLess("node2", "node10"));
  EXPECT_FALSE(NaturalLess("node10", "node2"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("node", "node1"));
  EXPECT_TRUE(NaturalLess("n1", "n01"));
  EXPECT_FALSE(NaturalLess("same", "same"));
  std::vector<api::Node> nodes = {Worker("c", "node10"), Worker("b", "node2"), Worker("a", "node2"),
                                  Worker("d", "db")};
  SortNodesForList(&nodes);
  std::vector<std::string> ids;
  for (const api::Node& n : nodes) ids.push_back(n.id());
  EXPECT_EQ(ids, (std::vector<std::string>{"d", "a", "b", "c"}));
}

TEST(NodePrettyTest, DockerLayout) {
  std::ostringstream out;
  PrintNodePretty(out, Manager());
  EXPECT_EQ(out.str(),
            "ID:                     abc123\n"
            "Labels:\n"
            " - ssd\n"
            " - zone=a\n"
            "Hostname:               node-1\n"
            "Joined at:              2023-11-14 22:13:20.5 +0000 UTC\n"
            "Status:\n"
            " State:                 Ready\n"
            " Availability:          Drain\n"
            " Address:               10.0.0.1\n"
            "Manager Status:\n"
            " Address:               10.0.0.1:2377\n"
            " Raft Status:           Reachable\n"
            " Leader:                Yes\n"
            "Platform:\n"
            " Operating System:      linux\n"
            " Architecture:          x86_64\n"
            "Resources:\n"
            " CPUs:                  4\n"
            " Memory:                7.704GiB\n"
            "Engine Version:         sim\n"
            "TLS Info:\n"
            " TrustRoot:\n"
            "-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"
            "\n"
            " Issuer Subject:        MAEC\n"
            " Issuer Public Key:     a2V5\n");
}

TEST(NodePrettyTest, WorkerShowsMessageAndNoManagerStatus) {
  std::ostringstream out;
  PrintNodePretty(out, Worker("w1", "node-2"));
  const std::string text = out.str();
  EXPECT_NE(text.find(" Message:               heartbeat failure\n"), std::string::npos);
  EXPECT_EQ(text.find("Manager Status"), std::string::npos);
  EXPECT_EQ(text.find("TLS Info"), std::string::npos);
  EXPECT_NE(text.find(" Memory:                \n"), std::string::npos);
}

TEST(BytesSizeTest, BinaryUnits) {
  EXPECT_EQ(BytesSize(512), "512B");
  EXPECT_EQ(BytesSize(1024), "1KiB");
  EXPECT_EQ(BytesSize(1536), "1.5KiB");
  EXPECT_EQ(BytesSize(8272408576), "7.704GiB");
}

TEST(JsonUtilTest, NamesAndParsing) {
  EXPECT_EQ(TaskStateName(api::TASK_STATE_RUNNING), "running");
  EXPECT_EQ(NodeStateName(api::NodeStatus::DISCONNECTED), "disconnected");
  EXPECT_EQ(Capitalize("pause"), "Pause");
  EXPECT_EQ(*ParseRole("manager"), api::NODE_ROLE_MANAGER);
  EXPECT_FALSE(ParseRole("boss").ok());
  EXPECT_EQ(*ParseAvailability("pause"), api::NODE_AVAILABILITY_PAUSE);
  EXPECT_NE(ParseAvailability("off").status().message().find("active, pause or drain"),
            std::string::npos);
}

}  // namespace
}  // namespace shoal::cli
