// ApplyProposal: what one committed Raft entry does to the store — the deterministic heart of
// the replicated store. Every manager (the leader included: there is no separate local write
// path) runs it on the same entries in the same order and so holds identical tables.
//
// Rules, checked against the store as it is when the entry applies (not as the writer saw it):
//   CREATE  the ID is free                                  else ALREADY_EXISTS
//   UPDATE  the object exists                               else NOT_FOUND
//           its Meta.version equals the version carried     else ABORTED ("update out of
//           (the one the writer read)                            sequence ... re-read and retry")
//   REMOVE  the same two checks as UPDATE
//   after all actions: no unique name (services, networks, secrets, configs, clusters) is held
//   by two objects                                          else ALREADY_EXISTS
// Checking names on the final state lets one transaction swap or move names between objects.
//
// Atomicity: the caller passes a private copy of the tables and discards it on error, so a
// failing action leaves no trace of the others. Determinism: every written object's Meta gets
// version = the entry's Raft index and timestamps from the proposal (proposed_at), never from
// this machine's clock; created_at survives updates.
//
// Pure: no I/O, no clock, no locks.
#ifndef SHOAL_MANAGER_STORE_APPLY_H_
#define SHOAL_MANAGER_STORE_APPLY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "manager/store/objects.h"
#include "manager/store/tables.h"
#include "google/protobuf/timestamp.pb.h"
#include "store.pb.h"

namespace shoal::manager::store {

// One applied change, as watchers see it.
struct Change {
  api::StoreAction::Action action = api::StoreAction::UNKNOWN;
  ObjectPtr object;      // after the change; for REMOVE, the object as it was
  ObjectPtr old_object;  // before the change, for UPDATE; null otherwise
};

// A StoreProposal taken apart: its objects each in a block of their own, ready to go into the
// tables as they are.
struct DecodedProposal {
  struct Action {
    api::StoreAction::Action action = api::StoreAction::UNKNOWN;
    // Only ApplyProposal holds it (it stamps the Meta, then shares it as an ObjectPtr); a
    // shared one is copied first.
    std::shared_ptr<api::StoreObject> object;
  };
  google::protobuf::Timestamp proposed_at;
  std::vector<Action> actions;
};

// Parses a serialized api::StoreProposal; false if `data` is not one.
bool DecodeProposal(const std::string& data, DecodedProposal* out);

// Applies `proposal` (its objects are moved out) as the entry at Raft `index`, editing `tables`
// with generation `gen` and appending what changed to `changes`. On error, `tables` and
// `changes` hold a partial result that the caller must discard.
absl::Status ApplyProposal(DecodedProposal& proposal, uint64_t index, uint64_t gen,
                           Tables* tables, std::vector<Change>* changes);

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_APPLY_H_
