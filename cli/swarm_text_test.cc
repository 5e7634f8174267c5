// The texts of `swarm init` / `join-token` / `unlock-key`, and the spec changes of the swarm and
// node commands.
#include "cli/swarm_text.h"

#include "cli/duration.h"
#include "cli/node_command.h"
#include "cli/swarm_command.h"
#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

TEST(SwarmTextTest, JoinCommand) {
  EXPECT_EQ(JoinCommandText(api::NODE_ROLE_WORKER, "SWMTKN-1-abc-def", "10.0.0.1:2377"),
            "To add a worker to this swarm, run the following command:\n\n"
            "    shoal swarm join --token SWMTKN-1-abc-def 10.0.0.1:2377\n\n");
  EXPECT_EQ(JoinCommandText(api::NODE_ROLE_MANAGER, "SWMTKN-1-abc-mgr", "10.0.0.1:2377"),
            "To add a manager to this swarm, run the following command:\n\n"
            "    shoal swarm join --token SWMTKN-1-abc-mgr 10.0.0.1:2377\n\n");
}

TEST(SwarmTextTest, InitWithoutAutolock) {
  EXPECT_EQ(InitText("node1", "SWMTKN-1-w", "10.0.0.1:2377", ""),
            "Swarm initialized: current node (node1) is now a manager.\n\n"
            "To add a worker to this swarm, run the following command:\n\n"
            "    shoal swarm join --token SWMTKN-1-w 10.0.0.1:2377\n\n"
            "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the "
            "instructions.\n\n");
}

TEST(SwarmTextTest, InitWithAutolockHandsOutTheKey) {
  const std::string text = InitText("node1", "SWMTKN-1-w", "10.0.0.1:2377", "SWMKEY-1-k");
  EXPECT_NE(text.find("follow the instructions.\n\n"
                      "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n"
                      "command and provide the following key:\n\n"
                      "    SWMKEY-1-k\n\n"
                      "Remember to store this key in a password manager, since without it you\n"
                      "will not be able to restart the manager.\n"),
            std::string::npos)
      << text;
}

TEST(ClusterSpecChangesTest, OnlyGivenSettingsChange) {
  api::ClusterSpec spec;
  spec.mutable_orchestration()->set_task_history_retention_limit(5);
  spec.mutable_encryption_config()->set_auto_lock_managers(true);
  ClusterSpecChanges changes;
  changes.cert_expiry = absl::Hours(48);
  changes.dispatcher_heartbeat = absl::Seconds(10);
  ApplyClusterSpecChanges(changes, &spec);
  EXPECT_EQ(FromProto(spec.ca_config().node_cert_expiry()), absl::Hours(48));
  EXPECT_EQ(FromProto(spec.dispatcher().heartbeat_period()), absl::Seconds(10));
  EXPECT_EQ(spec.orchestration().task_history_retention_limit(), 5);
  EXPECT_TRUE(spec.encryption_config().auto_lock_managers());

  changes = {};
  changes.autolock = false;
  changes.task_history_limit = 0;
  changes.snapshot_interval = 500;
  changes.keep_old_snapshots = 2;
  ApplyClusterSpecChanges(changes, &spec);
  EXPECT_FALSE(spec.encryption_config().auto_lock_managers());
  EXPECT_EQ(spec.orchestration().task_history_retention_limit(), 0);
  EXPECT_EQ(spec.raft().snapshot_interval(), 500u);
  EXPECT_EQ(spec.raft().keep_old_snapshots(), 2u);
}

TEST(CertExpiryTest, AtLeastAnHour) {
  EXPECT_EQ(*ParseCertExpiry("90d"), absl::Hours(2160));
  EXPECT_EQ(*ParseCertExpiry("1h"), absl::Hours(1));
  absl::StatusOr<absl::Duration> short_one = ParseCertExpiry("59m");
  ASSERT_FALSE(short_one.ok());
  EXPECT_NE(short_one.status().message().find("at least 1h"), std::string::npos);
  absl::StatusOr<absl::Duration> bad = ParseCertExpiry("ninety days");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--cert-expiry"), std::string::npos);
}

TEST(NodeSpecChangesTest, LabelsAddedThenRemoved) {
  api::NodeSpec spec;
  (*spec.mutable_annotations()->mutable_labels())["old"] = "1";
  NodeSpecChanges changes;
  changes.availability = api::NODE_AVAILABILITY_DRAIN;
  changes.role = api::NODE_ROLE_MANAGER;
  changes.label_add = {"zone=a", "ssd", "k=v=w", "tmp=x"};
  changes.label_rm = {"old", "tmp"};
  ASSERT_TRUE(ApplyNodeSpecChanges(changes, &spec).ok());
  EXPECT_EQ(spec.availability(), api::NODE_AVAILABILITY_DRAIN);
  EXPECT_EQ(spec.desired_role(), api::NODE_ROLE_MANAGER);
  const auto& labels = spec.annotations().labels();
  EXPECT_EQ(labels.size(), 3u);
  EXPECT_EQ(labels.at("zone"), "a");
  EXPECT_EQ(labels.at("ssd"), "");
  EXPECT_EQ(labels.at("k"), "v=w");
}

TEST(NodeSpecChangesTest, RemovingAMissingLabelOrAddingNoKeyFails) {
  api::NodeSpec spec;
  NodeSpecChanges changes;
  changes.label_rm = {"nope"};
  absl::Status s = ApplyNodeSpecChanges(changes, &spec);
  EXPECT_EQ(s.message(), "--label-rm: key nope doesn't exist in node's labels");
  changes = {};
  changes.label_add = {"=v"};
  EXPECT_FALSE(ApplyNodeSpecChanges(changes, &spec).ok());
}

TEST(NodeFilterTest, DockerFilters) {
  api::ListNodesRequest::Filters f;
  ASSERT_TRUE(AddNodeFilter("id=abc", &f).ok());
  ASSERT_TRUE(AddNodeFilter("name=node", &f).ok());
  ASSERT_TRUE(AddNodeFilter("node.label=zone=a", &f).ok());
  ASSERT_TRUE(AddNodeFilter("node.label=ssd", &f).ok());
  ASSERT_TRUE(AddNodeFilter("role=manager", &f).ok());
  ASSERT_TRUE(AddNodeFilter("membership=accepted", &f).ok());
  EXPECT_EQ(f.id_prefixes(0), "abc");
  EXPECT_EQ(f.name_prefixes(0), "node");
  EXPECT_EQ(f.labels().at("zone"), "a");
  EXPECT_EQ(f.labels().at("ssd"), "");
  EXPECT_EQ(f.roles(0), api::NODE_ROLE_MANAGER);
  EXPECT_EQ(f.memberships(0), api::NodeSpec::ACCEPTED);
  for (const char* bad : {"color=red", "role=boss", "id", "id=", "membership=maybe", "label=x"}) {
    EXPECT_FALSE(AddNodeFilter(bad, &f).ok()) << bad;
  }
}

}  // namespace
}  // namespace shoal::cli
