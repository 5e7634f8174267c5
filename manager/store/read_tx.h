// ReadTx: a consistent, read-only view of the store at one version, handed to the callbacks of
// MemoryStore::View and ViewAndWatch (and, as the base of WriteTx, to Update callbacks, where it
// also shows the transaction's own pending changes).
//
// Every result points into the view: pointers stay valid until the callback returns, and must
// not be kept beyond it (copy the object instead). Lists come back in a stable order (by ID, or
// by index value then ID), the same on every manager.
//
// Threading: a ReadTx belongs to the callback's thread. Many views may be open at once, on any
// threads, while the store applies new entries: a view never changes under its reader.
#ifndef SHOAL_MANAGER_STORE_READ_TX_H_
#define SHOAL_MANAGER_STORE_READ_TX_H_

#include <cstdint>
#include <type_traits>
#include <vector>

#include "absl/strings/string_view.h"
#include "manager/store/objects.h"
#include "manager/store/tables.h"
#include "objects.pb.h"

namespace shoal::manager::store {

class ReadTx {
 public:
  ReadTx(const ReadTx&) = delete;
  ReadTx& operator=(const ReadTx&) = delete;

  // The Raft index of the last entry applied to this view (every object's Meta.version is at
  // most this).
  uint64_t version() const { return tables_->version; }

  // T is one of api::Node, Service, Task, Network, Secret, Config, Cluster.
  template <class T>
  const T* Get(absl::string_view id) const {
    const ObjectPtr* o = tables_->Get(ObjectTraits<T>::kKind, id);
    return o == nullptr ? nullptr : &ObjectTraits<T>::Get(**o);
  }
  // Every object of the kind, by ID.
  template <class T>
  std::vector<const T*> List() const {
    std::vector<const T*> out;
    out.reserve(tables_->count(ObjectTraits<T>::kKind));
    tables_->objects(ObjectTraits<T>::kKind).ForEach([&](const std::string&, const ObjectPtr& o) {
      out.push_back(&ObjectTraits<T>::Get(*o));
      return true;
    });
    return out;
  }
  template <class T>
  size_t Count() const {
    return tables_->count(ObjectTraits<T>::kKind);
  }
  template <class T>
  std::vector<const T*> FindByIdPrefix(absl::string_view prefix) const {
    std::vector<const api::StoreObject*> found;
    tables_->FindIdPrefix(ObjectTraits<T>::kKind, prefix, &found);
    return Typed<T>(found);
  }
  // Case-insensitive. At most one result for kinds with unique names; nodes match by hostname,
  // which several may share. Tasks have no name index.
  template <class T>
  std::vector<const T*> FindByName(absl::string_view name) const {
    static_assert(!std::is_same_v<T, api::Task>, "tasks are not indexed by name");
    return FindBy<T>(Index::kName, Tables::NameKey(name));
  }
  template <class T>
  std::vector<const T*> FindByNamePrefix(absl::string_view prefix) const {
    static_assert(!std::is_same_v<T, api::Task>, "tasks are not indexed by name");
    std::vector<const api::StoreObject*> found;
    tables_->FindPrefix(ObjectTraits<T>::kKind, Index::kName, Tables::NameKey(prefix), &found);
    return Typed<T>(found);
  }

  // Tasks, in ID order.
  std::vector<const api::Task*> FindTasksByService(absl::string_view service_id) const {
    return FindBy<api::Task>(Index::kServiceId, service_id);
  }
  std::vector<const api::Task*> FindTasksByNode(absl::string_view node_id) const {
    return FindBy<api::Task>(Index::kNodeId, node_id);
  }
  std::vector<const api::Task*> FindTasksByDesiredState(api::TaskState state) const {
    return FindBy<api::Task>(Index::kDesiredState, Tables::DesiredStateKey(state));
  }
  // A replicated service's tasks in one slot (the current one and its predecessors). REQUIRES:
  // slot > 0.
  std::vector<const api::Task*> FindTasksBySlot(absl::string_view service_id, uint64_t slot) const {
    return FindBy<api::Task>(Index::kSlot, Tables::SlotKey(service_id, slot));
  }
  // A global service's tasks (slot 0) on one node: that node's "slot". Replicated tasks are not
  // included; filter FindTasksByNode for those.
  std::vector<const api::Task*> FindTasksByServiceAndNode(absl::string_view service_id,
                                                          absl::string_view node_id) const {
    return FindBy<api::Task>(Index::kSlot, Tables::ServiceNodeKey(service_id, node_id));
  }

  // Untyped access, for code that handles every kind alike (e.g. the Watch API).
  const api::StoreObject* GetObject(api::ObjectKind kind, absl::string_view id) const {
    const ObjectPtr* o = tables_->Get(kind, id);
    return o == nullptr ? nullptr : o->get();
  }

 protected:
  explicit ReadTx(const Tables* tables) : tables_(tables) {}
  friend class MemoryStore;

  template <class T>
  std::vector<const T*> FindBy(Index index, absl::string_view value) const {
    std::vector<const api::StoreObject*> found;
    tables_->FindExact(ObjectTraits<T>::kKind, index, value, &found);
    return Typed<T>(found);
  }
  template <class T>
  static std::vector<const T*> Typed(const std::vector<const api::StoreObject*>& found) {
    std::vector<const T*> out;
    out.reserve(found.size());
    for (const api::StoreObject* o : found) out.push_back(&ObjectTraits<T>::Get(*o));
    return out;
  }

  const Tables* tables_;
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_READ_TX_H_
