// WriteTx: the transaction an Update (or Batch) callback records its changes in.
//
// The callback reads through the transaction — which shows the store as of the transaction's
// start plus its own pending changes — and records Create / Update / Delete. Nothing is written
// until the callback returns OK: then the changes become one StoreProposal, go through Raft, and
// are applied on every manager by ApplyProposal, which checks them again against the store as
// it is by then (see apply.h). The checks here give early, precise errors; the checks there
// decide.
//
// Optimistic concurrency: an Update must carry the Meta.version of the object as read (get the
// object through the transaction, change a copy, pass the copy). The transaction refuses a
// version that differs from the one it sees (ABORTED), and the proposal carries the version the
// writer read, so that a concurrent writer that got in first makes this one fail with ABORTED
// instead of silently overwriting it: re-read and retry.
//
// Several changes to one object in one transaction merge into one action (create + update =
// create of the final object; update + delete = delete; create + delete = nothing), in the order
// objects were first touched. Re-creating an object this transaction deleted is refused
// (FAILED_PRECONDITION): write it with Update instead.
//
// Meta is the store's: Create clears it; the object's version and timestamps are set when the
// entry is applied. Until then an object created in this transaction reads back with version 0.
//
// Threading: a WriteTx belongs to the callback's thread.
#ifndef SHOAL_MANAGER_STORE_WRITE_TX_H_
#define SHOAL_MANAGER_STORE_WRITE_TX_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/timestamp.pb.h"
#include "manager/store/apply.h"
#include "manager/store/objects.h"
#include "manager/store/read_tx.h"
#include "manager/store/tables.h"
#include "objects.pb.h"

namespace shoal::manager::store {
namespace internal {

// The changes a WriteTx has recorded, kept beside the committed tables it started from rather
// than written into a copy of them: recording a change is a hash-map insert, and the persistent
// tables are written once, when the entry is applied. Reads merge the two (read_tx.cc); the
// index lookups they need are built only if a read asks for them.
class Pending {
 public:
  struct Entry {
    api::ObjectKind kind;
    // The object as first touched (committed), or as first created: its ID is the entry's key.
    ObjectPtr anchor;
    ObjectPtr now;          // the object as the transaction leaves it; null = deleted
    bool existed;           // in the base (committed) store when first touched
    uint64_t read_version;  // its Meta.version there
  };

  bool empty() const { return entries_.empty(); }
  // Whether any change touches `kind`.
  bool touches(api::ObjectKind kind) const { return per_kind_[kind] != 0; }
  const std::deque<Entry>& entries() const { return entries_; }
  // Objects of `kind` now minus objects of `kind` in the base store.
  int64_t count_delta(api::ObjectKind kind) const { return delta_[kind]; }

  // The position of (kind, id)'s entry, or -1.
  int64_t Find(api::ObjectKind kind, absl::string_view id) const {
    if (!touches(kind)) return -1;
    auto it = by_key_.find(KeyView{kind, id});
    return it == by_key_.end() ? -1 : static_cast<int64_t>(it->second);
  }
  const Entry& at(size_t i) const { return entries_[i]; }

  // A new entry for an object not touched yet, as it is in the base store (`base`, or null if it
  // is not there; `anchor` is `base` or the object about to be created). Returns its position.
  size_t Add(api::ObjectKind kind, ObjectPtr anchor, const ObjectPtr& base);
  // Sets entry i's object (null: deleted). Returns the object it replaces.
  ObjectPtr Assign(size_t i, ObjectPtr now);
  // Drops the last entry, whose object must be as in the base store again.
  void PopBack();
  void Clear();
  void Reserve(size_t n) { by_key_.reserve(n); }

  // Calls f(key, object) in key order for the live pending objects of `kind` whose key in
  // `index` (nullptr: the ID) starts with `prefix`.
  template <class F>
  void Scan(api::ObjectKind kind, const Index* index, absl::string_view prefix, F&& f) const {
    const absl::btree_set<std::string>& keys = Sorted(kind, index);
    for (auto it = keys.lower_bound(prefix); it != keys.end(); ++it) {
      const absl::string_view key = *it;
      if (key.substr(0, prefix.size()) != prefix) break;
      const int64_t i = Find(kind, index == nullptr ? key : Tables::IdOfKey(key));
      f(key, *entries_[i].now);
    }
  }

 private:
  struct KeyView {
    int kind;
    absl::string_view id;
    bool operator==(const KeyView& o) const { return kind == o.kind && id == o.id; }
    template <class H>
    friend H AbslHashValue(H h, const KeyView& k) {
      return H::combine(std::move(h), k.kind, k.id);
    }
  };
  static constexpr int kIdKey = kNumIndexes;  // sorted_'s slot for IDs
  using SortedKeys = absl::btree_set<std::string>;

  // The sorted keys of the live pending objects of `kind` in `index`, built on first use and
  // kept up to date from then on.
  const SortedKeys& Sorted(api::ObjectKind kind, const Index* index) const;
  // Adds (or removes) `o`'s keys in whichever sorted sets exist for its kind.
  void AddKeys(const api::StoreObject& o) const;
  void RemoveKeys(const api::StoreObject& o) const;
  static bool KeyOf(const api::StoreObject& o, int slot, std::string* key);

  std::deque<Entry> entries_;  // first-touch order; stable addresses (keys point into anchors)
  absl::flat_hash_map<KeyView, uint32_t> by_key_;
  std::array<int64_t, kNumKinds + 1> delta_{};
  std::array<uint32_t, kNumKinds + 1> per_kind_{};
  mutable std::array<std::array<std::unique_ptr<SortedKeys>, kNumIndexes + 1>, kNumKinds + 1>
      sorted_;
};

}  // namespace internal

class WriteTx : public ReadTx {
 public:
  // Errors: INVALID_ARGUMENT (no/invalid ID), ALREADY_EXISTS (the ID, or a unique name, is
  // taken), FAILED_PRECONDITION (re-creating an object deleted in this transaction).
  template <class T>
  absl::Status Create(T object) {
    return CreateObject(Wrap(std::move(object)));
  }
  // Replaces the whole object. Errors: NOT_FOUND, ABORTED (object.meta().version() is not the
  // version this transaction sees), ALREADY_EXISTS (the new name is taken).
  template <class T>
  absl::Status Update(T object) {
    return UpdateObject(Wrap(std::move(object)));
  }
  // Errors: NOT_FOUND.
  template <class T>
  absl::Status Delete(absl::string_view id) {
    return DeleteObject(ObjectTraits<T>::kKind, id);
  }

  absl::Status CreateObject(api::StoreObject object);
  absl::Status UpdateObject(api::StoreObject object);
  absl::Status DeleteObject(api::ObjectKind kind, absl::string_view id);

  // Objects changed so far (after merging), i.e. the actions the proposal will hold.
  size_t changed_objects() const { return changes_.entries().size(); }

 private:
  friend class MemoryStore;
  friend class Batch;

  explicit WriteTx(std::shared_ptr<const Tables> base);
  // Drops every change and starts over from `base`, keeping the memory already allocated.
  void Reset(std::shared_ptr<const Tables> base);

  // Ends the transaction: encodes the merged actions, in first-touch order, as a serialized
  // api::StoreProposal into *data, and hands the same proposal, decoded, to *decoded: the
  // objects move there (this transaction held the only references), so that applying them
  // needs no copy. Returns false if the changes all cancelled out. Leaves the transaction
  // empty either way.
  bool TakeProposal(const google::protobuf::Timestamp& proposed_at, DecodedProposal* decoded,
                    std::string* data);
  // A rough size of the proposal so far (serialized objects), for Batch's entry-size limit.
  size_t approx_bytes() const { return approx_bytes_; }

  // Batch runs each callback between Checkpoint() and either nothing (kept) or Rollback().
  void Checkpoint();
  void Rollback();

  // The object (kind, id) as this transaction sees it, or null; *entry gets its pending
  // position or -1.
  const ObjectPtr* Current(api::ObjectKind kind, absl::string_view id, int64_t* entry) const;
  // Records `now` (null: deleted) as (kind, id)'s new state; `current` is its state so far and
  // `entry` its pending position (-1: untouched).
  void Record(api::ObjectKind kind, int64_t entry, const ObjectPtr* current, ObjectPtr now);
  absl::Status CheckName(const api::StoreObject& object) const;

  std::shared_ptr<const Tables> base_;
  internal::Pending changes_;
  // Objects this transaction replaced, kept alive so that pointers the callback got earlier
  // stay valid until it returns.
  std::vector<ObjectPtr> retained_;
  size_t approx_bytes_ = 0;

  // Since the last Checkpoint(): each changed entry's state before its first change, to roll
  // back. (An undo log rather than a saved copy: cheap whatever the transaction's size.)
  struct Undo {
    size_t entry;
    ObjectPtr before;  // null: the object did not exist
  };
  bool recording_undo_ = false;
  std::vector<Undo> undo_;
  size_t saved_entries_ = 0;
  size_t saved_bytes_ = 0;
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_WRITE_TX_H_
