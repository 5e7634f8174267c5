// StateDir: a node's persistent state directory, held exclusively by one shoald.
//
// Layout (as Docker's /var/lib/docker/swarm, see docs/interface.md):
//   <dir>/shoald.lock      held with flock() while a shoald runs; contains its PID
//   <dir>/certificates/    node identity and the cluster's root CA
//   <dir>/raft/            Raft log and snapshots (managers)
//   <dir>/worker/          the agent's own records
#ifndef SHOAL_NODE_STATE_DIR_H_
#define SHOAL_NODE_STATE_DIR_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/unique_fd.h"

namespace shoal::node {

class StateDir {
 public:
  // Creates `path` (and parents) with mode 0700 if missing, tightens an existing directory to
  // 0700, and takes the lock. Fails with FAILED_PRECONDITION naming the other process's PID when
  // another shoald holds the directory.
  static absl::StatusOr<StateDir> Open(const std::string& path);

  StateDir(StateDir&&) = default;
  StateDir& operator=(StateDir&&) = default;

  const std::string& path() const { return path_; }
  // The path of a file or directory inside the state directory.
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  StateDir(std::string path, UniqueFd lock) : path_(std::move(path)), lock_(std::move(lock)) {}

  std::string path_;
  UniqueFd lock_;  // The flock is released when this closes (also when the process dies).
};

// Creates a directory and its missing parents with `mode` (parents get 0755).
absl::Status MakeDirs(const std::string& path, unsigned mode);

}  // namespace shoal::node

#endif  // SHOAL_NODE_STATE_DIR_H_
