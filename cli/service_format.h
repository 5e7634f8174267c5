// How `shoal service ls` and `shoal service inspect --pretty` show services, as docker does.
#ifndef SHOAL_CLI_SERVICE_FORMAT_H_
#define SHOAL_CLI_SERVICE_FORMAT_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "control.pb.h"
#include "nlohmann/json.hpp"
#include "objects.pb.h"

namespace shoal::cli {

// One line of `service ls`.
struct ServiceListRow {
  std::string id;  // 12 characters
  std::string name;
  std::string mode;      // "replicated", "global", "replicated job", "global job"
  std::string replicas;  // "2/3", "2/3 (max 1 per node)", "1/1 (3/5 completed)"
  std::string image;     // without its digest
  std::string ports;     // ingress ports: "*:8080->80/tcp, *:9000-9001->9000-9001/udp"
};

ServiceListRow MakeServiceListRow(const api::Service& service, const api::ServiceStatus& status);

// The REPLICAS column, as docker: "running/desired", with " (max N per node)" for replicated
// services that set it; jobs add " (completed/total completed)".
std::string ReplicasText(const api::ServiceSpec& spec, const api::ServiceStatus& status);

// The PORTS column: the service's ingress ports (as allocated, Service.endpoint.ports) sorted by
// protocol and published port, consecutive ports merged into ranges.
std::string IngressPortsText(const api::Endpoint& endpoint);

// The counts of `status` worked out from the service's tasks, for a daemon that does not send
// them: running = tasks desired RUNNING whose state is RUNNING, on nodes that are not DOWN;
// desired = replicas, the nodes holding a task meant to run (global), or for jobs what is left
// to run; completed = the current job iteration's completed tasks.
api::ServiceStatus CountServiceTasks(const api::Service& service,
                                     const std::vector<api::Task>& tasks,
                                     const std::vector<api::Node>& nodes);

// `service ls --format json`: {"ID", "Name", "Mode", "Replicas", "Image", "Ports"}.
nlohmann::json ServiceListRowJson(const ServiceListRow& row);

void PrintServiceTable(std::ostream& out, const std::vector<ServiceListRow>& rows);

// `service inspect --pretty` for one service. `network_name` maps a network ID to its name (or
// returns the ID); `now` dates the update status ("5 minutes ago").
void PrintServicePretty(std::ostream& out, const api::Service& service,
                        const std::function<std::string(const std::string&)>& network_name,
                        absl::Time now);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SERVICE_FORMAT_H_
