#include "cli/logs_command.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/client.h"
#include "cli/resolve.h"

namespace shoal::cli {
namespace {

constexpr size_t kShortId = 12;

absl::Time TimeOf(const api::LogMessage& m) {
  return absl::FromUnixSeconds(m.timestamp().seconds()) + absl::Nanoseconds(m.timestamp().nanos());
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
}

std::string Short(const std::string& id, bool no_trunc) {
  return no_trunc ? id : id.substr(0, kShortId);
}

// The widest prefix of the tasks known at the start, so that their lines align.
size_t InitialWidth(const LogNames& names, const LogFormat& format) {
  size_t width = 0;
  for (const auto& [id, task] : names.tasks) {
    if (task.node_id().empty()) continue;
    api::LogContext c;
    c.set_task_id(id);
    c.set_service_id(task.service_id());
    c.set_node_id(task.node_id());
    width = std::max(width, LogContextPrefix(c, names, format).size());
  }
  return width;
}

// A failed stream as the user sees it: the broker's own UNAVAILABLE answers (an incomplete
// stream, no leader) say what happened; only transport failures mean the daemon is unreachable.
std::string DescribeLogsError(const grpc::Status& status, const std::string& host) {
  const std::string& msg = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      (absl::StrContains(msg, "incomplete log stream") || absl::StrContains(msg, "leader"))) {
    return msg;
  }
  return DescribeRpcError(status, host);
}

}  // namespace

std::string LogContextPrefix(const api::LogContext& context, const LogNames& names,
                             const LogFormat& format) {
  std::string service = context.service_id();
  auto svc = names.services.find(context.service_id());
  auto task = names.tasks.find(context.task_id());
  if (svc != names.services.end()) {
    service = svc->second;
  } else if (task != names.tasks.end() && !task->second.service_annotations().name().empty()) {
    service = task->second.service_annotations().name();
  }
  std::string name = service;
  if (task != names.tasks.end()) {
    if (task->second.slot() != 0) {
      absl::StrAppend(&name, ".", task->second.slot());
    } else {
      absl::StrAppend(&name, ".", task->second.node_id());
    }
  }
  if (!format.no_task_ids) absl::StrAppend(&name, ".", Short(context.task_id(), format.no_trunc));
  auto node = names.nodes.find(context.node_id());
  absl::StrAppend(&name, "@", node != names.nodes.end() ? node->second : context.node_id());
  return name;
}

std::string FormatLogLine(const api::LogMessage& message, const LogNames& names,
                          const LogFormat& format, size_t width) {
  std::string out;
  if (!format.raw) {
    out = LogContextPrefix(message.context(), names, format);
    if (out.size() < width) out.append(width - out.size(), ' ');
    out += " | ";
  }
  if (format.timestamps) {
    absl::StrAppend(
        &out, absl::FormatTime("%Y-%m-%d%ET%H:%M:%E9SZ", TimeOf(message), absl::UTCTimeZone()),
        " ");
  }
  out += message.data();
  if (out.empty() || out.back() != '\n') out += '\n';
  return out;
}

absl::StatusOr<std::optional<uint64_t>> ParseTail(const std::string& text) {
  const std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  if (t.empty() || t == "all") return std::optional<uint64_t>();
  uint64_t n = 0;
  if (!absl::SimpleAtoi(t, &n) || t[0] == '-' || t[0] == '+') {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid --tail value \"", text, "\": give a number of lines (e.g. --tail 20) or \"all\""));
  }
  return std::optional<uint64_t>(n);
}

absl::StatusOr<absl::Time> ParseSince(const std::string& text, absl::Time now) {
  const std::string t(absl::StripAsciiWhitespace(text));
  absl::Time when;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, t, &when, &err)) return when;
  if (absl::ParseTime("%Y-%m-%d%ET%H:%M:%S", t, absl::UTCTimeZone(), &when, &err)) return when;
  if (absl::ParseTime("%Y-%m-%d", t, absl::UTCTimeZone(), &when, &err)) return when;
  double unix_seconds = 0;
  if (!t.empty() && (absl::ascii_isdigit(t[0])) && t.find_first_not_of("0123456789.") == t.npos &&
      absl::SimpleAtod(t, &unix_seconds)) {
    return absl::UnixEpoch() + absl::Seconds(unix_seconds);
  }
  absl::Duration ago;
  if (absl::ParseDuration(t, &ago) && ago >= absl::ZeroDuration() &&
      ago != absl::InfiniteDuration()) {
    return now - ago;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("invalid --since value \"", text,
                   "\": give a time (2024-01-02T15:04:05Z, or a Unix time) or how long ago "
                   "(10m, 1h30m)"));
}

bool LogDeduplicator::Accept(const api::LogMessage& message) {
  Seen& seen = seen_[message.context().task_id()];
  const absl::Time t = TimeOf(message);
  if (t < seen.newest) return false;
  if (t == seen.newest && seen.to_skip > 0) {
    --seen.to_skip;
    return false;
  }
  if (t == seen.newest) {
    ++seen.at_newest;
  } else {
    seen.newest = t;
    seen.at_newest = 1;
    seen.to_skip = 0;
  }
  return true;
}

void LogDeduplicator::Resume() {
  for (auto& [task, seen] : seen_) seen.to_skip = seen.at_newest;
}

std::optional<absl::Time> LogDeduplicator::ResumeSince() const {
  std::optional<absl::Time> since;
  for (const auto& [task, seen] : seen_) {
    if (!since.has_value() || seen.newest < *since) since = seen.newest;
  }
  return since;
}

void StreamLogs(Context& ctx,
                const std::function<std::unique_ptr<api::Logs::StubInterface>()>& stub,
                const api::SubscribeLogsRequest& request, LogNames names, const LogFormat& format,
                const LearnNamesFn& learn, const StreamLogsOptions& options) {
  const bool follow = request.options().follow();
  api::SubscribeLogsRequest req = request;
  LogDeduplicator dedup;
  size_t width = InitialWidth(names, format);
  absl::Duration backoff = options.min_backoff;
  int failures = 0;
  while (true) {
    std::unique_ptr<api::Logs::StubInterface> logs = stub();
    grpc::ClientContext call;
    std::unique_ptr<grpc::ClientReaderInterface<api::SubscribeLogsMessage>> reader =
        logs->SubscribeLogs(&call, req);
    api::SubscribeLogsMessage batch;
    bool received = false;
    while (reader->Read(&batch)) {
      bool wrote_out = false, wrote_err = false;
      for (const api::LogMessage& m : batch.messages()) {
        if (!dedup.Accept(m)) continue;
        received = true;
        if (learn != nullptr && (names.tasks.count(m.context().task_id()) == 0 ||
                                 names.nodes.count(m.context().node_id()) == 0)) {
          learn(m.context(), &names);
        }
        if (!format.raw)
          width = std::max(width, LogContextPrefix(m.context(), names, format).size());
        const std::string line = FormatLogLine(m, names, format, width);
        if (m.stream() == api::LOG_STREAM_STDERR) {
          ctx.err() << line;
          wrote_err = true;
        } else {
          ctx.out() << line;
          wrote_out = true;
        }
      }
      if (wrote_out) ctx.out().flush();
      if (wrote_err) ctx.err().flush();
    }
    const grpc::Status status = reader->Finish();
    if (!follow) {
      if (status.ok()) return;
      throw CommandError{DescribeLogsError(status, ctx.host())};
    }
    // Following: a leader change or a daemon restart ends the stream; anything else is an error.
    if (!status.ok() && status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      throw CommandError{DescribeLogsError(status, ctx.host())};
    }
    if (received) {
      failures = 0;
      backoff = options.min_backoff;
    }
    if (++failures > options.max_attempts) {
      throw CommandError{absl::StrCat(
          "lost the log stream and could not resume it after ", options.max_attempts,
          " attempts: ", status.ok() ? "the stream ended" : DescribeLogsError(status, ctx.host()))};
    }
    ctx.clock().SleepUntil(ctx.clock().Now() + backoff);
    backoff = std::min(backoff * 2, options.max_backoff);
    dedup.Resume();
    if (std::optional<absl::Time> since = dedup.ResumeSince(); since.has_value()) {
      ToProto(*since, req.mutable_options()->mutable_since());
      req.mutable_options()->clear_tail();
    }
  }
}

namespace {

// The task `ref` names (exact ID, then a unique ID prefix); NOT_FOUND otherwise.
grpc::Status FindTask(api::Control::Stub& control, const std::string& ref, api::Task* out) {
  api::GetTaskRequest get;
  get.set_task_id(ref);
  api::GetTaskResponse got;
  grpc::Status s = control.GetTask(CallContext().get(), get, &got);
  if (s.ok()) {
    *out = got.task();
    return s;
  }
  if (s.error_code() != grpc::StatusCode::NOT_FOUND &&
      s.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
    return s;
  }
  api::ListTasksRequest list;
  list.mutable_filters()->add_id_prefixes(ref);
  api::ListTasksResponse listed;
  s = control.ListTasks(CallContext().get(), list, &listed);
  if (!s.ok()) return s;
  if (listed.tasks_size() > 1) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("task ID prefix ", ref, " is ambiguous (", listed.tasks_size(),
                                     " matches): give more of the ID"));
  }
  if (listed.tasks_size() == 0) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no such service or task: ", ref,
                                     " (`shoal service ls` lists the services, `shoal service ps "
                                     "SERVICE` their tasks)"));
  }
  *out = listed.tasks(0);
  return grpc::Status::OK;
}

void AddNodeNames(api::Control::Stub& control, LogNames* names) {
  api::ListNodesResponse nodes;
  if (!control.ListNodes(CallContext().get(), api::ListNodesRequest(), &nodes).ok()) return;
  for (const api::Node& n : nodes.nodes()) {
    const std::string& host = n.description().hostname();
    names->nodes[n.id()] = host.empty() ? n.id() : host;
  }
}

void RunLogs(Context& ctx, const LogsFlags& flags) {
  absl::StatusOr<std::optional<uint64_t>> tail = ParseTail(flags.tail);
  if (!tail.ok()) throw CommandError{std::string(tail.status().message())};
  std::optional<absl::Time> since;
  if (!flags.since.empty()) {
    absl::StatusOr<absl::Time> s = ParseSince(flags.since, ctx.clock().Now());
    if (!s.ok()) throw CommandError{std::string(s.status().message())};
    since = *s;
  }

  api::Control::Stub& control = ctx.control();
  api::SubscribeLogsRequest request;
  LogNames names;
  api::Service service;
  grpc::Status found = Resolve(ServiceLookup(control), flags.ref, &service);
  if (found.ok()) {
    request.mutable_selector()->add_service_ids(service.id());
    names.services[service.id()] = service.spec().annotations().name();
    api::ListTasksRequest list;
    list.mutable_filters()->add_service_ids(service.id());
    api::ListTasksResponse listed;
    ctx.Check(control.ListTasks(CallContext().get(), list, &listed));
    for (const api::Task& t : listed.tasks()) names.tasks[t.id()] = t;
  } else if (found.error_code() == grpc::StatusCode::NOT_FOUND) {
    api::Task task;
    ctx.Check(FindTask(control, flags.ref, &task));
    request.mutable_selector()->add_task_ids(task.id());
    names.tasks[task.id()] = task;
    api::GetServiceRequest get;
    get.set_service_id(task.service_id());
    api::GetServiceResponse got;
    if (control.GetService(CallContext().get(), get, &got).ok()) {
      names.services[task.service_id()] = got.service().spec().annotations().name();
    }
  } else {
    ctx.Check(found);
  }
  if (!flags.no_resolve) AddNodeNames(control, &names);
  if (flags.no_resolve) {
    // IDs instead of names: only the tasks' slots are kept.
    names.services.clear();
    names.nodes.clear();
    for (auto& [id, t] : names.tasks) t.mutable_service_annotations()->clear_name();
  }

  api::LogSubscriptionOptions* options = request.mutable_options();
  options->set_follow(flags.follow);
  if (tail->has_value()) options->set_tail(**tail);
  if (since.has_value()) ToProto(*since, options->mutable_since());

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(ctx.host());
  if (!channel.ok()) throw CommandError{std::string(channel.status().message())};
  LogFormat format;
  format.timestamps = flags.timestamps;
  format.no_task_ids = flags.no_task_ids;
  format.no_trunc = flags.no_trunc;
  format.raw = flags.raw;
  LearnNamesFn learn;
  if (!flags.no_resolve) {
    // Tasks that start while following (and their nodes) are looked up once each.
    learn = [&control, tried = std::make_shared<absl::flat_hash_map<std::string, bool>>()](
                const api::LogContext& c, LogNames* n) {
      if (n->tasks.count(c.task_id()) == 0 && !(*tried)[c.task_id()]) {
        (*tried)[c.task_id()] = true;
        api::GetTaskRequest get;
        get.set_task_id(c.task_id());
        api::GetTaskResponse got;
        if (control.GetTask(CallContext().get(), get, &got).ok())
          n->tasks[c.task_id()] = got.task();
      }
      if (n->nodes.count(c.node_id()) == 0 && !(*tried)["node:" + c.node_id()]) {
        (*tried)["node:" + c.node_id()] = true;
        AddNodeNames(control, n);
      }
    };
  }
  StreamLogs(
      ctx, [ch = *channel] { return api::Logs::NewStub(ch); }, request, std::move(names), format,
      learn);
}

}  // namespace

void AddServiceLogsCommand(CLI::App& service, Context& ctx) {
  auto flags = std::make_shared<LogsFlags>();
  auto* cmd = service.add_subcommand("logs", "Fetch the logs of a service or task");
  cmd->add_option("SERVICE|TASK", flags->ref, "The service (name or ID) or task (ID)")->required();
  cmd->add_flag("-f,--follow", flags->follow, "Follow log output");
  cmd->add_option("-n,--tail", flags->tail,
                  "Number of lines to show from the end of the logs (default \"all\")");
  cmd->add_option("--since", flags->since,
                  "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m "
                  "for 42 minutes)");
  cmd->add_flag("-t,--timestamps", flags->timestamps, "Show timestamps");
  cmd->add_flag("--no-task-ids", flags->no_task_ids, "Do not include task IDs in output");
  cmd->add_flag("--no-trunc", flags->no_trunc, "Do not truncate output");
  cmd->add_flag("--no-resolve", flags->no_resolve, "Do not map IDs to Names in output");
  cmd->add_flag("--raw", flags->raw, "Do not neatly format logs");
  cmd->callback([&ctx, flags] { RunLogs(ctx, *flags); });
}

}  // namespace shoal::cli
