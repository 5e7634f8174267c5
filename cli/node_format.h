// How `shoal node ls` and `shoal node inspect --pretty` show nodes, as docker does.
#ifndef SHOAL_CLI_NODE_FORMAT_H_
#define SHOAL_CLI_NODE_FORMAT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "objects.pb.h"

namespace shoal::cli {

// One line of `node ls`.
struct NodeListRow {
  std::string id;
  bool self = false;  // The node the CLI is talking to.
  std::string hostname;
  std::string status;          // "Ready", "Down", "Unknown", "Disconnected"
  std::string availability;    // "Active", "Pause", "Drain"
  std::string manager_status;  // "Leader", "Reachable", "Unreachable", "Unknown"; "" for workers
  std::string engine_version;
};

NodeListRow MakeNodeListRow(const api::Node& node, const std::string& self_node_id);

// `node ls --format json`: {"ID", "Self", "Hostname", "Status", "Availability", "ManagerStatus",
// "EngineVersion"}; ID without the self marker.
nlohmann::json NodeListRowJson(const NodeListRow& row);

// Columns ID (with " *" after the local node's), HOSTNAME, STATUS, AVAILABILITY,
// MANAGER STATUS, ENGINE VERSION.
void PrintNodeTable(std::ostream& out, const std::vector<NodeListRow>& rows);

// Docker's order for `node ls`: hostnames in natural order ("node2" before "node10"), then IDs.
void SortNodesForList(std::vector<api::Node>* nodes);
bool NaturalLess(const std::string& a, const std::string& b);

// `node inspect --pretty` for one node.
void PrintNodePretty(std::ostream& out, const api::Node& node);

// Docker's binary size with four significant digits: "512B", "7.704GiB".
std::string BytesSize(int64_t bytes);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_NODE_FORMAT_H_
