#include "agent/worker_state.h"

#include <google/protobuf/util/json_util.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace shoal::agent {
namespace {

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

bool FromJson(const nlohmann::json& j, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // Written by a newer agent.
  return google::protobuf::util::JsonStringToMessage(j.dump(), message, options).ok();
}

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string SerializeWorkerState(const std::vector<TaskRecord>& records) {
  // Proto JSON is spliced in as is: parsing it back into nlohmann only to print it again would
  // double the cost for thousands of tasks.
  std::string out = "{\"version\":1,\"tasks\":[";
  for (size_t i = 0; i < records.size(); ++i) {
    if (i > 0) out += ",\n";
    absl::StrAppend(&out, "{\"assigned\":", records[i].assigned ? "true" : "false",
                    ",\"task\":", ToJson(records[i].task),
                    ",\"status\":", ToJson(records[i].status), "}");
  }
  out += "]}\n";
  return out;
}

absl::StatusOr<std::vector<TaskRecord>> ParseWorkerState(const std::string& data) {
  std::vector<TaskRecord> records;
  try {
    const nlohmann::json j = nlohmann::json::parse(data);
    if (j.value("version", 0) != 1) {
      return absl::DataLossError("unknown version (this agent reads version 1)");
    }
    for (const nlohmann::json& entry : j.at("tasks")) {
      TaskRecord record;
      record.assigned = entry.value("assigned", true);
      if (!FromJson(entry.at("task"), &record.task) ||
          !FromJson(entry.at("status"), &record.status)) {
        return absl::DataLossError("a task entry is not a valid task and status");
      }
      if (record.task.id().empty()) return absl::DataLossError("a task entry has no task ID");
      records.push_back(std::move(record));
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("not valid JSON: ", e.what()));
  }
  return records;
}

absl::StatusOr<std::vector<TaskRecord>> LoadWorkerState(const std::string& path) {
  absl::StatusOr<std::string> data = ReadFile(path);
  if (absl::IsNotFound(data.status())) return std::vector<TaskRecord>{};
  if (!data.ok()) return data.status();
  absl::StatusOr<std::vector<TaskRecord>> records = ParseWorkerState(*data);
  if (!records.ok()) {
    return absl::DataLossError(absl::StrCat("the agent's task records in ", path,
                                            " are unreadable: ", records.status().message()));
  }
  return records;
}

absl::Status SaveWorkerState(const std::string& path, const std::vector<TaskRecord>& records) {
  if (absl::Status s = MakeDirectories(Parent(path), 0700); !s.ok()) return s;
  return WriteFileAtomic(path, SerializeWorkerState(records), 0600);
}

}  // namespace shoal::agent
