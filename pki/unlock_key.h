// unlock_key: the swarm's unlock key (the key-encryption key, KEK) and the node-key wrapping it
// protects.
//
// When a swarm is autolocked, each manager's TLS private key (and, through it, the Raft data
// keys) is stored encrypted with the KEK, and a restarted manager serves nothing until an
// operator types the unlock key. The printable form is Docker's: "SWMKEY-1-" followed by the 32
// raw key bytes in unpadded standard base64 (43 characters).
//
// A wrapped key is a PEM block of its own type, so `head -1 swarm-node.key` tells an operator
// (and IsWrappedKey tells code) that the file is locked:
//
//   -----BEGIN SHOAL ENCRYPTED PRIVATE KEY-----
//   <base64 of: version(1) | salt(16) | nonce(12) | AES-256-GCM ciphertext | tag(16)>
//   -----END SHOAL ENCRYPTED PRIVATE KEY-----
//
// The AES key is HKDF-SHA256(KEK, salt, "shoal node key wrap v1"): a fresh salt per wrap means a
// fresh AES key per wrap, so random nonces never repeat under one key, and the KEK itself is
// never used directly (it also protects other things). The version byte is authenticated.
//
// Thread-safety: free functions; safe from any thread.
#ifndef SHOAL_PKI_UNLOCK_KEY_H_
#define SHOAL_PKI_UNLOCK_KEY_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::pki {

inline constexpr size_t kUnlockKeySize = 32;
inline constexpr char kUnlockKeyPrefix[] = "SWMKEY-1-";
inline constexpr char kWrappedKeyPemType[] = "SHOAL ENCRYPTED PRIVATE KEY";

// 32 fresh random bytes: a new KEK.
std::string GenerateUnlockKeyBytes();
// The printable form of a KEK. REQUIRES: kek.size() == kUnlockKeySize.
std::string FormatUnlockKey(absl::string_view kek);
// A new KEK in printable form ("SWMKEY-1-..."); ParseUnlockKey() gives back its bytes.
std::string GenerateUnlockKey();
// The KEK in a printable unlock key. Surrounding whitespace (a newline from stdin) is ignored.
// Errors are INVALID_ARGUMENT, starting "invalid unlock key: ".
absl::StatusOr<std::string> ParseUnlockKey(absl::string_view text);

// Encrypts a PEM private key with `kek` (32 bytes; else INVALID_ARGUMENT).
absl::StatusOr<std::string> WrapKey(absl::string_view key_pem, absl::string_view kek);
// The PEM private key inside a wrapped key. A wrong KEK (or an altered file: the two cannot be
// told apart) fails with INVALID_ARGUMENT "invalid unlock key: ...".
absl::StatusOr<std::string> UnwrapKey(absl::string_view wrapped_pem, absl::string_view kek);
// True when `pem` holds a wrapped key (looks at the PEM type line only).
bool IsWrappedKey(absl::string_view pem);

}  // namespace shoal::pki

#endif  // SHOAL_PKI_UNLOCK_KEY_H_
