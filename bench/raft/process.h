// Child processes for the benchmark runner: started with fork/exec, output appended to a log
// file, always ended by their own PID and reaped. The kernel kills them too if the runner dies
// first (PR_SET_PDEATHSIG), so an interrupted benchmark leaves no servers behind.
//
// Thread-safety: a Process is used by one thread at a time.
#ifndef SHOAL_BENCH_RAFT_PROCESS_H_
#define SHOAL_BENCH_RAFT_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace shoal::bench {

class Process {
 public:
  // Starts argv (argv[0] a path) with stdin from /dev/null and stdout+stderr appended to log_path.
  static absl::StatusOr<Process> Start(const std::vector<std::string>& argv,
                                       const std::string& log_path);
  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // SIGKILLs and reaps a process still running

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Sends the signal only; Reap() collects the process later. Lets a caller start a clock at
  // the moment of the kill without waiting for the kernel to tear the process down.
  absl::Status SendSignal(int signal);
  // Waits up to `timeout` for the process to exit (SIGKILLing it then), and forgets it.
  absl::Status Reap(absl::Duration timeout);
  // SIGTERM, then SIGKILL after `grace`; reaps.
  absl::Status Stop(absl::Duration grace);

  // User+system CPU seconds the process has used so far (from /proc), 0 if unknown.
  double CpuSeconds() const;

 private:
  pid_t pid_ = -1;
};

// CPU seconds (user+system) used by `pid` so far, from /proc/PID/stat; 0 if unreadable.
double ProcessCpuSeconds(pid_t pid);

// Runs argv to completion (at most `timeout`, then SIGKILL) and returns its stdout+stderr.
// Fails when it could not run or exited non-zero.
absl::StatusOr<std::string> RunAndCapture(const std::vector<std::string>& argv,
                                          absl::Duration timeout);

// A directory made with mkdtemp under `parent`, removed with its contents on destruction.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Make(const std::string& parent, const std::string& prefix);
  TempDir() = default;
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  void Remove();
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it).
absl::StatusOr<int> PickFreeLoopbackPort();

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_RAFT_PROCESS_H_
