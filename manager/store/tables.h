// Tables: one version of the store's contents — every object by kind and ID, with the secondary
// indexes — built from PersistentMaps so that copying a version is O(1) and changing a copy
// leaves the original intact. The MemoryStore publishes one immutable Tables per applied Raft
// entry; transactions and the applier each change a private copy.
//
// Indexes (each a sorted set of "<value>\0<object ID>" keys, so one value's objects form one
// contiguous range, in ID order):
//   kName          every kind but tasks: NameOf(object) lower-cased (names are
//                  case-insensitive, as in Docker); unique for services, networks, secrets,
//                  configs and clusters, but uniqueness is the writers' rule (WriteTx,
//                  ApplyProposal), not the index's. Tasks are not indexed by name: their names
//                  derive from service, slot and ID, which are.
//   kServiceId     tasks by service_id
//   kNodeId        tasks by node_id (scheduled tasks only)
//   kDesiredState  tasks by desired_state
//   kSlot          tasks by "slot": (service_id, slot) for replicated tasks (slot > 0), and
//                  (service_id, node_id) for global services' tasks (slot 0, scheduled)
// Every task thus has at most five entries (with the primary one): memory is dominated by them
// and by the objects themselves (~1.9 KB for a typical task). An update that leaves an object's
// index values as they were (a task's status, say) touches the primary map only.
// Plus ID-prefix search on the primary map (the CLI's short IDs).
//
// Threading: as PersistentMap — a Tables value has one writer; published values are read-only.
#ifndef SHOAL_MANAGER_STORE_TABLES_H_
#define SHOAL_MANAGER_STORE_TABLES_H_

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "manager/store/objects.h"
#include "manager/store/persistent_map.h"
#include "objects.pb.h"

namespace shoal::manager::store {

enum class Index { kName, kServiceId, kNodeId, kDesiredState, kSlot };
inline constexpr int kNumIndexes = 5;

class Tables {
 public:
  struct Unit {};
  // Node sizes: a leaf of objects is copied on every write to it (a reference count increment
  // per object it holds), a leaf of index keys is one memcpy.
  using ObjectMap = PersistentMap<ObjectPtr, 32>;
  using IndexSet = PersistentMap<Unit, 32>;

  // The Raft index of the last entry applied to this version (0 for an empty store).
  uint64_t version = 0;

  // REQUIRES for every `kind` below: a valid kind (not OBJECT_KIND_UNKNOWN).
  const ObjectPtr* Get(api::ObjectKind kind, absl::string_view id) const {
    return table(kind).objects.Find(id);
  }
  const ObjectMap& objects(api::ObjectKind kind) const { return table(kind).objects; }
  size_t count(api::ObjectKind kind) const { return table(kind).objects.size(); }

  // Inserts or replaces `object` under its kind and ID, keeping every index in step.
  void Put(ObjectPtr object, uint64_t gen) {
    const ObjectPtr* old = Get(KindOf(*object), IdOf(*object));
    Put(std::move(object), old, gen);
  }
  // The same when the caller has looked the object up already: `old` is what Get returns for
  // its kind and ID.
  void Put(ObjectPtr object, const ObjectPtr* old, uint64_t gen);
  // Returns false if there was no such object.
  bool Remove(api::ObjectKind kind, absl::string_view id, uint64_t gen);

  // Calls f(key, object) in key order for the entries of `index` (nullptr: the primary map,
  // whose keys are the IDs) whose key starts with `prefix`, until f returns false.
  template <class F>
  void Scan(api::ObjectKind kind, const Index* index, absl::string_view prefix, F&& f) const {
    const Table& t = table(kind);
    if (index == nullptr) {
      t.objects.ScanPrefix(prefix, [&](absl::string_view id, const ObjectPtr& o) {
        return f(id, *o);
      });
      return;
    }
    t.indexes[static_cast<int>(*index)].ScanPrefix(prefix, [&](absl::string_view key, Unit) {
      const ObjectPtr* o = t.objects.Find(IdOfKey(key));
      return o == nullptr || f(key, **o);
    });
  }

  // Appends the objects whose `index` value is exactly `value` (encoded by the *Key helpers
  // below), in ID order.
  void FindExact(api::ObjectKind kind, Index index, absl::string_view value,
                 std::vector<const api::StoreObject*>* out) const;
  // Appends the objects whose `index` value starts with `prefix`, in (value, ID) order.
  void FindPrefix(api::ObjectKind kind, Index index, absl::string_view prefix,
                  std::vector<const api::StoreObject*>* out) const;
  // Appends the objects whose ID starts with `prefix`, in ID order.
  void FindIdPrefix(api::ObjectKind kind, absl::string_view prefix,
                    std::vector<const api::StoreObject*>* out) const;

  // Another object of the same kind holding `object`'s name, if the kind's names are unique;
  // nullptr otherwise.
  const api::StoreObject* NameConflict(const api::StoreObject& object) const;

  // Index value encodings.
  static std::string NameKey(absl::string_view name);  // ASCII lower case
  static std::string DesiredStateKey(api::TaskState state);
  static std::string SlotKey(absl::string_view service_id, uint64_t slot);  // for slot > 0
  static std::string ServiceNodeKey(absl::string_view service_id,
                                    absl::string_view node_id);  // kSlot for slot 0

  // The full key ("<value>\0<id>") `o` has in `index` into *key (reusing its buffer); false if
  // `o` has no entry there.
  static bool IndexKey(const api::StoreObject& o, Index index, std::string* key);
  // Whether `index` is kept for objects of `kind` (tasks: all but kName; others: kName only).
  static bool Indexed(api::ObjectKind kind, Index index) {
    return (kind == api::OBJECT_KIND_TASK) != (index == Index::kName);
  }
  // Whether two versions of one object have the same entries in every index.
  static bool SameIndexEntries(const api::StoreObject& a, const api::StoreObject& b);
  // The object ID at the end of an index key.
  static absl::string_view IdOfKey(absl::string_view key) {
    const size_t sep = key.rfind('\0');
    return sep == absl::string_view::npos ? key : key.substr(sep + 1);
  }

 private:
  struct Table {
    ObjectMap objects;
    std::array<IndexSet, kNumIndexes> indexes;  // only kName is used by kinds other than task
  };
  const Table& table(api::ObjectKind kind) const { return tables_[kind - 1]; }
  Table& table(api::ObjectKind kind) { return tables_[kind - 1]; }

  std::array<Table, kNumKinds> tables_;
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_TABLES_H_
