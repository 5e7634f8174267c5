// RootCA: what the root and node certificates contain, checked both through our own parsing and
// through the openssl CLI on the PEM we produce (what an operator would run on swarm-node.crt).
#include "pki/root_ca.h"

#include <openssl/pem.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/keys.h"
#include "pki/ossl.h"
#include "pki/test_util.h"
#include "tests/harness/prerequisite.h"

namespace shoal::pki {
namespace {

using ::shoal::pki::testing::IssueNode;
using ::shoal::pki::testing::NewRootCA;
using ::shoal::pki::testing::RunOpenSsl;
using ::shoal::pki::testing::TestNow;
using ::testing::HasSubstr;
using ::testing::Not;

std::string OpenSslText(const std::string& pem) {
  bool ok = false;
  std::string out = RunOpenSsl("x509 -noout -subject -issuer -dates -text", pem, &ok);
  if (out.empty() && !ok) return "";
  EXPECT_TRUE(ok) << out;
  return out;
}

#define SKIP_WITHOUT_OPENSSL_CLI(text) \
  SHOAL_REQUIRE(!(text).empty(), "/usr/bin/openssl is not installed")

TEST(RootCATest, RootCertificateAsOpenSslSeesIt) {
  RootCA ca = NewRootCA();
  const std::string text = OpenSslText(ca.cert_pem());
  SKIP_WITHOUT_OPENSSL_CLI(text);
  EXPECT_THAT(text, HasSubstr("subject=CN = swarm-ca\n"));
  EXPECT_THAT(text, HasSubstr("issuer=CN = swarm-ca\n"));
  // Backdated one hour; 20 years of 365 days (2030 -> 2049 crosses 5 leap days).
  EXPECT_THAT(text, HasSubstr("notBefore=Dec 31 23:00:00 2029 GMT"));
  EXPECT_THAT(text, HasSubstr("notAfter=Dec 27 00:00:00 2049 GMT"));
  EXPECT_THAT(text, HasSubstr("Signature Algorithm: ecdsa-with-SHA256"));
  EXPECT_THAT(text, HasSubstr("ASN1 OID: prime256v1"));
  EXPECT_THAT(text, HasSubstr("X509v3 Basic Constraints: critical\n                CA:TRUE"));
  EXPECT_THAT(text, HasSubstr("Certificate Sign, CRL Sign"));
  EXPECT_THAT(text, HasSubstr("X509v3 Subject Key Identifier"));
}

TEST(RootCATest, ManagerCertificateAsOpenSslSeesIt) {
  RootCA ca = NewRootCA();
  auto node = IssueNode(ca, "node1abc", Role::kManager, "cluster9xyz");
  const std::string text = OpenSslText(node.cert_pem);
  SKIP_WITHOUT_OPENSSL_CLI(text);
  EXPECT_THAT(text, HasSubstr("subject=O = cluster9xyz, OU = swarm-manager, CN = node1abc\n"));
  EXPECT_THAT(text, HasSubstr("issuer=CN = swarm-ca\n"));
  // Default validity 90 days from 2030-01-01, backdated one hour.
  EXPECT_THAT(text, HasSubstr("notBefore=Dec 31 23:00:00 2029 GMT"));
  EXPECT_THAT(text, HasSubstr("notAfter=Apr  1 00:00:00 2030 GMT"));
  EXPECT_THAT(text, HasSubstr("Signature Algorithm: ecdsa-with-SHA256"));
  EXPECT_THAT(text, HasSubstr("CA:FALSE"));
  EXPECT_THAT(text, HasSubstr("TLS Web Server Authentication, TLS Web Client Authentication"));
  EXPECT_THAT(text, HasSubstr("DNS:swarm-manager, DNS:node1abc, DNS:swarm-ca"));
  EXPECT_THAT(text, HasSubstr("X509v3 Authority Key Identifier"));
}

TEST(RootCATest, WorkerCertificateHasNoCaName) {
  RootCA ca = NewRootCA();
  auto node = IssueNode(ca, "w1", Role::kWorker, "c1", absl::Hours(720));
  const std::string text = OpenSslText(node.cert_pem);
  SKIP_WITHOUT_OPENSSL_CLI(text);
  EXPECT_THAT(text, HasSubstr("subject=O = c1, OU = swarm-worker, CN = w1\n"));
  EXPECT_THAT(text, HasSubstr("DNS:swarm-worker, DNS:w1\n"));
  EXPECT_THAT(text, Not(HasSubstr("DNS:swarm-ca")));
  EXPECT_THAT(text, HasSubstr("notAfter=Jan 31 00:00:00 2030 GMT"));  // --cert-expiry 720h
}

TEST(RootCATest, OpenSslVerifiesTheChain) {
  RootCA ca = NewRootCA(absl::Now());
  auto node = IssueNode(ca, "n1", Role::kWorker, "c1", absl::Hours(2), absl::Now());
  const std::string dir = getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp";
  const std::string ca_path = dir + "/ca.pem";
  FILE* f = fopen(ca_path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs(ca.cert_pem().c_str(), f);
  fclose(f);
  bool ok = false;
  const std::string out =
      RunOpenSsl("verify -purpose sslclient -CAfile '" + ca_path + "' %IN%", node.cert_pem, &ok);
  SHOAL_REQUIRE(!out.empty(), "/usr/bin/openssl is not installed");
  EXPECT_TRUE(ok) << out;
  EXPECT_THAT(out, HasSubstr(": OK"));
}

TEST(RootCATest, CsrSubjectAndExtensionsAreIgnored) {
  // A CSR asking for another cluster, the manager role and extra names gets none of them.
  auto key = GenerateKey();
  ASSERT_TRUE(key.ok());
  X509ReqPtr req(X509_REQ_new());
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  auto add = [&](const char* field, const char* value) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(value), -1, -1, 0);
  };
  add("O", "someone-elses-cluster");
  add("OU", "swarm-manager");
  add("CN", "admin");
  X509_REQ_set_pubkey(req.get(), key->get());
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name,
                                                   "DNS:swarm-manager,DNS:evil"));
  X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  ASSERT_GT(X509_REQ_sign(req.get(), key->get(), EVP_sha256()), 0);
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  const std::string csr = BioContents(bio.get());

  RootCA ca = NewRootCA();
  auto cert = ca.IssueNodeCertificate(csr, "w7", Role::kWorker, "c1", absl::Hours(24), TestNow());
  ASSERT_TRUE(cert.ok()) << cert.status();
  auto parsed = ParseCertificate(*cert, "cert");
  ASSERT_TRUE(parsed.ok());
  auto id = ParseIdentity(parsed->get());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, "w7");
  EXPECT_EQ(id->cluster_id, "c1");
  EXPECT_EQ(id->role, Role::kWorker);
  const std::string text = OpenSslText(*cert);
  if (!text.empty()) {
    EXPECT_THAT(text, HasSubstr("DNS:swarm-worker, DNS:w7\n"));
    EXPECT_THAT(text, Not(HasSubstr("evil")));
  }
}

TEST(RootCATest, ValidityBelowOneHourIsRefused) {
  RootCA ca = NewRootCA();
  auto kc = GenerateKeyAndCsr();
  ASSERT_TRUE(kc.ok());
  auto short_cert =
      ca.IssueNodeCertificate(kc->csr_pem, "n1", Role::kWorker, "c1", absl::Minutes(59), TestNow());
  ASSERT_FALSE(short_cert.ok());
  EXPECT_EQ(short_cert.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(short_cert.status().message()),
      HasSubstr("certificate validity 59m is too short: --cert-expiry must be at least 1h"));
  auto exactly =
      ca.IssueNodeCertificate(kc->csr_pem, "n1", Role::kWorker, "c1", absl::Hours(1), TestNow());
  ASSERT_TRUE(exactly.ok()) << exactly.status();
  auto parsed = ParseCertificate(*exactly, "cert");
  auto id = ParseIdentity(parsed->get());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->not_after, TestNow() + absl::Hours(1));
  EXPECT_EQ(id->not_before, TestNow() - RootCA::kBackdate);
}

TEST(RootCATest, NodeValidityIsCappedAtTheRootsExpiry) {
  RootCA ca = NewRootCA();
  auto node = IssueNode(ca, "n1", Role::kWorker, "c1", absl::Hours(24 * 365 * 30));
  auto parsed = ParseCertificate(node.cert_pem, "cert");
  ASSERT_TRUE(parsed.ok());
  auto id = ParseIdentity(parsed->get());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->not_after, ca.not_after());
}

TEST(RootCATest, BadNodeIdsAndCsrsAreRefused) {
  RootCA ca = NewRootCA();
  auto kc = GenerateKeyAndCsr();
  ASSERT_TRUE(kc.ok());
  auto issue = [&](const std::string& csr, const std::string& node, const std::string& cluster) {
    return ca.IssueNodeCertificate(csr, node, Role::kWorker, cluster, absl::Hours(2), TestNow());
  };
  // A comma would smuggle another SAN into the extension string.
  EXPECT_THAT(std::string(issue(kc->csr_pem, "n1,DNS:swarm-manager", "c1").status().message()),
              HasSubstr("invalid node ID"));
  EXPECT_THAT(std::string(issue(kc->csr_pem, "", "c1").status().message()),
              HasSubstr("invalid node ID"));
  EXPECT_THAT(std::string(issue(kc->csr_pem, "n1", std::string(65, 'a')).status().message()),
              HasSubstr("invalid cluster ID"));
  EXPECT_THAT(std::string(issue("hello", "n1", "c1").status().message()), HasSubstr("invalid CSR"));
  // Flip a byte inside the signature: the CSR no longer proves possession of its key.
  std::string body = kc->csr_pem;
  const size_t pos = body.rfind("-----END") - 10;
  body[pos] = body[pos] == 'A' ? 'B' : 'A';
  EXPECT_EQ(issue(body, "n1", "c1").status().code(), absl::StatusCode::kInvalidArgument);
  // An RSA key is not a node key.
  EvpPkeyPtr rsa(EVP_RSA_gen(2048));
  ASSERT_TRUE(rsa);
  auto rsa_csr = CreateCsr(rsa.get());
  ASSERT_TRUE(rsa_csr.ok());
  EXPECT_THAT(std::string(issue(*rsa_csr, "n1", "c1").status().message()),
              HasSubstr("node keys must be ECDSA P-256"));
}

TEST(RootCATest, LoadChecksTheRootAndItsKey) {
  RootCA ca = NewRootCA();
  auto loaded = RootCA::Load(ca.cert_pem(), ca.key_pem(), TestNow());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->Digest(), ca.Digest());
  EXPECT_EQ(loaded->cert_pem(), ca.cert_pem());

  RootCA other = NewRootCA();
  auto mismatched = RootCA::Load(ca.cert_pem(), other.key_pem(), TestNow());
  EXPECT_THAT(std::string(mismatched.status().message()), HasSubstr("does not match"));

  auto node = IssueNode(ca, "n1", Role::kManager, "c1");
  auto not_ca = RootCA::Load(node.cert_pem, node.key_pem, TestNow());
  EXPECT_THAT(std::string(not_ca.status().message()), HasSubstr("not a CA certificate"));

  auto expired = RootCA::Load(ca.cert_pem(), ca.key_pem(), TestNow() + absl::Hours(24 * 365 * 21));
  EXPECT_THAT(std::string(expired.status().message()), HasSubstr("root CA certificate expired"));

  auto garbage = RootCA::Load("not pem", ca.key_pem(), TestNow());
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(garbage.status().message()), HasSubstr("no PEM certificate found"));

  // A cross-signed copy is a CA but not self-signed: not a root.
  auto cross = other.CrossSign(ca.cert_pem());
  ASSERT_TRUE(cross.ok());
  auto intermediate = RootCA::Load(*cross, ca.key_pem(), TestNow());
  EXPECT_THAT(std::string(intermediate.status().message()), HasSubstr("not self-signed"));
}

TEST(RootCATest, DigestIsSha256OfDerAsOpenSslComputesIt) {
  RootCA ca = NewRootCA();
  ASSERT_EQ(ca.Digest().size(), 32u);
  bool ok = false;
  const std::string out = RunOpenSsl("x509 -noout -fingerprint -sha256", ca.cert_pem(), &ok);
  SHOAL_REQUIRE(!out.empty(), "/usr/bin/openssl is not installed");
  ASSERT_TRUE(ok) << out;
  std::string hex = absl::AsciiStrToLower(
      absl::StrReplaceAll(out.substr(out.find('=') + 1), {{":", ""}, {"\n", ""}}));
  EXPECT_EQ(hex, absl::BytesToHexString(ca.Digest()));
}

TEST(RootCATest, SerialsAreRandomAndPositive) {
  RootCA ca = NewRootCA();
  auto a = IssueNode(ca, "n1", Role::kWorker, "c1");
  auto b = IssueNode(ca, "n1", Role::kWorker, "c1");
  auto ca_cert = ParseCertificate(a.cert_pem, "a");
  auto cb_cert = ParseCertificate(b.cert_pem, "b");
  ASSERT_TRUE(ca_cert.ok() && cb_cert.ok());
  const ASN1_INTEGER* sa = X509_get0_serialNumber(ca_cert->get());
  const ASN1_INTEGER* sb = X509_get0_serialNumber(cb_cert->get());
  EXPECT_NE(ASN1_INTEGER_cmp(sa, sb), 0);
  BignumPtr bn(ASN1_INTEGER_to_BN(sa, nullptr));
  EXPECT_FALSE(BN_is_negative(bn.get()));
  EXPECT_LE(BN_num_bytes(bn.get()), 20);
}

TEST(RootCATest, CrossSignedRootAsOpenSslSeesIt) {
  RootCA old_root = NewRootCA();
  RootCA new_root = NewRootCA(TestNow() + absl::Hours(24));
  auto cross = old_root.CrossSign(new_root.cert_pem());
  ASSERT_TRUE(cross.ok()) << cross.status();
  auto parsed = ParseCertificate(*cross, "cross");
  ASSERT_TRUE(parsed.ok());
  // The new root's key and validity, signed by the old root.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(parsed->get()), X509_get0_pubkey(new_root.cert())), 1);
  EXPECT_EQ(X509_verify(parsed->get(), X509_get0_pubkey(old_root.cert())), 1);
  EXPECT_EQ(X509_check_ca(parsed->get()), 1);
  const std::string text = OpenSslText(*cross);
  SKIP_WITHOUT_OPENSSL_CLI(text);
  EXPECT_THAT(text, HasSubstr("subject=CN = swarm-ca\n"));
  EXPECT_THAT(text, HasSubstr("notAfter=Dec 28 00:00:00 2049 GMT"));  // the new root's
  EXPECT_THAT(text, HasSubstr("CA:TRUE"));
}

}  // namespace
}  // namespace shoal::pki
