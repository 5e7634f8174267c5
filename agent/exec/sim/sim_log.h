// SimLogStore: the sim executor's per-task logs — what a simulated process "writes" to its stdout
// and stderr ("sim: task <id> started (image X)", "sim: exiting with code N", "sim: stopped"),
// kept as docker's json-file driver keeps a container's output, so that `shoal service logs`
// works on sim nodes end to end:
//
//   <dir>/<task-id>.log     one JSON object per line:
//                           {"log":"sim: stopped\n","stream":"stdout","time":"2024-…Z"}
//   <dir>/<task-id>.log.1   the previous file, once the current one passed max_file_bytes
//                           (bounded: at most max_files files per task; the oldest is dropped)
//
// Times come from the executor's clock (RFC 3339, nanoseconds, UTC). A task's files are deleted
// when the executor removes the task, as docker deletes a container's log with the container.
//
// SimLogSource (a logs::TaskLogSource) reads them: tail, since, streams, follow. Follow waits for
// appends (signalled in-process, and also noticed by polling the file at poll_interval, so it
// sees writes of another process too) until cancelled.
//
// Thread-safety: every method may be called from any thread.
#ifndef SHOAL_AGENT_EXEC_SIM_SIM_LOG_H_
#define SHOAL_AGENT_EXEC_SIM_SIM_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/logs/log_source.h"
#include "proto/logs.pb.h"

namespace shoal::agent::exec {

struct SimLogOptions {
  std::string dir;  // REQUIRES: non-empty; created (0700) on the first write.
  size_t max_file_bytes = 1 << 20;
  int max_files = 2;
  absl::Duration poll_interval = absl::Milliseconds(200);
};

class SimLogStore {
 public:
  explicit SimLogStore(SimLogOptions options);

  // Appends one line (a newline is added) to the task's log, rotating first if the file is full.
  absl::Status Append(const std::string& task_id, api::LogStream stream, const std::string& line,
                      absl::Time when);
  // Deletes the task's files. OK when there are none.
  absl::Status Remove(const std::string& task_id);

  // The task's lines selected by `options` (follow ignored), oldest first. OK and empty when the
  // task has no log.
  absl::StatusOr<std::vector<api::LogMessage>> Read(const std::string& task_id,
                                                    const logs::LogReadOptions& options) const;

  // Paths of the task's files, oldest first (those that exist).
  std::vector<std::string> Files(const std::string& task_id) const;
  std::string CurrentFile(const std::string& task_id) const;

  // Appends so far (any task): follow waits for this to change.
  uint64_t generation() const;
  // Waits until generation() != `seen`, `deadline` (real time), or `cancel`.
  void WaitForAppend(uint64_t seen, absl::Time deadline, Cancellation& cancel) const;

  const SimLogOptions& options() const { return options_; }

 private:
  const SimLogOptions options_;
  mutable absl::Mutex mu_;  // serialises file changes and reads against rotation
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  mutable bool cancelled_wake_ ABSL_GUARDED_BY(mu_) = false;
};

// A TaskLogSource over a SimLogStore. `store` must outlive it.
class SimLogSource : public logs::TaskLogSource {
 public:
  explicit SimLogSource(const SimLogStore* store) : store_(store) {}
  absl::Status ReadLogs(const std::string& task_id, const logs::LogReadOptions& options,
                        const logs::LogSink& sink, Cancellation& cancel) override;

 private:
  const SimLogStore* const store_;
};

// One json-file line ({"log","stream","time"}) as a LogMessage for `task_id`. INVALID_ARGUMENT
// for a malformed line.
absl::StatusOr<api::LogMessage> ParseJsonLogLine(const std::string& line,
                                                 const std::string& task_id);
std::string FormatJsonLogLine(api::LogStream stream, const std::string& data, absl::Time when);

}  // namespace shoal::agent::exec

#endif  // SHOAL_AGENT_EXEC_SIM_SIM_LOG_H_
