// Processes for the benchmark runner: child processes (common/child_process.h, so an
// interrupted benchmark leaves no servers behind), commands whose output is captured, and
// temporary directories.
#ifndef SHOAL_BENCH_RAFT_PROCESS_H_
#define SHOAL_BENCH_RAFT_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/child_process.h"

namespace shoal::bench {

// Benchmark servers and load generators: see common/child_process.h.
using Process = ::shoal::ChildProcess;
using ::shoal::ProcessCpuSeconds;

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

using ::shoal::PickFreeLoopbackPort;

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_RAFT_PROCESS_H_
