// Turning what a user typed (an ID, an ID prefix, a name) into one object, as docker does:
// exact ID first, then exact name, then a unique ID prefix. Ambiguity is an error that says
// what to type instead; nothing is ever picked at random.
//
// The lookup logic is generic (ObjectLookup<T> + Resolve) so that services, networks, secrets
// and configs reuse it with their own Get/List calls; ResolveNode wires it to the node calls and
// adds "self".
#ifndef SHOAL_CLI_RESOLVE_H_
#define SHOAL_CLI_RESOLVE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/context.h"
#include "grpcpp/grpcpp.h"
#include "objects.pb.h"

namespace shoal::cli {

// How to find objects of one kind. Each function returns the RPC's status.
template <typename T>
struct ObjectLookup {
  std::string kind;          // "node", "service", … (used in messages)
  std::string list_command;  // "shoal node ls": how users see what exists
  // The object with exactly this ID; NOT_FOUND (or INVALID_ARGUMENT) when there is none.
  std::function<grpc::Status(const std::string& id, T* out)> get;
  // Objects with exactly this name (for nodes: hostname or spec name).
  std::function<grpc::Status(const std::string& name, std::vector<T>* out)> list_by_name;
  // Objects whose ID starts with this prefix.
  std::function<grpc::Status(const std::string& prefix, std::vector<T>* out)> list_by_id_prefix;
};

// Finds the one object `ref` names: exact ID, else exact name, else unique ID prefix.
// NOT_FOUND "node X not found …" when nothing matches; INVALID_ARGUMENT "node name X is
// ambiguous (N matches): use the node ID" (or "… ID prefix X is ambiguous …") when several do.
// Any other RPC error is returned as it came.
template <typename T>
grpc::Status Resolve(const ObjectLookup<T>& lookup, const std::string& ref, T* out) {
  if (ref.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("empty ", lookup.kind, " name or ID"));
  }
  grpc::Status s = lookup.get(ref, out);
  if (s.ok()) return s;
  if (s.error_code() != grpc::StatusCode::NOT_FOUND &&
      s.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
    return s;
  }
  std::vector<T> matches;
  s = lookup.list_by_name(ref, &matches);
  if (!s.ok()) return s;
  if (matches.size() > 1) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat(lookup.kind, " name ", ref, " is ambiguous (", matches.size(),
                                     " matches): use the ", lookup.kind, " ID"));
  }
  if (matches.empty()) {
    s = lookup.list_by_id_prefix(ref, &matches);
    if (!s.ok()) return s;
    if (matches.size() > 1) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat(lookup.kind, " ID prefix ", ref, " is ambiguous (",
                                       matches.size(), " matches): give more of the ID"));
    }
  }
  if (matches.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat(lookup.kind, " ", ref, " not found (`", lookup.list_command,
                                     "` lists the ", lookup.kind, "s)"));
  }
  *out = std::move(matches.front());
  return grpc::Status::OK;
}

// The lookups over the Control API, one per kind.
ObjectLookup<api::Node> NodeLookup(api::Control::Stub& control);
ObjectLookup<api::Service> ServiceLookup(api::Control::Stub& control);
ObjectLookup<api::Secret> SecretLookup(api::Control::Stub& control);
ObjectLookup<api::Config> ConfigLookup(api::Control::Stub& control);
ObjectLookup<api::Network> NetworkLookup(api::Control::Stub& control);

// The object `ref` names (exact ID, name, unique ID prefix). Throws CommandError otherwise.
api::Service ResolveService(Context& ctx, const std::string& ref);
api::Secret ResolveSecret(Context& ctx, const std::string& ref);
api::Config ResolveConfig(Context& ctx, const std::string& ref);

// The node `ref` names ("self" is the node the CLI talks to). Throws CommandError otherwise.
api::Node ResolveNode(Context& ctx, const std::string& ref);

// The ID of the node the CLI talks to; throws CommandError when it is not in a swarm.
std::string LocalNodeId(Context& ctx);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_RESOLVE_H_
