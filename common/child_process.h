// Child processes that are always ended by their own PID and reaped: fork/exec with stdin from
// /dev/null and stdout+stderr appended to a log file. The kernel kills a child too if its parent
// dies first (PR_SET_PDEATHSIG), and every child runs in its own process group, so a Ctrl-C on
// the terminal reaches the parent only, which then stops its children in order. Used by the
// integration-test harness, the benchmark runners and the lab tooling.
//
// Thread-safety: a ChildProcess is used by one thread at a time; the free functions are
// thread-safe.
#ifndef SHOAL_COMMON_CHILD_PROCESS_H_
#define SHOAL_COMMON_CHILD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace shoal {

class ChildProcess {
 public:
  // Starts argv (argv[0] a path) with its output appended to log_path.
  static absl::StatusOr<ChildProcess> Start(const std::vector<std::string>& argv,
                                            const std::string& log_path);
  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();  // SIGKILLs and reaps a process still running

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Sends `signal` and waits up to `timeout` for the process to exit; returns its wait status.
  // On timeout the process is SIGKILLed, reaped, and DEADLINE_EXCEEDED returned.
  absl::StatusOr<int> Signal(int signal, absl::Duration timeout);
  // Sends the signal only; Wait() or Reap() collects the process later. Lets a caller start a
  // clock at the moment of a kill without waiting for the kernel to tear the process down.
  absl::Status SendSignal(int signal);
  // The wait status if the process exits within `timeout`, else DEADLINE_EXCEEDED (the process
  // keeps running).
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // Waits up to `timeout` for the process to exit (SIGKILLing it then), and forgets it.
  absl::Status Reap(absl::Duration timeout);
  // SIGTERM, then SIGKILL after `grace`; reaps.
  absl::Status Stop(absl::Duration grace);

  // User+system CPU seconds the process has used so far, 0 if unknown.
  double CpuSeconds() const;

 private:
  pid_t pid_ = -1;
};

// In a child after fork(), before exec: die with the parent (`parent`, the pid before the
// fork), own process group, no blocked signals. Exits 127 if the parent is already gone.
void PrepareForkedChild(pid_t parent);

// waitpid with a deadline: the wait status, or DEADLINE_EXCEEDED.
absl::StatusOr<int> WaitPid(pid_t pid, absl::Duration timeout);

// CPU seconds (user+system) used by `pid` so far, from /proc/PID/stat; 0 if unreadable.
double ProcessCpuSeconds(pid_t pid);

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it).
absl::StatusOr<int> PickFreeLoopbackPort();

}  // namespace shoal

#endif  // SHOAL_COMMON_CHILD_PROCESS_H_
