// How task lists (`shoal node ps`, and `service ps` later) are shown: docker's columns ID, NAME,
// IMAGE, NODE, DESIRED STATE, CURRENT STATE, ERROR, PORTS, with the history of a slot indented
// under its newest task.
#ifndef SHOAL_CLI_TASK_FORMAT_H_
#define SHOAL_CLI_TASK_FORMAT_H_

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "objects.pb.h"

namespace shoal::cli {

struct TaskRow {
  std::string id;
  std::string name;  // "web.1" (" \_ web.1" for older tasks of the slot)
  std::string image;
  std::string node;           // the node's hostname, else its ID
  std::string desired_state;  // "Running", "Shutdown", …
  std::string current_state;  // "Running 5 minutes ago"
  std::string error;          // quoted, as docker: "\"no suitable node\""
  std::string ports;          // host-mode published ports: "*:8080->80/tcp"
};

// The task's display name: "<service>.<slot>", or "<service>.<node ID>" for global services.
std::string TaskDisplayName(const api::Task& task);

// Orders `tasks` as docker does (by display name, then newest first) and builds their rows.
// `trunc`: IDs cut to 12 characters, image digests and long errors shortened, as docker does
// without --no-trunc. `node_name` maps a node ID to what the NODE column shows.
std::vector<TaskRow> MakeTaskRows(const std::vector<api::Task>& tasks,
                                  const std::function<std::string(const std::string&)>& node_name,
                                  absl::Time now, bool trunc);

// `--format json`: {"ID", "Name", "Image", "Node", "DesiredState", "CurrentState", "Error",
// "Ports"}.
nlohmann::json TaskRowJson(const TaskRow& row);

void PrintTaskTable(std::ostream& out, const std::vector<TaskRow>& rows);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_TASK_FORMAT_H_
