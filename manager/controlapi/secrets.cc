// ControlApi: secrets and configs (Create, Get, List, Remove; both are immutable). See
// control_api.h for the rules every method follows.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "manager/controlapi/control_api.h"
#include "manager/controlapi/internal.h"
#include "manager/controlapi/spec_validation.h"

namespace shoal::manager {
namespace {

using controlapi_internal::MatchesNameFilters;
using controlapi_internal::ToGrpc;
using controlapi_internal::UpdateWithRetry;

// What differs between secrets and configs.
template <class T>
struct KindOf;

template <>
struct KindOf<api::Secret> {
  static constexpr char kName[] = "secret";
  static constexpr char kFlag[] = "--secret-rm";
  static bool Uses(const api::ContainerSpec& c, const std::string& id) {
    for (const api::SecretReference& r : c.secrets()) {
      if (r.secret_id() == id) return true;
    }
    return false;
  }
  static bool Internal(const api::Secret& s) { return s.internal(); }
  // Secret data never leaves the managers through the Control API.
  static void Redact(api::Secret* s) { s->mutable_spec()->clear_data(); }
};

template <>
struct KindOf<api::Config> {
  static constexpr char kName[] = "config";
  static constexpr char kFlag[] = "--config-rm";
  static bool Uses(const api::ContainerSpec& c, const std::string& id) {
    for (const api::ConfigReference& r : c.configs()) {
      if (r.config_id() == id) return true;
    }
    return false;
  }
  static bool Internal(const api::Config&) { return false; }
  static void Redact(api::Config*) {}  // configs are not secret
};

template <class T>
std::string Describe(const T& o) {
  return absl::StrCat(KindOf<T>::kName, " \"", o.spec().annotations().name(), "\" (", o.id(), ")");
}

template <class T>
absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat(KindOf<T>::kName, " ", id, " not found"));
}

template <class T>
absl::Status CheckNameFree(const store::ReadTx& tx, const std::string& name) {
  for (const T* o : tx.template FindByName<T>(name)) {
    const char* kind = KindOf<T>::kName;
    return absl::AlreadyExistsError(absl::StrCat(
        "a ", kind, " named \"", o->spec().annotations().name(), "\" already exists (ID ", o->id(),
        KindOf<T>::Internal(*o) ? ", managed by the swarm" : "", "); ", kind,
        "s cannot be changed: create one under another name, point the services at it (shoal "
        "service update ",
        KindOf<T>::kFlag, " OLD --", kind, "-add NEW SERVICE), then remove the old one"));
  }
  return absl::OkStatus();
}

// Creates `spec` as a new object; `id` receives its ID.
template <class T, class Spec>
absl::Status CreateObject(store::MemoryStore* store, const Spec& spec, std::string* id) {
  absl::Status st = UpdateWithRetry(store, [&](store::WriteTx& tx) -> absl::Status {
    if (absl::Status s = CheckNameFree<T>(tx, spec.annotations().name()); !s.ok()) return s;
    T o;
    o.set_id(NewId());
    *o.mutable_spec() = spec;
    *id = o.id();
    return tx.Create(std::move(o));
  });
  if (absl::IsAlreadyExists(st)) {
    // Created by someone else between our check and the commit: say by whom.
    store->View([&](const store::ReadTx& tx) {
      if (absl::Status s = CheckNameFree<T>(tx, spec.annotations().name()); !s.ok()) st = s;
    });
  }
  return st;
}

template <class T>
absl::Status GetObject(const store::MemoryStore& store, const std::string& id, T* out) {
  bool found = false;
  store.View([&](const store::ReadTx& tx) {
    if (const T* o = tx.Get<T>(id)) {
      *out = *o;
      found = true;
    }
  });
  if (!found) return NotFound<T>(id);
  KindOf<T>::Redact(out);
  return absl::OkStatus();
}

template <class T, class Filters, class List>
void ListObjects(const store::MemoryStore& store, const Filters& f, List* out) {
  store.View([&](const store::ReadTx& tx) {
    for (const T* o : tx.List<T>()) {
      if (KindOf<T>::Internal(*o)) continue;
      if (!MatchesNameFilters(f, o->id(), o->spec().annotations().name(),
                              o->spec().annotations().labels())) {
        continue;
      }
      T* added = out->Add();
      *added = *o;
      KindOf<T>::Redact(added);
    }
  });
}

// Deletes the object unless a live service (one not being removed) refers to it.
template <class T>
absl::Status RemoveObject(store::MemoryStore* store, const std::string& id) {
  return UpdateWithRetry(store, [&](store::WriteTx& tx) -> absl::Status {
    const T* o = tx.Get<T>(id);
    if (o == nullptr) return NotFound<T>(id);
    if (KindOf<T>::Internal(*o)) {
      return absl::FailedPreconditionError(
          absl::StrCat(Describe(*o), " is managed by the swarm itself and cannot be removed"));
    }
    std::vector<std::string> users;
    for (const api::Service* s : tx.List<api::Service>()) {
      if (s->pending_delete()) continue;
      if (KindOf<T>::Uses(s->spec().task_template().container_spec(), id)) {
        users.push_back(absl::StrCat("\"", s->spec().annotations().name(), "\""));
      }
    }
    std::sort(users.begin(), users.end());
    if (!users.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          Describe(*o), " is in use by the following service", users.size() > 1 ? "s" : "", ": ",
          absl::StrJoin(users, ", "), "; remove it from them first (shoal service update ",
          KindOf<T>::kFlag, " ", o->spec().annotations().name(), " SERVICE)"));
    }
    return tx.Delete<T>(id);
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Secrets

grpc::Status ControlApi::CreateSecret(const api::CreateSecretRequest& req,
                                      api::CreateSecretResponse* resp) {
  if (absl::Status s = ValidateSecretSpec(req.spec()); !s.ok()) return ToGrpc(s);
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  std::string id;
  if (absl::Status s = CreateObject<api::Secret>(store_, req.spec(), &id); !s.ok()) {
    return ToGrpc(s);
  }
  return ToGrpc(GetObject(*store_, id, resp->mutable_secret()));
}

grpc::Status ControlApi::GetSecret(const api::GetSecretRequest& req, api::GetSecretResponse* resp) {
  if (req.secret_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a secret ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  absl::Status st = GetObject(*store_, req.secret_id(), resp->mutable_secret());
  if (!st.ok()) resp->Clear();
  return ToGrpc(st);
}

grpc::Status ControlApi::ListSecrets(const api::ListSecretsRequest& req,
                                     api::ListSecretsResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  ListObjects<api::Secret>(*store_, req.filters(), resp->mutable_secrets());
  return grpc::Status::OK;
}

grpc::Status ControlApi::RemoveSecret(const api::RemoveSecretRequest& req,
                                      api::RemoveSecretResponse*) {
  if (req.secret_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a secret ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  return ToGrpc(RemoveObject<api::Secret>(store_, req.secret_id()));
}

// ---------------------------------------------------------------------------------------------
// Configs

grpc::Status ControlApi::CreateConfig(const api::CreateConfigRequest& req,
                                      api::CreateConfigResponse* resp) {
  if (absl::Status s = ValidateConfigSpec(req.spec()); !s.ok()) return ToGrpc(s);
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  std::string id;
  if (absl::Status s = CreateObject<api::Config>(store_, req.spec(), &id); !s.ok()) {
    return ToGrpc(s);
  }
  return ToGrpc(GetObject(*store_, id, resp->mutable_config()));
}

grpc::Status ControlApi::GetConfig(const api::GetConfigRequest& req, api::GetConfigResponse* resp) {
  if (req.config_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a config ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  absl::Status st = GetObject(*store_, req.config_id(), resp->mutable_config());
  if (!st.ok()) resp->Clear();
  return ToGrpc(st);
}

grpc::Status ControlApi::ListConfigs(const api::ListConfigsRequest& req,
                                     api::ListConfigsResponse* resp) {
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  ListObjects<api::Config>(*store_, req.filters(), resp->mutable_configs());
  return grpc::Status::OK;
}

grpc::Status ControlApi::RemoveConfig(const api::RemoveConfigRequest& req,
                                      api::RemoveConfigResponse*) {
  if (req.config_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a config ID is required");
  }
  if (grpc::Status s = Barrier(); !s.ok()) return s;
  return ToGrpc(RemoveObject<api::Config>(store_, req.config_id()));
}

}  // namespace shoal::manager
