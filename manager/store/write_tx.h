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

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "manager/store/objects.h"
#include "manager/store/read_tx.h"
#include "manager/store/tables.h"
#include "objects.pb.h"

namespace shoal::manager::store {

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
  size_t changed_objects() const { return touched_.size(); }

 private:
  friend class MemoryStore;
  friend class Batch;

  explicit WriteTx(std::shared_ptr<const Tables> base);

  // The merged actions, in first-touch order. Leaves the transaction empty.
  std::vector<api::StoreAction> TakeActions();
  // A rough size of the proposal so far (serialized objects), for Batch's entry-size limit.
  size_t approx_bytes() const { return approx_bytes_; }

  // Batch runs each callback between Checkpoint() and either nothing (kept) or Rollback().
  void Checkpoint();
  void Rollback();

  struct Touched {
    api::ObjectKind kind;
    std::string id;
    bool existed;           // in the base (committed) store when first touched
    uint64_t read_version;  // its Meta.version there
  };
  // Records a change about to happen to (kind, id), whose current state is `before`.
  void Touch(api::ObjectKind kind, const std::string& id, const ObjectPtr* before);
  void Retain(const ObjectPtr* o) {
    if (o != nullptr) retained_.push_back(*o);
  }

  std::shared_ptr<const Tables> base_;
  Tables working_;
  uint64_t gen_;
  std::vector<Touched> touched_;
  absl::flat_hash_map<std::pair<int, std::string>, size_t> touched_index_;
  // Objects this transaction replaced or removed, kept alive so that pointers the callback got
  // earlier stay valid until it returns.
  std::vector<ObjectPtr> retained_;
  size_t approx_bytes_ = 0;

  // Since the last Checkpoint(): each object's state before its first change, to roll back.
  // (An undo log rather than a saved copy of the tables: a copy would force a new generation
  // and so a fresh path copy per callback, which made bulk batches ~5x slower.)
  struct Undo {
    api::ObjectKind kind;
    std::string id;
    ObjectPtr before;  // null: the object did not exist
  };
  bool recording_undo_ = false;
  std::vector<Undo> undo_;
  size_t saved_touched_ = 0;
  size_t saved_bytes_ = 0;
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_WRITE_TX_H_
