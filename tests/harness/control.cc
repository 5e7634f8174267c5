#include "tests/harness/control.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"

namespace shoal::testing {

ControlClient::ControlClient(const ShoaldProcess& d)
    : stub_(api::Control::NewStub(
          grpc::CreateChannel(d.host(), grpc::InsecureChannelCredentials()))) {}

std::optional<api::Service> ControlClient::Service(const std::string& name) {
  api::ListServicesRequest req;
  req.mutable_filters()->add_names(name);
  api::ListServicesResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (!stub_->ListServices(&ctx, req, &resp).ok() || resp.services_size() != 1) {
    return std::nullopt;
  }
  return resp.services(0);
}

std::optional<std::vector<api::Task>> ControlClient::Tasks(const std::string& service_id) {
  api::ListTasksRequest req;
  req.mutable_filters()->add_service_ids(service_id);
  api::ListTasksResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  if (!stub_->ListTasks(&ctx, req, &resp).ok()) return std::nullopt;
  return std::vector<api::Task>(resp.tasks().begin(), resp.tasks().end());
}

std::optional<std::vector<api::Task>> ControlClient::TasksOf(const std::string& name) {
  std::optional<api::Service> service = Service(name);
  if (!service.has_value()) return std::nullopt;
  return Tasks(service->id());
}

const std::string& ImageOf(const api::Task& t) { return t.spec().container_spec().image(); }

bool Serving(const api::Task& t) {
  return t.desired_state() == api::TASK_STATE_RUNNING &&
         t.status().state() == api::TASK_STATE_RUNNING;
}

std::string Dump(const std::vector<api::Task>& tasks) {
  std::vector<const api::Task*> sorted;
  for (const api::Task& t : tasks) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const api::Task* a, const api::Task* b) {
    return a->slot() != b->slot() ? a->slot() < b->slot() : a->id() < b->id();
  });
  std::string out;
  for (const api::Task* t : sorted) {
    absl::StrAppend(&out, "  slot ", t->slot(), " ", t->id(), " ", ImageOf(*t), " node ",
                    t->node_id(), " desired ", api::TaskState_Name(t->desired_state()), " state ",
                    api::TaskState_Name(t->status().state()), " ", t->status().err(), "\n");
  }
  return out;
}

}  // namespace shoal::testing
