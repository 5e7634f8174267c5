// image_store: the images a node can run containers from.
//
// The containerd executor asks an ImageStore for a task's image before it creates the
// container. Ensure makes the image present in containerd — its blobs in the content store, its
// layers unpacked into committed snapshots named by their chain IDs, an image record under its
// name — and says what a container needs from it: the config (entrypoint, env, user,
// healthcheck, ...) and the chain ID of the top layer, the parent of the container's snapshot.
//
// Pull policy follows Docker Swarm's agent:
//   - a reference pinned by digest whose image is present is not pulled again;
//   - otherwise the image is pulled (a tag may have moved);
//   - a pull that fails while an image of that name is present uses the present one (Docker
//     logs "pull failed, using the local image"); `LocalImage::pull_error` says why.
// A pull that fails with nothing present is an error naming the reference and the cause
// ("pull docker.io/library/nosuch:latest: repository not found (is the name right? does the
// registry need credentials?)"); the executor rejects the task with it.
//
// Thread-safety: implementations are thread-safe. Concurrent Ensure calls for the same image
// share one pull.
#ifndef SHOAL_AGENT_IMAGE_IMAGE_STORE_H_
#define SHOAL_AGENT_IMAGE_IMAGE_STORE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/image/registry_client.h"

namespace shoal::agent::image {

// An image present in containerd, as a container needs it.
struct LocalImage {
  // containerd's image record name: the normalised reference ("docker.io/library/busybox:latest",
  // or "...@sha256:..." for a digest reference).
  std::string name;
  // The digest the record targets (a manifest list / index, or the image manifest).
  std::string target_digest;
  // The image manifest for this platform, and its config blob.
  std::string manifest_digest;
  std::string config_digest;
  // The config blob's bytes (JSON), for agent/exec/containerd's ParseImageConfig.
  std::string config_json;
  // The chain ID of the top layer ("sha256:..."): the committed snapshot a container's snapshot
  // is prepared on. Equals the single layer's diff ID for a one-layer image.
  std::string chain_id;
  // The snapshotter holding the unpacked layers ("overlayfs").
  std::string snapshotter;
  // Non-empty when a pull failed and the present image is used instead: why it failed.
  std::string pull_error;
};

struct EnsureOptions {
  // Pull progress, for the task's status message ("pulling 3.1 MB / 12 MB").
  ProgressCallback progress;
  // Polled during a pull; true aborts it (CANCELLED), e.g. when the task is shut down.
  std::function<bool()> cancelled;
};

class ImageStore {
 public:
  virtual ~ImageStore() = default;

  // Makes the image `reference` (as a service spec writes it: "busybox", "127.0.0.1:5000/app:1",
  // "busybox@sha256:...") present and returns it. Errors: INVALID_ARGUMENT for a malformed
  // reference; the pull's error (NOT_FOUND, UNAUTHENTICATED, UNAVAILABLE, ...) when it failed
  // and no image of that name is present; CANCELLED.
  virtual absl::StatusOr<LocalImage> Ensure(const std::string& reference,
                                            const EnsureOptions& options) = 0;

  // The image `reference` names if it is present (unpacked), without pulling. NOT_FOUND when
  // it is not.
  virtual absl::StatusOr<LocalImage> Lookup(const std::string& reference) = 0;
};

}  // namespace shoal::agent::image

#endif  // SHOAL_AGENT_IMAGE_IMAGE_STORE_H_
