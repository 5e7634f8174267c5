// Root rotation progress: counting nodes against the desired root, and waiting with a clock that
// jumps instead of sleeping.
#include "cli/ca_rotation.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "gtest/gtest.h"
#include "pki/test_util.h"

namespace shoal::cli {
namespace {

// The DER issuer name of a PEM certificate, as a node reports it.
std::string IssuerNameOf(const std::string& cert_pem) {
  BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  unsigned char* buf = nullptr;
  const int len = i2d_X509_NAME(X509_get_issuer_name(cert), &buf);
  std::string der(reinterpret_cast<char*>(buf), len);
  OPENSSL_free(buf);
  X509_free(cert);
  return der;
}

api::Node NodeOn(const std::string& id, const std::string& trust_root,
                 const CertificateIssuer& issuer) {
  api::Node n;
  n.set_id(id);
  api::NodeTLSInfo* tls = n.mutable_description()->mutable_tls_info();
  tls->set_trust_root(trust_root);
  tls->set_cert_issuer_subject(issuer.subject);
  tls->set_cert_issuer_public_key(issuer.public_key);
  return n;
}

TEST(IssuerOfTest, MatchesTheIssuerOfCertificatesTheRootSigns) {
  const pki::RootCA root = pki::testing::NewRootCA();
  const pki::testing::IssuedNode node =
      pki::testing::IssueNode(root, "node1", pki::Role::kWorker, "cluster1");
  absl::StatusOr<CertificateIssuer> issuer = IssuerOf(root.cert_pem());
  ASSERT_TRUE(issuer.ok()) << issuer.status();
  EXPECT_EQ(issuer->subject, IssuerNameOf(node.cert_pem));
  EXPECT_FALSE(issuer->public_key.empty());
  EXPECT_NE(issuer->public_key, IssuerOf(pki::testing::NewRootCA().cert_pem())->public_key);
  EXPECT_FALSE(IssuerOf("not a certificate").ok());
}

TEST(RootRotationProgressTest, CountsAgainstTheNewRootWhileRotating) {
  const pki::RootCA old_root = pki::testing::NewRootCA();
  const pki::RootCA new_root = pki::testing::NewRootCA();
  const CertificateIssuer old_issuer = *IssuerOf(old_root.cert_pem());
  const CertificateIssuer new_issuer = *IssuerOf(new_root.cert_pem());
  api::Cluster cluster;
  cluster.mutable_root_ca()->set_ca_cert(old_root.cert_pem());
  cluster.mutable_root_ca()->mutable_root_rotation()->set_ca_cert(new_root.cert_pem());
  const std::vector<api::Node> nodes = {
      NodeOn("a", new_root.cert_pem(), new_issuer),  // done
      NodeOn("b", old_root.cert_pem(), new_issuer),  // new certificate, old trust
      NodeOn("c", old_root.cert_pem(), old_issuer),  // nothing yet
  };
  absl::StatusOr<RootRotationProgress> p = ComputeRootRotationProgress(cluster, nodes);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->in_progress);
  EXPECT_EQ(p->total, 3);
  EXPECT_EQ(p->certs_rotated, 2);
  EXPECT_EQ(p->trust_rotated, 1);
  EXPECT_FALSE(p->Converged());
  EXPECT_EQ(p->Lines(),
            "rotated TLS certificates: 2/3 nodes\nrotated CA certificates: 1/3 nodes\n");

  // Rotation over: the new root is the root, every node moved.
  cluster.mutable_root_ca()->set_ca_cert(new_root.cert_pem());
  cluster.mutable_root_ca()->clear_root_rotation();
  p = ComputeRootRotationProgress(cluster, {NodeOn("a", new_root.cert_pem() + "\n", new_issuer),
                                            NodeOn("b", new_root.cert_pem(), new_issuer)});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->Converged());
}

}  // namespace
}  // namespace shoal::cli
