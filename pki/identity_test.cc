// VerifyNodeCertificate / ParseIdentity / AuthorizeRole: which certificates a node believes, and
// what a believed caller may do.
#include "pki/identity.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/authorization.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"

namespace shoal::pki {
namespace {

using ::shoal::pki::testing::IssueNode;
using ::shoal::pki::testing::NewRootCA;
using ::shoal::pki::testing::TestNow;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(VerifyNodeCertificateTest, AcceptsAGoodCertificate) {
  RootCA ca = NewRootCA();
  auto node = IssueNode(ca, "n1", Role::kManager, "c1");
  auto id = VerifyNodeCertificate(node.cert_pem, ca.cert_pem(), "", TestNow(), "c1");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "n1");
  EXPECT_EQ(id->role, Role::kManager);
  EXPECT_EQ(id->cluster_id, "c1");
  EXPECT_EQ(id->not_before, TestNow() - RootCA::kBackdate);
  EXPECT_EQ(id->not_after, TestNow() + RootCA::kDefaultNodeValidity);
}

TEST(VerifyNodeCertificateTest, RefusesAnotherCAsCertificate) {
  RootCA ours = NewRootCA();
  RootCA theirs = NewRootCA();
  auto node = IssueNode(theirs, "n1", Role::kManager, "c1");
  auto id = VerifyNodeCertificate(node.cert_pem, ours.cert_pem(), "", TestNow(), "c1");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(id.status()),
              HasSubstr("the certificate of node n1 (swarm-manager) is not issued by this "
                        "swarm's root CA"));
}

TEST(VerifyNodeCertificateTest, RefusesAnExpiredCertificate) {
  RootCA ca = NewRootCA(TestNow() - absl::Hours(24 * 365));
  // Issued 100 days ago for 90 days: expired 10 days ago.
  auto node = IssueNode(ca, "n1", Role::kWorker, "c1", absl::Hours(24 * 90),
                        TestNow() - absl::Hours(24 * 100));
  auto id = VerifyNodeCertificate(node.cert_pem, ca.cert_pem(), "", TestNow(), "c1");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(id.status()),
              HasSubstr("the certificate of node n1 (swarm-worker) expired at "
                        "2029-12-22T00:00:00Z (now 2030-01-01T00:00:00Z)"));
  // One second before the end it was still fine.
  auto earlier = VerifyNodeCertificate(node.cert_pem, ca.cert_pem(), "",
                                       TestNow() - absl::Hours(24 * 10) - absl::Seconds(1), "c1");
  EXPECT_TRUE(earlier.ok()) << earlier.status();
}

TEST(VerifyNodeCertificateTest, RefusesACertificateNotYetValid) {
  RootCA ca = NewRootCA(TestNow() - absl::Hours(48));
  auto node = IssueNode(ca, "n1", Role::kWorker, "c1");
  auto id = VerifyNodeCertificate(node.cert_pem, ca.cert_pem(), "", TestNow() - absl::Hours(2));
  ASSERT_FALSE(id.ok());
  EXPECT_THAT(Message(id.status()), HasSubstr("is not valid before 2029-12-31T23:00:00Z"));
  EXPECT_THAT(Message(id.status()), HasSubstr("check the clocks"));
}

TEST(VerifyNodeCertificateTest, RefusesAnotherClusterWithTheSameCA) {
  RootCA ca = NewRootCA();
  auto node = IssueNode(ca, "n1", Role::kManager, "other-cluster");
  auto id = VerifyNodeCertificate(node.cert_pem, ca.cert_pem(), "", TestNow(), "c1");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(id.status()), HasSubstr("belongs to cluster other-cluster, not to this "
                                              "cluster (c1)"));
  // Without an expected cluster the identity is reported as is.
  auto any = VerifyNodeCertificate(node.cert_pem, ca.cert_pem(), "", TestNow());
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->cluster_id, "other-cluster");
}

TEST(VerifyNodeCertificateTest, RefusesCertificatesThatAreNotNodeCertificates) {
  RootCA ca = NewRootCA();
  // The root itself chains to the root but names no node.
  auto root = VerifyNodeCertificate(ca.cert_pem(), ca.cert_pem(), "", TestNow());
  ASSERT_FALSE(root.ok());
  EXPECT_THAT(Message(root.status()), HasSubstr("is not a node certificate: it is a CA"));
  auto garbage = VerifyNodeCertificate(
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END "
      "CERTIFICATE-----\n",
      ca.cert_pem(), "", TestNow());
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  auto key_not_cert = VerifyNodeCertificate(ca.key_pem(), ca.cert_pem(), "", TestNow());
  EXPECT_THAT(Message(key_not_cert.status()), HasSubstr("is a \"PRIVATE KEY\""));
}

// A root rotation: old root A, new root B, X = B cross-signed by A.
class RootRotationTest : public ::testing::Test {
 protected:
  RootCA a_ = NewRootCA();
  RootCA b_ = NewRootCA(TestNow() + absl::Minutes(5));
  std::string x_ = *a_.CrossSign(b_.cert_pem());
  absl::Time now_ = TestNow() + absl::Hours(1);
};

TEST_F(RootRotationTest, NewRootCertificateWithIntermediateVerifiesAgainstOldRoot) {
  auto node = IssueNode(b_, "n1", Role::kWorker, "c1", absl::Hours(24), now_);
  auto with_chain = VerifyNodeCertificate(node.cert_pem + x_, a_.cert_pem(), "", now_, "c1");
  EXPECT_TRUE(with_chain.ok()) << with_chain.status();
  // The intermediate may also come separately.
  auto separate = VerifyNodeCertificate(node.cert_pem, a_.cert_pem(), x_, now_, "c1");
  EXPECT_TRUE(separate.ok()) << separate.status();
  // Without it, the old root alone cannot vouch for the new root's certificate.
  auto alone = VerifyNodeCertificate(node.cert_pem, a_.cert_pem(), "", now_, "c1");
  EXPECT_EQ(alone.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(RootRotationTest, BothRootsTrustedDuringTheTransition) {
  const std::string both = a_.cert_pem() + b_.cert_pem();
  auto from_a = IssueNode(a_, "old", Role::kManager, "c1", absl::Hours(24), now_);
  auto from_b = IssueNode(b_, "new", Role::kManager, "c1", absl::Hours(24), now_);
  EXPECT_TRUE(VerifyNodeCertificate(from_a.cert_pem, both, "", now_, "c1").ok());
  EXPECT_TRUE(VerifyNodeCertificate(from_b.cert_pem, both, "", now_, "c1").ok());
  EXPECT_TRUE(VerifyNodeCertificate(from_b.cert_pem + x_, both, "", now_, "c1").ok());
  // After the old root is retired, its certificates are refused.
  auto retired = VerifyNodeCertificate(from_a.cert_pem, b_.cert_pem(), "", now_, "c1");
  EXPECT_EQ(retired.status().code(), absl::StatusCode::kUnauthenticated);
  // And the new root's certificates verify against it alone, intermediate or not.
  EXPECT_TRUE(VerifyNodeCertificate(from_b.cert_pem + x_, b_.cert_pem(), "", now_, "c1").ok());
}

TEST_F(RootRotationTest, LoadedRootAppendsTheCrossSignedIntermediate) {
  auto b = RootCA::Load(b_.cert_pem(), b_.key_pem(), now_, x_);
  ASSERT_TRUE(b.ok()) << b.status();
  auto node = IssueNode(*b, "n1", Role::kWorker, "c1", absl::Hours(24), now_);
  EXPECT_TRUE(absl::EndsWith(node.cert_pem, x_));
  auto id = VerifyNodeCertificate(node.cert_pem, a_.cert_pem(), "", now_, "c1");
  EXPECT_TRUE(id.ok()) << id.status();
  // An "intermediate" that is not this root's cross-signed copy is refused at load.
  auto wrong = RootCA::Load(b_.cert_pem(), b_.key_pem(), now_, a_.cert_pem());
  EXPECT_THAT(Message(wrong.status()), HasSubstr("does not carry this root's key"));
}

TEST(RoleNameTest, RoundTrips) {
  EXPECT_EQ(*ParseRoleName(RoleName(Role::kManager)), Role::kManager);
  EXPECT_EQ(*ParseRoleName(RoleName(Role::kWorker)), Role::kWorker);
  EXPECT_FALSE(ParseRoleName("swarm-admin").ok());
}

TEST(AuthorizeRoleTest, WorkersOnlyWhereAllowed) {
  NodeIdentity worker{"w1", Role::kWorker, "c1", {}, {}};
  NodeIdentity manager{"m1", Role::kManager, "c1", {}, {}};
  const std::vector<Role> managers_only = {Role::kManager};
  const std::vector<Role> anyone = {Role::kWorker, Role::kManager};
  EXPECT_TRUE(AuthorizeRole(manager, managers_only, "c1").ok());
  EXPECT_TRUE(AuthorizeRole(worker, anyone, "c1").ok());
  const absl::Status denied = AuthorizeRole(worker, managers_only, "c1");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Message(denied),
            "permission denied: this call needs a swarm-manager certificate (caller node w1 is "
            "swarm-worker)");
}

TEST(AuthorizeRoleTest, OtherClusterAndRemovedNodesAreRefused) {
  NodeIdentity manager{"m1", Role::kManager, "c2", {}, {}};
  const std::vector<Role> anyone = {Role::kWorker, Role::kManager};
  EXPECT_THAT(Message(AuthorizeRole(manager, anyone, "c1")),
              HasSubstr("belongs to cluster c2, not to this cluster (c1)"));
  manager.cluster_id = "c1";
  auto removed = [](absl::string_view id) { return id == "m1"; };
  const absl::Status s = AuthorizeRole(manager, anyone, "c1", removed);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(s), HasSubstr("node m1 has been removed from the swarm"));
}

TEST(AuthorizeRoleTest, MethodTable) {
  const std::vector<Role> anyone = {Role::kWorker, Role::kManager};
  const std::vector<Role> managers = {Role::kManager};
  EXPECT_EQ(AllowedRolesForMethod("/shoal.api.Dispatcher/Heartbeat"), anyone);
  EXPECT_EQ(AllowedRolesForMethod("shoal.api.NodeCA"), anyone);
  EXPECT_EQ(AllowedRolesForMethod("/shoal.api.LogBroker/PublishLogs"), anyone);
  EXPECT_EQ(AllowedRolesForMethod("/shoal.api.CA/GetManagerUnlockKey"), managers);
  EXPECT_EQ(AllowedRolesForMethod("/shoal.api.RaftTransport/Send"), managers);
  EXPECT_EQ(AllowedRolesForMethod("/shoal.api.Control/ListNodes"), managers);
  EXPECT_EQ(AllowedRolesForMethod("/shoal.api.SomethingNew/Call"), managers);
  // A prefix of a worker service name is not that service.
  EXPECT_EQ(AllowedRolesForMethod("/shoal.api.DispatcherAdmin/Call"), managers);
}

}  // namespace
}  // namespace shoal::pki
