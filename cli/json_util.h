// Pieces shared by the Docker-shaped JSON documents of `inspect` and `info`: times, labels,
// byte strings, and the API's enum values under Docker's names.
#ifndef SHOAL_CLI_JSON_UTIL_H_
#define SHOAL_CLI_JSON_UTIL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/map.h"
#include "google/protobuf/timestamp.pb.h"
#include "nlohmann/json.hpp"
#include "objects.pb.h"

namespace shoal::cli {

// RFC 3339 with nanoseconds and trailing zeros dropped, in UTC ("2024-05-01T10:02:03.5Z"), as
// Go marshals a time.Time. An unset timestamp is Go's zero time, "0001-01-01T00:00:00Z".
std::string Rfc3339Nano(const google::protobuf::Timestamp& ts);

// Go's time.Time.String() in UTC: "2024-05-01 10:02:03.5 +0000 UTC" (used by --pretty).
std::string GoTimeString(const google::protobuf::Timestamp& ts);

absl::Time FromProto(const google::protobuf::Timestamp& ts);

// A label map as a JSON object ({} when empty).
nlohmann::ordered_json LabelsJson(const google::protobuf::Map<std::string, std::string>& labels);

// Bytes as Go's encoding/json writes []byte: standard base64 with padding.
std::string Base64(const std::string& bytes);

// Docker's spelling of the API's enum values: lower case without the type prefix.
std::string RoleName(api::NodeRole role);                          // "worker", "manager"
std::string AvailabilityName(api::NodeAvailability availability);  // "active", "pause", "drain"
std::string NodeStateName(api::NodeStatus::State state);           // "ready", "down", …
std::string ReachabilityName(api::ManagerStatus::Reachability r);  // "reachable", …
std::string TaskStateName(api::TaskState state);                   // "running", "shutdown", …

// Docker's PrettyPrint of such a name: the first letter upper-cased ("ready" → "Ready").
std::string Capitalize(const std::string& s);

// Parse the names users type; INVALID_ARGUMENT naming the accepted values otherwise.
absl::StatusOr<api::NodeRole> ParseRole(const std::string& text);
absl::StatusOr<api::NodeAvailability> ParseAvailability(const std::string& text);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_JSON_UTIL_H_
