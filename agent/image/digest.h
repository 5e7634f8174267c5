// digest: content digests as registries and containerd write them ("sha256:<64 lowercase hex>").
//
// ValidateDigest checks a digest string as github.com/opencontainers/go-digest does (algorithm
// sha256, sha384 or sha512; the exact hex length; lowercase hex). Digester hashes a stream
// incrementally (OpenSSL EVP) so that blobs are verified while they are copied.
//
// Thread-safety: free functions are thread-safe; a Digester is used by one thread at a time.
#ifndef SHOAL_AGENT_IMAGE_DIGEST_H_
#define SHOAL_AGENT_IMAGE_DIGEST_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::agent::image {

// OK when `digest` is a well-formed digest of a supported algorithm. Errors: INVALID_ARGUMENT
// naming the problem ("invalid checksum digest format", "invalid checksum digest length",
// "unsupported digest algorithm").
absl::Status ValidateDigest(absl::string_view digest);

// "sha256:<hex>" of `data`.
std::string Sha256Digest(absl::string_view data);

class Digester {
 public:
  // A hasher for the algorithm of `digest` (e.g. "sha256" for "sha256:..."). Errors as
  // ValidateDigest.
  static absl::StatusOr<Digester> ForDigest(absl::string_view digest);
  // A sha256 hasher.
  Digester();
  ~Digester();
  Digester(Digester&& other) noexcept;
  Digester& operator=(Digester&& other) noexcept;
  Digester(const Digester&) = delete;
  Digester& operator=(const Digester&) = delete;

  void Update(absl::string_view data);
  // "<algorithm>:<hex>" of everything given to Update. Ends the digester: call it once.
  std::string Final();

 private:
  struct Impl;
  explicit Digester(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::agent::image

#endif  // SHOAL_AGENT_IMAGE_DIGEST_H_
