// ControlApi: services (CreateService, GetService, UpdateService, RemoveService, ListServices).
// See control_api.h for the rules every method follows.
#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "google/protobuf/util/message_differencer.h"
#include "manager/controlapi/control_api.h"
#include "manager/controlapi/internal.h"
#include "manager/controlapi/spec_validation.h"
#include "scheduler/constraint.h"

namespace shoal::manager {
namespace {

using controlapi_internal::MatchesNameFilters;
using controlapi_internal::RedactService;
using controlapi_internal::ToGrpc;
using controlapi_internal::ToProto;
using controlapi_internal::UpdateWithRetry;

// `service "web" (ID)`.
std::string Describe(const api::Service& s) {
  return absl::StrCat("service \"", s.spec().annotations().name(), "\" (", s.id(), ")");
}

absl::Status ServiceNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("service ", id, " not found"));
}

// The service, unless it does not exist or is being removed (then it is gone for users).
const api::Service* LiveService(const store::ReadTx& tx, const std::string& id) {
  const api::Service* s = tx.Get<api::Service>(id);
  return s == nullptr || s->pending_delete() ? nullptr : s;
}

absl::Status ServiceChanged(const api::Service& s, uint64_t read) {
  return absl::AbortedError(absl::StrCat(Describe(s),
                                         " was changed since you read it; re-read and retry (read "
                                         "at version ",
                                         read, ", now at version ", s.meta().version().index(),
                                         ")"));
}

// ALREADY_EXISTS when another service holds `name` (names are unique without regard to case).
absl::Status CheckNameFree(const store::ReadTx& tx, const std::string& name) {
  for (const api::Service* s : tx.FindByName<api::Service>(name)) {
    if (s->pending_delete()) {
      return absl::AlreadyExistsError(
          absl::StrCat("the name \"", name, "\" is still held by service ", s->id(),
                       ", which is being removed; retry once its tasks have shut down"));
    }
    return absl::AlreadyExistsError(absl::StrCat(
        "a service named \"", s->spec().annotations().name(), "\" already exists (ID ", s->id(),
        "); choose another name, or change that service with `shoal service update`"));
  }
  return absl::OkStatus();
}

// Looks up a secret, config or network by ID, else by name (case-insensitively, as the store
// indexes names).
template <class T>
const T* FindByIdOrName(const store::ReadTx& tx, const std::string& id, const std::string& name) {
  if (!id.empty()) return tx.Get<T>(id);
  std::vector<const T*> found = tx.FindByName<T>(name);
  if (!found.empty()) return found.front();
  return tx.Get<T>(name);  // an ID written where the name goes
}

// `"name" (ID id)`, `"name"` or `"id"`, for a reference that may carry either or both.
std::string RefName(const std::string& id, const std::string& name) {
  if (name.empty()) return absl::StrCat("\"", id, "\"");
  if (id.empty() || id == name) return absl::StrCat("\"", name, "\"");
  return absl::StrCat("\"", name, "\" (ID ", id, ")");
}

// Resolves the secret, config and network references of `spec` in place: each must exist; IDs
// are stored, names refreshed, and file targets defaulted as Docker's CLI does (a secret's to its
// name under /run/secrets, a config's to /<name>). `context` prefixes errors ("cannot roll back
// service x: ").
absl::Status ResolveReferences(const store::ReadTx& tx, api::ServiceSpec* spec,
                               const std::string& context) {
  api::TaskSpec* task = spec->mutable_task_template();
  api::ContainerSpec* c = task->mutable_container_spec();

  std::set<std::string> secret_targets;
  for (api::SecretReference& ref : *c->mutable_secrets()) {
    const api::Secret* s = FindByIdOrName<api::Secret>(tx, ref.secret_id(), ref.secret_name());
    if (s == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(context, "secret ", RefName(ref.secret_id(), ref.secret_name()),
                       " not found; create it first with `shoal secret create ",
                       ref.secret_name().empty() ? ref.secret_id() : ref.secret_name(),
                       " FILE` (`shoal secret ls` lists the secrets)"));
    }
    ref.set_secret_id(s->id());
    ref.set_secret_name(s->spec().annotations().name());
    if (ref.file().name().empty()) ref.mutable_file()->set_name(ref.secret_name());
    if (!secret_targets.insert(ref.file().name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, "secret target \"", ref.file().name(),
                       "\" is used by more than one secret; give each its own target (--secret "
                       "source=NAME,target=FILE)"));
    }
  }

  std::set<std::string> config_targets;
  for (api::ConfigReference& ref : *c->mutable_configs()) {
    const api::Config* cfg = FindByIdOrName<api::Config>(tx, ref.config_id(), ref.config_name());
    if (cfg == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(context, "config ", RefName(ref.config_id(), ref.config_name()),
                       " not found; create it first with `shoal config create ",
                       ref.config_name().empty() ? ref.config_id() : ref.config_name(),
                       " FILE` (`shoal config ls` lists the configs)"));
    }
    ref.set_config_id(cfg->id());
    ref.set_config_name(cfg->spec().annotations().name());
    if (ref.file().name().empty()) ref.mutable_file()->set_name("/" + ref.config_name());
    std::string target = ref.file().name();
    if (target.front() != '/') target = "/" + target;  // relative to /
    if (!config_targets.insert(target).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, "config target \"", target,
                       "\" is used by more than one config; give each its own target (--config "
                       "source=NAME,target=/path)"));
    }
  }

  std::set<std::string> networks;
  for (api::NetworkAttachmentConfig& n : *task->mutable_networks()) {
    const api::Network* net = tx.Get<api::Network>(n.target());
    if (net == nullptr) {
      std::vector<const api::Network*> found = tx.FindByName<api::Network>(n.target());
      if (!found.empty()) net = found.front();
    }
    if (net == nullptr) {
      return absl::NotFoundError(absl::StrCat(
          context, "network \"", n.target(), "\" not found; create it with `shoal network create ",
          "-d overlay ", n.target(), "` (`shoal network ls` lists the networks)"));
    }
    const std::string& name = net->spec().annotations().name();
    if (net->pending_delete()) {
      return absl::NotFoundError(absl::StrCat(context, "network \"", name, "\" (", net->id(),
                                              ") is being removed; use another network"));
    }
    if (net->spec().ingress()) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, "a service cannot be attached to the ingress network \"", name,
                       "\" explicitly; publish ports (--publish) to use the routing mesh"));
    }
    n.set_target(net->id());
    if (!networks.insert(net->id()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(context, "network \"", name, "\" is attached more than once"));
    }
  }
  return absl::OkStatus();
}

// A published port of `spec` that a live service other than `self_id` publishes too, where either
// side publishes it in INGRESS mode (the routing mesh binds it on every node): FAILED_PRECONDITION.
// HOST ports of different services may share a number (the scheduler keeps them apart).
absl::Status CheckPortConflicts(const store::ReadTx& tx, const api::ServiceSpec& spec,
                                const std::string& self_id) {
  const auto& ports = spec.endpoint_spec().ports();
  if (std::none_of(ports.begin(), ports.end(),
                   [](const api::PortConfig& p) { return p.published_port() != 0; })) {
    return absl::OkStatus();
  }
  for (const api::Service* other : tx.List<api::Service>()) {
    if (other->id() == self_id || other->pending_delete()) continue;
    for (const auto* list : {&other->spec().endpoint_spec().ports(), &other->endpoint().ports()}) {
      for (const api::PortConfig& theirs : *list) {
        if (theirs.published_port() == 0) continue;
        for (const api::PortConfig& mine : ports) {
          if (mine.published_port() != theirs.published_port() ||
              mine.protocol() != theirs.protocol()) {
            continue;
          }
          if (mine.publish_mode() != api::PortConfig::INGRESS &&
              theirs.publish_mode() != api::PortConfig::INGRESS) {
            continue;
          }
          return absl::FailedPreconditionError(absl::StrCat(
              "port ", mine.published_port(), "/", ProtocolName(mine.protocol()),
              " is already published by ", Describe(*other),
              (theirs.publish_mode() == api::PortConfig::INGRESS ? " on every node (ingress)"
                                                                 : " in host mode"),
              "; publish another port or remove it from that service"));
        }
      }
    }
  }
  return absl::OkStatus();
}

void BumpJobIteration(api::Service* s, absl::Time now, bool first) {
  api::JobStatus* js = s->mutable_job_status();
  api::Version* it = js->mutable_job_iteration();
  if (!first) it->set_index(it->index() + 1);
  *js->mutable_last_execution() = ToProto(now);
}

// ServiceStatus for `service ls`: see control.proto.
class StatusCounter {
 public:
  explicit StatusCounter(const store::ReadTx& tx) : tx_(tx) {
    for (const api::Node* n : tx.List<api::Node>()) nodes_.push_back(n);
  }

  api::ServiceStatus Count(const api::Service& s) const {
    api::ServiceStatus st;
    const api::ServiceSpec& spec = s.spec();
    const bool job = IsJob(spec);
    const uint64_t iteration = s.job_status().job_iteration().index();
    std::set<std::string> nodes_with_running_task;  // nodes holding a task meant to run
    for (const api::Task* t : tx_.FindTasksByService(s.id())) {
      if (job && t->job_iteration().index() != iteration) continue;
      if (t->status().state() == api::TASK_STATE_RUNNING && NodeUp(t->node_id())) {
        st.set_running_tasks(st.running_tasks() + 1);
      }
      if (job && t->status().state() == api::TASK_STATE_COMPLETE) {
        st.set_completed_tasks(st.completed_tasks() + 1);
      }
      if (t->desired_state() <= api::TASK_STATE_RUNNING && !t->node_id().empty()) {
        nodes_with_running_task.insert(t->node_id());
      }
    }
    switch (spec.mode_case()) {
      case api::ServiceSpec::kReplicated:
        st.set_desired_tasks(spec.replicated().replicas());
        break;
      case api::ServiceSpec::kReplicatedJob: {
        const uint64_t concurrent = std::max<uint64_t>(spec.replicated_job().max_concurrent(), 1);
        const uint64_t total = spec.replicated_job().total_completions() != 0
                                   ? spec.replicated_job().total_completions()
                                   : concurrent;
        const uint64_t left = total > st.completed_tasks() ? total - st.completed_tasks() : 0;
        st.set_desired_tasks(std::min(concurrent, left));
        break;
      }
      case api::ServiceSpec::kGlobal:
      case api::ServiceSpec::kGlobalJob: {
        uint64_t eligible = EligibleNodes(spec, nodes_with_running_task);
        if (spec.has_global_job()) {
          eligible = eligible > st.completed_tasks() ? eligible - st.completed_tasks() : 0;
        }
        st.set_desired_tasks(eligible);
        break;
      }
      default:
        break;
    }
    return st;
  }

 private:
  bool NodeUp(const std::string& id) const {
    if (id.empty()) return false;
    const api::Node* n = tx_.Get<api::Node>(id);
    return n != nullptr && n->status().state() != api::NodeStatus::DOWN;
  }

  // Nodes a global service runs on: READY, ACTIVE and satisfying the constraints — plus nodes
  // that are not active for new tasks (paused) but still hold one of its tasks.
  uint64_t EligibleNodes(const api::ServiceSpec& spec, const std::set<std::string>& holding) const {
    absl::StatusOr<std::vector<scheduler::Constraint>> constraints =
        scheduler::ParseConstraints(spec.task_template().placement().constraints());
    uint64_t n = 0;
    for (const api::Node* node : nodes_) {
      if (node->status().state() != api::NodeStatus::READY) continue;
      if (node->spec().availability() == api::NODE_AVAILABILITY_ACTIVE) {
        if (constraints.ok() && scheduler::NodeMatches(*constraints, *node)) ++n;
      } else if (node->spec().availability() == api::NODE_AVAILABILITY_PAUSE &&
                 holding.count(node->id()) > 0) {
        ++n;
      }
    }
    return n;
  }

  const store::ReadTx& tx_;
  std::vector<const api::Node*> nodes_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Services

grpc::Status ControlApi::CreateService(const api::CreateServiceRequest& req,
                                       api::CreateServiceResponse* resp) {
  if (absl::Status s = ValidateServiceSpec(req.spec()); !s.ok()) return ToGrpc(s);
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  std::string id;
  absl::Status st = UpdateWithRetry(store_, [&](store::WriteTx& tx) -> absl::Status {
    api::ServiceSpec spec = req.spec();
    if (absl::Status s = CheckNameFree(tx, spec.annotations().name()); !s.ok()) return s;
    if (absl::Status s = ResolveReferences(tx, &spec, ""); !s.ok()) return s;
    if (absl::Status s = CheckPortConflicts(tx, spec, ""); !s.ok()) return s;
    api::Service svc;
    svc.set_id(NewId());
    svc.mutable_spec_version()->set_index(tx.version());
    if (IsJob(spec)) BumpJobIteration(&svc, now, /*first=*/true);
    *svc.mutable_spec() = std::move(spec);
    id = svc.id();
    return tx.Create(std::move(svc));
  });
  if (absl::IsAlreadyExists(st)) {
    // Another manager created a service of that name between our check and the commit.
    store_->View([&](const store::ReadTx& tx) {
      if (absl::Status s = CheckNameFree(tx, req.spec().annotations().name()); !s.ok()) st = s;
    });
  }
  if (!st.ok()) return ToGrpc(st);
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Service* s = tx.Get<api::Service>(id)) *resp->mutable_service() = *s;
  });
  RedactService(resp->mutable_service());
  return grpc::Status::OK;
}

grpc::Status ControlApi::GetService(const api::GetServiceRequest& req,
                                    api::GetServiceResponse* resp) {
  if (req.service_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a service ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  bool found = false;
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Service* s = LiveService(tx, req.service_id())) {
      *resp->mutable_service() = *s;
      found = true;
    }
  });
  if (!found) return ToGrpc(ServiceNotFound(req.service_id()));
  RedactService(resp->mutable_service());
  return grpc::Status::OK;
}

grpc::Status ControlApi::ListServices(const api::ListServicesRequest& req,
                                      api::ListServicesResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  store_->View([&](const store::ReadTx& tx) {
    std::optional<StatusCounter> counter;
    if (req.include_status()) counter.emplace(tx);
    for (const api::Service* s : tx.List<api::Service>()) {
      if (s->pending_delete()) continue;
      if (!MatchesNameFilters(req.filters(), s->id(), s->spec().annotations().name(),
                              s->spec().annotations().labels())) {
        continue;
      }
      api::Service* out = resp->add_services();
      *out = *s;
      RedactService(out);
      if (counter) (*resp->mutable_statuses())[s->id()] = counter->Count(*s);
    }
  });
  return grpc::Status::OK;
}

grpc::Status ControlApi::UpdateService(const api::UpdateServiceRequest& req,
                                       api::UpdateServiceResponse* resp) {
  if (req.service_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a service ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  const absl::Time now = clock_->Now();
  const uint64_t read_version = req.version().index();
  bool checked = false;  // the transaction got past its own checks
  absl::Status st = store_->Update([&](store::WriteTx& tx) -> absl::Status {
    checked = false;
    const api::Service* current = LiveService(tx, req.service_id());
    if (current == nullptr) return ServiceNotFound(req.service_id());
    if (current->meta().version().index() != read_version) {
      return ServiceChanged(*current, read_version);
    }
    api::Service updated = *current;
    if (req.rollback()) {
      if (!current->has_previous_spec()) {
        return absl::FailedPreconditionError(absl::StrCat(
            Describe(*current), " has no previous spec to roll back to (it was never updated)"));
      }
      api::ServiceSpec spec = current->previous_spec();
      // What the previous spec refers to may have been removed since.
      if (absl::Status s = ResolveReferences(
              tx, &spec, absl::StrCat("cannot roll back ", Describe(*current), ": "));
          !s.ok()) {
        return s;
      }
      if (absl::Status s = CheckPortConflicts(tx, spec, current->id()); !s.ok()) {
        return absl::Status(
            s.code(), absl::StrCat("cannot roll back ", Describe(*current), ": ", s.message()));
      }
      *updated.mutable_spec() = std::move(spec);
      *updated.mutable_spec_version() = current->previous_spec_version();
      *updated.mutable_previous_spec() = current->spec();
      *updated.mutable_previous_spec_version() = current->spec_version();
      // Tells the updater to roll the tasks back with rollback_config.
      api::UpdateStatus* us = updated.mutable_update_status();
      us->Clear();
      us->set_state(api::UpdateStatus::ROLLBACK_STARTED);
      *us->mutable_started_at() = ToProto(now);
      us->set_message("manually requested rollback");
    } else {
      api::ServiceSpec spec = req.spec();
      const std::string& name = current->spec().annotations().name();
      if (spec.annotations().name().empty()) {
        spec.mutable_annotations()->set_name(name);
      } else if (spec.annotations().name() != name) {
        return absl::InvalidArgumentError(
            absl::StrCat("services cannot be renamed (", Describe(*current), ", got name \"",
                         spec.annotations().name(), "\"); create a new service instead"));
      }
      if (absl::Status s = ValidateServiceSpec(spec); !s.ok()) return s;
      if (spec.mode_case() != current->spec().mode_case()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the mode of ", Describe(*current), " cannot change from ",
                         ServiceModeName(current->spec()), " to ", ServiceModeName(spec),
                         "; remove the service and create it again"));
      }
      // The credentials are never returned, so a spec read back lacks them: keep the stored
      // ones unless new ones are given (`--with-registry-auth`), as Docker does.
      const api::ContainerSpec& stored_c = current->spec().task_template().container_spec();
      if (spec.task_template().container_spec().pull_options().registry_auth().empty() &&
          !stored_c.pull_options().registry_auth().empty()) {
        spec.mutable_task_template()
            ->mutable_container_spec()
            ->mutable_pull_options()
            ->set_registry_auth(stored_c.pull_options().registry_auth());
      }
      if (absl::Status s = ResolveReferences(tx, &spec, ""); !s.ok()) return s;
      if (absl::Status s = CheckPortConflicts(tx, spec, current->id()); !s.ok()) return s;
      if (google::protobuf::util::MessageDifferencer::Equals(spec, current->spec())) {
        // Nothing changes: no new spec version (tasks stay) and the previous spec stays what
        // `rollback` returns to. `--force` changes task_template.force_update. But an update
        // with nothing new resumes a paused update or rollback, as in Docker.
        checked = true;
        const api::UpdateStatus::State state = current->update_status().state();
        if (state != api::UpdateStatus::PAUSED && state != api::UpdateStatus::ROLLBACK_PAUSED) {
          return absl::OkStatus();
        }
        api::UpdateStatus* us = updated.mutable_update_status();
        const bool rollback = state == api::UpdateStatus::ROLLBACK_PAUSED;
        us->set_state(rollback ? api::UpdateStatus::ROLLBACK_STARTED : api::UpdateStatus::UPDATING);
        us->set_message(rollback ? "rollback resumed" : "update resumed");
        us->clear_completed_at();
        return tx.Update(std::move(updated));
      }
      *updated.mutable_previous_spec() = current->spec();
      *updated.mutable_previous_spec_version() = current->spec_version();
      *updated.mutable_spec() = std::move(spec);
      updated.mutable_spec_version()->set_index(tx.version());
      // A new update starts: the updater sets its progress from here.
      updated.clear_update_status();
    }
    if (IsJob(updated.spec())) BumpJobIteration(&updated, now, /*first=*/false);
    checked = true;
    return tx.Update(std::move(updated));
  });
  if (absl::IsAborted(st) && checked) {
    // Applying found the service changed by a concurrent writer (or a leader change dropped the
    // entry): say which.
    store_->View([&](const store::ReadTx& tx) {
      const api::Service* now_svc = LiveService(tx, req.service_id());
      if (now_svc == nullptr) {
        st = ServiceNotFound(req.service_id());
      } else if (now_svc->meta().version().index() != read_version) {
        st = ServiceChanged(*now_svc, read_version);
      }
    });
  }
  if (!st.ok()) return ToGrpc(st);
  bool found = false;
  store_->View([&](const store::ReadTx& tx) {
    if (const api::Service* s = LiveService(tx, req.service_id())) {
      *resp->mutable_service() = *s;
      found = true;
    }
  });
  if (!found) return ToGrpc(ServiceNotFound(req.service_id()));
  RedactService(resp->mutable_service());
  return grpc::Status::OK;
}

grpc::Status ControlApi::RemoveService(const api::RemoveServiceRequest& req,
                                       api::RemoveServiceResponse*) {
  if (req.service_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a service ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  absl::Status st = UpdateWithRetry(store_, [&](store::WriteTx& tx) -> absl::Status {
    const api::Service* current = LiveService(tx, req.service_id());
    if (current == nullptr) return ServiceNotFound(req.service_id());
    api::Service updated = *current;
    updated.set_pending_delete(true);
    return tx.Update(std::move(updated));
  });
  return ToGrpc(st);
}

}  // namespace shoal::manager
