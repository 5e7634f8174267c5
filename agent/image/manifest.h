// manifest: the JSON documents of a registry — image manifests, manifest lists / image indexes,
// image configs — and platform selection.
//
// Supported: Docker image manifest v2 schema 2, Docker manifest list, OCI image manifest, OCI image
// index. Docker schema 1 (deprecated, unsigned or signed) is refused with an error that says so.
//
// Platforms use Go's names (GOOS/GOARCH, as Docker and containerd do): x86_64 is "amd64", aarch64
// is "arm64". Matching follows containerd 1.6 (platforms.Only): OS and architecture equal after
// normalisation; variants compare normalised (arm64 "v8" is no variant, arm defaults to "v7"); an
// arm host also runs older arm variants (v7 → v6 → v5), preferring the newest. Among equally good
// entries the first in the list wins, as in Docker.
//
// Thread-safety: plain functions and value types.
#ifndef SHOAL_AGENT_IMAGE_MANIFEST_H_
#define SHOAL_AGENT_IMAGE_MANIFEST_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shoal::agent::image {

namespace media_type {
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerSchema1[] = "application/vnd.docker.distribution.manifest.v1+json";
inline constexpr char kDockerSchema1Signed[] =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kDockerConfig[] = "application/vnd.docker.container.image.v1+json";
inline constexpr char kOciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kDockerLayerGzip[] = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr char kDockerForeignLayerGzip[] =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
inline constexpr char kOciLayer[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kOciLayerGzip[] = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kOciLayerZstd[] = "application/vnd.oci.image.layer.v1.tar+zstd";
}  // namespace media_type

bool IsIndexMediaType(absl::string_view media_type);     // manifest list or OCI index
bool IsManifestMediaType(absl::string_view media_type);  // Docker schema 2 or OCI manifest
bool IsSchema1MediaType(absl::string_view media_type);

// The Accept header value for manifest requests: the four supported types.
std::string ManifestAcceptHeader();

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // "amd64", "arm64", "arm", ...
  std::string variant;       // "v7", or empty

  // "linux/arm64", "linux/arm/v7".
  std::string String() const;
  friend bool operator==(const Platform& a, const Platform& b) {
    return a.os == b.os && a.architecture == b.architecture && a.variant == b.variant;
  }
};

// Go's architecture name for a uname(2) machine name: x86_64 → amd64, aarch64 → arm64,
// armv7l → arm (variant v7), i686 → 386. Unknown names are returned unchanged.
Platform PlatformFromMachine(absl::string_view os, absl::string_view machine);
// The host's platform: linux and uname(2)'s machine mapped as above.
Platform HostPlatform();
// Parses "os/arch[/variant]" ("linux/amd64", "linux/arm/v7"), normalised.
absl::StatusOr<Platform> ParsePlatform(absl::string_view s);
// Lowercased, with architecture aliases resolved (x86_64, aarch64, armhf, ...) and variants
// normalised as containerd does.
Platform NormalizePlatform(Platform p);

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  std::optional<Platform> platform;  // index entries only
  std::vector<std::string> urls;     // foreign layers
  std::map<std::string, std::string> annotations;
};

// An image manifest (Docker schema 2 or OCI).
struct ImageManifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
};

// A manifest list or OCI index.
struct ImageIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

// The media type of a manifest document: the response's Content-Type when it names a known
// type, else the document's own "mediaType", else guessed from its shape (schemaVersion 1 →
// schema 1; "manifests" → OCI index; "layers" → OCI manifest). Errors: INVALID_ARGUMENT when the
// body is not JSON or not a manifest at all.
absl::StatusOr<std::string> DetectManifestMediaType(absl::string_view content_type,
                                                    absl::string_view body);

// Parse a document of the given (detected) media type. Every descriptor's digest is validated.
// Errors: INVALID_ARGUMENT naming the missing or malformed field.
absl::StatusOr<ImageManifest> ParseImageManifest(absl::string_view body,
                                                 absl::string_view media_type);
absl::StatusOr<ImageIndex> ParseImageIndex(absl::string_view body, absl::string_view media_type);

// The entry of `index` to run on `want` (see the matching rules above). Entries without a
// platform match any platform, after every entry that names one. Errors: NOT_FOUND "no matching
// manifest for linux/arm64 in the manifest list entries (the list has: linux/amd64, ...)".
absl::StatusOr<Descriptor> SelectPlatform(const ImageIndex& index, const Platform& want);
// True when an entry with platform `have` may run on `want`.
bool PlatformMatches(const Platform& have, const Platform& want);

struct HealthConfig {
  std::vector<std::string> test;  // ["CMD", ...], ["CMD-SHELL", "..."], ["NONE"]
  int64_t interval_ns = 0;
  int64_t timeout_ns = 0;
  int64_t start_period_ns = 0;
  int retries = 0;
};

// What a container runtime needs from an image's config blob (Docker's and OCI's are the same
// shape): its platform, the process defaults and the layers' uncompressed digests (diff IDs,
// from which snapshot chain IDs are computed).
struct ImageConfig {
  Platform platform;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::string stop_signal;
  std::map<std::string, std::string> labels;
  std::vector<std::string> exposed_ports;  // "80/tcp"
  std::vector<std::string> volumes;
  std::optional<HealthConfig> healthcheck;
  std::vector<std::string> diff_ids;
};

// Errors: INVALID_ARGUMENT naming the malformed field.
absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view body);

}  // namespace shoal::agent::image

#endif  // SHOAL_AGENT_IMAGE_MANIFEST_H_
