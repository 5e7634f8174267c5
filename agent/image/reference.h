// reference: image references ("busybox", "127.0.0.1:5000/app:1", "name@sha256:...") parsed and
// normalised exactly as Docker does (github.com/docker/distribution/reference,
// ParseNormalizedNamed + ParseDockerRef):
//
//   busybox                         docker.io/library/busybox:latest
//   user/app                        docker.io/user/app:latest
//   localhost:5000/x                localhost:5000/x:latest
//   registry.example.com/a/b/c:tag  registry.example.com/a/b/c:tag
//   name@sha256:<64 hex>            docker.io/library/name@sha256:<64 hex>   (no default tag)
//   name:tag@sha256:<64 hex>        docker.io/library/name:tag@sha256:...    (pulled by digest)
//
// The first path component is the registry host when it contains '.' or ':' or is "localhost";
// otherwise the registry is docker.io (and "index.docker.io" is docker.io too). Repository path
// components are lowercase letters and digits separated by '.', '_', '__' or dashes; the full
// name (host/path) has at most 255 characters. A tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. A
// digest is ALGORITHM:HEX (digest.h). A bare 64-hex string is refused, as Docker refuses it (it
// looks like an image ID).
//
// Errors are INVALID_ARGUMENT and start with "invalid reference format" followed by the problem,
// e.g. `invalid reference format: repository name must be lowercase: "Busybox"`.
//
// Thread-safety: Reference is a value type; all functions are thread-safe.
#ifndef SHOAL_AGENT_IMAGE_REFERENCE_H_
#define SHOAL_AGENT_IMAGE_REFERENCE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::agent::image {

// Docker Hub, as references name it.
inline constexpr char kDefaultDomain[] = "docker.io";
// Official images live under this path prefix on Docker Hub.
inline constexpr char kOfficialRepoPrefix[] = "library/";
inline constexpr char kDefaultTag[] = "latest";
inline constexpr size_t kMaxNameLength = 255;

class Reference {
 public:
  // Parses and normalises `s` as `docker pull` does: ":latest" is added when `s` has neither a
  // tag nor a digest.
  static absl::StatusOr<Reference> Parse(absl::string_view s);
  // Like Parse, without the default tag (distribution's ParseNormalizedNamed): tag() and
  // digest() may both be empty.
  static absl::StatusOr<Reference> ParseNormalizedNamed(absl::string_view s);

  Reference() = default;

  // The registry host as written in references: "docker.io", "127.0.0.1:5000".
  const std::string& domain() const { return domain_; }
  // The repository path inside the registry: "library/busybox", "a/b/c".
  const std::string& path() const { return path_; }
  // Empty when none.
  const std::string& tag() const { return tag_; }
  // "sha256:<hex>", or empty when none.
  const std::string& digest() const { return digest_; }

  // domain/path: "docker.io/library/busybox".
  std::string Name() const;
  // Docker's short name: "busybox", "user/app", "127.0.0.1:5000/x".
  std::string FamiliarName() const;
  // The canonical form: Name()[:tag][@digest].
  std::string String() const;
  // The short form: FamiliarName()[:tag][@digest] ("busybox:latest").
  std::string FamiliarString() const;
  // What names the manifest in /v2/<path>/manifests/<reference>: the digest when there is one
  // (a tag is then only informative, as in Docker), else the tag ("latest" when neither).
  std::string ManifestReference() const;

  // A copy with `digest` (not validated) / `tag` set; empty clears it.
  Reference WithDigest(std::string digest) const;
  Reference WithTag(std::string tag) const;

  friend bool operator==(const Reference& a, const Reference& b) {
    return a.domain_ == b.domain_ && a.path_ == b.path_ && a.tag_ == b.tag_ &&
           a.digest_ == b.digest_;
  }
  friend bool operator!=(const Reference& a, const Reference& b) { return !(a == b); }

 private:
  std::string domain_;
  std::string path_;
  std::string tag_;
  std::string digest_;
};

}  // namespace shoal::agent::image

#endif  // SHOAL_AGENT_IMAGE_REFERENCE_H_
