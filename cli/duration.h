// Durations on the command line and in output: Go's syntax (as docker's flags) plus days, and
// docker's human-readable approximations ("3 months", "5 seconds").
#ifndef SHOAL_CLI_DURATION_H_
#define SHOAL_CLI_DURATION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"

namespace shoal::cli {

// Parses "2160h", "1h30m", "45s", "1.5h", "500ms", "0", and also days: "90d", "1d12h".
// Units: ns, us (or µs), ms, s, m, h, d. Every number needs a unit except a lone "0".
// Returns INVALID_ARGUMENT with an example of the accepted forms otherwise (negative durations
// included: no flag of shoal takes one).
absl::StatusOr<absl::Duration> ParseDuration(const std::string& text);

// Docker's approximation of a duration for people: "Less than a second", "1 second",
// "5 seconds", "About a minute", "3 minutes", "About an hour", "5 hours", "3 days", "2 weeks",
// "3 months", "2 years".
std::string HumanDuration(absl::Duration d);

// Go's time.Duration.String(), as docker prints durations in `inspect --pretty`: "0s", "500ms",
// "1.5s", "1m30s", "1h0m0s".
std::string GoDurationString(absl::Duration d);

absl::Duration FromProto(const google::protobuf::Duration& d);
google::protobuf::Duration ToProto(absl::Duration d);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_DURATION_H_
