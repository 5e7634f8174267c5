// worker_state: the agent's own record of its tasks, <state-dir>/worker/tasks.json.
//
// One JSON file, replaced atomically (common/files.h WriteFileAtomic): for every task the worker
// holds, the task as last assigned, the latest status the agent reached for it, and whether it is
// still assigned (a task that is not is being stopped and removed). A restarted agent loads it to
// pick its tasks up before a session is back — adopting what the executor still runs — and to
// resend the latest statuses on its first session.
//
// Format: {"version": 1, "tasks": [{"task": <api.Task as proto JSON>, "status": <api.TaskStatus>,
// "assigned": true}, ...]}.
//
// Thread-safety: free functions; callers serialise writes to one path.
#ifndef SHOAL_AGENT_WORKER_STATE_H_
#define SHOAL_AGENT_WORKER_STATE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/objects.pb.h"

namespace shoal::agent {

struct TaskRecord {
  api::Task task;
  api::TaskStatus status;
  bool assigned = true;
};

// The file's name inside <state-dir>/worker/.
inline constexpr char kWorkerStateFile[] = "tasks.json";

std::string SerializeWorkerState(const std::vector<TaskRecord>& records);
// Errors: DATA_LOSS naming what is wrong.
absl::StatusOr<std::vector<TaskRecord>> ParseWorkerState(const std::string& data);

// Reads `path`; no file is an empty record. Errors: unreadable (the message names the file).
absl::StatusOr<std::vector<TaskRecord>> LoadWorkerState(const std::string& path);
// Writes `path` atomically (mode 0600), creating its directory (0700) if needed.
absl::Status SaveWorkerState(const std::string& path, const std::vector<TaskRecord>& records);

}  // namespace shoal::agent

#endif  // SHOAL_AGENT_WORKER_STATE_H_
