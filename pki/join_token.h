// join_token: the secrets that admit a node to the swarm, and the root-CA pin they carry.
//
// Format (Docker Swarm's): "SWMTKN-1-" <digest> "-" <secret>, where
//   digest = SHA-256 of the root CA certificate (DER), base36, zero-padded to 50 characters;
//   secret = 128 random bits, base36, zero-padded to 25 characters.
// The digest lets a joining node authenticate the manager it dials before sending anything
// secret (VerifyRootAgainstToken); the secret decides the role: the cluster keeps one token per
// role and rotating one replaces only its secret.
//
// Thread-safety: free functions; safe from any thread.
#ifndef SHOAL_PKI_JOIN_TOKEN_H_
#define SHOAL_PKI_JOIN_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::pki {

inline constexpr char kJoinTokenPrefix[] = "SWMTKN";
inline constexpr char kJoinTokenVersion[] = "1";
inline constexpr size_t kJoinTokenDigestChars = 50;
inline constexpr size_t kJoinTokenSecretChars = 25;

struct JoinToken {
  std::string root_digest;  // 32 raw bytes: SHA-256 of the root CA certificate's DER.
  std::string secret;       // The 25 base36 characters that decide the role.
};

// A new token for the root whose DER SHA-256 is `root_ca_digest` (32 raw bytes, as
// RootCA::Digest() returns).
std::string GenerateJoinToken(absl::string_view root_ca_digest);

// Parses a token; surrounding whitespace is ignored. Errors are INVALID_ARGUMENT starting with
// "invalid join token: " and say which part is wrong.
absl::StatusOr<JoinToken> ParseJoinToken(absl::string_view text);

// Whether two tokens are equal, in time independent of where they differ (CRYPTO_memcmp), so a
// caller probing the join endpoint learns nothing from response times. Length is not secret
// (the format fixes it) and a length mismatch returns false at once.
bool TokenMatches(absl::string_view a, absl::string_view b);

// The pinning check a joining node does before trusting a manager: `root_cert_pem` (one
// certificate, or a bundle during a root rotation) must contain a self-signed CA certificate
// whose digest is the token's. Returns that root's PEM. A mismatch is UNAUTHENTICATED with a
// message saying the manager is not the swarm the token belongs to.
absl::StatusOr<std::string> VerifyRootAgainstToken(absl::string_view root_cert_pem,
                                                   absl::string_view token);

// Base36 (0-9a-z) of a big-endian unsigned number, left-padded with '0' to `width`.
// Exposed for tests.
std::string Base36Encode(absl::string_view big_endian, size_t width);
// Inverse of Base36Encode into exactly `bytes` big-endian bytes; nullopt-like error when the text
// has other characters or the value does not fit.
absl::StatusOr<std::string> Base36Decode(absl::string_view text, size_t bytes);

}  // namespace shoal::pki

#endif  // SHOAL_PKI_JOIN_TOKEN_H_
