#include "pki/identity.h"

#include <openssl/err.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace shoal::pki {
namespace {

std::string UtcTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// "node abc (swarm-worker)" or "the certificate" when the subject is unreadable: for messages.
std::string Describe(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  auto cn = SubjectAttribute(name, NID_commonName);
  auto ou = SubjectAttribute(name, NID_organizationalUnitName);
  if (!cn.ok() || cn->empty()) return "the certificate";
  if (!ou.ok() || ou->empty()) return absl::StrCat("the certificate of ", *cn);
  return absl::StrCat("the certificate of node ", *cn, " (", *ou, ")");
}

absl::Status ChainError(X509_STORE_CTX* ctx, X509* leaf, absl::Time now) {
  const int err = X509_STORE_CTX_get_error(ctx);
  const int depth = X509_STORE_CTX_get_error_depth(ctx);
  X509* failing = X509_STORE_CTX_get_current_cert(ctx);
  if (failing == nullptr) failing = leaf;
  const std::string who = depth == 0 ? Describe(leaf) : "its issuing CA certificate";
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return absl::UnauthenticatedError(absl::StrCat(
          who, " expired at ", UtcTime(Asn1TimeToAbsl(X509_get0_notAfter(failing))), " (now ",
          UtcTime(now), ")",
          depth == 0 ? "; the node must renew its certificate or rejoin the swarm" : ""));
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return absl::UnauthenticatedError(absl::StrCat(
          who, " is not valid before ", UtcTime(Asn1TimeToAbsl(X509_get0_notBefore(failing))),
          " (now ", UtcTime(now), "); check the clocks of this machine and the manager"));
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return absl::UnauthenticatedError(
          absl::StrCat(who,
                       " is not issued by this swarm's root CA (it belongs to another swarm or CA; "
                       "a node from another swarm must leave it and join this one)"));
    default:
      return absl::UnauthenticatedError(
          absl::StrCat(who, " failed verification: ", X509_verify_cert_error_string(err),
                       " (depth ", depth, ")"));
  }
}

}  // namespace

const char* RoleName(Role role) {
  return role == Role::kManager ? kManagerRoleName : kWorkerRoleName;
}

absl::StatusOr<Role> ParseRoleName(absl::string_view name) {
  if (name == kManagerRoleName) return Role::kManager;
  if (name == kWorkerRoleName) return Role::kWorker;
  return absl::InvalidArgumentError(absl::StrCat("unknown node role \"", std::string(name),
                                                 "\" (expected ", kManagerRoleName, " or ",
                                                 kWorkerRoleName, ")"));
}

absl::StatusOr<NodeIdentity> ParseIdentity(X509* cert) {
  auto refuse = [&](absl::string_view why) {
    return absl::UnauthenticatedError(
        absl::StrCat(Describe(cert), " is not a node certificate: ", why));
  };
  if (X509_check_ca(cert) != 0) return refuse("it is a CA certificate");
  const uint32_t eku = X509_get_extended_key_usage(cert);
  if (eku == UINT32_MAX || (eku & XKU_SSL_CLIENT) == 0 || (eku & XKU_SSL_SERVER) == 0) {
    return refuse("it lacks the clientAuth and serverAuth extended key usages");
  }
  X509_NAME* name = X509_get_subject_name(cert);
  auto cn = SubjectAttribute(name, NID_commonName);
  auto ou = SubjectAttribute(name, NID_organizationalUnitName);
  auto o = SubjectAttribute(name, NID_organizationName);
  if (!cn.ok()) return refuse(cn.status().message());
  if (!ou.ok()) return refuse(ou.status().message());
  if (!o.ok()) return refuse(o.status().message());
  if (cn->empty()) return refuse("its subject has no CN (node ID)");
  if (o->empty()) return refuse("its subject has no O (cluster ID)");
  auto role = ParseRoleName(*ou);
  if (!role.ok()) return refuse(absl::StrCat("its OU is \"", *ou, "\", not a node role"));
  NodeIdentity id;
  id.node_id = *std::move(cn);
  id.role = *role;
  id.cluster_id = *std::move(o);
  id.not_before = Asn1TimeToAbsl(X509_get0_notBefore(cert));
  id.not_after = Asn1TimeToAbsl(X509_get0_notAfter(cert));
  ERR_clear_error();
  return id;
}

absl::StatusOr<NodeIdentity> VerifyNodeCertificate(absl::string_view cert_chain_pem,
                                                   absl::string_view trusted_roots_pem,
                                                   absl::string_view intermediates_pem,
                                                   absl::Time now,
                                                   absl::string_view expected_cluster_id) {
  auto chain = ParseCertificates(cert_chain_pem, "node certificate");
  if (!chain.ok()) return chain.status();
  auto roots = ParseCertificates(trusted_roots_pem, "trusted root CA certificates");
  if (!roots.ok()) return roots.status();

  X509StorePtr store(X509_STORE_new());
  X509StackPtr untrusted(sk_X509_new_null());
  if (!store || !untrusted) return OpenSslError("allocating a certificate store");
  for (auto& root : *roots) {
    if (X509_STORE_add_cert(store.get(), root.get()) != 1) {
      // Two copies of one root are harmless.
      const unsigned long err = ERR_peek_last_error();
      if (ERR_GET_REASON(err) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
        return OpenSslError("adding a trusted root");
      }
      ERR_clear_error();
    }
  }
  auto add_untrusted = [&](X509* cert) -> absl::Status {
    if (!sk_X509_push(untrusted.get(), cert)) return OpenSslError("building the chain");
    X509_up_ref(cert);
    return absl::OkStatus();
  };
  for (size_t i = 1; i < chain->size(); ++i) {
    if (absl::Status s = add_untrusted((*chain)[i].get()); !s.ok()) return s;
  }
  if (!intermediates_pem.empty()) {
    auto extra = ParseCertificates(intermediates_pem, "intermediate certificates");
    if (!extra.ok()) return extra.status();
    for (auto& cert : *extra) {
      if (absl::Status s = add_untrusted(cert.get()); !s.ok()) return s;
    }
  }

  X509* leaf = chain->front().get();
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    return OpenSslError("initialising certificate verification");
  }
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()),
                             static_cast<time_t>(absl::ToUnixSeconds(now)));
  if (X509_verify_cert(ctx.get()) != 1) {
    absl::Status status = ChainError(ctx.get(), leaf, now);
    ERR_clear_error();
    return status;
  }

  auto id = ParseIdentity(leaf);
  if (!id.ok()) return id.status();
  if (!expected_cluster_id.empty() && id->cluster_id != expected_cluster_id) {
    return absl::PermissionDeniedError(absl::StrCat(Describe(leaf), " belongs to cluster ",
                                                    id->cluster_id, ", not to this cluster (",
                                                    std::string(expected_cluster_id), ")"));
  }
  return id;
}

}  // namespace shoal::pki
