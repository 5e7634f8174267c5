// CertificateStore: a node's TLS material on disk, where Docker keeps it.
//
//   <state-dir>/certificates/swarm-root-ca.crt   root CA(s) the node trusts (PEM; 0644)
//   <state-dir>/certificates/swarm-node.crt      the node's certificate chain (PEM; 0644)
//   <state-dir>/certificates/swarm-node.key      its private key (PEM; 0600), wrapped with the
//                                                KEK (unlock_key.h) when the swarm is autolocked
//
// Every file is replaced atomically: written to a temporary file, fsynced, renamed over the old
// one, and the directory fsynced — a crash leaves the old file or the new one, never a torn one.
//
// The certificate and key must also change *together* (a renewal replaces both, and a mismatched
// pair would lock the node out). Two renames cannot be one atomic step, so the pair goes through
// a staging protocol:
//   1. write swarm-node.key.new, then swarm-node.crt.new (each atomically, directory fsynced);
//   2. rename .key.new over .key, fsync the directory; rename .crt.new over .crt, fsync again.
// Recovery (run by Load and Save before anything else) completes or discards an interrupted
// save: if swarm-node.crt.new exists the staged pair is complete, so it rolls forward (renaming
// whichever staged file is still there); if only swarm-node.key.new exists, step 1 was cut short
// and it is deleted. Either way the node ends with a matching pair.
//
// Thread-safety: none. One owner (the node's security setup) uses a store at a time; two
// CertificateStores on the same directory must not be used concurrently.
#ifndef SHOAL_PKI_CERTIFICATE_STORE_H_
#define SHOAL_PKI_CERTIFICATE_STORE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::pki {

struct NodeCertificates {
  std::string root_ca_pem;  // One root, or two during a root rotation.
  std::string cert_pem;     // The node's certificate, possibly followed by intermediates.
  std::string key_pem;      // Always unwrapped in memory.
};

class CertificateStore {
 public:
  static constexpr char kDirName[] = "certificates";
  static constexpr char kRootCaFile[] = "swarm-root-ca.crt";
  static constexpr char kCertFile[] = "swarm-node.crt";
  static constexpr char kKeyFile[] = "swarm-node.key";

  // REQUIRES: state_dir exists when Save or Load is called (the certificates/ directory under it
  // is created on first Save, mode 0700).
  explicit CertificateStore(const std::string& state_dir);

  const std::string& dir() const { return dir_; }
  std::string root_ca_path() const;
  std::string cert_path() const;
  std::string key_path() const;

  // Writes all three files (root first, then the certificate/key pair). `kek` empty stores the
  // key in the clear; otherwise it is wrapped with the 32-byte KEK. The key must match the
  // certificate (else INVALID_ARGUMENT, nothing written).
  absl::Status Save(const NodeCertificates& certs, absl::string_view kek = "");
  // Replaces only the trusted roots (a root rotation's progress).
  absl::Status SaveRootCA(absl::string_view root_ca_pem);
  // Replaces the certificate/key pair (a renewal), atomically as a pair.
  absl::Status SaveNodeCertificate(absl::string_view cert_pem, absl::string_view key_pem,
                                   absl::string_view kek = "");

  // Reads everything back, unwrapping the key with `kek` when it is wrapped. Errors:
  //   NOT_FOUND            no certificates stored (the node never joined, or left);
  //   FAILED_PRECONDITION  the key is wrapped and no KEK was given (the swarm is locked);
  //   INVALID_ARGUMENT     the KEK does not decrypt the key ("invalid unlock key: ...");
  //   DATA_LOSS            unreadable PEM, or a key that does not match the certificate.
  // A key stored in the clear loads even when a KEK is given.
  absl::StatusOr<NodeCertificates> Load(absl::string_view kek = "");

  // Whether a certificate is stored (after recovering an interrupted save).
  absl::StatusOr<bool> Exists();
  // Whether the stored key is wrapped with a KEK.
  absl::StatusOr<bool> KeyIsWrapped();

  // Re-stores the key under `new_kek` ("" = in the clear): autolock switched on or off, or the
  // unlock key rotated. `old_kek` must unwrap the current key if it is wrapped.
  absl::Status ChangeKek(absl::string_view old_kek, absl::string_view new_kek);

 private:
  absl::Status EnsureDir();
  absl::Status Recover();

  std::string dir_;
};

}  // namespace shoal::pki

#endif  // SHOAL_PKI_CERTIFICATE_STORE_H_
