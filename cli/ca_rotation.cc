#include "cli/ca_rotation.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace shoal::cli {
namespace {

std::string Trimmed(const std::string& s) { return std::string(absl::StripAsciiWhitespace(s)); }

std::string Der(int len, unsigned char* buf) {
  std::string out(reinterpret_cast<char*>(buf), len > 0 ? len : 0);
  OPENSSL_free(buf);
  return out;
}

}  // namespace

std::string RootRotationProgress::Lines() const {
  return absl::StrCat("rotated TLS certificates: ", certs_rotated, "/", total,
                      " nodes\nrotated CA certificates: ", trust_rotated, "/", total, " nodes\n");
}

absl::StatusOr<CertificateIssuer> IssuerOf(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), pem.size()), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, &X509_free);
  if (cert == nullptr) {
    return absl::InvalidArgumentError("the cluster's root CA certificate is not valid PEM");
  }
  CertificateIssuer issuer;
  unsigned char* buf = nullptr;
  int len = i2d_X509_NAME(X509_get_subject_name(cert.get()), &buf);
  if (len <= 0) return absl::InternalError("cannot encode the root CA's subject");
  issuer.subject = Der(len, buf);
  buf = nullptr;
  len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.get()), &buf);
  if (len <= 0) return absl::InternalError("cannot encode the root CA's public key");
  issuer.public_key = Der(len, buf);
  return issuer;
}

absl::StatusOr<RootRotationProgress> ComputeRootRotationProgress(
    const api::Cluster& cluster, const std::vector<api::Node>& nodes) {
  RootRotationProgress p;
  p.in_progress = cluster.root_ca().has_root_rotation();
  p.desired_root =
      p.in_progress ? cluster.root_ca().root_rotation().ca_cert() : cluster.root_ca().ca_cert();
  absl::StatusOr<CertificateIssuer> issuer = IssuerOf(p.desired_root);
  if (!issuer.ok()) return issuer.status();
  const std::string desired = Trimmed(p.desired_root);
  p.total = static_cast<int>(nodes.size());
  for (const api::Node& node : nodes) {
    const api::NodeTLSInfo& tls = node.description().tls_info();
    if (tls.cert_issuer_subject() == issuer->subject &&
        tls.cert_issuer_public_key() == issuer->public_key) {
      ++p.certs_rotated;
    }
    if (Trimmed(tls.trust_root()) == desired) ++p.trust_rotated;
  }
  return p;
}

api::Cluster WaitForRootRotation(Context& ctx, Clock& clock, const std::string& old_root,
                                 bool expect_new_root, absl::Duration timeout, absl::Duration poll,
                                 bool quiet) {
  const absl::Time deadline = clock.Now() + timeout;
  std::string last_lines;
  while (true) {
    api::GetClusterResponse cluster;
    api::ListNodesResponse nodes;
    grpc::Status s;
    {
      auto call = CallContext();
      s = ctx.control().GetCluster(call.get(), api::GetClusterRequest(), &cluster);
    }
    if (s.ok()) {
      auto call = CallContext();
      s = ctx.control().ListNodes(call.get(), api::ListNodesRequest(), &nodes);
    }
    // Managers reload their certificates during a rotation, and a manager briefly answers
    // UNAVAILABLE while it does: keep polling until the deadline.
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE && clock.Now() < deadline) {
      clock.SleepUntil(std::min(deadline, clock.Now() + poll));
      continue;
    }
    ctx.Check(s);
    absl::StatusOr<RootRotationProgress> progress = ComputeRootRotationProgress(
        cluster.cluster(), std::vector<api::Node>(nodes.nodes().begin(), nodes.nodes().end()));
    if (!progress.ok()) throw CommandError{std::string(progress.status().message())};
    const std::string lines = progress->Lines();
    if (!quiet && lines != last_lines) ctx.out() << lines << std::flush;
    last_lines = lines;
    const bool root_changed = Trimmed(cluster.cluster().root_ca().ca_cert()) != Trimmed(old_root);
    if (progress->Converged() && (root_changed || !expect_new_root)) {
      return cluster.cluster();
    }
    if (clock.Now() >= deadline) {
      throw CommandError{absl::StrCat(
          "the root CA rotation has not finished after ", absl::FormatDuration(timeout), " (",
          progress->certs_rotated, "/", progress->total,
          " nodes have a certificate from the new root, ", progress->trust_rotated, "/",
          progress->total,
          " trust it); it goes on in the background: run `shoal swarm ca` later to see the root "
          "in use, or wait longer with --timeout")};
    }
    clock.SleepUntil(std::min(deadline, clock.Now() + poll));
  }
}

}  // namespace shoal::cli
