#include "agent/containerd/client.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/empty.pb.h"
#include "google/protobuf/field_mask.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace shoal::agent::containerd {
namespace {

constexpr char kNamespaceHeader[] = "containerd-namespace";
constexpr char kLeaseHeader[] = "containerd-lease";
// Events published by Subscribe to itself, to learn when containerd has registered it.
constexpr char kSyncTopicPrefix[] = "/shoal/subscribe-sync/";
// Content is written in chunks of this size (containerd's own client uses 1 MiB too).
constexpr size_t kWriteChunk = 1 << 20;

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

ProcessExit MakeExit(uint32_t pid, uint32_t exit_status, const google::protobuf::Timestamp& ts) {
  ProcessExit exit;
  exit.pid = pid;
  exit.exit_status = exit_status;
  exit.exited_at = FromTimestamp(ts);
  return exit;
}

std::string Unreachable(const std::string& socket_path, absl::string_view why) {
  return absl::StrCat("containerd is not reachable at ", socket_path, ": ", why,
                      "; start it or pass --containerd PATH");
}

// Connects a plain unix socket to `path` once, to tell "no such file", "nothing listens" and
// "permission denied" apart before gRPC hides them behind its reconnect loop.
absl::Status ProbeSocket(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) return absl::UnavailableError(Unreachable(path, "no such socket"));
    return absl::UnavailableError(Unreachable(path, std::strerror(err)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::UnavailableError(Unreachable(path, "not a unix socket"));
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket(AF_UNIX): ", std::strerror(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  close(fd);
  if (rc != 0) {
    if (err == ECONNREFUSED) {
      return absl::UnavailableError(Unreachable(path, "nothing listens on the socket"));
    }
    if (err == EACCES || err == EPERM) {
      return absl::UnavailableError(
          Unreachable(path, absl::StrCat(std::strerror(err), " (containerd needs root)")));
    }
    return absl::UnavailableError(Unreachable(path, std::strerror(err)));
  }
  return absl::OkStatus();
}

std::string RandomHex(int bytes) {
  absl::BitGen gen;
  std::string out;
  for (int i = 0; i < bytes; ++i) {
    absl::StrAppendFormat(&out, "%02x", absl::Uniform<unsigned>(gen, 0, 256));
  }
  return out;
}

bool IsIdentChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

}  // namespace

// ----------------------------------------------------------------------------- free functions

google::protobuf::Any OciSpecAny(absl::string_view spec_json) {
  google::protobuf::Any any;
  any.set_type_url(kOciSpecTypeUrl);
  any.set_value(std::string(spec_json));
  return any;
}

google::protobuf::Any OciProcessAny(absl::string_view process_json) {
  google::protobuf::Any any;
  any.set_type_url(kOciProcessTypeUrl);
  any.set_value(std::string(process_json));
  return any;
}

google::protobuf::Any RuncOptionsAny(const runc_pb::Options& options) {
  google::protobuf::Any any;
  // containerd's typeurl resolves gogo-registered messages by their bare full name.
  any.set_type_url(runc_pb::Options::descriptor()->full_name());
  any.set_value(options.SerializeAsString());
  return any;
}

bool UnpackAny(const google::protobuf::Any& any, google::protobuf::Message* message) {
  const std::string& name = message->GetDescriptor()->full_name();
  absl::string_view url = any.type_url();
  if (url != name && !absl::EndsWith(url, absl::StrCat("/", name))) return false;
  return message->ParseFromString(any.value());
}

bool IsValidNamespace(absl::string_view ns) {
  // containerd's identifiers: ^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$, at most 76 characters.
  if (ns.empty() || ns.size() > 76) return false;
  bool prev_sep = true;  // a separator may not come first
  for (char c : ns) {
    if (IsIdentChar(c)) {
      prev_sep = false;
    } else if (c == '.' || c == '_' || c == '-') {
      if (prev_sep) return false;
      prev_sep = true;
    } else {
      return false;
    }
  }
  return !prev_sep;
}

// ----------------------------------------------------------------------------- ContentWriter

ContentWriter::ContentWriter(std::string ref, std::unique_ptr<grpc::ClientContext> context)
    : ref_(std::move(ref)), context_(std::move(context)) {}

ContentWriter::~ContentWriter() {
  if (!closed_) {
    // Leave the ingest for a later resume; do not wait on a stream that may be stuck.
    context_->TryCancel();
    stream_->Finish().IgnoreError();
  }
}

absl::Status ContentWriter::Finish(absl::string_view what) {
  closed_ = true;
  grpc::Status status = stream_->Finish();
  if (status.ok()) {
    return absl::InternalError(
        absl::StrCat("containerd Content.Write(", ref_, "): ", what, ": the stream ended early"));
  }
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat("containerd Content.Write(", ref_, "): ", what, ": ", status.error_message()));
}

absl::StatusOr<content_pb::WriteContentResponse> ContentWriter::RoundTrip(
    const content_pb::WriteContentRequest& request, absl::string_view what) {
  if (closed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("containerd Content.Write(", ref_, "): the writer is closed"));
  }
  content_pb::WriteContentResponse response;
  if (!stream_->Write(request) || !stream_->Read(&response)) return Finish(what);
  return response;
}

absl::Status ContentWriter::Write(absl::string_view data) {
  while (!data.empty()) {
    size_t n = std::min(data.size(), kWriteChunk);
    content_pb::WriteContentRequest request;
    request.set_action(content_pb::WRITE);
    request.set_ref(ref_);
    // Offset 0 would tell containerd to truncate; it equals the ingest's size here anyway.
    request.set_offset(offset_);
    request.set_data(std::string(data.substr(0, n)));
    absl::StatusOr<content_pb::WriteContentResponse> response = RoundTrip(request, "write");
    if (!response.ok()) return response.status();
    if (response->offset() != offset_ + static_cast<int64_t>(n)) {
      Close().IgnoreError();
      return absl::InternalError(absl::StrFormat(
          "containerd Content.Write(%s): wrote %d bytes at %d but the ingest is at %d", ref_, n,
          offset_, response->offset()));
    }
    offset_ = response->offset();
    data.remove_prefix(n);
  }
  return absl::OkStatus();
}

absl::Status ContentWriter::Commit(int64_t size, const std::string& digest, const Labels& labels) {
  content_pb::WriteContentRequest request;
  request.set_action(content_pb::COMMIT);
  request.set_ref(ref_);
  request.set_offset(offset_);
  request.set_total(size);
  request.set_expected(digest);
  for (const auto& [k, v] : labels) (*request.mutable_labels())[k] = v;
  absl::StatusOr<content_pb::WriteContentResponse> response = RoundTrip(request, "commit");
  if (!response.ok()) return response.status();
  return Close();
}

absl::Status ContentWriter::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  stream_->WritesDone();
  // containerd answers the end of the stream with one more status message; the call's status
  // only arrives once every message has been read.
  content_pb::WriteContentResponse response;
  while (stream_->Read(&response)) {
  }
  grpc::Status status = stream_->Finish();
  if (!status.ok()) {
    return absl::Status(
        static_cast<absl::StatusCode>(status.error_code()),
        absl::StrCat("containerd Content.Write(", ref_, "): close: ", status.error_message()));
  }
  return absl::OkStatus();
}

// ----------------------------------------------------------------------------- EventSubscription

EventSubscription::~EventSubscription() {
  if (context_ != nullptr) context_->TryCancel();
  if (thread_.joinable()) thread_.join();
}

// ----------------------------------------------------------------------------- ContainerdClient

ContainerdClient::ContainerdClient(std::shared_ptr<Shared> shared, std::string ns,
                                   std::string lease)
    : shared_(std::move(shared)), ns_(std::move(ns)), lease_(std::move(lease)) {}

ContainerdClient::~ContainerdClient() = default;

absl::StatusOr<std::unique_ptr<ContainerdClient>> ContainerdClient::Connect(
    const std::string& socket_path, const std::string& ns, absl::Duration timeout) {
  if (!IsValidNamespace(ns)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid containerd namespace \"", ns,
                     "\": use letters and digits, with single '.', '_' or '-' between them "
                     "(at most 76 characters)"));
  }
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("containerd socket path \"", socket_path, "\" is ",
                     socket_path.empty() ? "empty" : "longer than 107 bytes",
                     "; pass a shorter one with --containerd PATH"));
  }
  absl::Time deadline = absl::Now() + timeout;
  if (absl::Status probe = ProbeSocket(socket_path); !probe.ok()) return probe;

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // After a containerd restart, reconnect within a second or two rather than gRPC's 2 minutes.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto shared = std::make_shared<Shared>();
  shared->socket_path = socket_path;
  shared->channel = grpc::CreateCustomChannel(absl::StrCat("unix:", socket_path),
                                              grpc::InsecureChannelCredentials(), args);
  const auto& ch = shared->channel;
  shared->version = version_pb::Version::NewStub(ch);
  shared->namespaces = namespaces_pb::Namespaces::NewStub(ch);
  shared->containers = containers_pb::Containers::NewStub(ch);
  shared->tasks = tasks_pb::Tasks::NewStub(ch);
  shared->content = content_pb::Content::NewStub(ch);
  shared->images = images_pb::Images::NewStub(ch);
  shared->snapshots = snapshots_pb::Snapshots::NewStub(ch);
  shared->diff = diff_pb::Diff::NewStub(ch);
  shared->leases = leases_pb::Leases::NewStub(ch);
  shared->events = events_pb::Events::NewStub(ch);

  if (!ch->WaitForConnected(absl::ToChronoTime(deadline))) {
    return absl::UnavailableError(Unreachable(
        socket_path, absl::StrCat("no gRPC connection within ", absl::FormatDuration(timeout))));
  }
  std::unique_ptr<ContainerdClient> client(new ContainerdClient(std::move(shared), ns, ""));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  version_pb::VersionResponse response;
  grpc::Status status =
      client->shared_->version->Version(&context, google::protobuf::Empty(), &response);
  if (!status.ok()) {
    return absl::UnavailableError(Unreachable(
        socket_path, absl::StrCat("Version failed: ", status.error_message(), " (gRPC code ",
                                  static_cast<int>(status.error_code()), ")")));
  }
  return client;
}

std::unique_ptr<ContainerdClient> ContainerdClient::WithNamespace(const std::string& ns) const {
  std::unique_ptr<ContainerdClient> client(new ContainerdClient(shared_, ns, lease_));
  client->call_timeout_ = call_timeout_;
  return client;
}

std::unique_ptr<ContainerdClient> ContainerdClient::WithLease(const std::string& lease_id) const {
  std::unique_ptr<ContainerdClient> client(new ContainerdClient(shared_, ns_, lease_id));
  client->call_timeout_ = call_timeout_;
  return client;
}

std::unique_ptr<grpc::ClientContext> ContainerdClient::NewContext(absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata(kNamespaceHeader, ns_);
  if (!lease_.empty()) context->AddMetadata(kLeaseHeader, lease_);
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  return context;
}

absl::Status ContainerdClient::FromGrpc(const grpc::Status& status, absl::string_view what) const {
  if (status.ok()) return absl::OkStatus();
  std::string message = absl::StrCat("containerd ", what, ": ", status.error_message());
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    absl::StrAppend(&message, " (is containerd still running at ", shared_->socket_path, "?)");
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), message);
}

// --- Version

absl::StatusOr<ContainerdClient::VersionInfo> ContainerdClient::Version() {
  auto context = NewContext();
  version_pb::VersionResponse response;
  grpc::Status status = shared_->version->Version(context.get(), {}, &response);
  if (!status.ok()) return FromGrpc(status, "Version");
  return VersionInfo{response.version(), response.revision()};
}

// --- Namespaces

absl::Status ContainerdClient::CreateNamespace(const std::string& name, const Labels& labels) {
  auto context = NewContext();
  namespaces_pb::CreateNamespaceRequest request;
  request.mutable_namespace_()->set_name(name);
  for (const auto& [k, v] : labels) (*request.mutable_namespace_()->mutable_labels())[k] = v;
  namespaces_pb::CreateNamespaceResponse response;
  return FromGrpc(shared_->namespaces->Create(context.get(), request, &response),
                  absl::StrCat("Namespaces.Create(", name, ")"));
}

absl::StatusOr<std::vector<std::string>> ContainerdClient::ListNamespaces() {
  auto context = NewContext();
  namespaces_pb::ListNamespacesResponse response;
  grpc::Status status = shared_->namespaces->List(context.get(), {}, &response);
  if (!status.ok()) return FromGrpc(status, "Namespaces.List");
  std::vector<std::string> names;
  for (const auto& ns : response.namespaces()) names.push_back(ns.name());
  return names;
}

absl::Status ContainerdClient::DeleteNamespace(const std::string& name) {
  auto context = NewContext();
  namespaces_pb::DeleteNamespaceRequest request;
  request.set_name(name);
  google::protobuf::Empty response;
  return FromGrpc(shared_->namespaces->Delete(context.get(), request, &response),
                  absl::StrCat("Namespaces.Delete(", name, ")"));
}

// --- Containers

absl::StatusOr<containers_pb::Container> ContainerdClient::CreateContainer(
    const containers_pb::Container& c) {
  auto context = NewContext();
  containers_pb::CreateContainerRequest request;
  *request.mutable_container() = c;
  containers_pb::CreateContainerResponse response;
  grpc::Status status = shared_->containers->Create(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Containers.Create(", c.id(), ")"));
  return response.container();
}

absl::StatusOr<containers_pb::Container> ContainerdClient::GetContainer(const std::string& id) {
  auto context = NewContext();
  containers_pb::GetContainerRequest request;
  request.set_id(id);
  containers_pb::GetContainerResponse response;
  grpc::Status status = shared_->containers->Get(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Containers.Get(", id, ")"));
  return response.container();
}

absl::StatusOr<std::vector<containers_pb::Container>> ContainerdClient::ListContainers(
    const std::vector<std::string>& filters) {
  auto context = NewContext();
  containers_pb::ListContainersRequest request;
  for (const auto& f : filters) request.add_filters(f);
  containers_pb::ListContainersResponse response;
  grpc::Status status = shared_->containers->List(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, "Containers.List");
  return std::vector<containers_pb::Container>(response.containers().begin(),
                                               response.containers().end());
}

absl::StatusOr<containers_pb::Container> ContainerdClient::UpdateContainer(
    const containers_pb::Container& c, const std::vector<std::string>& paths) {
  auto context = NewContext();
  containers_pb::UpdateContainerRequest request;
  *request.mutable_container() = c;
  for (const auto& p : paths) request.mutable_update_mask()->add_paths(p);
  containers_pb::UpdateContainerResponse response;
  grpc::Status status = shared_->containers->Update(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Containers.Update(", c.id(), ")"));
  return response.container();
}

absl::Status ContainerdClient::DeleteContainer(const std::string& id) {
  // containerd itself deletes the record even while a task runs, orphaning the shim, its process
  // and its rootfs mount (containerd's Go client checks first too).
  absl::StatusOr<task_types_pb::Process> task = GetTask(id);
  if (task.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("containerd Containers.Delete(", id, "): the container still has a task (",
                     task_types_pb::Status_Name(task->status()), "); delete the task first"));
  }
  if (!absl::IsNotFound(task.status())) return task.status();
  auto context = NewContext();
  containers_pb::DeleteContainerRequest request;
  request.set_id(id);
  google::protobuf::Empty response;
  return FromGrpc(shared_->containers->Delete(context.get(), request, &response),
                  absl::StrCat("Containers.Delete(", id, ")"));
}

// --- Tasks

absl::StatusOr<uint32_t> ContainerdClient::CreateTask(const TaskCreateOptions& options) {
  auto context = NewContext();
  tasks_pb::CreateTaskRequest request;
  request.set_container_id(options.container_id);
  for (const auto& m : options.rootfs) *request.add_rootfs() = m;
  request.set_stdin(options.stdin_path);
  request.set_stdout(options.stdout_path);
  request.set_stderr(options.stderr_path);
  request.set_terminal(options.terminal);
  if (!options.options.type_url().empty()) *request.mutable_options() = options.options;
  tasks_pb::CreateTaskResponse response;
  grpc::Status status = shared_->tasks->Create(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("Tasks.Create(", options.container_id, ")"));
  }
  return response.pid();
}

absl::StatusOr<uint32_t> ContainerdClient::StartTask(const std::string& container_id,
                                                     const std::string& exec_id) {
  auto context = NewContext();
  tasks_pb::StartRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  tasks_pb::StartResponse response;
  grpc::Status status = shared_->tasks->Start(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("Tasks.Start(", container_id, exec_id.empty() ? "" : "/",
                                         exec_id, ")"));
  }
  return response.pid();
}

absl::Status ContainerdClient::KillTask(const std::string& container_id, uint32_t signal, bool all,
                                        const std::string& exec_id) {
  auto context = NewContext();
  tasks_pb::KillRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  request.set_signal(signal);
  request.set_all(all);
  google::protobuf::Empty response;
  return FromGrpc(shared_->tasks->Kill(context.get(), request, &response),
                  absl::StrCat("Tasks.Kill(", container_id, exec_id.empty() ? "" : "/", exec_id,
                               ", signal ", signal, ")"));
}

absl::StatusOr<ProcessExit> ContainerdClient::DeleteTask(const std::string& container_id) {
  auto context = NewContext();
  tasks_pb::DeleteTaskRequest request;
  request.set_container_id(container_id);
  tasks_pb::DeleteResponse response;
  grpc::Status status = shared_->tasks->Delete(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Tasks.Delete(", container_id, ")"));
  return MakeExit(response.pid(), response.exit_status(), response.exited_at());
}

absl::StatusOr<ProcessExit> ContainerdClient::DeleteProcess(const std::string& container_id,
                                                            const std::string& exec_id) {
  auto context = NewContext();
  tasks_pb::DeleteProcessRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  tasks_pb::DeleteResponse response;
  grpc::Status status = shared_->tasks->DeleteProcess(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("Tasks.DeleteProcess(", container_id, "/", exec_id, ")"));
  }
  return MakeExit(response.pid(), response.exit_status(), response.exited_at());
}

absl::StatusOr<task_types_pb::Process> ContainerdClient::GetTask(const std::string& container_id,
                                                                 const std::string& exec_id) {
  auto context = NewContext();
  tasks_pb::GetRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  tasks_pb::GetResponse response;
  grpc::Status status = shared_->tasks->Get(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(
        status, absl::StrCat("Tasks.Get(", container_id, exec_id.empty() ? "" : "/", exec_id, ")"));
  }
  return response.process();
}

absl::StatusOr<std::vector<task_types_pb::Process>> ContainerdClient::ListTasks(
    const std::string& filter) {
  auto context = NewContext();
  tasks_pb::ListTasksRequest request;
  request.set_filter(filter);
  tasks_pb::ListTasksResponse response;
  grpc::Status status = shared_->tasks->List(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, "Tasks.List");
  return std::vector<task_types_pb::Process>(response.tasks().begin(), response.tasks().end());
}

absl::Status ContainerdClient::ExecProcess(const std::string& container_id,
                                           const std::string& exec_id,
                                           const google::protobuf::Any& process_spec,
                                           const std::string& stdin_path,
                                           const std::string& stdout_path,
                                           const std::string& stderr_path, bool terminal) {
  auto context = NewContext();
  tasks_pb::ExecProcessRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  *request.mutable_spec() = process_spec;
  request.set_stdin(stdin_path);
  request.set_stdout(stdout_path);
  request.set_stderr(stderr_path);
  request.set_terminal(terminal);
  google::protobuf::Empty response;
  return FromGrpc(shared_->tasks->Exec(context.get(), request, &response),
                  absl::StrCat("Tasks.Exec(", container_id, "/", exec_id, ")"));
}

absl::StatusOr<ProcessExit> ContainerdClient::WaitTask(const std::string& container_id,
                                                       const std::string& exec_id,
                                                       absl::Duration timeout) {
  auto context = NewContext(timeout);
  tasks_pb::WaitRequest request;
  request.set_container_id(container_id);
  request.set_exec_id(exec_id);
  tasks_pb::WaitResponse response;
  grpc::Status status = shared_->tasks->Wait(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("Tasks.Wait(", container_id, exec_id.empty() ? "" : "/",
                                         exec_id, ")"));
  }
  return MakeExit(0, response.exit_status(), response.exited_at());
}

// --- Content

absl::StatusOr<content_pb::Info> ContainerdClient::ContentInfo(const std::string& digest) {
  auto context = NewContext();
  content_pb::InfoRequest request;
  request.set_digest(digest);
  content_pb::InfoResponse response;
  grpc::Status status = shared_->content->Info(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Content.Info(", digest, ")"));
  return response.info();
}

absl::Status ContainerdClient::ReadContent(
    const std::string& digest, int64_t offset, int64_t size,
    const std::function<absl::Status(absl::string_view)>& sink) {
  auto context = NewContext();
  content_pb::ReadContentRequest request;
  request.set_digest(digest);
  request.set_offset(offset);
  request.set_size(size);
  auto reader = shared_->content->Read(context.get(), request);
  content_pb::ReadContentResponse response;
  while (reader->Read(&response)) {
    absl::Status s = sink(response.data());
    if (!s.ok()) {
      context->TryCancel();
      reader->Finish().IgnoreError();
      return s;
    }
  }
  return FromGrpc(reader->Finish(), absl::StrCat("Content.Read(", digest, ")"));
}

absl::StatusOr<std::string> ContainerdClient::ReadContentAll(const std::string& digest,
                                                             int64_t max_bytes) {
  std::string out;
  absl::Status s = ReadContent(digest, 0, 0, [&](absl::string_view data) {
    if (static_cast<int64_t>(out.size() + data.size()) > max_bytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          "containerd content ", digest, " is larger than ", max_bytes, " bytes; stream it"));
    }
    out.append(data.data(), data.size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::unique_ptr<ContentWriter>> ContainerdClient::OpenWriter(
    const std::string& ref, int64_t total, const std::string& expected, absl::Duration timeout) {
  std::unique_ptr<ContentWriter> writer(new ContentWriter(ref, NewContext(timeout)));
  writer->stream_ = shared_->content->Write(writer->context_.get());
  content_pb::WriteContentRequest request;
  request.set_action(content_pb::STAT);
  request.set_ref(ref);
  request.set_total(total);
  request.set_expected(expected);
  absl::StatusOr<content_pb::WriteContentResponse> response = writer->RoundTrip(request, "open");
  if (!response.ok()) return response.status();
  writer->offset_ = response->offset();
  return writer;
}

absl::Status ContainerdClient::WriteBlob(const std::string& ref, absl::string_view data,
                                         const std::string& digest, const Labels& labels) {
  absl::StatusOr<std::unique_ptr<ContentWriter>> writer =
      OpenWriter(ref, static_cast<int64_t>(data.size()), digest);
  if (writer.status().code() == absl::StatusCode::kAlreadyExists) return absl::OkStatus();
  if (!writer.ok()) return writer.status();
  int64_t offset = (*writer)->offset();
  if (offset > static_cast<int64_t>(data.size())) {
    // An ingest under this ref holds something else: start over.
    (*writer)->Close().IgnoreError();
    if (absl::Status s = AbortIngest(ref); !s.ok() && !absl::IsNotFound(s)) return s;
    return WriteBlob(ref, data, digest, labels);
  }
  if (absl::Status s = (*writer)->Write(data.substr(offset)); !s.ok()) return s;
  absl::Status s = (*writer)->Commit(static_cast<int64_t>(data.size()), digest, labels);
  if (absl::IsAlreadyExists(s)) return absl::OkStatus();
  return s;
}

absl::Status ContainerdClient::AbortIngest(const std::string& ref) {
  auto context = NewContext();
  content_pb::AbortRequest request;
  request.set_ref(ref);
  google::protobuf::Empty response;
  return FromGrpc(shared_->content->Abort(context.get(), request, &response),
                  absl::StrCat("Content.Abort(", ref, ")"));
}

absl::Status ContainerdClient::DeleteContent(const std::string& digest) {
  auto context = NewContext();
  content_pb::DeleteContentRequest request;
  request.set_digest(digest);
  google::protobuf::Empty response;
  return FromGrpc(shared_->content->Delete(context.get(), request, &response),
                  absl::StrCat("Content.Delete(", digest, ")"));
}

// --- Images

absl::StatusOr<images_pb::Image> ContainerdClient::CreateImage(const images_pb::Image& image) {
  auto context = NewContext();
  images_pb::CreateImageRequest request;
  *request.mutable_image() = image;
  images_pb::CreateImageResponse response;
  grpc::Status status = shared_->images->Create(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Images.Create(", image.name(), ")"));
  return response.image();
}

absl::StatusOr<images_pb::Image> ContainerdClient::GetImage(const std::string& name) {
  auto context = NewContext();
  images_pb::GetImageRequest request;
  request.set_name(name);
  images_pb::GetImageResponse response;
  grpc::Status status = shared_->images->Get(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Images.Get(", name, ")"));
  return response.image();
}

absl::StatusOr<images_pb::Image> ContainerdClient::UpdateImage(
    const images_pb::Image& image, const std::vector<std::string>& paths) {
  auto context = NewContext();
  images_pb::UpdateImageRequest request;
  *request.mutable_image() = image;
  for (const auto& p : paths) request.mutable_update_mask()->add_paths(p);
  images_pb::UpdateImageResponse response;
  grpc::Status status = shared_->images->Update(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Images.Update(", image.name(), ")"));
  return response.image();
}

absl::StatusOr<std::vector<images_pb::Image>> ContainerdClient::ListImages(
    const std::vector<std::string>& filters) {
  auto context = NewContext();
  images_pb::ListImagesRequest request;
  for (const auto& f : filters) request.add_filters(f);
  images_pb::ListImagesResponse response;
  grpc::Status status = shared_->images->List(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, "Images.List");
  return std::vector<images_pb::Image>(response.images().begin(), response.images().end());
}

absl::Status ContainerdClient::DeleteImage(const std::string& name, bool sync) {
  auto context = NewContext();
  images_pb::DeleteImageRequest request;
  request.set_name(name);
  request.set_sync(sync);
  google::protobuf::Empty response;
  return FromGrpc(shared_->images->Delete(context.get(), request, &response),
                  absl::StrCat("Images.Delete(", name, ")"));
}

// --- Snapshots

absl::StatusOr<Mounts> ContainerdClient::PrepareSnapshot(const std::string& snapshotter,
                                                         const std::string& key,
                                                         const std::string& parent,
                                                         const Labels& labels) {
  auto context = NewContext();
  snapshots_pb::PrepareSnapshotRequest request;
  request.set_snapshotter(snapshotter);
  request.set_key(key);
  request.set_parent(parent);
  for (const auto& [k, v] : labels) (*request.mutable_labels())[k] = v;
  snapshots_pb::PrepareSnapshotResponse response;
  grpc::Status status = shared_->snapshots->Prepare(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("Snapshots.Prepare(", snapshotter, ", ", key, ")"));
  }
  return Mounts(response.mounts().begin(), response.mounts().end());
}

absl::StatusOr<Mounts> ContainerdClient::ViewSnapshot(const std::string& snapshotter,
                                                      const std::string& key,
                                                      const std::string& parent,
                                                      const Labels& labels) {
  auto context = NewContext();
  snapshots_pb::ViewSnapshotRequest request;
  request.set_snapshotter(snapshotter);
  request.set_key(key);
  request.set_parent(parent);
  for (const auto& [k, v] : labels) (*request.mutable_labels())[k] = v;
  snapshots_pb::ViewSnapshotResponse response;
  grpc::Status status = shared_->snapshots->View(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("Snapshots.View(", snapshotter, ", ", key, ")"));
  }
  return Mounts(response.mounts().begin(), response.mounts().end());
}

absl::StatusOr<Mounts> ContainerdClient::SnapshotMounts(const std::string& snapshotter,
                                                        const std::string& key) {
  auto context = NewContext();
  snapshots_pb::MountsRequest request;
  request.set_snapshotter(snapshotter);
  request.set_key(key);
  snapshots_pb::MountsResponse response;
  grpc::Status status = shared_->snapshots->Mounts(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("Snapshots.Mounts(", snapshotter, ", ", key, ")"));
  }
  return Mounts(response.mounts().begin(), response.mounts().end());
}

absl::Status ContainerdClient::CommitSnapshot(const std::string& snapshotter,
                                              const std::string& name, const std::string& key,
                                              const Labels& labels) {
  auto context = NewContext();
  snapshots_pb::CommitSnapshotRequest request;
  request.set_snapshotter(snapshotter);
  request.set_name(name);
  request.set_key(key);
  for (const auto& [k, v] : labels) (*request.mutable_labels())[k] = v;
  google::protobuf::Empty response;
  return FromGrpc(shared_->snapshots->Commit(context.get(), request, &response),
                  absl::StrCat("Snapshots.Commit(", snapshotter, ", ", key, " as ", name, ")"));
}

absl::Status ContainerdClient::RemoveSnapshot(const std::string& snapshotter,
                                              const std::string& key) {
  auto context = NewContext();
  snapshots_pb::RemoveSnapshotRequest request;
  request.set_snapshotter(snapshotter);
  request.set_key(key);
  google::protobuf::Empty response;
  return FromGrpc(shared_->snapshots->Remove(context.get(), request, &response),
                  absl::StrCat("Snapshots.Remove(", snapshotter, ", ", key, ")"));
}

absl::StatusOr<snapshots_pb::Info> ContainerdClient::StatSnapshot(const std::string& snapshotter,
                                                                  const std::string& key) {
  auto context = NewContext();
  snapshots_pb::StatSnapshotRequest request;
  request.set_snapshotter(snapshotter);
  request.set_key(key);
  snapshots_pb::StatSnapshotResponse response;
  grpc::Status status = shared_->snapshots->Stat(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, absl::StrCat("Snapshots.Stat(", snapshotter, ", ", key, ")"));
  }
  return response.info();
}

absl::StatusOr<std::vector<snapshots_pb::Info>> ContainerdClient::ListSnapshots(
    const std::string& snapshotter, const std::vector<std::string>& filters) {
  auto context = NewContext();
  snapshots_pb::ListSnapshotsRequest request;
  request.set_snapshotter(snapshotter);
  for (const auto& f : filters) request.add_filters(f);
  auto reader = shared_->snapshots->List(context.get(), request);
  std::vector<snapshots_pb::Info> out;
  snapshots_pb::ListSnapshotsResponse response;
  while (reader->Read(&response)) {
    for (const auto& info : response.info()) out.push_back(info);
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Snapshots.List(", snapshotter, ")"));
  return out;
}

// --- Diff

absl::StatusOr<types_pb::Descriptor> ContainerdClient::ApplyDiff(const types_pb::Descriptor& layer,
                                                                 const Mounts& mounts) {
  auto context = NewContext();
  diff_pb::ApplyRequest request;
  *request.mutable_diff() = layer;
  for (const auto& m : mounts) *request.add_mounts() = m;
  diff_pb::ApplyResponse response;
  grpc::Status status = shared_->diff->Apply(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Diff.Apply(", layer.digest(), ")"));
  return response.applied();
}

// --- Leases

absl::StatusOr<std::string> ContainerdClient::CreateLease(const std::string& id,
                                                          const Labels& labels,
                                                          absl::Duration expire_after) {
  auto context = NewContext();
  leases_pb::CreateRequest request;
  request.set_id(id.empty() ? absl::StrCat("shoal-", RandomHex(12)) : id);
  for (const auto& [k, v] : labels) (*request.mutable_labels())[k] = v;
  if (expire_after > absl::ZeroDuration()) {
    (*request.mutable_labels())["containerd.io/gc.expire"] =
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now() + expire_after, absl::UTCTimeZone());
  }
  leases_pb::CreateResponse response;
  grpc::Status status = shared_->leases->Create(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, absl::StrCat("Leases.Create(", request.id(), ")"));
  return response.lease().id();
}

absl::Status ContainerdClient::DeleteLease(const std::string& id, bool sync) {
  auto context = NewContext();
  leases_pb::DeleteRequest request;
  request.set_id(id);
  request.set_sync(sync);
  google::protobuf::Empty response;
  return FromGrpc(shared_->leases->Delete(context.get(), request, &response),
                  absl::StrCat("Leases.Delete(", id, ")"));
}

absl::StatusOr<std::vector<leases_pb::Lease>> ContainerdClient::ListLeases(
    const std::vector<std::string>& filters) {
  auto context = NewContext();
  leases_pb::ListRequest request;
  for (const auto& f : filters) request.add_filters(f);
  leases_pb::ListResponse response;
  grpc::Status status = shared_->leases->List(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, "Leases.List");
  return std::vector<leases_pb::Lease>(response.leases().begin(), response.leases().end());
}

// --- Events

absl::StatusOr<std::unique_ptr<EventSubscription>> ContainerdClient::Subscribe(
    const std::vector<std::string>& filters,
    std::function<void(const events_pb::Envelope&)> on_event,
    std::function<void(const absl::Status&)> on_end) {
  // containerd registers the subscription some time after the stream opens and says nothing
  // when it has. To return only once it is live, the subscription also listens to a topic of
  // its own and we publish to it until our own event comes back.
  const std::string sync_topic = absl::StrCat(kSyncTopicPrefix, RandomHex(8));
  events_pb::SubscribeRequest request;
  for (const auto& f : filters) request.add_filters(f);
  if (filters.empty()) request.add_filters("topic~=\".*\"");  // everything, as no filter would
  request.add_filters(absl::StrCat("namespace==\"", ns_, "\",topic==\"", sync_topic, "\""));

  std::unique_ptr<EventSubscription> sub(new EventSubscription());
  sub->context_ = NewContext(absl::InfiniteDuration());
  EventSubscription* s = sub.get();
  // The thread holds the connection itself: the subscription may outlive this client.
  sub->thread_ = std::thread([s, shared = shared_, request, sync_topic,
                              on_event = std::move(on_event), on_end = std::move(on_end)] {
    auto reader = shared->events->Subscribe(s->context_.get(), request);
    events_pb::Envelope envelope;
    while (reader->Read(&envelope)) {
      if (absl::StartsWith(envelope.topic(), kSyncTopicPrefix)) {
        if (envelope.topic() == sync_topic) {
          absl::MutexLock lock(&s->mu_);
          s->ready_ = true;
        }
        continue;
      }
      on_event(envelope);
    }
    grpc::Status status = reader->Finish();
    absl::Status end =
        status.ok()
            ? absl::UnavailableError(
                  "containerd Events.Subscribe: the event stream ended (containerd stopped?)")
            : absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                           absl::StrCat("containerd Events.Subscribe: the event stream "
                                        "ended: ",
                                        status.error_message()));
    bool was_ready;
    {
      absl::MutexLock lock(&s->mu_);
      s->ended_ = true;
      s->end_status_ = end;
      was_ready = s->ready_;
    }
    // Cancelled by the destructor: say nothing. Failed before it was live: Subscribe reports it.
    if (status.error_code() != grpc::StatusCode::CANCELLED && was_ready && on_end) on_end(end);
  });

  // Publish to the sync topic until the subscription hears it (or fails, or time runs out).
  absl::Time deadline = absl::Now() + std::min(call_timeout_, absl::Seconds(30));
  google::protobuf::Any sync_event;
  google::protobuf::Empty empty;
  sync_event.PackFrom(empty);
  events_pb::PublishRequest publish;
  publish.set_topic(sync_topic);
  *publish.mutable_event() = sync_event;
  absl::Status failure;
  // Usually live within a millisecond or two: wait 1 ms for the echo at first, then longer.
  absl::Duration wait = absl::Milliseconds(1);
  while (true) {
    auto context = NewContext();
    google::protobuf::Empty response;
    grpc::Status status = shared_->events->Publish(context.get(), publish, &response);
    if (!status.ok()) {
      failure = FromGrpc(status, "Events.Publish (subscription check)");
      break;
    }
    absl::MutexLock lock(&s->mu_);
    auto done = [s]() ABSL_SHARED_LOCKS_REQUIRED(s->mu_) { return s->ready_ || s->ended_; };
    s->mu_.AwaitWithTimeout(absl::Condition(&done), wait);
    wait = std::min(wait * 2, absl::Milliseconds(50));
    if (s->ready_) return sub;
    if (s->ended_) {
      failure = s->end_status_;
      break;
    }
    if (absl::Now() > deadline) {
      failure = absl::DeadlineExceededError(
          "containerd Events.Subscribe: the subscription did not become live in time");
      break;
    }
  }
  return failure;  // `sub` is destroyed: the stream is cancelled and the thread joined
}

absl::StatusOr<std::unique_ptr<EventSubscription>> ContainerdClient::SubscribeTaskExits(
    std::function<void(const TaskExitEvent&)> on_exit,
    std::function<void(const absl::Status&)> on_end) {
  std::vector<std::string> filters = {
      absl::StrCat("namespace==\"", ns_, "\",topic==\"", kTaskExitTopic, "\"")};
  return Subscribe(
      filters,
      [on_exit = std::move(on_exit)](const events_pb::Envelope& envelope) {
        event_types_pb::TaskExit exit;
        if (envelope.topic() != kTaskExitTopic || !UnpackAny(envelope.event(), &exit)) return;
        TaskExitEvent event;
        event.ns = envelope.namespace_();
        event.container_id = exit.container_id();
        event.exec_id = exit.id();
        event.exit = MakeExit(exit.pid(), exit.exit_status(), exit.exited_at());
        on_exit(event);
      },
      std::move(on_end));
}

}  // namespace shoal::agent::containerd
