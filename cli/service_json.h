// Services, secrets and configs in Docker's JSON shape, for `inspect`:
//   Service: ID, Version.Index, CreatedAt, UpdatedAt, Spec{Name, Labels, TaskTemplate{
//     ContainerSpec, Resources, RestartPolicy, Placement, Networks, LogDriver, ForceUpdate,
//     Runtime}, Mode, UpdateConfig, RollbackConfig, EndpointSpec}, PreviousSpec, Endpoint,
//     UpdateStatus, JobStatus.
//   Secret / Config: ID, Version.Index, CreatedAt, UpdatedAt, Spec{Name, Labels[, Data]}.
// Enum values use Docker's spellings ("on-failure", "stop-first", "ingress"), durations are
// nanoseconds and bytes base64, as Go marshals them. Where the spec leaves a policy unset, the
// default the managers apply is shown (as Docker's daemon fills them in).
#ifndef SHOAL_CLI_SERVICE_JSON_H_
#define SHOAL_CLI_SERVICE_JSON_H_

#include <string>

#include "nlohmann/json.hpp"
#include "objects.pb.h"

namespace shoal::cli {

nlohmann::ordered_json ServiceJson(const api::Service& service);
nlohmann::ordered_json ServiceSpecJson(const api::ServiceSpec& spec);
// Secret data is never returned by the managers, so a secret's Spec has no Data.
nlohmann::ordered_json SecretJson(const api::Secret& secret);
nlohmann::ordered_json ConfigJson(const api::Config& config);

// Docker's names for the service's settings.
std::string RestartConditionName(api::RestartPolicy::Condition c);  // "any", "on-failure", "none"
std::string FailureActionName(api::UpdateConfig::FailureAction a);  // "pause", "continue", …
std::string UpdateOrderName(api::UpdateConfig::Order o);            // "stop-first", …
std::string EndpointModeName(api::EndpointSpec::Mode m);            // "vip", "dnsrr"
std::string PortProtocolName(api::PortConfig::Protocol p);          // "tcp", "udp", "sctp"
std::string PublishModeName(api::PortConfig::PublishMode m);        // "ingress", "host"
std::string MountTypeName(api::Mount::Type t);                      // "bind", "volume", "tmpfs"
std::string UpdateStateName(api::UpdateStatus::State s);            // "updating", …

// The policies in effect: the spec's, else the defaults the managers apply.
api::RestartPolicy EffectiveRestartPolicy(const api::TaskSpec& task);
api::UpdateConfig EffectiveUpdateConfig(const api::ServiceSpec& spec, bool rollback);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SERVICE_JSON_H_
