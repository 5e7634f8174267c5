// A Node as `shoal node inspect` prints it: Docker's JSON shape (ID, Version.Index, CreatedAt,
// UpdatedAt, Spec{Name, Labels, Role, Availability}, Description{Hostname, Platform, Resources,
// Engine, TLSInfo}, Status{State, Message, Addr}, ManagerStatus{Leader, Reachability, Addr}).
#ifndef SHOAL_CLI_NODE_JSON_H_
#define SHOAL_CLI_NODE_JSON_H_

#include "nlohmann/json.hpp"
#include "objects.pb.h"

namespace shoal::cli {

// Fields keep Docker's order. Spec.Role is the desired role (what promote/demote set), as in
// Docker; ManagerStatus is present only for nodes that are Raft members. Optional fields are
// left out when empty, as Docker's `omitempty` does.
nlohmann::ordered_json NodeJson(const api::Node& node);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_NODE_JSON_H_
