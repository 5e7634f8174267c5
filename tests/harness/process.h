// Test helpers for running programs: temporary directories, child processes that are always
// reaped, and paths of the binaries built by Bazel.
//
// Every process started here is ended by its PID (never by name) when its owner goes away, and
// is also killed by the kernel if the test process dies first (PR_SET_PDEATHSIG).
#ifndef SHOAL_TESTS_HARNESS_PROCESS_H_
#define SHOAL_TESTS_HARNESS_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/child_process.h"

namespace shoal::testing {

// A directory under /tmp (short, so unix socket paths inside it stay under 108 bytes), removed
// with everything in it when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "shoal-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Absolute path of a file in the test's runfiles, e.g. "cmd/shoald/shoald".
std::string RunfilePath(const std::string& relative);

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  bool timed_out = false;
  std::string out;
  std::string err;
};

struct CommandOptions {
  std::string stdin_data;
  absl::Duration timeout = absl::Seconds(60);
  std::map<std::string, std::string> env;  // added to (or replacing in) the test's environment
  std::vector<std::string> unset_env;
};

// Runs argv[0] with the arguments, waits for it (killing it at the timeout), and returns its
// exit code and output.
CommandResult RunCommand(const std::vector<std::string>& argv, const CommandOptions& options = {});

// A long-running child process with stdout and stderr appended to a log file.
using ::shoal::ChildProcess;

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it).
int PickFreeLoopbackPort();

// Polls `condition` until it holds or `timeout` passes; the way tests wait without sleeping
// blindly. Returns whether the condition held.
template <typename Condition>
bool WaitFor(Condition condition, absl::Duration timeout,
             absl::Duration poll = absl::Milliseconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(poll);
  }
}

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_HARNESS_PROCESS_H_
