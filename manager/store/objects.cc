#include "manager/store/objects.h"

#include "absl/strings/str_cat.h"

namespace shoal::manager::store {
namespace {

const std::string& EmptyString() {
  static const std::string* const empty = new std::string();
  return *empty;
}

}  // namespace

api::ObjectKind KindOf(const api::StoreObject& o) {
  // The enum's values equal StoreObject's field numbers (objects.proto says so).
  return static_cast<api::ObjectKind>(o.object_case());
}

const char* KindName(api::ObjectKind kind) {
  switch (kind) {
    case api::OBJECT_KIND_NODE:
      return "node";
    case api::OBJECT_KIND_SERVICE:
      return "service";
    case api::OBJECT_KIND_TASK:
      return "task";
    case api::OBJECT_KIND_NETWORK:
      return "network";
    case api::OBJECT_KIND_SECRET:
      return "secret";
    case api::OBJECT_KIND_CONFIG:
      return "config";
    case api::OBJECT_KIND_CLUSTER:
      return "cluster";
    default:
      return "object";
  }
}

const std::string& IdOf(const api::StoreObject& o) {
  switch (o.object_case()) {
    case api::StoreObject::kNode:
      return o.node().id();
    case api::StoreObject::kService:
      return o.service().id();
    case api::StoreObject::kTask:
      return o.task().id();
    case api::StoreObject::kNetwork:
      return o.network().id();
    case api::StoreObject::kSecret:
      return o.secret().id();
    case api::StoreObject::kConfig:
      return o.config().id();
    case api::StoreObject::kCluster:
      return o.cluster().id();
    default:
      return EmptyString();
  }
}

const api::Meta& MetaOf(const api::StoreObject& o) {
  switch (o.object_case()) {
    case api::StoreObject::kNode:
      return o.node().meta();
    case api::StoreObject::kService:
      return o.service().meta();
    case api::StoreObject::kTask:
      return o.task().meta();
    case api::StoreObject::kNetwork:
      return o.network().meta();
    case api::StoreObject::kSecret:
      return o.secret().meta();
    case api::StoreObject::kConfig:
      return o.config().meta();
    case api::StoreObject::kCluster:
      return o.cluster().meta();
    default:
      return api::Meta::default_instance();
  }
}

api::Meta* MutableMetaOf(api::StoreObject* o) {
  switch (o->object_case()) {
    case api::StoreObject::kNode:
      return o->mutable_node()->mutable_meta();
    case api::StoreObject::kService:
      return o->mutable_service()->mutable_meta();
    case api::StoreObject::kTask:
      return o->mutable_task()->mutable_meta();
    case api::StoreObject::kNetwork:
      return o->mutable_network()->mutable_meta();
    case api::StoreObject::kSecret:
      return o->mutable_secret()->mutable_meta();
    case api::StoreObject::kConfig:
      return o->mutable_config()->mutable_meta();
    case api::StoreObject::kCluster:
      return o->mutable_cluster()->mutable_meta();
    default:
      return nullptr;
  }
}

const std::string& NameOf(const api::StoreObject& o) {
  switch (o.object_case()) {
    case api::StoreObject::kNode:
      return o.node().description().hostname();
    case api::StoreObject::kService:
      return o.service().spec().annotations().name();
    case api::StoreObject::kTask:
      return o.task().annotations().name();
    case api::StoreObject::kNetwork:
      return o.network().spec().annotations().name();
    case api::StoreObject::kSecret:
      return o.secret().spec().annotations().name();
    case api::StoreObject::kConfig:
      return o.config().spec().annotations().name();
    case api::StoreObject::kCluster:
      return o.cluster().spec().annotations().name();
    default:
      return EmptyString();
  }
}

bool HasUniqueNames(api::ObjectKind kind) {
  return kind != api::OBJECT_KIND_NODE && kind != api::OBJECT_KIND_TASK;
}

absl::Status ValidateId(api::ObjectKind kind, absl::string_view id) {
  if (kind < api::OBJECT_KIND_NODE || kind > api::OBJECT_KIND_CLUSTER) {
    return absl::InvalidArgumentError("store: the action holds no object");
  }
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(KindName(kind), " has no ID"));
  if (id.size() > 128 || id.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(KindName(kind), " ID must be at most 128 bytes without NUL characters"));
  }
  return absl::OkStatus();
}

}  // namespace shoal::manager::store
