#include "manager/store/apply.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shoal::manager::store {
namespace {

absl::Status OutOfSequence(api::ObjectKind kind, const std::string& id, uint64_t stored,
                           uint64_t read) {
  return absl::AbortedError(absl::StrCat("update out of sequence: ", KindName(kind), " ", id,
                                         " changed since it was read (version ", read, ", now ",
                                         stored, "); re-read and retry"));
}

}  // namespace

bool DecodeProposal(const std::string& data, DecodedProposal* out) {
  api::StoreProposal proposal;
  if (!proposal.ParseFromString(data)) return false;
  out->proposed_at = proposal.proposed_at();
  out->actions.clear();
  out->actions.reserve(proposal.request().actions_size());
  for (api::StoreAction& a : *proposal.mutable_request()->mutable_actions()) {
    // A move: the object's fields change hands, nothing is copied.
    out->actions.push_back(DecodedProposal::Action{
        a.action(), std::make_shared<api::StoreObject>(std::move(*a.mutable_object()))});
  }
  return true;
}

absl::Status ApplyProposal(DecodedProposal& proposal, uint64_t index, uint64_t gen,
                           Tables* tables, std::vector<Change>* changes) {
  const google::protobuf::Timestamp& now = proposal.proposed_at;
  const size_t first_change = changes->size();
  changes->reserve(first_change + proposal.actions.size());
  for (DecodedProposal::Action& action : proposal.actions) {
    if (action.object == nullptr) action.object = std::make_shared<api::StoreObject>();
    if (action.object.use_count() != 1) {
      action.object = std::make_shared<api::StoreObject>(*action.object);
    }
    api::StoreObject& object = *action.object;
    const api::ObjectKind kind = KindOf(object);
    const std::string& id = IdOf(object);
    if (absl::Status s = ValidateId(kind, id); !s.ok()) return s;
    const ObjectPtr* current = tables->Get(kind, id);
    switch (action.action) {
      case api::StoreAction::CREATE: {
        if (current != nullptr) {
          return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " ", id, " already exists"));
        }
        api::Meta* meta = MutableMetaOf(&object);
        meta->Clear();
        meta->mutable_version()->set_index(index);
        *meta->mutable_created_at() = now;
        *meta->mutable_updated_at() = now;
        ObjectPtr created = std::move(action.object);
        tables->Put(created, nullptr, gen);
        changes->push_back(Change{api::StoreAction::CREATE, std::move(created), nullptr});
        break;
      }
      case api::StoreAction::UPDATE: {
        if (current == nullptr) {
          return absl::NotFoundError(
              absl::StrCat(KindName(kind), " ", id, " not found (removed since it was read?)"));
        }
        const api::Meta& old_meta = MetaOf(**current);
        if (old_meta.version().index() != MetaOf(object).version().index()) {
          return OutOfSequence(kind, id, old_meta.version().index(),
                               MetaOf(object).version().index());
        }
        api::Meta* meta = MutableMetaOf(&object);
        meta->Clear();
        meta->mutable_version()->set_index(index);
        *meta->mutable_created_at() = old_meta.created_at();
        *meta->mutable_updated_at() = now;
        ObjectPtr before = *current;
        ObjectPtr updated = std::move(action.object);
        tables->Put(updated, current, gen);
        changes->push_back(Change{api::StoreAction::UPDATE, std::move(updated), std::move(before)});
        break;
      }
      case api::StoreAction::REMOVE: {
        if (current == nullptr) {
          return absl::NotFoundError(
              absl::StrCat(KindName(kind), " ", id, " not found (removed since it was read?)"));
        }
        const uint64_t stored = MetaOf(**current).version().index();
        if (stored != MetaOf(object).version().index()) {
          return OutOfSequence(kind, id, stored, MetaOf(object).version().index());
        }
        ObjectPtr before = *current;
        tables->Remove(kind, id, gen);
        changes->push_back(Change{api::StoreAction::REMOVE, std::move(before), nullptr});
        break;
      }
      default:
        return absl::InvalidArgumentError(absl::StrCat("store: unknown action ",
                                                       static_cast<int>(action.action), " on ",
                                                       KindName(kind), " ", id));
    }
  }
  // Names are checked once every action is in, so a transaction may rename objects in any order.
  for (size_t i = first_change; i < changes->size(); ++i) {
    const Change& c = (*changes)[i];
    if (c.action == api::StoreAction::REMOVE) continue;
    // Skip an object changed again later in this entry: its final state is checked there.
    const ObjectPtr* final_state = tables->Get(KindOf(*c.object), IdOf(*c.object));
    if (final_state == nullptr || final_state->get() != c.object.get()) continue;
    if (const api::StoreObject* other = tables->NameConflict(*c.object)) {
      const api::ObjectKind kind = KindOf(*c.object);
      return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " name \"", NameOf(*c.object),
                                                   "\" is already in use by ", KindName(kind), " ",
                                                   IdOf(*other)));
    }
  }
  tables->version = index;
  return absl::OkStatus();
}

}  // namespace shoal::manager::store
