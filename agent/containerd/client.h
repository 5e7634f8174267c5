// ContainerdClient: typed C++ access to containerd 1.6's gRPC API (the services the agent uses).
//
// One client = one gRPC channel over containerd's unix socket (no TLS) plus a containerd
// namespace: every call carries the metadata `containerd-namespace: <ns>` (and
// `containerd-lease: <id>` for a client made by WithLease). Each wrapper is a thin, blocking
// call that returns absl::Status / StatusOr with containerd's gRPC code kept as is (NOT_FOUND,
// ALREADY_EXISTS, FAILED_PRECONDITION, UNAVAILABLE, ...) so that callers can be idempotent:
// e.g. `if (s.code() == absl::StatusCode::kAlreadyExists)` after CreateContainer, `kNotFound`
// after DeleteTask. Messages read "containerd Containers.Create(web.1): <containerd's message>".
// Requests and replies are containerd's own protos (agent/containerd/api, namespaces
// ::containerd::services::*::v1 and ::containerd::types), aliased below.
//
// What the layers above do with it (see README.md):
//   image pull   Leases.Create → Content.Write (ContentWriter) → Snapshots.Prepare → Diff.Apply →
//                Snapshots.Commit → Images.Create → Leases.Delete, all through WithLease(lease) so
//                that half-written content and snapshots are garbage-collected if the pull dies.
//   a task       Snapshots.Prepare(key, parent = image's chain ID) → Containers.Create(spec as
//                Any, snapshot key) → Tasks.Create(rootfs = the snapshot's mounts, stdio) →
//                Tasks.Start → exit via SubscribeTaskExits → Tasks.Delete → Containers.Delete →
//                Snapshots.Remove. containerd mounts the rootfs itself (in the shim's bundle):
//                nothing is mounted on our side.
//
// Exits: SubscribeTaskExits opens one Events.Subscribe stream (one thread) that delivers the
// `/tasks/exit` events of this namespace for every task, so thousands of tasks need no thread
// each. WaitTask (Tasks.Wait) blocks per task and is meant for tests and one-offs.
//
// Thread-safety: all methods may be called from any thread concurrently. A ContentWriter is used
// by one thread at a time. Clients made by WithNamespace/WithLease share the connection and may
// outlive the client they were made from.
#ifndef SHOAL_AGENT_CONTAINERD_CLIENT_H_
#define SHOAL_AGENT_CONTAINERD_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/events/v1/events.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/namespaces/v1/namespace.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.grpc.pb.h"
#include "github.com/containerd/containerd/api/types/descriptor.pb.h"
#include "github.com/containerd/containerd/api/types/mount.pb.h"
#include "github.com/containerd/containerd/api/types/task/task.pb.h"
#include "github.com/containerd/containerd/runtime/v2/runc/options/oci.pb.h"
#include "google/protobuf/any.pb.h"
#include "grpcpp/grpcpp.h"

namespace shoal::agent::containerd {

// containerd's protos, by service. (Inside this namespace, always write ::containerd:: for
// containerd's own: `containerd::` alone names this one.)
namespace containers_pb = ::containerd::services::containers::v1;
namespace content_pb = ::containerd::services::content::v1;
namespace diff_pb = ::containerd::services::diff::v1;
namespace events_pb = ::containerd::services::events::v1;
namespace images_pb = ::containerd::services::images::v1;
namespace leases_pb = ::containerd::services::leases::v1;
namespace namespaces_pb = ::containerd::services::namespaces::v1;
namespace snapshots_pb = ::containerd::services::snapshots::v1;
namespace tasks_pb = ::containerd::services::tasks::v1;
namespace version_pb = ::containerd::services::version::v1;
namespace types_pb = ::containerd::types;           // Mount, Descriptor
namespace task_types_pb = ::containerd::v1::types;  // Process, Status
namespace event_types_pb = ::containerd::events;    // TaskExit, ...
namespace runc_pb = ::containerd::runc::v1;         // Options (TaskCreateOptions::options)

using Labels = std::map<std::string, std::string>;
using Mounts = std::vector<types_pb::Mount>;

inline constexpr char kDefaultSocket[] = "/run/containerd/containerd.sock";
inline constexpr char kDefaultNamespace[] = "shoal";
// containerd's default gRPC message size limits (both ways); the client uses the same.
inline constexpr int kMaxMessageBytes = 16 << 20;
// The runtime containerd 1.6 runs tasks with by default (containerd-shim-runc-v2 + runc).
inline constexpr char kRuncRuntime[] = "io.containerd.runc.v2";
// Type URLs containerd uses for OCI JSON carried in an Any.
inline constexpr char kOciSpecTypeUrl[] = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
inline constexpr char kOciProcessTypeUrl[] =
    "types.containerd.io/opencontainers/runtime-spec/1/Process";
// The topic of a task's (or exec'd process's) exit event.
inline constexpr char kTaskExitTopic[] = "/tasks/exit";

// An OCI runtime spec (config.json content) as containerd wants it in Container.spec.
google::protobuf::Any OciSpecAny(absl::string_view spec_json);
// An OCI process spec (JSON) as Tasks.Exec wants it.
google::protobuf::Any OciProcessAny(absl::string_view process_json);
// runc's options for Tasks.Create (e.g. `root`: where runc keeps its state, by default
// /run/containerd/runc/<namespace>), under the type URL the runc shim looks up.
google::protobuf::Any RuncOptionsAny(const runc_pb::Options& options);
// Unpacks an Any whose type URL is "<full message name>" or "<prefix>/<full message name>"
// (containerd writes event URLs without a prefix, which Any::UnpackTo refuses).
bool UnpackAny(const google::protobuf::Any& any, google::protobuf::Message* message);
// True when `ns` is a valid containerd namespace (letters, digits, and single '.', '_', '-'
// between them; at most 76 characters).
bool IsValidNamespace(absl::string_view ns);

// How a process ended, as Tasks.Delete, Tasks.Wait and the exit event tell it.
struct ProcessExit {
  uint32_t pid = 0;
  // The exit code; 128+N when the process was killed by signal N (containerd's convention).
  uint32_t exit_status = 0;
  absl::Time exited_at = absl::InfinitePast();
};

// A `/tasks/exit` event.
struct TaskExitEvent {
  std::string ns;
  std::string container_id;
  // The process: the container's ID for the task's init process, else the exec ID.
  std::string exec_id;
  ProcessExit exit;
};

// What Tasks.Create needs beside the container (whose spec and runtime it uses).
struct TaskCreateOptions {
  std::string container_id;
  // The root filesystem: the mounts of the container's snapshot (Snapshots.Prepare/Mounts).
  // containerd mounts them at the bundle's "rootfs" (the spec's root.path must be "rootfs").
  Mounts rootfs;
  // Stdio: FIFO paths (created by the caller), "file:///abs/path" (the shim appends to the file),
  // "binary:///abs/path?args" (a logging binary), or empty for /dev/null.
  std::string stdin_path;
  std::string stdout_path;
  std::string stderr_path;
  bool terminal = false;
  // Runtime options when set: RuncOptionsAny(...) for the runc shim.
  google::protobuf::Any options;
};

// Writes one blob into the content store through a Content.Write stream, under an ingest `ref`
// that survives a broken stream: reopening the same ref resumes at offset(). Commit verifies the
// size and digest; a blob whose digest does not match is refused (FAILED_PRECONDITION) and stays
// an ingest until Content.Abort(ref) or garbage collection. Not thread-safe.
class ContentWriter {
 public:
  ~ContentWriter();
  ContentWriter(const ContentWriter&) = delete;
  ContentWriter& operator=(const ContentWriter&) = delete;

  const std::string& ref() const { return ref_; }
  // Bytes the ingest holds: where the next Write appends.
  int64_t offset() const { return offset_; }
  // Appends `data` (any size: sent in chunks of at most 1 MiB, each acknowledged).
  absl::Status Write(absl::string_view data);
  // Commits the ingest as blob `digest` ("sha256:<hex>") of `size` bytes, with `labels` (e.g.
  // "containerd.io/gc.ref.content.*"). Errors: FAILED_PRECONDITION when the size or the digest do
  // not match what was written; ALREADY_EXISTS when the store has a blob with that digest already
  // (then nothing is stored and the bytes are not checked: the store's copy is the one). The
  // writer is closed afterwards, whatever the outcome.
  absl::Status Commit(int64_t size, const std::string& digest, const Labels& labels = {});
  // Closes the stream without committing; the ingest stays (resumable). Idempotent.
  absl::Status Close();

 private:
  friend class ContainerdClient;
  using Stream = grpc::ClientReaderWriterInterface<content_pb::WriteContentRequest,
                                                   content_pb::WriteContentResponse>;
  ContentWriter(std::string ref, std::unique_ptr<grpc::ClientContext> context);
  // Sends `request`, reads the reply; on failure closes the stream and returns the error.
  absl::StatusOr<content_pb::WriteContentResponse> RoundTrip(
      const content_pb::WriteContentRequest& request, absl::string_view what);
  absl::Status Finish(absl::string_view what);

  std::string ref_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  int64_t offset_ = 0;
  bool closed_ = false;
};

// An open Events.Subscribe stream read by one thread. Destroying it cancels the stream and joins
// the thread; no callback runs once the destructor has returned. Do not destroy it from its own
// callbacks.
class EventSubscription {
 public:
  ~EventSubscription();
  EventSubscription(const EventSubscription&) = delete;
  EventSubscription& operator=(const EventSubscription&) = delete;

 private:
  friend class ContainerdClient;
  EventSubscription() = default;

  std::unique_ptr<grpc::ClientContext> context_;
  std::thread thread_;
  absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
};

class ContainerdClient {
 public:
  // Opens a connection to containerd at `socket_path` for namespace `ns`, waiting at most
  // `timeout` for it to answer Version. Errors: UNAVAILABLE "containerd is not reachable at
  // <path>: <why>; start it or pass --containerd PATH"; INVALID_ARGUMENT for a bad namespace.
  static absl::StatusOr<std::unique_ptr<ContainerdClient>> Connect(const std::string& socket_path,
                                                                   const std::string& ns,
                                                                   absl::Duration timeout);
  ~ContainerdClient();
  ContainerdClient(const ContainerdClient&) = delete;
  ContainerdClient& operator=(const ContainerdClient&) = delete;

  // A client on the same connection for namespace `ns` (not validated here: containerd refuses a
  // bad one with INVALID_ARGUMENT).
  std::unique_ptr<ContainerdClient> WithNamespace(const std::string& ns) const;
  // A client on the same connection whose calls carry the lease `lease_id`: content, ingests and
  // snapshots they create are held by the lease (not garbage-collected) until it is deleted.
  std::unique_ptr<ContainerdClient> WithLease(const std::string& lease_id) const;

  const std::string& socket_path() const { return shared_->socket_path; }
  const std::string& ns() const { return ns_; }
  const std::string& lease() const { return lease_; }
  // The deadline of each unary call (default 2 minutes: Diff.Apply of a large layer and
  // Tasks.Create, which starts a shim, are the slow ones). Not for the streams.
  void set_call_timeout(absl::Duration timeout) { call_timeout_ = timeout; }

  // --- Version
  struct VersionInfo {
    std::string version;  // "1.6.20~ds1"
    std::string revision;
  };
  absl::StatusOr<VersionInfo> Version();

  // --- Namespaces (a namespace is created implicitly by the first object made in it)
  absl::Status CreateNamespace(const std::string& name, const Labels& labels = {});
  absl::StatusOr<std::vector<std::string>> ListNamespaces();
  // FAILED_PRECONDITION while it holds anything (containers, images, content, snapshots, leases).
  absl::Status DeleteNamespace(const std::string& name);

  // --- Containers (metadata records: spec, runtime, snapshot, labels)
  // ALREADY_EXISTS when a container with that ID exists.
  absl::StatusOr<containers_pb::Container> CreateContainer(const containers_pb::Container& c);
  absl::StatusOr<containers_pb::Container> GetContainer(const std::string& id);
  // `filters`: containerd filter expressions, OR-ed (e.g. `labels."com.shoal.task"==abc`).
  absl::StatusOr<std::vector<containers_pb::Container>> ListContainers(
      const std::vector<std::string>& filters = {});
  // Updates the fields named by `paths` ("labels", "labels.KEY", "spec", "image", ...).
  absl::StatusOr<containers_pb::Container> UpdateContainer(const containers_pb::Container& c,
                                                           const std::vector<std::string>& paths);
  // FAILED_PRECONDITION while it has a task (checked here: containerd would delete the record
  // and orphan the shim); NOT_FOUND when absent.
  absl::Status DeleteContainer(const std::string& id);

  // --- Tasks (the running side of a container: shim + runc). `exec_id` empty = the init process.
  // Returns the init process's PID. ALREADY_EXISTS when the container has a task.
  absl::StatusOr<uint32_t> CreateTask(const TaskCreateOptions& options);
  // Returns the PID.
  absl::StatusOr<uint32_t> StartTask(const std::string& container_id,
                                     const std::string& exec_id = "");
  // Sends `signal`; with `all`, to every process of the container. NOT_FOUND when the task or
  // process does not exist or has already exited (containerd: "process already finished").
  absl::Status KillTask(const std::string& container_id, uint32_t signal, bool all = false,
                        const std::string& exec_id = "");
  // Deletes the (stopped) task and returns how it ended. FAILED_PRECONDITION while it runs.
  absl::StatusOr<ProcessExit> DeleteTask(const std::string& container_id);
  absl::StatusOr<ProcessExit> DeleteProcess(const std::string& container_id,
                                            const std::string& exec_id);
  // Status (CREATED, RUNNING, STOPPED...), pid, exit_status and exited_at. containerd fills
  // `id` (the container's ID, or the exec ID) and leaves `container_id` empty.
  absl::StatusOr<task_types_pb::Process> GetTask(const std::string& container_id,
                                                 const std::string& exec_id = "");
  // Every task of the namespace (init processes; `id` is the container's ID).
  absl::StatusOr<std::vector<task_types_pb::Process>> ListTasks(const std::string& filter = "");
  // Adds process `exec_id` to the running task; `process_spec` is OciProcessAny(json). Start it
  // with StartTask(container_id, exec_id).
  absl::Status ExecProcess(const std::string& container_id, const std::string& exec_id,
                           const google::protobuf::Any& process_spec,
                           const std::string& stdin_path = "", const std::string& stdout_path = "",
                           const std::string& stderr_path = "", bool terminal = false);
  // Blocks until the process exits or `timeout` passes (DEADLINE_EXCEEDED). One blocked call per
  // process: prefer SubscribeTaskExits.
  absl::StatusOr<ProcessExit> WaitTask(const std::string& container_id, const std::string& exec_id,
                                       absl::Duration timeout);

  // --- Content (blobs by digest)
  absl::StatusOr<content_pb::Info> ContentInfo(const std::string& digest);
  // Streams [offset, offset+size) of the blob to `sink` in chunks (size 0 = to the end). A sink
  // error stops the read and is returned.
  absl::Status ReadContent(const std::string& digest, int64_t offset, int64_t size,
                           const std::function<absl::Status(absl::string_view)>& sink);
  // The whole blob in memory; FAILED_PRECONDITION when it is larger than `max_bytes`.
  absl::StatusOr<std::string> ReadContentAll(const std::string& digest,
                                             int64_t max_bytes = kMaxMessageBytes);
  // Opens (or resumes) the ingest `ref` for a blob of `total` bytes (0 = unknown) whose digest is
  // `expected` (may be empty). ALREADY_EXISTS when the store has `expected` already;
  // UNAVAILABLE ("ref ... locked") while another writer holds the ref. `timeout` bounds the whole
  // stream.
  absl::StatusOr<std::unique_ptr<ContentWriter>> OpenWriter(
      const std::string& ref, int64_t total, const std::string& expected,
      absl::Duration timeout = absl::Hours(1));
  // Writes `data` as blob `digest` in one go. OK when the blob is there already.
  absl::Status WriteBlob(const std::string& ref, absl::string_view data, const std::string& digest,
                         const Labels& labels = {});
  // Discards the ingest `ref` (NOT_FOUND when there is none).
  absl::Status AbortIngest(const std::string& ref);
  absl::Status DeleteContent(const std::string& digest);

  // --- Images (name → target descriptor records)
  absl::StatusOr<images_pb::Image> CreateImage(const images_pb::Image& image);
  absl::StatusOr<images_pb::Image> GetImage(const std::string& name);
  absl::StatusOr<images_pb::Image> UpdateImage(const images_pb::Image& image,
                                               const std::vector<std::string>& paths = {});
  absl::StatusOr<std::vector<images_pb::Image>> ListImages(
      const std::vector<std::string>& filters = {});
  // With `sync`, returns after the garbage collection that follows has run.
  absl::Status DeleteImage(const std::string& name, bool sync = false);

  // --- Snapshots ("overlayfs"; "native" where overlayfs is unusable)
  // A new active snapshot `key` on top of committed snapshot `parent` (empty = none): the mounts
  // that make it a filesystem.
  absl::StatusOr<Mounts> PrepareSnapshot(const std::string& snapshotter, const std::string& key,
                                         const std::string& parent, const Labels& labels = {});
  // A read-only view of `parent`.
  absl::StatusOr<Mounts> ViewSnapshot(const std::string& snapshotter, const std::string& key,
                                      const std::string& parent, const Labels& labels = {});
  absl::StatusOr<Mounts> SnapshotMounts(const std::string& snapshotter, const std::string& key);
  // Commits active snapshot `key` as the committed snapshot `name` (the key is gone afterwards).
  absl::Status CommitSnapshot(const std::string& snapshotter, const std::string& name,
                              const std::string& key, const Labels& labels = {});
  // FAILED_PRECONDITION while it has children.
  absl::Status RemoveSnapshot(const std::string& snapshotter, const std::string& key);
  absl::StatusOr<snapshots_pb::Info> StatSnapshot(const std::string& snapshotter,
                                                  const std::string& key);
  absl::StatusOr<std::vector<snapshots_pb::Info>> ListSnapshots(
      const std::string& snapshotter, const std::vector<std::string>& filters = {});

  // --- Diff
  // Applies the layer blob `layer` (in the content store; media type tar or tar+gzip) onto
  // `mounts` (an active snapshot's); returns the applied (uncompressed) descriptor, whose digest
  // is the layer's diff ID.
  absl::StatusOr<types_pb::Descriptor> ApplyDiff(const types_pb::Descriptor& layer,
                                                 const Mounts& mounts);

  // --- Leases
  // Creates lease `id` (empty: containerd picks one); `expire_after` > 0 lets the garbage
  // collector drop it after that long even if never deleted. Returns the lease's ID.
  absl::StatusOr<std::string> CreateLease(const std::string& id, const Labels& labels = {},
                                          absl::Duration expire_after = absl::ZeroDuration());
  absl::Status DeleteLease(const std::string& id, bool sync = false);
  absl::StatusOr<std::vector<leases_pb::Lease>> ListLeases(
      const std::vector<std::string>& filters = {});

  // --- Events
  // Subscribes to the events matching `filters` (containerd filter expressions, OR-ed; empty =
  // all events of every namespace). Returns once the subscription is live on containerd's side,
  // so an event caused after the return is delivered. `on_event` runs on the subscription's
  // thread, in order, and must not block for long. `on_end` (may be null) runs once on that
  // thread if the stream ends by itself (containerd stopped: events may have been missed, so
  // resubscribe and reconcile with ListTasks); never after the subscription is destroyed.
  absl::StatusOr<std::unique_ptr<EventSubscription>> Subscribe(
      const std::vector<std::string>& filters,
      std::function<void(const events_pb::Envelope&)> on_event,
      std::function<void(const absl::Status&)> on_end = nullptr);
  // The exits of every task and exec'd process of this client's namespace.
  absl::StatusOr<std::unique_ptr<EventSubscription>> SubscribeTaskExits(
      std::function<void(const TaskExitEvent&)> on_exit,
      std::function<void(const absl::Status&)> on_end = nullptr);

 private:
  struct Shared {
    std::string socket_path;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<version_pb::Version::Stub> version;
    std::unique_ptr<namespaces_pb::Namespaces::Stub> namespaces;
    std::unique_ptr<containers_pb::Containers::Stub> containers;
    std::unique_ptr<tasks_pb::Tasks::Stub> tasks;
    std::unique_ptr<content_pb::Content::Stub> content;
    std::unique_ptr<images_pb::Images::Stub> images;
    std::unique_ptr<snapshots_pb::Snapshots::Stub> snapshots;
    std::unique_ptr<diff_pb::Diff::Stub> diff;
    std::unique_ptr<leases_pb::Leases::Stub> leases;
    std::unique_ptr<events_pb::Events::Stub> events;
  };

  ContainerdClient(std::shared_ptr<Shared> shared, std::string ns, std::string lease);
  // A context with the namespace (and lease) metadata and a deadline `timeout` from now
  // (InfiniteDuration: none).
  std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) const;
  std::unique_ptr<grpc::ClientContext> NewContext() const { return NewContext(call_timeout_); }
  // containerd's gRPC status as absl::Status, same code, "containerd <what>: <message>".
  absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) const;

  std::shared_ptr<Shared> shared_;
  std::string ns_;
  std::string lease_;
  absl::Duration call_timeout_ = absl::Minutes(2);
};

}  // namespace shoal::agent::containerd

#endif  // SHOAL_AGENT_CONTAINERD_CLIENT_H_
