#include "cli/task_format.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/duration.h"
#include "cli/json_util.h"
#include "cli/output.h"

namespace shoal::cli {
namespace {

constexpr size_t kTruncatedIdLength = 12;
constexpr size_t kMaxErrorLength = 30;

std::string ProtocolName(api::PortConfig::Protocol p) {
  return absl::AsciiStrToLower(api::PortConfig::Protocol_Name(p));
}

std::string Ports(const api::Task& task) {
  std::vector<std::string> parts;
  for (const api::PortConfig& p : task.status().port_status().ports()) {
    if (p.publish_mode() != api::PortConfig::HOST) continue;
    parts.push_back(absl::StrCat("*:", p.published_port(), "->", p.target_port(), "/",
                                 ProtocolName(p.protocol())));
  }
  return absl::StrJoin(parts, ", ");
}

std::string Image(const api::Task& task, bool trunc) {
  std::string image = task.spec().container_spec().image();
  if (trunc) {
    const size_t at = image.find('@');
    if (at != std::string::npos) image = image.substr(0, at);
  }
  return image;
}

std::string CurrentState(const api::Task& task, absl::Time now) {
  std::string state = Capitalize(TaskStateName(task.status().state()));
  if (!task.status().has_timestamp()) return state;
  const absl::Duration since = now - FromProto(task.status().timestamp());
  return absl::StrCat(state, " ", absl::AsciiStrToLower(HumanDuration(since)), " ago");
}

std::string Error(const api::Task& task, bool trunc) {
  std::string err = task.status().err();
  if (err.empty()) return err;
  if (trunc && err.size() > kMaxErrorLength) {
    err = err.substr(0, kMaxErrorLength - 1) + "\xe2\x80\xa6";  // …
  }
  return absl::StrCat("\"", err, "\"");
}

}  // namespace

std::string TaskDisplayName(const api::Task& task) {
  const std::string& service = task.service_annotations().name();
  if (task.slot() != 0) return absl::StrCat(service, ".", task.slot());
  return absl::StrCat(service, ".", task.node_id());
}

std::vector<TaskRow> MakeTaskRows(const std::vector<api::Task>& tasks,
                                  const std::function<std::string(const std::string&)>& node_name,
                                  absl::Time now, bool trunc) {
  std::vector<std::pair<std::string, const api::Task*>> named;
  named.reserve(tasks.size());
  for (const api::Task& t : tasks) named.emplace_back(TaskDisplayName(t), &t);
  std::stable_sort(named.begin(), named.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    const auto& ta = a.second->meta().created_at();
    const auto& tb = b.second->meta().created_at();
    if (ta.seconds() != tb.seconds()) return ta.seconds() > tb.seconds();
    return ta.nanos() > tb.nanos();
  });
  std::vector<TaskRow> rows;
  std::string previous;
  for (const auto& [name, task] : named) {
    TaskRow row;
    row.id = trunc ? task->id().substr(0, kTruncatedIdLength) : task->id();
    row.name = name == previous ? " \\_ " + name : name;
    previous = name;
    row.image = Image(*task, trunc);
    row.node = task->node_id().empty() ? "" : node_name(task->node_id());
    row.desired_state = Capitalize(TaskStateName(task->desired_state()));
    row.current_state = CurrentState(*task, now);
    row.error = Error(*task, trunc);
    row.ports = Ports(*task);
    rows.push_back(std::move(row));
  }
  return rows;
}

nlohmann::json TaskRowJson(const TaskRow& row) {
  return {{"ID", row.id},
          {"Name", row.name},
          {"Image", row.image},
          {"Node", row.node},
          {"DesiredState", row.desired_state},
          {"CurrentState", row.current_state},
          {"Error", row.error},
          {"Ports", row.ports}};
}

void PrintTaskTable(std::ostream& out, const std::vector<TaskRow>& rows) {
  Table table({"ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"});
  for (const TaskRow& r : rows) {
    table.AddRow(
        {r.id, r.name, r.image, r.node, r.desired_state, r.current_state, r.error, r.ports});
  }
  table.Print(out);
}

}  // namespace shoal::cli
