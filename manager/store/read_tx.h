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
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/string_view.h"
#include "manager/store/objects.h"
#include "manager/store/tables.h"
#include "objects.pb.h"

namespace shoal::manager::store {

namespace internal {
class Pending;  // a WriteTx's changes (write_tx.h)
}  // namespace internal

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
    const api::StoreObject* o = GetObject(ObjectTraits<T>::kKind, id);
    return o == nullptr ? nullptr : &ObjectTraits<T>::Get(*o);
  }
  // Every object of the kind, by ID.
  template <class T>
  std::vector<const T*> List() const {
    std::vector<const T*> out;
    out.reserve(Count<T>());
    Scan(ObjectTraits<T>::kKind, nullptr, absl::string_view(), false,
         [&](const api::StoreObject& o) { out.push_back(&ObjectTraits<T>::Get(o)); });
    return out;
  }
  template <class T>
  size_t Count() const {
    return CountObjects(ObjectTraits<T>::kKind);
  }
  template <class T>
  std::vector<const T*> FindByIdPrefix(absl::string_view prefix) const {
    std::vector<const T*> out;
    Scan(ObjectTraits<T>::kKind, nullptr, prefix, false,
         [&](const api::StoreObject& o) { out.push_back(&ObjectTraits<T>::Get(o)); });
    return out;
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
    std::vector<const T*> out;
    const Index index = Index::kName;
    Scan(ObjectTraits<T>::kKind, &index, Tables::NameKey(prefix), false,
         [&](const api::StoreObject& o) { out.push_back(&ObjectTraits<T>::Get(o)); });
    return out;
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
    if (pending_ != nullptr) return PendingGet(kind, id);
    const ObjectPtr* o = tables_->Get(kind, id);
    return o == nullptr ? nullptr : o->get();
  }

 protected:
  // `pending`: a WriteTx's changes, which every read merges into `tables` (null for a view).
  explicit ReadTx(const Tables* tables, const internal::Pending* pending = nullptr)
      : tables_(tables), pending_(pending) {}
  friend class MemoryStore;

  template <class T>
  std::vector<const T*> FindBy(Index index, absl::string_view value) const {
    std::vector<const T*> out;
    Scan(ObjectTraits<T>::kKind, &index, value, true,
         [&](const api::StoreObject& o) { out.push_back(&ObjectTraits<T>::Get(o)); });
    return out;
  }

  // Calls f(object) in key order for the objects of `kind` whose key in `index` (nullptr: the
  // ID) starts with `prefix` or, if `exact`, whose index value is `prefix`.
  template <class F>
  void Scan(api::ObjectKind kind, const Index* index, absl::string_view prefix, bool exact,
            F&& f) const {
    if (pending_ == nullptr) {
      std::string buf;
      if (exact) {
        buf.reserve(prefix.size() + 1);
        buf.append(prefix.data(), prefix.size());
        buf.push_back('\0');
        prefix = buf;
      }
      tables_->Scan(kind, index, prefix, [&](absl::string_view key, const api::StoreObject& o) {
        // A longer value that merely starts with `prefix` and a NUL is no exact match: IDs hold
        // no NUL.
        if (!exact || key.find('\0', prefix.size()) == absl::string_view::npos) f(o);
        return true;
      });
      return;
    }
    std::vector<const api::StoreObject*> found;
    PendingScan(kind, index, prefix, exact, &found);
    for (const api::StoreObject* o : found) f(*o);
  }
  size_t CountObjects(api::ObjectKind kind) const {
    return pending_ != nullptr ? PendingCount(kind) : tables_->count(kind);
  }

  // The same reads with the pending changes merged in (read_tx.cc).
  const api::StoreObject* PendingGet(api::ObjectKind kind, absl::string_view id) const;
  void PendingScan(api::ObjectKind kind, const Index* index, absl::string_view prefix, bool exact,
                   std::vector<const api::StoreObject*>* out) const;
  size_t PendingCount(api::ObjectKind kind) const;

  const Tables* tables_;
  const internal::Pending* pending_;
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_READ_TX_H_
