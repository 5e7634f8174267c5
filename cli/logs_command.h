// `shoal service logs [-f|--follow] [--tail N|all] [--since T] [-t|--timestamps] [--no-task-ids]
// [--no-trunc] [--no-resolve] [--raw] SERVICE|TASK`: the output of a service's tasks (or one
// task's), from every node, through the managers' log broker (proto/logs.proto). As docker's:
//
//   web.1.k2x8e3hq0lqd@node-1    | hello
//
// — the task's name (service, slot or node ID for global services, task ID cut to 12 characters
// unless --no-trunc; without it with --no-task-ids), "@" and the node's hostname, padded to the
// widest prefix, " | " and the line. -t puts the line's RFC 3339 time (nanoseconds) before it;
// --raw prints the bare lines; --no-resolve shows IDs instead of names. Lines the task wrote to
// stderr go to stderr.
//
// Follow: the stream is resumed when it ends with UNAVAILABLE or without a status (a leader
// change, a daemon restart): at most kLogsReconnectAttempts times in a row, with backoff from
// 100 ms doubling to 2 s, the count reset whenever lines arrive again. A resumed subscription
// asks for the lines since the oldest of the per-task newest timestamps seen, and the lines seen
// already are dropped, so nothing is printed twice or lost.
#ifndef SHOAL_CLI_LOGS_COMMAND_H_
#define SHOAL_CLI_LOGS_COMMAND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "cli/context.h"
#include "logs.grpc.pb.h"
#include "objects.pb.h"

namespace shoal::cli {

// Registers `logs` under the `service` command. The lead calls it from AddServiceCommand.
void AddServiceLogsCommand(CLI::App& service, Context& ctx);

struct LogsFlags {
  std::string ref;  // SERVICE|TASK
  bool follow = false;
  std::string tail = "all";  // N or "all"
  std::string since;         // RFC 3339 time or a duration before now ("10m"); empty = no bound
  bool timestamps = false;
  bool no_task_ids = false;
  bool no_trunc = false;
  bool no_resolve = false;
  bool raw = false;
};

// How lines are shown.
struct LogFormat {
  bool timestamps = false;
  bool no_task_ids = false;
  bool no_trunc = false;
  bool raw = false;
};

// What a prefix needs to know about a task: names by ID. Missing entries show as IDs.
struct LogNames {
  absl::flat_hash_map<std::string, std::string> services;  // service ID -> name
  absl::flat_hash_map<std::string, std::string> nodes;     // node ID -> hostname
  absl::flat_hash_map<std::string, api::Task> tasks;       // task ID -> task (for its slot)
};

// "web.1.k2x8e3hq0lqd@node-1" for a line's context (IDs where a name is unknown).
std::string LogContextPrefix(const api::LogContext& context, const LogNames& names,
                             const LogFormat& format);

// One line as printed, with its newline: "<prefix padded to `width`> | [<time> ]<data>" (or the
// bare data with raw). A line without a trailing newline gets one.
std::string FormatLogLine(const api::LogMessage& message, const LogNames& names,
                          const LogFormat& format, size_t width);

// The `--tail` flag: "all" (or empty) = unset; else a count. INVALID_ARGUMENT otherwise.
absl::StatusOr<std::optional<uint64_t>> ParseTail(const std::string& text);
// The `--since` flag: RFC 3339 ("2024-01-02T15:04:05Z"), a Unix time ("1700000000[.5]"), or a
// duration before `now` ("10m", "1h30m"). INVALID_ARGUMENT otherwise.
absl::StatusOr<absl::Time> ParseSince(const std::string& text, absl::Time now);

inline constexpr int kLogsReconnectAttempts = 10;

// Drops lines a resumed subscription delivers again: per task, the newest timestamp seen and
// how many lines carried it.
class LogDeduplicator {
 public:
  // True if the line is new (and records it).
  bool Accept(const api::LogMessage& message);
  // Call when resubscribing: lines at or before each task's newest timestamp are dropped (as
  // many at exactly that time as were seen).
  void Resume();
  // Where a resumed subscription starts: the oldest of the per-task newest timestamps; nullopt
  // before any line was seen.
  std::optional<absl::Time> ResumeSince() const;

 private:
  struct Seen {
    absl::Time newest = absl::InfinitePast();
    int64_t at_newest = 0;  // lines seen with timestamp == newest
    int64_t to_skip = 0;    // after Resume: lines at `newest` still to drop
  };
  absl::flat_hash_map<std::string, Seen> seen_;
};

// Learns the names of a line's task and node when `names` lacks them (a task started after the
// stream began); may do nothing.
using LearnNamesFn = std::function<void(const api::LogContext& context, LogNames* names)>;

struct StreamLogsOptions {
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
  int max_attempts = kLogsReconnectAttempts;
};

// Streams the subscription to `ctx`'s output (stdout lines to out(), stderr lines to err()),
// reconnecting in follow mode as described above; backoff waits are on ctx.clock(). `stub` makes
// a Logs stub per attempt. Throws CommandError on failure (after printing the lines received).
void StreamLogs(Context& ctx,
                const std::function<std::unique_ptr<api::Logs::StubInterface>()>& stub,
                const api::SubscribeLogsRequest& request, LogNames names, const LogFormat& format,
                const LearnNamesFn& learn = nullptr, const StreamLogsOptions& options = {});

}  // namespace shoal::cli

#endif  // SHOAL_CLI_LOGS_COMMAND_H_
