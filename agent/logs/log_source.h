// TaskLogSource: how the agent reads what its tasks wrote to stdout and stderr — the seam between
// the log publisher (agent/logs/log_publisher.h) and an executor's per-task log files (the sim
// executor's JSON lines, agent/exec/sim/sim_log.h; the containerd executor's files).
//
// A source hands out one task's lines in the order they were written, each as an api::LogMessage
// with `context.task_id`, `timestamp`, `stream` and `data` (one line with its trailing newline
// when it had one) set; the publisher fills in the rest of the context.
//
// Thread-safety: implementations must allow concurrent ReadLogs calls (one per subscription).
#ifndef SHOAL_AGENT_LOGS_LOG_SOURCE_H_
#define SHOAL_AGENT_LOGS_LOG_SOURCE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/exec/executor.h"
#include "proto/logs.pb.h"

namespace shoal::agent::logs {

struct LogReadOptions {
  bool want_stdout = true;
  bool want_stderr = true;
  // Only lines written at or after this time.
  absl::Time since = absl::InfinitePast();
  // Only the last `tail` lines (of the streams wanted, at or after `since`) of what exists when
  // the read starts; unset = all of them.
  std::optional<uint64_t> tail;
  // After the existing lines, keep delivering new ones as they are written, until the sink
  // returns false or `cancel` fires.
  bool follow = false;
};

// The options a subscription asks for (proto/logs.proto).
LogReadOptions FromSubscriptionOptions(const api::LogSubscriptionOptions& options);

// Receives one line; returns false to end the read (ReadLogs then returns OK).
using LogSink = std::function<bool(const api::LogMessage&)>;

// A reader of one task's log that remembers where it is: how one thread follows many tasks.
class TaskLogCursor {
 public:
  virtual ~TaskLogCursor() = default;
  // Delivers, without waiting, the lines written since the previous call — on the first call,
  // the existing lines the options select — oldest first; stops early when the sink returns
  // false (the next call resumes after the last line delivered).
  virtual absl::Status ReadNew(const std::function<bool(const api::LogMessage&)>& sink) = 0;
};

class TaskLogSource {
 public:
  virtual ~TaskLogSource() = default;

  // Delivers the lines of `task_id` that `options` selects, oldest first, to `sink` on the
  // calling thread. Without follow it returns once the existing lines are delivered (OK with
  // none for a task that has written nothing, or that this node does not know). With follow it
  // then waits for new lines (a task that has not started yet is waited for too) and returns OK
  // when `cancel` fires or the sink returns false. Errors: the log exists but cannot be read
  // (the message names the file and why).
  virtual absl::Status ReadLogs(const std::string& task_id, const LogReadOptions& options,
                                const LogSink& sink, exec::Cancellation& cancel) = 0;

  // Optional: a cursor over `task_id` (options.follow is ignored), so that a follower polls
  // from where it stopped instead of reading again from `since`. The default, nullptr, means
  // unsupported: the publisher then calls ReadLogs with since = the newest line it sent, which
  // reads the task's (bounded) files again on every poll.
  virtual std::unique_ptr<TaskLogCursor> OpenCursor(const std::string& task_id,
                                                    const LogReadOptions& options) {
    (void)task_id;
    (void)options;
    return nullptr;
  }
};

}  // namespace shoal::agent::logs

#endif  // SHOAL_AGENT_LOGS_LOG_SOURCE_H_
