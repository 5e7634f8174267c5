// The store's view of the seven object kinds (node, service, task, network, secret, config,
// cluster): which kind a StoreObject holds, its ID, name and Meta, and the typed accessors that
// ReadTx and WriteTx templates use. Everything here is a pure function of its arguments.
//
// The store keeps every object as an immutable StoreObject behind a shared pointer (ObjectPtr):
// tables, snapshots held by readers and watch events share the same instance, so neither a read
// nor an event copies an object.
#ifndef SHOAL_MANAGER_STORE_OBJECTS_H_
#define SHOAL_MANAGER_STORE_OBJECTS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "objects.pb.h"

namespace shoal::manager::store {

using ObjectPtr = std::shared_ptr<const api::StoreObject>;

// ObjectKind values run from 1 to kNumKinds; tables are indexed by kind - 1.
inline constexpr int kNumKinds = 7;

// OBJECT_KIND_UNKNOWN when no object is set.
api::ObjectKind KindOf(const api::StoreObject& o);
// "node", "service", ... ("object" for an unknown kind): the word used in error messages.
const char* KindName(api::ObjectKind kind);
// REQUIRES for the rest: KindOf(o) != OBJECT_KIND_UNKNOWN.
const std::string& IdOf(const api::StoreObject& o);
const api::Meta& MetaOf(const api::StoreObject& o);
api::Meta* MutableMetaOf(api::StoreObject* o);
// An object's name: the hostname for nodes, annotations.name for the other kinds (the task's
// own annotations for tasks, which the name index leaves out). Empty means unnamed: not
// indexed, never conflicting.
const std::string& NameOf(const api::StoreObject& o);
// Whether two objects of `kind` may share a name (case-insensitively): only nodes (hostnames
// repeat) and tasks (names derive from the service's) may.
bool HasUniqueNames(api::ObjectKind kind);
// IDs are non-empty, at most 128 bytes and contain no NUL (index keys use NUL as separator).
absl::Status ValidateId(api::ObjectKind kind, absl::string_view id);

// ObjectTraits<T> ties an object message to its kind and its field of StoreObject.
template <class T>
struct ObjectTraits;

#define SHOAL_STORE_OBJECT_TRAITS(Type, field, KIND)                                            \
  template <>                                                                                   \
  struct ObjectTraits<api::Type> {                                                              \
    static constexpr api::ObjectKind kKind = api::KIND;                                         \
    static const api::Type& Get(const api::StoreObject& o) { return o.field(); }                \
    static api::Type* Mutable(api::StoreObject* o) { return o->mutable_##field(); }             \
    static void Set(api::StoreObject* o, api::Type v) { *o->mutable_##field() = std::move(v); } \
  };
SHOAL_STORE_OBJECT_TRAITS(Node, node, OBJECT_KIND_NODE)
SHOAL_STORE_OBJECT_TRAITS(Service, service, OBJECT_KIND_SERVICE)
SHOAL_STORE_OBJECT_TRAITS(Task, task, OBJECT_KIND_TASK)
SHOAL_STORE_OBJECT_TRAITS(Network, network, OBJECT_KIND_NETWORK)
SHOAL_STORE_OBJECT_TRAITS(Secret, secret, OBJECT_KIND_SECRET)
SHOAL_STORE_OBJECT_TRAITS(Config, config, OBJECT_KIND_CONFIG)
SHOAL_STORE_OBJECT_TRAITS(Cluster, cluster, OBJECT_KIND_CLUSTER)
#undef SHOAL_STORE_OBJECT_TRAITS

// Wraps a typed object.
template <class T>
api::StoreObject Wrap(T object) {
  api::StoreObject o;
  ObjectTraits<T>::Set(&o, std::move(object));
  return o;
}

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_OBJECTS_H_
