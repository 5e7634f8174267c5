// The manager's certificate authority services (proto/ca.proto), served by every manager on the
// manager port: the CA key lives in the replicated store's Cluster object, so any manager signs.
//
// NodeCaService (NodeCA):
//   IssueNodeCertificate  Two callers.
//     - A joining node, without a client certificate: its join token must match the cluster's
//       worker or manager token (constant time) and decides the role. A new Node is created
//       (ACCEPTED, the token's role, status UNKNOWN) with its certificate already ISSUED, signed
//       with CN = a fresh node ID, OU = role, O = cluster ID.
//     - A node renewing, with its certificate (manager::AuthorizeNode): the node must still be in
//       the store; the new certificate takes the node's current Node.role (promote/demote change
//       it), never the role asked for or the one in the old certificate.
//     During a root rotation certificates are signed by the new root and carry the cross-signed
//     intermediate, so nodes still trusting only the old root accept them.
//   NodeCertificateStatus  The node's certificate status and PEM; waits while it is PENDING.
//   GetRootCACertificate   The roots to trust (two during a rotation). Anonymous callers allowed.
// ManagerCaService (CA), managers only:
//   GetRootCACertificate   As above.
//   GetManagerUnlockKey    The newest unlock key (raw) and the cluster version it was read at.
//
// Thread-safety: gRPC calls the handlers concurrently; every handler is safe to run in parallel.
#ifndef SHOAL_MANAGER_CA_CA_SERVER_H_
#define SHOAL_MANAGER_CA_CA_SERVER_H_

#include <grpcpp/grpcpp.h>

#include "common/clock.h"
#include "manager/ca/ca_common.h"
#include "manager/raft_control.h"
#include "manager/store/memory_store.h"
#include "proto/ca.grpc.pb.h"

namespace shoal::manager {

class NodeCaService : public api::NodeCA::Service {
 public:
  // `store` and `raft` are not owned and must outlive the service. `raft` may be null (unused
  // for now: every manager can sign, since the CA key is in the store).
  NodeCaService(store::MemoryStore* store, RaftControl* raft, CaOptions options = {});

  grpc::Status IssueNodeCertificate(grpc::ServerContext* context,
                                    const api::IssueNodeCertificateRequest* request,
                                    api::IssueNodeCertificateResponse* response) override;
  grpc::Status NodeCertificateStatus(grpc::ServerContext* context,
                                     const api::NodeCertificateStatusRequest* request,
                                     api::NodeCertificateStatusResponse* response) override;
  grpc::Status GetRootCACertificate(grpc::ServerContext* context,
                                    const api::GetRootCACertificateRequest* request,
                                    api::GetRootCACertificateResponse* response) override;

 private:
  grpc::Status IssueForJoiningNode(const api::IssueNodeCertificateRequest& request,
                                   api::IssueNodeCertificateResponse* response);
  grpc::Status RenewForNode(const std::string& node_id,
                            const api::IssueNodeCertificateRequest& request,
                            api::IssueNodeCertificateResponse* response);

  store::MemoryStore* const store_;
  RaftControl* const raft_;
  const CaOptions options_;
  Clock* const clock_;
  SignerCache signers_;
};

class ManagerCaService : public api::CA::Service {
 public:
  ManagerCaService(store::MemoryStore* store, RaftControl* raft, CaOptions options = {});

  grpc::Status GetRootCACertificate(grpc::ServerContext* context,
                                    const api::GetRootCACertificateRequest* request,
                                    api::GetRootCACertificateResponse* response) override;
  grpc::Status GetManagerUnlockKey(grpc::ServerContext* context,
                                   const api::GetManagerUnlockKeyRequest* request,
                                   api::GetManagerUnlockKeyResponse* response) override;

 private:
  store::MemoryStore* const store_;
  RaftControl* const raft_;
  const CaOptions options_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_CA_CA_SERVER_H_
