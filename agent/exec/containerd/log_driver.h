// log_driver: a task's stdout and stderr, kept as Docker's json-file driver keeps them.
//
// Writing. containerd's runc shim runs a logging binary for a task whose stdio URI is
// `binary:///abs/path?k1=v1&k2=v2` (containerd 1.6 pkg/process NewBinaryIO): it starts
// `/abs/path k1 v1 k2 v2` (the pairs in RANDOM order: Go map iteration) with the container's
// stdout on fd 3, its stderr on fd 4, a pipe on fd 5 that the binary closes once it is ready
// (the shim blocks Tasks.Create until then), and CONTAINER_ID / CONTAINER_NAMESPACE in its
// environment. When the task is deleted the shim closes the pipes and sends SIGTERM (SIGKILL 12 s
// later). RunLogDriver is that binary:
//
//   <binary> log-driver DIR [max-size BYTES] [max-files N]     (pairs in any order)
//
// It appends one JSON object per line to DIR/container.log:
//
//   {"log":"hi\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}
//
// A line longer than 16 KiB is cut into pieces (each piece without "\n"), as Docker does. When
// container.log would pass max-size (default 10 MiB) it is renamed container.log.1 (.1 -> .2, ...,
// keeping at most max-files files in all, default 3). It exits once both streams are at EOF, or
// on SIGTERM after draining what the pipes hold.
//
// Reading. ReadTaskLogs parses the rotated files oldest first (container.log.N-1 ... .1,
// container.log), with tail / since / streams, and with follow keeps reading new lines (polling
// every 100 ms, and following the file across rotations) until the sink returns false or the
// cancellation fires. ContainerdLogSource is the logs::TaskLogSource over <state>/containers/.
//
// Thread-safety: free functions; ContainerdLogSource allows concurrent reads.
#ifndef SHOAL_AGENT_EXEC_CONTAINERD_LOG_DRIVER_H_
#define SHOAL_AGENT_EXEC_CONTAINERD_LOG_DRIVER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/exec/executor.h"
#include "agent/logs/log_source.h"
#include "proto/logs.pb.h"

namespace shoal::agent::exec::containerd {

// The key whose value is the log directory; it also marks a log-driver invocation.
inline constexpr char kLogDriverKey[] = "log-driver";
inline constexpr char kLogFileName[] = "container.log";
inline constexpr size_t kMaxLogLineBytes = 16 << 10;
inline constexpr int64_t kDefaultLogMaxBytes = 10 << 20;
inline constexpr int kDefaultLogMaxFiles = 3;

struct LogDriverConfig {
  std::string dir;
  int64_t max_bytes = kDefaultLogMaxBytes;
  int max_files = kDefaultLogMaxFiles;
};

// The stdio URI that makes the shim run `binary` as the log driver of a task logging to
// `config.dir` ("binary:///usr/bin/shoald?log-driver=/var/lib/shoal/containers/abc&...").
std::string LogDriverUri(const std::string& binary, const LogDriverConfig& config);

// True when argv[1..] are key/value pairs one of which is "log-driver": how a program that is
// also something else (shoald) recognises the shim's invocation.
bool IsLogDriverInvocation(int argc, char** argv);

// The log binary's main (see the header comment). Returns the exit code: 0 after EOF or SIGTERM,
// 2 for bad arguments, 1 when the log file cannot be written (reported on stderr).
int RunLogDriver(int argc, char** argv);

// Appends JSON lines; used by RunLogDriver, exposed for tests. Not thread-safe.
class JsonLogWriter {
 public:
  explicit JsonLogWriter(LogDriverConfig config);
  ~JsonLogWriter();
  JsonLogWriter(const JsonLogWriter&) = delete;
  JsonLogWriter& operator=(const JsonLogWriter&) = delete;

  // Opens (creates, 0640) DIR/container.log for appending.
  absl::Status Open();
  // Writes one record; `line` includes its "\n" when it had one. Rotates first when needed.
  absl::Status Write(api::LogStream stream, const std::string& line, absl::Time when);

 private:
  absl::Status Rotate();

  LogDriverConfig config_;
  int fd_ = -1;
  int64_t size_ = 0;
};

// Delivers the lines of the task whose log directory is `dir` (see the header comment), with
// `task_id` as their context. OK with nothing when there is no log yet (with follow: waits for
// one). Errors: a file that exists but cannot be read.
absl::Status ReadTaskLogs(const std::string& dir, const logs::LogReadOptions& options,
                          const logs::LogSink& sink, Cancellation& cancel,
                          const std::string& task_id = "");

// The log source of a containerd executor whose state dir is `state_dir`: task T's log is in
// <state_dir>/containers/T/.

class ContainerdLogSource : public logs::TaskLogSource {
 public:
  explicit ContainerdLogSource(std::string state_dir) : state_dir_(std::move(state_dir)) {}

  absl::Status ReadLogs(const std::string& task_id, const logs::LogReadOptions& options,
                        const logs::LogSink& sink, Cancellation& cancel) override;

 private:
  std::string state_dir_;
};

}  // namespace shoal::agent::exec::containerd

#endif  // SHOAL_AGENT_EXEC_CONTAINERD_LOG_DRIVER_H_
