// containerd_image_store: the ImageStore (image_store.h) over containerd 1.6, pulling with
// RegistryClient (containerd 1.6 pulls client-side: the agent is the puller).
//
// Lookup(reference): the image record (Images.Get of the normalised reference) → its target blob
// → the platform's manifest when the target is a manifest list / index → the config → the diff
// IDs → the chain IDs; the top chain ID must be a committed snapshot of the snapshotter, else the
// image is "present but not unpacked" (NOT_FOUND).
//
// Ensure(reference): the policy of image_store.h. A pull (see README.md):
//   1. Leases.Create (expires after `lease_expiry`): everything below is written through a client
//      carrying that lease, so a pull that dies half-way leaves only garbage;
//   2. RegistryClient::GetManifest(reference, platform);
//   3. the config and each layer missing from the content store are streamed from the registry
//      into a content ingest (resumed at the ingest's offset after a broken transfer; containerd
//      checks the digest at commit);
//   4. unpack: for each layer whose chain ID is not a committed snapshot yet, Prepare(parent =
//      the previous chain ID) → Diff.Apply (its digest must equal the config's diff ID) → Commit
//      as the chain ID;
//   5. the config, manifest and index blobs are committed with containerd's GC labels (index →
//      manifests, manifest → config and layers, config → top snapshot), then the image record is
//      created (or its target updated: a moved tag), and the lease deleted.
// Concurrent Ensure calls for the same reference share one pull, which runs on a thread of its
// own: a caller that is cancelled (EnsureOptions::cancelled) returns CANCELLED at once, and the
// pull itself is cancelled when every caller waiting on it has been. Progress callbacks run on
// the pull's thread; each reports the image's bytes so far: PullProgress{manifest digest, bytes
// transferred, bytes to transfer} (format it with FormatPullProgress(done, total)).
//
// Thread-safety: thread-safe. The destructor cancels pulls still running and waits for them.
#ifndef SHOAL_AGENT_IMAGE_CONTAINERD_IMAGE_STORE_H_
#define SHOAL_AGENT_IMAGE_CONTAINERD_IMAGE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/containerd/client.h"
#include "agent/image/image_store.h"
#include "agent/image/manifest.h"
#include "agent/image/reference.h"
#include "agent/image/registry_client.h"

namespace shoal::agent::image {

// containerd's garbage-collection labels (on content blobs).
inline constexpr char kGcRefContentPrefix[] = "containerd.io/gc.ref.content.";
inline constexpr char kGcRefSnapshotPrefix[] = "containerd.io/gc.ref.snapshot.";

// The snapshot chain IDs of layers with these diff IDs: chain[0] = diff[0]; chain[n] =
// "sha256:" + hex sha256(chain[n-1] + " " + diff[n]).
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

// The name of an image's containerd record for `ref` (parsed by Reference::ParseNormalizedNamed):
// the canonical reference, ":latest" added when it has neither tag nor digest, the tag dropped
// when it has a digest (Docker's ParseDockerRef): "docker.io/library/busybox:latest",
// "127.0.0.1:5000/app@sha256:...".
std::string ImageRecordName(const Reference& ref);

struct ContainerdImageStoreOptions {
  // containerd, with the namespace already chosen. Required.
  std::shared_ptr<containerd::ContainerdClient> client;
  // Where layers are unpacked.
  std::string snapshotter = "overlayfs";
  // The registry client's options (insecure registries, credentials, timeouts).
  RegistryOptions registry;
  // The platform whose manifest is picked from a manifest list / index.
  Platform platform = HostPlatform();
  // A pull's lease expires after this long even if the agent dies before deleting it.
  absl::Duration lease_expiry = absl::Hours(1);
  // How often a waiting caller polls its EnsureOptions::cancelled.
  absl::Duration cancel_poll = absl::Milliseconds(100);
};

class ContainerdImageStore : public ImageStore {
 public:
  // Counters, for tests and metrics.
  struct Stats {
    int64_t pulls = 0;            // pulls started (shared ones count once)
    int64_t joined = 0;           // Ensure calls that joined a pull already under way
    int64_t blobs_fetched = 0;    // config and layer blobs transferred from a registry
    int64_t bytes_fetched = 0;    // their bytes
    int64_t layers_unpacked = 0;  // layers applied into a new snapshot
  };

  // Errors: INVALID_ARGUMENT when `options.client` is null or the snapshotter is empty.
  static absl::StatusOr<std::unique_ptr<ContainerdImageStore>> Create(
      ContainerdImageStoreOptions options);
  ~ContainerdImageStore() override;
  ContainerdImageStore(const ContainerdImageStore&) = delete;
  ContainerdImageStore& operator=(const ContainerdImageStore&) = delete;

  absl::StatusOr<LocalImage> Ensure(const std::string& reference,
                                    const EnsureOptions& options) override;
  absl::StatusOr<LocalImage> Lookup(const std::string& reference) override;

  Stats stats() const;
  const std::string& snapshotter() const { return options_.snapshotter; }

 private:
  struct Pull;

  explicit ContainerdImageStore(ContainerdImageStoreOptions options);

  // The LocalImage for record `name` whose target is `target_digest` (of media type
  // `target_media_type`, "" when unknown). NOT_FOUND when a blob or the top snapshot is missing.
  // `detected_media_type` and `manifest_out` (may be null) receive the target's media type and
  // the platform's manifest.
  absl::StatusOr<LocalImage> Resolve(const std::string& name, const std::string& target_digest,
                                     const std::string& target_media_type,
                                     std::string* detected_media_type = nullptr,
                                     ImageManifest* manifest_out = nullptr);
  // A digest reference whose content is present but has no record (e.g. pulled by tag): creates
  // the record when the image is unpacked. NOT_FOUND otherwise.
  absl::StatusOr<LocalImage> AdoptByDigest(const Reference& ref, const std::string& name);

  // Starts (or joins) the pull of `ref` and waits for it as `options` says.
  absl::StatusOr<LocalImage> SharedPull(const Reference& ref, const std::string& name,
                                        const EnsureOptions& options);
  // Runs on the pull's thread.
  void RunPull(const std::shared_ptr<Pull>& pull);
  absl::StatusOr<LocalImage> DoPull(Pull& pull);
  // Streams one blob into the content store through `leased` (no-op when present).
  absl::Status FetchToContent(Pull& pull, containerd::ContainerdClient& leased,
                              const Descriptor& blob);
  // Applies the layers whose snapshots are missing.
  absl::Status Unpack(Pull& pull, containerd::ContainerdClient& leased,
                      const std::vector<Descriptor>& layers,
                      const std::vector<std::string>& diff_ids);
  // "pull REF: <cause> (<what to do>)", same code.
  static absl::Status PullError(const Reference& ref, const absl::Status& cause);

  const ContainerdImageStoreOptions options_;
  RegistryClient registry_;

  mutable absl::Mutex mu_;
  // In-flight pulls by record name.
  std::map<std::string, std::shared_ptr<Pull>> pulls_ ABSL_GUARDED_BY(mu_);
  // Every pull whose thread has not been joined yet.
  std::vector<std::shared_ptr<Pull>> threads_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::agent::image

#endif  // SHOAL_AGENT_IMAGE_CONTAINERD_IMAGE_STORE_H_
