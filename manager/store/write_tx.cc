#include "manager/store/write_tx.h"

#include "absl/strings/str_cat.h"
#include "manager/store/persistent_map.h"

namespace shoal::manager::store {

WriteTx::WriteTx(std::shared_ptr<const Tables> base)
    : ReadTx(&working_), base_(std::move(base)), working_(*base_), gen_(NewGeneration()) {}

absl::Status WriteTx::CreateObject(api::StoreObject object) {
  const api::ObjectKind kind = KindOf(object);
  const std::string& id = IdOf(object);
  if (absl::Status s = ValidateId(kind, id); !s.ok()) return s;
  if (working_.Get(kind, id) != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " ", id, " already exists"));
  }
  auto it = touched_index_.find(std::make_pair(static_cast<int>(kind), id));
  if (it != touched_index_.end() && touched_[it->second].existed) {
    return absl::FailedPreconditionError(
        absl::StrCat(KindName(kind), " ", id,
                     " was deleted earlier in this transaction; update it instead of re-creating"));
  }
  if (const api::StoreObject* other = working_.NameConflict(object)) {
    return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " name \"", NameOf(object),
                                                 "\" is already in use by ", KindName(kind), " ",
                                                 IdOf(*other)));
  }
  MutableMetaOf(&object)->Clear();
  approx_bytes_ += object.ByteSizeLong() + 8;
  Touch(kind, id, nullptr);
  working_.Put(std::make_shared<const api::StoreObject>(std::move(object)), gen_);
  return absl::OkStatus();
}

absl::Status WriteTx::UpdateObject(api::StoreObject object) {
  const api::ObjectKind kind = KindOf(object);
  const std::string id = IdOf(object);
  if (absl::Status s = ValidateId(kind, id); !s.ok()) return s;
  const ObjectPtr* current = working_.Get(kind, id);
  if (current == nullptr) {
    return absl::NotFoundError(absl::StrCat(KindName(kind), " ", id, " not found"));
  }
  const api::Meta& meta = MetaOf(**current);
  if (MetaOf(object).version().index() != meta.version().index()) {
    return absl::AbortedError(
        absl::StrCat("update out of sequence: ", KindName(kind), " ", id, " is at version ",
                     meta.version().index(), " but the update was made from version ",
                     MetaOf(object).version().index(), "; re-read and retry"));
  }
  if (const api::StoreObject* other = working_.NameConflict(object)) {
    return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " name \"", NameOf(object),
                                                 "\" is already in use by ", KindName(kind), " ",
                                                 IdOf(*other)));
  }
  *MutableMetaOf(&object) = meta;
  approx_bytes_ += object.ByteSizeLong() + 8;
  Touch(kind, id, current);
  Retain(current);
  working_.Put(std::make_shared<const api::StoreObject>(std::move(object)), gen_);
  return absl::OkStatus();
}

absl::Status WriteTx::DeleteObject(api::ObjectKind kind, absl::string_view id_view) {
  const std::string id(id_view);
  if (absl::Status s = ValidateId(kind, id); !s.ok()) return s;
  const ObjectPtr* current = working_.Get(kind, id);
  if (current == nullptr) {
    return absl::NotFoundError(absl::StrCat(KindName(kind), " ", id, " not found"));
  }
  approx_bytes_ += id.size() + 16;
  Touch(kind, id, current);
  Retain(current);
  working_.Remove(kind, id, gen_);
  return absl::OkStatus();
}

void WriteTx::Touch(api::ObjectKind kind, const std::string& id, const ObjectPtr* before) {
  if (recording_undo_) undo_.push_back(Undo{kind, id, before == nullptr ? nullptr : *before});
  auto [it, inserted] =
      touched_index_.try_emplace(std::make_pair(static_cast<int>(kind), id), touched_.size());
  if (!inserted) return;
  // First touch: the working copy still equals the base for this object.
  touched_.push_back(Touched{kind, id, before != nullptr,
                             before == nullptr ? 0 : MetaOf(**before).version().index()});
}

std::vector<api::StoreAction> WriteTx::TakeActions() {
  std::vector<api::StoreAction> actions;
  actions.reserve(touched_.size());
  for (const Touched& t : touched_) {
    const ObjectPtr* now = working_.Get(t.kind, t.id);
    if (!t.existed && now == nullptr) continue;  // created and deleted again
    api::StoreAction& a = actions.emplace_back();
    if (now == nullptr) {
      a.set_action(api::StoreAction::REMOVE);
      // Only the ID and the version read travel.
      api::StoreObject* o = a.mutable_object();
      switch (t.kind) {
        case api::OBJECT_KIND_NODE:
          o->mutable_node()->set_id(t.id);
          break;
        case api::OBJECT_KIND_SERVICE:
          o->mutable_service()->set_id(t.id);
          break;
        case api::OBJECT_KIND_TASK:
          o->mutable_task()->set_id(t.id);
          break;
        case api::OBJECT_KIND_NETWORK:
          o->mutable_network()->set_id(t.id);
          break;
        case api::OBJECT_KIND_SECRET:
          o->mutable_secret()->set_id(t.id);
          break;
        case api::OBJECT_KIND_CONFIG:
          o->mutable_config()->set_id(t.id);
          break;
        default:
          o->mutable_cluster()->set_id(t.id);
          break;
      }
      MutableMetaOf(o)->mutable_version()->set_index(t.read_version);
      continue;
    }
    a.set_action(t.existed ? api::StoreAction::UPDATE : api::StoreAction::CREATE);
    *a.mutable_object() = **now;
    if (t.existed) MutableMetaOf(a.mutable_object())->mutable_version()->set_index(t.read_version);
  }
  touched_.clear();
  touched_index_.clear();
  approx_bytes_ = 0;
  return actions;
}

void WriteTx::Checkpoint() {
  recording_undo_ = true;
  undo_.clear();
  saved_touched_ = touched_.size();
  saved_bytes_ = approx_bytes_;
}

void WriteTx::Rollback() {
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
    if (it->before != nullptr) {
      working_.Put(it->before, gen_);
    } else {
      working_.Remove(it->kind, it->id, gen_);
    }
  }
  undo_.clear();
  while (touched_.size() > saved_touched_) {
    const Touched& t = touched_.back();
    touched_index_.erase(std::make_pair(static_cast<int>(t.kind), t.id));
    touched_.pop_back();
  }
  approx_bytes_ = saved_bytes_;
}

}  // namespace shoal::manager::store
