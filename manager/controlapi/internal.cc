#include "manager/controlapi/internal.h"

#include <cstdint>
#include <utility>

#include "absl/strings/match.h"

namespace shoal::manager::controlapi_internal {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
  return ts;
}

bool MatchesLabels(const google::protobuf::Map<std::string, std::string>& want,
                   const google::protobuf::Map<std::string, std::string>& have) {
  for (const auto& [key, value] : want) {
    auto it = have.find(key);
    if (it == have.end()) return false;
    if (!value.empty() && it->second != value) return false;
  }
  return true;
}

bool EqualsIgnoreCase(absl::string_view a, absl::string_view b) {
  return absl::EqualsIgnoreCase(a, b);
}

bool StartsWithIgnoreCase(absl::string_view s, absl::string_view prefix) {
  return absl::StartsWithIgnoreCase(s, prefix);
}

absl::Status UpdateWithRetry(store::MemoryStore* store,
                             const std::function<absl::Status(store::WriteTx&)>& fn) {
  absl::Status s;
  for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
    bool fn_failed = false;
    s = store->Update([&](store::WriteTx& tx) {
      absl::Status r = fn(tx);
      fn_failed = !r.ok();
      return r;
    });
    if (!absl::IsAborted(s) || fn_failed) return s;
  }
  return s;
}

namespace {

void RedactTaskSpec(api::TaskSpec* spec) {
  if (spec->has_container_spec() && spec->container_spec().has_pull_options()) {
    spec->mutable_container_spec()->mutable_pull_options()->clear_registry_auth();
  }
}

}  // namespace

void RedactService(api::Service* service) {
  if (service->spec().has_task_template()) {
    RedactTaskSpec(service->mutable_spec()->mutable_task_template());
  }
  if (service->previous_spec().has_task_template()) {
    RedactTaskSpec(service->mutable_previous_spec()->mutable_task_template());
  }
}

void RedactTask(api::Task* task) {
  if (task->has_spec()) RedactTaskSpec(task->mutable_spec());
}

}  // namespace shoal::manager::controlapi_internal
