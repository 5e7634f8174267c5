// From the flags of `shoal service create` and `shoal service update` to a ServiceSpec, as docker
// translates its own (same flag names, same value syntax). Pure functions: no RPCs, no I/O; the
// commands (service_command.cc) collect the flags and send the result.
//
// Every flag is described once in ServiceFlagTable(): its name, short name, kind, and whether
// `create` and/or `update` offer it. The commands register the table with CLI11 and hand over
// the flags that were given as ServiceFlags, keyed by long name without "--".
//
// Errors are INVALID_ARGUMENT "--FLAG: what is wrong with the value; what to write instead", e.g.
//   --publish: invalid port "80:http": use [PUBLISHED:]TARGET[/PROTOCOL] (e.g. 8080:80/udp) or
//   published=8080,target=80,protocol=tcp,mode=ingress|host
// What needs the cluster (names of secrets, configs and networks existing; constraints parsing;
// limits) is checked by the managers.
#ifndef SHOAL_CLI_SERVICE_SPEC_H_
#define SHOAL_CLI_SERVICE_SPEC_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "specs.pb.h"

namespace shoal::cli {

enum class FlagKind {
  kValue,  // --name VALUE; the last one counts
  kList,   // --env A=1 --env B=2: repeatable, every value counts
  kBool,   // --tty, --tty=false
};

struct ServiceFlagInfo {
  const char* name;        // long name without "--"
  const char* short_name;  // one letter without "-", or ""
  FlagKind kind;
  bool create;  // offered by `service create`
  bool update;  // offered by `service update`
  const char* help;
};

// Every spec flag of `service create` and `service update` (not the command flags --detach,
// --quiet and --rollback).
const std::vector<ServiceFlagInfo>& ServiceFlagTable();

// The flags given on one command line. Only flags that were given appear.
struct ServiceFlags {
  std::map<std::string, std::string> values;              // kValue flags
  std::map<std::string, std::vector<std::string>> lists;  // kList flags
  std::map<std::string, bool> bools;                      // kBool flags

  // `service create IMAGE [COMMAND] [ARG...]`: the image and what follows it (the container's
  // args, as docker: they replace the image's CMD).
  std::string image;
  std::vector<std::string> args;

  // `service update --network-rm NAME`: the IDs the named networks have (the spec holds network
  // IDs); filled by the command. A name missing here is matched as given.
  std::map<std::string, std::string> network_ids;

  // Where `--env KEY` (without "=") finds KEY's value, as docker takes it from the CLI's own
  // environment; nullptr = the process environment. A KEY it does not know stays "KEY".
  std::function<std::optional<std::string>(const std::string& key)> lookup_env;
};

// `service create`: the spec the flags describe. Unset parts stay unset (the managers apply
// docker's defaults): replicated mode with 1 replica when neither --mode nor --replicas is given;
// update/rollback/restart configs only when one of their flags is given (then filled from
// docker's defaults: parallelism 1, failure action pause, monitor 5 s, order stop-first).
absl::StatusOr<api::ServiceSpec> BuildServiceSpec(const ServiceFlags& flags);

// `service update`: changes `spec` (the service's current spec) as the flags say. Single-valued
// flags replace; list flags come as FLAG-add / FLAG-rm pairs. Removing what is not there is not
// an error (docker's behaviour). For --publish, --secret, --config and --network, removals happen
// before additions, so that `--publish-rm 80 --publish-add 9090:80` replaces a port; for the
// others additions come first, and an added key replaces the same key's old value (--env-add,
// --label-add, --mount-add by target). `--force` bumps task_template.force_update, which
// redeploys the tasks even when nothing else changed. `--replicas` of a global service, like
// every flag that does not fit the service's mode, is INVALID_ARGUMENT.
absl::Status UpdateServiceSpec(const ServiceFlags& flags, api::ServiceSpec* spec);

// --- The value parsers, exposed for tests and for other commands ------------------------------

// --publish: "[PUBLISHED:]TARGET[/PROTOCOL]" (ranges "8080-8081:80-81" give several ports), or
// "published=P,target=T,protocol=tcp|udp|sctp,mode=ingress|host".
absl::StatusOr<std::vector<api::PortConfig>> ParsePublish(const std::string& text);

// --secret / --config: "NAME", or "source=NAME,target=PATH,uid=U,gid=G,mode=0400".
absl::StatusOr<api::SecretReference> ParseSecretReference(const std::string& text);
absl::StatusOr<api::ConfigReference> ParseConfigReference(const std::string& text);

// --mount: "type=bind|volume|tmpfs,source=S,target=T,readonly" and docker's per-type options
// (bind-propagation, bind-nonrecursive, volume-nocopy, volume-label, volume-driver, volume-opt,
// tmpfs-size, tmpfs-mode).
absl::StatusOr<api::Mount> ParseMount(const std::string& text);

// --network: "NAME", or "name=NAME,alias=A,driver-opt=k=v".
absl::StatusOr<api::NetworkAttachmentConfig> ParseNetworkAttachment(const std::string& text);

// --placement-pref: "spread=node.labels.zone".
absl::StatusOr<api::PlacementPreference> ParsePlacementPreference(const std::string& text);

// --reserve-cpu / --limit-cpu: a decimal number of CPUs ("0.5", "2") as nano-CPUs.
absl::StatusOr<int64_t> ParseNanoCpus(const std::string& text);

// --reserve-memory / --limit-memory / tmpfs-size: docker's RAMInBytes, binary units, case
// insensitive: "512", "512k", "512m", "1g", "1.5g", "2t", "512MiB", "512mb".
absl::StatusOr<int64_t> ParseMemoryBytes(const std::string& text);

// --entrypoint / --args: words as a POSIX shell splits them ('single', "double", backslash).
absl::StatusOr<std::vector<std::string>> SplitShellWords(const std::string& text);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SERVICE_SPEC_H_
