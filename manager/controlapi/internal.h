// Helpers shared by the ControlApi's source files (control_api.cc, services.cc, secrets.cc):
// status conversion, list filters, the retrying write, and the redaction of credentials in
// service and task specs. Not part of the ControlApi's interface.
//
// Thread-safety: free functions; safe from any thread.
#ifndef SHOAL_MANAGER_CONTROLAPI_INTERNAL_H_
#define SHOAL_MANAGER_CONTROLAPI_INTERNAL_H_

#include <algorithm>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/map.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/support/status.h"
#include "manager/store/memory_store.h"
#include "proto/objects.pb.h"

namespace shoal::manager::controlapi_internal {

// Internal writes (no caller-supplied version) are retried this many times when a concurrent
// write or a Raft leader change makes them fail with ABORTED.
inline constexpr int kWriteAttempts = 5;

grpc::Status ToGrpc(const absl::Status& s);
inline grpc::Status InvalidArgument(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

google::protobuf::Timestamp ToProto(absl::Time t);

// Every key of `want` is in `have`, with the same value unless `want`'s value is empty.
bool MatchesLabels(const google::protobuf::Map<std::string, std::string>& want,
                   const google::protobuf::Map<std::string, std::string>& have);

// True for an empty list (the filter is not set), else whether `pred` holds for an element.
template <class List, class Pred>
bool AnyOf(const List& list, Pred pred) {
  return list.empty() || std::any_of(list.begin(), list.end(), pred);
}

// The name filters of ListServices, ListSecrets and ListConfigs. Names are unique without regard
// to ASCII case (the store's rule, as Docker's), so names and name prefixes match that way too;
// ID prefixes match exactly.
template <class Filters>
bool MatchesNameFilters(const Filters& f, const std::string& id, const std::string& name,
                        const google::protobuf::Map<std::string, std::string>& labels);

bool EqualsIgnoreCase(absl::string_view a, absl::string_view b);
bool StartsWithIgnoreCase(absl::string_view s, absl::string_view prefix);

// store->Update, retried while it fails with ABORTED for reasons outside `fn` (a concurrent
// write to what it read, or a Raft leader change that dropped the entry). Only for writes that
// carry no version from the caller.
absl::Status UpdateWithRetry(store::MemoryStore* store,
                             const std::function<absl::Status(store::WriteTx&)>& fn);

// Registry credentials (ContainerSpec.pull_options.registry_auth) are for agents, which get
// them through the dispatcher; the Control API never returns them (Docker's API has no field for
// them either). These clear them in place.
void RedactService(api::Service* service);
void RedactTask(api::Task* task);

// ----------------------------------------------------------------------------------------------

template <class Filters>
bool MatchesNameFilters(const Filters& f, const std::string& id, const std::string& name,
                        const google::protobuf::Map<std::string, std::string>& labels) {
  return AnyOf(f.names(), [&](const std::string& n) { return EqualsIgnoreCase(name, n); }) &&
         AnyOf(f.name_prefixes(),
               [&](const std::string& p) { return StartsWithIgnoreCase(name, p); }) &&
         AnyOf(f.id_prefixes(),
               [&](const std::string& p) {
                 return absl::string_view(id).substr(0, p.size()) == p;
               }) &&
         MatchesLabels(f.labels(), labels);
}

}  // namespace shoal::manager::controlapi_internal

#endif  // SHOAL_MANAGER_CONTROLAPI_INTERNAL_H_
