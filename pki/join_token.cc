#include "pki/join_token.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "pki/ossl.h"

namespace shoal::pki {
namespace {

constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
constexpr size_t kDigestBytes = 32;
constexpr size_t kSecretBytes = 16;

int Base36Value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  return -1;
}

absl::Status Invalid(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid join token: ", why,
      " (expected SWMTKN-1-<50 characters>-<25 characters>; print it again with `shoal swarm "
      "join-token worker|manager` on a manager)"));
}

}  // namespace

std::string Base36Encode(absl::string_view big_endian, size_t width) {
  std::vector<unsigned char> n(big_endian.begin(), big_endian.end());
  std::string out;
  // Schoolbook division by 36, least significant digit first.
  while (std::any_of(n.begin(), n.end(), [](unsigned char b) { return b != 0; })) {
    unsigned rem = 0;
    for (unsigned char& b : n) {
      const unsigned cur = (rem << 8) | b;
      b = static_cast<unsigned char>(cur / 36);
      rem = cur % 36;
    }
    out.push_back(kDigits[rem]);
  }
  while (out.size() < width) out.push_back('0');
  return std::string(out.rbegin(), out.rend());
}

absl::StatusOr<std::string> Base36Decode(absl::string_view text, size_t bytes) {
  std::vector<unsigned char> n(bytes, 0);
  for (char c : text) {
    const int v = Base36Value(c);
    if (v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", std::string(1, c), "' is not a base36 digit (0-9, a-z)"));
    }
    unsigned carry = static_cast<unsigned>(v);
    for (size_t i = bytes; i-- > 0;) {
      const unsigned cur = n[i] * 36u + carry;
      n[i] = static_cast<unsigned char>(cur & 0xff);
      carry = cur >> 8;
    }
    if (carry != 0) return absl::InvalidArgumentError("value too large");
  }
  return std::string(n.begin(), n.end());
}

std::string GenerateJoinToken(absl::string_view root_ca_digest) {
  return absl::StrCat(kJoinTokenPrefix, "-", kJoinTokenVersion, "-",
                      Base36Encode(root_ca_digest, kJoinTokenDigestChars), "-",
                      Base36Encode(RandomBytes(kSecretBytes), kJoinTokenSecretChars));
}

absl::StatusOr<JoinToken> ParseJoinToken(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.empty()) return Invalid("it is empty");
  std::vector<absl::string_view> parts = absl::StrSplit(text, '-');
  if (parts.size() != 4) {
    return Invalid(absl::StrCat("expected 4 fields separated by '-', found ", parts.size()));
  }
  if (parts[0] != kJoinTokenPrefix) {
    return Invalid(absl::StrCat("it must start with \"", kJoinTokenPrefix, "-\""));
  }
  if (parts[1] != kJoinTokenVersion) {
    return Invalid(absl::StrCat("unsupported version \"", std::string(parts[1]),
                                "\" (this build understands version ", kJoinTokenVersion, ")"));
  }
  if (parts[2].size() != kJoinTokenDigestChars) {
    return Invalid(absl::StrCat("the root CA digest has ", parts[2].size(), " characters, not ",
                                kJoinTokenDigestChars));
  }
  if (parts[3].size() != kJoinTokenSecretChars) {
    return Invalid(absl::StrCat("the secret has ", parts[3].size(), " characters, not ",
                                kJoinTokenSecretChars));
  }
  auto digest = Base36Decode(parts[2], kDigestBytes);
  if (!digest.ok()) return Invalid(absl::StrCat("root CA digest: ", digest.status().message()));
  auto secret = Base36Decode(parts[3], kSecretBytes);
  if (!secret.ok()) return Invalid(absl::StrCat("secret: ", secret.status().message()));
  return JoinToken{*std::move(digest), std::string(parts[3])};
}

bool TokenMatches(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

absl::StatusOr<std::string> VerifyRootAgainstToken(absl::string_view root_cert_pem,
                                                   absl::string_view token) {
  auto parsed = ParseJoinToken(token);
  if (!parsed.ok()) return parsed.status();
  auto roots = ParseCertificates(root_cert_pem, "root CA certificate from the manager");
  if (!roots.ok()) return roots.status();
  std::string seen;
  for (auto& root : *roots) {
    const std::string digest = CertificateDigest(root.get());
    if (!TokenMatches(digest, parsed->root_digest)) {
      absl::StrAppend(&seen, seen.empty() ? "" : ", ", Base36Encode(digest, kJoinTokenDigestChars));
      continue;
    }
    const bool is_root = X509_check_ca(root.get()) == 1 && X509_self_signed(root.get(), 1) == 1;
    ERR_clear_error();
    if (!is_root) {
      return absl::UnauthenticatedError(
          "the certificate matching the join token's digest is not a self-signed CA "
          "certificate");
    }
    return CertificateToPem(root.get());
  }
  return absl::UnauthenticatedError(absl::StrCat(
      "the manager's root CA does not match the join token (token pins ",
      Base36Encode(parsed->root_digest, kJoinTokenDigestChars), ", manager presented ", seen,
      "): the address belongs to another swarm, the token is stale after a CA rotation, or "
      "someone is intercepting the connection"));
}

}  // namespace shoal::pki
