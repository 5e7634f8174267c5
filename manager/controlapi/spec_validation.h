// Validation of the specs users write through the Control API — services, secrets and configs —
// as far as it needs no stored state. What needs the store (names taken, referenced secrets,
// configs and networks, ports published by other services) is checked by ControlApi inside the
// write's transaction.
//
// Every error is INVALID_ARGUMENT with a message naming the field (by the CLI flag that sets it,
// where there is one), the bad value, and what is allowed, e.g.
//   invalid service name "web.1": use 1 to 63 letters, digits, '-' or '_', starting and ending
//   with a letter or digit (the name is the service's DNS name)
// The first error found is returned.
//
// Pure functions; safe from any thread.
#ifndef SHOAL_MANAGER_CONTROLAPI_SPEC_VALIDATION_H_
#define SHOAL_MANAGER_CONTROLAPI_SPEC_VALIDATION_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/specs.pb.h"

namespace shoal::manager {

// Service names are DNS labels (Docker's rule): letters, digits, '-' and '_', starting and ending
// with a letter or digit. No '.', which separates the parts of task names ("web.1.<id>").
inline constexpr size_t kMaxServiceNameLength = 63;
// Secret and config names (Docker's rule): letters, digits, '-', '_' and '.', starting and
// ending with a letter or digit.
inline constexpr size_t kMaxSecretNameLength = 64;
inline constexpr size_t kMaxSecretDataBytes = 500 * 1024;
inline constexpr size_t kMaxConfigDataBytes = 1000 * 1024;
// Upper bound on replicas, max-concurrent and total-completions: far above any real swarm, low
// enough to catch a negative count that reached us as a huge unsigned number.
inline constexpr uint64_t kMaxReplicas = 1000000;
// Docker's minimums for non-zero CPU and memory amounts.
inline constexpr int64_t kMinNanoCpus = 1000000;             // 0.001 CPU
inline constexpr int64_t kMinMemoryBytes = 4 * 1024 * 1024;  // 4 MiB

absl::Status ValidateServiceName(absl::string_view name);

// Everything about a service spec that does not depend on the store: name, labels, image, mounts,
// health check, secret/config/network references being well-formed, resources (non-negative,
// reservations within limits), restart policy, placement (constraints parse with
// scheduler::ParseConstraint; spread preferences), mode (exactly one; job rules), update and
// rollback configs, endpoint (ports in range, no published port/protocol twice, no ingress ports
// with DNSRR).
absl::Status ValidateServiceSpec(const api::ServiceSpec& spec);

// Name (Docker's secret name rule), labels, and data: 1 byte to kMaxSecretDataBytes.
absl::Status ValidateSecretSpec(const api::SecretSpec& spec);
// The same, with data up to kMaxConfigDataBytes.
absl::Status ValidateConfigSpec(const api::ConfigSpec& spec);

// "replicated", "global", "replicated-job", "global-job", or "none" — the --mode value.
const char* ServiceModeName(const api::ServiceSpec& spec);
bool IsJob(const api::ServiceSpec& spec);

// "tcp", "udp", "sctp".
const char* ProtocolName(api::PortConfig::Protocol protocol);

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_CONTROLAPI_SPEC_VALIDATION_H_
