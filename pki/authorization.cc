#include "pki/authorization.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace shoal::pki {
namespace {

// Services a worker's agent needs; everything else is for managers only.
constexpr absl::string_view kWorkerServices[] = {
    "shoal.api.Dispatcher",
    "shoal.api.NodeCA",
    "shoal.api.LogBroker",
};

}  // namespace

absl::Status AuthorizeRole(const NodeIdentity& caller, absl::Span<const Role> allowed_roles,
                           absl::string_view expected_cluster_id, const IsRemovedFn& is_removed) {
  if (!expected_cluster_id.empty() && caller.cluster_id != expected_cluster_id) {
    return absl::PermissionDeniedError(
        absl::StrCat("permission denied: the caller's certificate (node ", caller.node_id,
                     ") belongs to cluster ", caller.cluster_id, ", not to this cluster (",
                     std::string(expected_cluster_id), ")"));
  }
  if (is_removed && is_removed(caller.node_id)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "permission denied: node ", caller.node_id,
        " has been removed from the swarm; it must leave (shoal swarm leave --force) and join "
        "again with a join token"));
  }
  if (std::find(allowed_roles.begin(), allowed_roles.end(), caller.role) != allowed_roles.end()) {
    return absl::OkStatus();
  }
  std::vector<std::string> names;
  for (Role r : allowed_roles) names.push_back(RoleName(r));
  return absl::PermissionDeniedError(absl::StrCat(
      "permission denied: this call needs a ",
      names.empty() ? std::string("(no role may make it)") : absl::StrJoin(names, " or "),
      " certificate (caller node ", caller.node_id, " is ", RoleName(caller.role), ")"));
}

std::vector<Role> AllowedRolesForMethod(absl::string_view full_method) {
  absl::ConsumePrefix(&full_method, "/");
  const absl::string_view service = full_method.substr(0, full_method.find('/'));
  for (absl::string_view s : kWorkerServices) {
    if (service == s) return {Role::kWorker, Role::kManager};
  }
  return {Role::kManager};
}

}  // namespace shoal::pki
