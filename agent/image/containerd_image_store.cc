#include "agent/image/containerd_image_store.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/image/digest.h"

namespace shoal::agent::image {

namespace ctrd = ::shoal::agent::containerd;

namespace {

// How many times a blob transfer that broke is resumed before the pull fails.
constexpr int kBlobAttempts = 4;

std::string UniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(getpid(), "-", absl::ToUnixNanos(absl::Now()), "-", counter.fetch_add(1));
}

// The content ingest a blob is written through: one per digest, so that concurrent writers of
// one blob meet on containerd's ingest lock instead of writing it twice.
std::string IngestRef(const std::string& digest) { return absl::StrCat("shoal-pull-", digest); }

bool IsLockedIngest(const absl::Status& s) {
  return absl::IsUnavailable(s) && absl::StrContains(s.message(), "locked");
}

absl::Status Annotate(const absl::Status& s, absl::string_view prefix) {
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

ctrd::types_pb::Descriptor ToProto(const Descriptor& d) {
  ctrd::types_pb::Descriptor out;
  out.set_media_type(d.media_type);
  out.set_digest(d.digest);
  out.set_size(d.size);
  return out;
}

// The labels that make an image record itself a GC root of everything the image needs: its
// platform's manifest, config and layers, and its top snapshot (which holds its parents). The
// blobs carry the same references (index → manifests → config, layers; config → snapshot), but
// a blob that was already in the content store keeps whatever labels it had (Content.Write
// answers ALREADY_EXISTS without relabelling): e.g. after `ctr images import --no-unpack`, the
// config has no snapshot reference and the GC would take the layers we unpacked.
ctrd::Labels RecordGcLabels(const std::string& target_digest, const std::string& manifest_digest,
                            const ImageManifest& manifest, const std::string& snapshotter,
                            const std::string& top_chain_id) {
  ctrd::Labels labels;
  if (manifest_digest != target_digest) {
    labels[absl::StrCat(kGcRefContentPrefix, "manifest")] = manifest_digest;
  }
  labels[absl::StrCat(kGcRefContentPrefix, "config")] = manifest.config.digest;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    labels[absl::StrCat(kGcRefContentPrefix, "l.", i)] = manifest.layers[i].digest;
  }
  if (!top_chain_id.empty()) {
    labels[absl::StrCat(kGcRefSnapshotPrefix, snapshotter)] = top_chain_id;
  }
  return labels;
}

bool IsGcLabel(const std::string& key) { return absl::StartsWith(key, "containerd.io/gc."); }

// Creates image record `record` (its labels: our GC references), or, when a record of that name
// exists (a moved tag, or one created by another tool), points it at `record`'s target and
// replaces its GC labels with ours, keeping its other labels.
absl::Status PutImageRecord(ctrd::ContainerdClient& client, ctrd::images_pb::Image record) {
  absl::StatusOr<ctrd::images_pb::Image> created = client.CreateImage(record);
  if (created.ok() || !absl::IsAlreadyExists(created.status())) return created.status();
  absl::StatusOr<ctrd::images_pb::Image> existing = client.GetImage(record.name());
  if (!existing.ok()) return existing.status();
  for (const auto& [key, value] : existing->labels()) {
    if (!IsGcLabel(key)) (*record.mutable_labels())[key] = value;
  }
  return client.UpdateImage(record, {"target", "labels"}).status();
}

}  // namespace

std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  out.reserve(diff_ids.size());
  for (const std::string& diff : diff_ids) {
    out.push_back(out.empty() ? diff : Sha256Digest(absl::StrCat(out.back(), " ", diff)));
  }
  return out;
}

std::string ImageRecordName(const Reference& ref) {
  if (!ref.digest().empty()) return absl::StrCat(ref.Name(), "@", ref.digest());
  return absl::StrCat(ref.Name(), ":", ref.tag().empty() ? kDefaultTag : ref.tag());
}

// --- a pull shared by the Ensure calls waiting on it ---------------------------------------------

struct ContainerdImageStore::Pull {
  Reference ref;
  std::string name;
  std::thread thread;
  std::atomic<bool> thread_done{false};

  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::StatusOr<LocalImage> result ABSL_GUARDED_BY(mu) = absl::UnknownError("pull not run");

  // Held while progress is delivered and by a caller leaving, so that a caller that has left gets
  // no callback afterwards. Taken before waiters_mu.
  absl::Mutex delivery_mu;
  // The callers waiting, by id.
  absl::Mutex waiters_mu;
  std::map<int, const EnsureOptions*> waiters ABSL_GUARDED_BY(waiters_mu);
  int next_waiter ABSL_GUARDED_BY(waiters_mu) = 0;
  // Once every waiter has left (cancelled), nobody joins again and the pull is cancelled.
  bool abandoned ABSL_GUARDED_BY(waiters_mu) = false;
  bool stop ABSL_GUARDED_BY(waiters_mu) = false;  // the store is being destroyed
  // Aggregated progress: bytes done per blob, and the total to transfer.
  std::map<std::string, int64_t> progress_done ABSL_GUARDED_BY(waiters_mu);
  int64_t progress_total ABSL_GUARDED_BY(waiters_mu) = 0;
  std::string progress_digest ABSL_GUARDED_BY(waiters_mu);

  bool Cancelled() {
    absl::MutexLock lock(&waiters_mu);
    return stop || abandoned;
  }

  // Adds a waiter unless the pull has been abandoned; returns its id or -1.
  int Join(const EnsureOptions* options) {
    absl::MutexLock lock(&waiters_mu);
    if (abandoned || stop) return -1;
    int id = next_waiter++;
    waiters[id] = options;
    return id;
  }

  void Leave(int id) {
    absl::MutexLock delivery(&delivery_mu);
    absl::MutexLock lock(&waiters_mu);
    waiters.erase(id);
    if (waiters.empty()) abandoned = true;
  }

  void SetTotal(const std::string& digest, int64_t total) {
    absl::MutexLock lock(&waiters_mu);
    progress_digest = digest;
    progress_total = total;
  }

  // Records `p` (one blob's progress) and tells every waiter the image's.
  void Progress(const PullProgress& p) {
    absl::MutexLock delivery(&delivery_mu);
    PullProgress total;
    std::vector<const EnsureOptions*> to_tell;
    {
      absl::MutexLock lock(&waiters_mu);
      progress_done[p.digest] = p.done;
      int64_t sum = 0;
      for (const auto& [digest, done] : progress_done) sum += done;
      total = PullProgress{progress_digest, sum, std::max(progress_total, sum)};
      for (const auto& [id, options] : waiters) to_tell.push_back(options);
    }
    // Not under waiters_mu: a slow callback must not hold up callers joining the pull.
    for (const EnsureOptions* options : to_tell) {
      if (options->progress) options->progress(total);
    }
  }
};

// --- construction ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ContainerdImageStore>> ContainerdImageStore::Create(
    ContainerdImageStoreOptions options) {
  if (options.client == nullptr) {
    return absl::InvalidArgumentError(
        "ContainerdImageStore needs a containerd client (ContainerdImageStoreOptions::client)");
  }
  if (options.snapshotter.empty()) {
    return absl::InvalidArgumentError(
        "ContainerdImageStore needs a snapshotter (\"overlayfs\", or \"native\" where overlayfs "
        "is unusable)");
  }
  if (options.platform.os.empty() || options.platform.architecture.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ContainerdImageStore: platform \"", options.platform.String(),
                     "\" needs an OS and an architecture (e.g. linux/amd64)"));
  }
  options.platform = NormalizePlatform(options.platform);
  return std::unique_ptr<ContainerdImageStore>(new ContainerdImageStore(std::move(options)));
}

ContainerdImageStore::ContainerdImageStore(ContainerdImageStoreOptions options)
    : options_(std::move(options)), registry_(options_.registry) {}

ContainerdImageStore::~ContainerdImageStore() {
  std::vector<std::shared_ptr<Pull>> threads;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    threads.swap(threads_);
  }
  for (const auto& pull : threads) {
    absl::MutexLock lock(&pull->waiters_mu);
    pull->stop = true;
  }
  for (const auto& pull : threads) {
    if (pull->thread.joinable()) pull->thread.join();
  }
}

ContainerdImageStore::Stats ContainerdImageStore::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

// --- Lookup ---------------------------------------------------------------------------------

absl::StatusOr<LocalImage> ContainerdImageStore::Lookup(const std::string& reference) {
  absl::StatusOr<Reference> ref = Reference::ParseNormalizedNamed(reference);
  if (!ref.ok()) return ref.status();
  const std::string name = ImageRecordName(*ref);
  absl::StatusOr<ctrd::images_pb::Image> record = options_.client->GetImage(name);
  if (!record.ok()) {
    if (absl::IsNotFound(record.status())) {
      return absl::NotFoundError(absl::StrCat("image ", name, " is not present"));
    }
    return record.status();
  }
  return Resolve(name, record->target().digest(), record->target().media_type());
}

absl::StatusOr<LocalImage> ContainerdImageStore::Resolve(const std::string& name,
                                                         const std::string& target_digest,
                                                         const std::string& target_media_type,
                                                         std::string* detected_media_type,
                                                         ImageManifest* manifest_out) {
  ctrd::ContainerdClient& client = *options_.client;
  auto read = [&](const std::string& digest,
                  absl::string_view what) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> body = client.ReadContentAll(digest);
    if (absl::IsNotFound(body.status())) {
      return absl::NotFoundError(absl::StrCat("image ", name, " is present but its ", what, " ",
                                              digest,
                                              " is missing from the content store; pull "
                                              "it again"));
    }
    return body;
  };
  LocalImage out;
  out.name = name;
  out.target_digest = target_digest;
  out.snapshotter = options_.snapshotter;

  absl::StatusOr<std::string> body = read(target_digest, "manifest");
  if (!body.ok()) return body.status();
  absl::StatusOr<std::string> media = DetectManifestMediaType(target_media_type, *body);
  if (!media.ok()) return Annotate(media.status(), absl::StrCat("image ", name, ": "));
  if (detected_media_type != nullptr) *detected_media_type = *media;
  out.manifest_digest = target_digest;
  if (IsIndexMediaType(*media)) {
    absl::StatusOr<ImageIndex> index = ParseImageIndex(*body, *media);
    if (!index.ok()) return Annotate(index.status(), absl::StrCat("image ", name, ": "));
    absl::StatusOr<Descriptor> chosen = SelectPlatform(*index, options_.platform);
    if (!chosen.ok()) return Annotate(chosen.status(), absl::StrCat("image ", name, ": "));
    out.manifest_digest = chosen->digest;
    body = read(chosen->digest, "manifest");
    if (!body.ok()) return body.status();
    media = DetectManifestMediaType(chosen->media_type, *body);
    if (!media.ok()) return Annotate(media.status(), absl::StrCat("image ", name, ": "));
  }
  if (!IsManifestMediaType(*media)) {
    return absl::FailedPreconditionError(
        absl::StrCat("image ", name, ": ", out.manifest_digest, " is a ", *media,
                     ", not an image manifest; pull the image again"));
  }
  absl::StatusOr<ImageManifest> manifest = ParseImageManifest(*body, *media);
  if (!manifest.ok()) return Annotate(manifest.status(), absl::StrCat("image ", name, ": "));
  out.config_digest = manifest->config.digest;
  absl::StatusOr<std::string> config = read(out.config_digest, "config");
  if (!config.ok()) return config.status();
  absl::StatusOr<ImageConfig> parsed = ParseImageConfig(*config);
  if (!parsed.ok()) return Annotate(parsed.status(), absl::StrCat("image ", name, " config: "));
  if (parsed->diff_ids.size() != manifest->layers.size()) {
    return absl::DataLossError(absl::StrCat("image ", name, ": its config lists ",
                                            parsed->diff_ids.size(), " diff IDs for ",
                                            manifest->layers.size(),
                                            " layers; the image is "
                                            "corrupt, remove it and pull it again"));
  }
  out.config_json = *std::move(config);
  std::vector<std::string> chain = ChainIds(parsed->diff_ids);
  if (!chain.empty()) {
    out.chain_id = chain.back();
    absl::StatusOr<ctrd::snapshots_pb::Info> snapshot =
        client.StatSnapshot(options_.snapshotter, out.chain_id);
    if (absl::IsNotFound(snapshot.status())) {
      return absl::NotFoundError(absl::StrCat("image ", name, " is present but not unpacked (no ",
                                              options_.snapshotter, " snapshot ", out.chain_id,
                                              "); pull it again"));
    }
    if (!snapshot.ok()) return snapshot.status();
  }
  if (manifest_out != nullptr) *manifest_out = *std::move(manifest);
  return out;
}

absl::StatusOr<LocalImage> ContainerdImageStore::AdoptByDigest(const Reference& ref,
                                                               const std::string& name) {
  std::string media;
  ImageManifest manifest;
  absl::StatusOr<LocalImage> image = Resolve(name, ref.digest(), "", &media, &manifest);
  if (!image.ok()) return image.status();
  absl::StatusOr<ctrd::content_pb::Info> info = options_.client->ContentInfo(ref.digest());
  if (!info.ok()) return info.status();
  ctrd::images_pb::Image record;
  record.set_name(name);
  record.mutable_target()->set_media_type(media);
  record.mutable_target()->set_digest(ref.digest());
  record.mutable_target()->set_size(info->size());
  for (auto& [key, value] : RecordGcLabels(ref.digest(), image->manifest_digest, manifest,
                                           options_.snapshotter, image->chain_id)) {
    (*record.mutable_labels())[key] = std::move(value);
  }
  // Nothing holds this content but the records of other names, which may go meanwhile: a
  // collection between Resolve and CreateImage could take it. Resolve again once the record
  // holds it.
  absl::Status s = PutImageRecord(*options_.client, std::move(record));
  if (!s.ok()) return s;
  return Resolve(name, ref.digest(), media);
}

// --- Ensure ---------------------------------------------------------------------------------

absl::StatusOr<LocalImage> ContainerdImageStore::Ensure(const std::string& reference,
                                                        const EnsureOptions& options) {
  absl::StatusOr<Reference> ref = Reference::ParseNormalizedNamed(reference);
  if (!ref.ok()) return ref.status();
  if (ref->tag().empty() && ref->digest().empty()) *ref = ref->WithTag(kDefaultTag);
  const std::string name = ImageRecordName(*ref);

  if (!ref->digest().empty()) {
    // Pinned by digest: what is present cannot have changed.
    absl::StatusOr<LocalImage> present = Lookup(name);
    if (present.ok()) return present;
    present = AdoptByDigest(*ref, name);
    if (present.ok()) return present;
  }

  absl::StatusOr<LocalImage> pulled = SharedPull(*ref, name, options);
  if (pulled.ok() || absl::IsCancelled(pulled.status())) return pulled;
  absl::StatusOr<LocalImage> present = Lookup(name);
  if (!present.ok()) return pulled.status();
  present->pull_error = std::string(pulled.status().message());
  return present;
}

absl::StatusOr<LocalImage> ContainerdImageStore::SharedPull(const Reference& ref,
                                                            const std::string& name,
                                                            const EnsureOptions& options) {
  auto cancelled = [&ref] {
    return absl::CancelledError(absl::StrCat("pull ", ref.String(), ": cancelled"));
  };
  if (options.cancelled && options.cancelled()) return cancelled();
  std::shared_ptr<Pull> pull;
  int waiter = -1;
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) {
      return absl::CancelledError(absl::StrCat("pull ", ref.String(),
                                               ": the image store is "
                                               "shutting down"));
    }
    // Reap the threads of finished pulls.
    for (auto it = threads_.begin(); it != threads_.end();) {
      if ((*it)->thread_done.load()) {
        (*it)->thread.join();
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    auto it = pulls_.find(name);
    if (it != pulls_.end()) {
      waiter = it->second->Join(&options);
      if (waiter >= 0) {
        pull = it->second;
        ++stats_.joined;
      }
    }
    if (pull == nullptr) {
      pull = std::make_shared<Pull>();
      pull->ref = ref;
      pull->name = name;
      waiter = pull->Join(&options);
      pulls_[name] = pull;
      threads_.push_back(pull);
      ++stats_.pulls;
      pull->thread = std::thread([this, pull] { RunPull(pull); });
    }
  }

  while (true) {
    if (options.cancelled && options.cancelled()) {
      pull->Leave(waiter);
      return cancelled();
    }
    absl::MutexLock lock(&pull->mu);
    if (pull->mu.AwaitWithTimeout(absl::Condition(&pull->done), options_.cancel_poll)) break;
  }
  pull->Leave(waiter);
  absl::MutexLock lock(&pull->mu);
  return pull->result;
}

void ContainerdImageStore::RunPull(const std::shared_ptr<Pull>& pull) {
  absl::StatusOr<LocalImage> result = DoPull(*pull);
  if (!result.ok()) result = PullError(pull->ref, result.status());
  {
    absl::MutexLock lock(&mu_);
    auto it = pulls_.find(pull->name);
    if (it != pulls_.end() && it->second == pull) pulls_.erase(it);
  }
  {
    absl::MutexLock lock(&pull->mu);
    pull->result = std::move(result);
    pull->done = true;
  }
  pull->thread_done.store(true);
}

absl::Status ContainerdImageStore::PullError(const Reference& ref, const absl::Status& cause) {
  const std::string prefix = absl::StrCat("pull ", ref.String(), ": ");
  std::string message(cause.message());
  if (absl::StartsWith(message, prefix)) return cause;
  const bool from_containerd = absl::StartsWith(message, "containerd");
  switch (cause.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      if (from_containerd) break;
      return absl::Status(
          cause.code(),
          absl::StrCat(prefix, "registry ", ref.domain(), " is not reachable (", message,
                       "); check that it runs and that this node can reach it"));
    case absl::StatusCode::kNotFound:
      if (from_containerd || absl::StrContains(message, "no matching manifest")) break;
      return absl::NotFoundError(absl::StrCat(
          prefix, message, " (is the name right? does the registry need credentials?)"));
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return absl::Status(
          cause.code(), absl::StrCat(prefix, message, " (configure credentials for ", ref.domain(),
                                     " if it needs them)"));
    default:
      break;
  }
  return absl::Status(cause.code(), absl::StrCat(prefix, message));
}

// --- the pull itself ------------------------------------------------------------------------

absl::StatusOr<LocalImage> ContainerdImageStore::DoPull(Pull& pull) {
  const Reference& ref = pull.ref;
  TransferOptions transfer;
  transfer.cancelled = [&pull] { return pull.Cancelled(); };
  absl::StatusOr<ResolvedManifest> resolved =
      registry_.GetManifest(ref, options_.platform, transfer);
  if (!resolved.ok()) return resolved.status();
  const ImageManifest& manifest = resolved->image;
  if (pull.Cancelled()) return absl::CancelledError("cancelled");

  ctrd::ContainerdClient& client = *options_.client;
  absl::StatusOr<std::string> lease =
      client.CreateLease("", {{"shoal.image.pull", pull.name}}, options_.lease_expiry);
  if (!lease.ok()) return lease.status();
  std::unique_ptr<ctrd::ContainerdClient> leased = client.WithLease(*lease);
  absl::Cleanup delete_lease = [&client, &lease] { client.DeleteLease(*lease).IgnoreError(); };

  // What must come from the registry, for the progress total.
  int64_t total = 0;
  std::vector<bool> layer_missing(manifest.layers.size(), false);
  bool config_missing = false;
  {
    absl::StatusOr<ctrd::content_pb::Info> info = leased->ContentInfo(manifest.config.digest);
    if (!info.ok() && !absl::IsNotFound(info.status())) return info.status();
    config_missing = !info.ok();
    if (config_missing) total += manifest.config.size;
    for (size_t i = 0; i < manifest.layers.size(); ++i) {
      info = leased->ContentInfo(manifest.layers[i].digest);
      if (!info.ok() && !absl::IsNotFound(info.status())) return info.status();
      layer_missing[i] = !info.ok();
      if (layer_missing[i]) total += manifest.layers[i].size;
    }
  }
  pull.SetTotal(resolved->manifest.digest, total);

  // The config: its diff IDs name the snapshots.
  std::string config_json;
  if (config_missing) {
    TransferOptions config_transfer = transfer;
    config_transfer.progress = [&pull](const PullProgress& p) { pull.Progress(p); };
    absl::StatusOr<std::string> fetched =
        registry_.FetchBlobToString(ref, manifest.config, int64_t{16} << 20, config_transfer);
    if (!fetched.ok()) return fetched.status();
    config_json = *std::move(fetched);
    absl::MutexLock lock(&mu_);
    ++stats_.blobs_fetched;
    stats_.bytes_fetched += static_cast<int64_t>(config_json.size());
  } else {
    absl::StatusOr<std::string> read = leased->ReadContentAll(manifest.config.digest);
    if (!read.ok()) return read.status();
    config_json = *std::move(read);
  }
  absl::StatusOr<ImageConfig> config = ParseImageConfig(config_json);
  if (!config.ok()) {
    return Annotate(config.status(), absl::StrCat("config ", manifest.config.digest, ": "));
  }
  if (config->diff_ids.size() != manifest.layers.size()) {
    return absl::DataLossError(absl::StrCat(
        "config ", manifest.config.digest, " lists ", config->diff_ids.size(), " diff IDs for ",
        manifest.layers.size(), " layers in the manifest: the image is corrupt"));
  }
  const std::vector<std::string> chain = ChainIds(config->diff_ids);

  // Layers, then their snapshots.
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    if (!layer_missing[i]) continue;
    absl::Status s = FetchToContent(pull, *leased, manifest.layers[i]);
    if (!s.ok()) return s;
  }
  absl::Status s = Unpack(pull, *leased, manifest.layers, config->diff_ids);
  if (!s.ok()) return s;
  if (pull.Cancelled()) return absl::CancelledError("cancelled");

  // The documents, children first, with the labels that make containerd's GC keep the children.
  ctrd::Labels config_labels;
  if (!chain.empty()) {
    config_labels[absl::StrCat(kGcRefSnapshotPrefix, options_.snapshotter)] = chain.back();
  }
  s = leased->WriteBlob(IngestRef(manifest.config.digest), config_json, manifest.config.digest,
                        config_labels);
  if (!s.ok()) return s;
  ctrd::Labels manifest_labels;
  manifest_labels[absl::StrCat(kGcRefContentPrefix, "config")] = manifest.config.digest;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    manifest_labels[absl::StrCat(kGcRefContentPrefix, "l.", i)] = manifest.layers[i].digest;
  }
  s = leased->WriteBlob(IngestRef(resolved->manifest.digest), resolved->manifest_json,
                        resolved->manifest.digest, manifest_labels);
  if (!s.ok()) return s;
  if (resolved->target.digest != resolved->manifest.digest) {
    absl::StatusOr<ImageIndex> index =
        ParseImageIndex(resolved->target_json, resolved->target.media_type);
    if (!index.ok()) return index.status();
    ctrd::Labels index_labels;
    for (size_t i = 0; i < index->manifests.size(); ++i) {
      index_labels[absl::StrCat(kGcRefContentPrefix, "m.", i)] = index->manifests[i].digest;
    }
    s = leased->WriteBlob(IngestRef(resolved->target.digest), resolved->target_json,
                          resolved->target.digest, index_labels);
    if (!s.ok()) return s;
  }

  // The record: created, or moved to what the registry serves now.
  ctrd::images_pb::Image record;
  record.set_name(pull.name);
  record.mutable_target()->set_media_type(resolved->target.media_type);
  record.mutable_target()->set_digest(resolved->target.digest);
  record.mutable_target()->set_size(resolved->target.size);
  for (auto& [key, value] :
       RecordGcLabels(resolved->target.digest, resolved->manifest.digest, manifest,
                      options_.snapshotter, chain.empty() ? "" : chain.back())) {
    (*record.mutable_labels())[key] = std::move(value);
  }
  s = PutImageRecord(*leased, std::move(record));
  if (!s.ok()) return s;

  LocalImage out;
  out.name = pull.name;
  out.target_digest = resolved->target.digest;
  out.manifest_digest = resolved->manifest.digest;
  out.config_digest = manifest.config.digest;
  out.config_json = std::move(config_json);
  out.chain_id = chain.empty() ? "" : chain.back();
  out.snapshotter = options_.snapshotter;
  return out;
}

absl::Status ContainerdImageStore::FetchToContent(Pull& pull, ctrd::ContainerdClient& leased,
                                                  const Descriptor& blob) {
  const std::string ref = IngestRef(blob.digest);
  absl::Status last;
  bool restarted = false;
  for (int attempt = 0; attempt < kBlobAttempts;) {
    if (pull.Cancelled()) return absl::CancelledError("cancelled");
    absl::StatusOr<std::unique_ptr<ctrd::ContentWriter>> writer =
        leased.OpenWriter(ref, blob.size, blob.digest);
    if (absl::IsAlreadyExists(writer.status())) {
      pull.Progress(PullProgress{blob.digest, blob.size, blob.size});
      return absl::OkStatus();
    }
    if (IsLockedIngest(writer.status())) {
      // Another pull writes this blob: wait for it to commit (or to give up the ingest).
      absl::SleepFor(absl::Milliseconds(50));
      continue;
    }
    if (!writer.ok()) return writer.status();
    const int64_t offset = (*writer)->offset();
    if (offset > blob.size) {
      (*writer)->Close().IgnoreError();
      leased.AbortIngest(ref).IgnoreError();
      ++attempt;
      continue;
    }
    TransferOptions transfer;
    transfer.offset = offset;
    transfer.cancelled = [&pull] { return pull.Cancelled(); };
    transfer.progress = [&pull](const PullProgress& p) { pull.Progress(p); };
    ctrd::ContentWriter* w = writer->get();
    absl::Status s = registry_.FetchBlob(
        pull.ref, blob, [w](absl::string_view chunk) { return w->Write(chunk); }, transfer);
    if (!s.ok()) {
      (*writer)->Close().IgnoreError();  // the ingest stays: the next attempt resumes it
      last = s;
      ++attempt;
      if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) continue;
      return s;
    }
    s = (*writer)->Commit(blob.size, blob.digest);
    if (s.ok() || absl::IsAlreadyExists(s)) {
      absl::MutexLock lock(&mu_);
      ++stats_.blobs_fetched;
      stats_.bytes_fetched += blob.size - offset;
      return absl::OkStatus();
    }
    if (absl::IsFailedPrecondition(s) && offset > 0 && !restarted) {
      // Resumed bytes that do not add up: start the blob over.
      leased.AbortIngest(ref).IgnoreError();
      restarted = true;
      continue;
    }
    if (absl::IsFailedPrecondition(s)) {
      return absl::DataLossError(absl::StrCat("blob ", blob.digest, " from ", pull.ref.domain(),
                                              " does not match its digest: ", s.message()));
    }
    return s;
  }
  return last;
}

absl::Status ContainerdImageStore::Unpack(Pull& pull, ctrd::ContainerdClient& leased,
                                          const std::vector<Descriptor>& layers,
                                          const std::vector<std::string>& diff_ids) {
  const std::string& snapshotter = options_.snapshotter;
  const std::vector<std::string> chain = ChainIds(diff_ids);
  for (size_t i = 0; i < layers.size(); ++i) {
    if (pull.Cancelled()) return absl::CancelledError("cancelled");
    absl::StatusOr<ctrd::snapshots_pb::Info> present = leased.StatSnapshot(snapshotter, chain[i]);
    if (present.ok()) continue;
    if (!absl::IsNotFound(present.status())) return present.status();

    const std::string key = absl::StrCat("shoal-unpack-", UniqueSuffix(), "-", chain[i]);
    const std::string parent = i == 0 ? "" : chain[i - 1];
    absl::StatusOr<ctrd::Mounts> mounts = leased.PrepareSnapshot(snapshotter, key, parent);
    if (!mounts.ok()) return mounts.status();
    absl::Cleanup remove_key = [&] { leased.RemoveSnapshot(snapshotter, key).IgnoreError(); };
    absl::StatusOr<ctrd::types_pb::Descriptor> applied =
        leased.ApplyDiff(ToProto(layers[i]), *mounts);
    if (!applied.ok()) return applied.status();
    if (applied->digest() != diff_ids[i]) {
      return absl::DataLossError(absl::StrCat(
          "layer ", layers[i].digest, " unpacks to ", applied->digest(),
          " but the image config says its diff ID is ", diff_ids[i], ": the image is corrupt"));
    }
    absl::Status s = leased.CommitSnapshot(snapshotter, chain[i], key);
    if (s.ok()) {
      std::move(remove_key).Cancel();
      absl::MutexLock lock(&mu_);
      ++stats_.layers_unpacked;
      continue;
    }
    // ALREADY_EXISTS: a concurrent unpack committed the same layer first; its snapshot is as good.
    if (!absl::IsAlreadyExists(s)) return s;
  }
  return absl::OkStatus();
}

}  // namespace shoal::agent::image
