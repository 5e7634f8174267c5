#include "cli/json_util.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace shoal::cli {
namespace {

std::string EnumName(const std::string& full, const std::string& prefix) {
  std::string name = full;
  if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  return absl::AsciiStrToLower(name);
}

}  // namespace

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string Rfc3339Nano(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "0001-01-01T00:00:00Z";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", FromProto(ts), absl::UTCTimeZone());
}

std::string GoTimeString(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "0001-01-01 00:00:00 +0000 UTC";
  return absl::FormatTime("%Y-%m-%d %H:%M:%E*S +0000 UTC", FromProto(ts), absl::UTCTimeZone());
}

nlohmann::ordered_json LabelsJson(const google::protobuf::Map<std::string, std::string>& labels) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  // google::protobuf::Map has no order; sort so that output is stable.
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  for (const auto& [k, v] : sorted) out[k] = v;
  return out;
}

std::string Base64(const std::string& bytes) { return absl::Base64Escape(bytes); }

std::string RoleName(api::NodeRole role) {
  return EnumName(api::NodeRole_Name(role), "NODE_ROLE_");
}

std::string AvailabilityName(api::NodeAvailability availability) {
  return EnumName(api::NodeAvailability_Name(availability), "NODE_AVAILABILITY_");
}

std::string NodeStateName(api::NodeStatus::State state) {
  return EnumName(api::NodeStatus::State_Name(state), "");
}

std::string ReachabilityName(api::ManagerStatus::Reachability r) {
  return EnumName(api::ManagerStatus::Reachability_Name(r), "");
}

std::string TaskStateName(api::TaskState state) {
  return EnumName(api::TaskState_Name(state), "TASK_STATE_");
}

std::string Capitalize(const std::string& s) {
  if (s.empty()) return s;
  std::string out = s;
  out[0] = absl::ascii_toupper(out[0]);
  return out;
}

absl::StatusOr<api::NodeRole> ParseRole(const std::string& text) {
  if (text == "worker") return api::NODE_ROLE_WORKER;
  if (text == "manager") return api::NODE_ROLE_MANAGER;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid role \"", text, "\": use worker or manager"));
}

absl::StatusOr<api::NodeAvailability> ParseAvailability(const std::string& text) {
  if (text == "active") return api::NODE_AVAILABILITY_ACTIVE;
  if (text == "pause") return api::NODE_AVAILABILITY_PAUSE;
  if (text == "drain") return api::NODE_AVAILABILITY_DRAIN;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid availability \"", text, "\": use active, pause or drain"));
}

}  // namespace shoal::cli
