#include "manager/store/write_tx.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "store.pb.h"

namespace shoal::manager::store {
namespace internal {

size_t Pending::Add(api::ObjectKind kind, ObjectPtr anchor, const ObjectPtr& base) {
  const size_t i = entries_.size();
  entries_.push_back(Entry{kind, std::move(anchor), base, base != nullptr,
                           base == nullptr ? 0 : MetaOf(*base).version().index()});
  by_key_.emplace(KeyView{kind, IdOf(*entries_.back().anchor)}, static_cast<uint32_t>(i));
  ++per_kind_[kind];
  if (base != nullptr) AddKeys(*base);
  return i;
}

ObjectPtr Pending::Assign(size_t i, ObjectPtr now) {
  Entry& e = entries_[i];
  if (e.now != nullptr) RemoveKeys(*e.now);
  if (now != nullptr) AddKeys(*now);
  delta_[e.kind] += static_cast<int64_t>(now != nullptr) - static_cast<int64_t>(e.now != nullptr);
  std::swap(e.now, now);
  return now;
}

void Pending::PopBack() {
  Entry& e = entries_.back();
  if (e.now != nullptr) RemoveKeys(*e.now);
  delta_[e.kind] -= static_cast<int64_t>(e.now != nullptr) - static_cast<int64_t>(e.existed);
  by_key_.erase(KeyView{e.kind, IdOf(*e.anchor)});
  --per_kind_[e.kind];
  entries_.pop_back();
}

void Pending::Clear() {
  by_key_.clear();
  entries_.clear();
  delta_.fill(0);
  per_kind_.fill(0);
  for (auto& kind : sorted_) {
    for (auto& keys : kind) keys.reset();
  }
}

bool Pending::KeyOf(const api::StoreObject& o, int slot, std::string* key) {
  if (slot == kIdKey) {
    *key = IdOf(o);
    return true;
  }
  return Tables::IndexKey(o, static_cast<Index>(slot), key);
}

const Pending::SortedKeys& Pending::Sorted(api::ObjectKind kind, const Index* index) const {
  std::unique_ptr<SortedKeys>& keys =
      sorted_[kind][index == nullptr ? kIdKey : static_cast<int>(*index)];
  if (keys == nullptr) {
    keys = std::make_unique<SortedKeys>();
    const int slot = index == nullptr ? kIdKey : static_cast<int>(*index);
    std::string key;
    for (const Entry& e : entries_) {
      if (e.kind == kind && e.now != nullptr && KeyOf(*e.now, slot, &key)) keys->insert(key);
    }
  }
  return *keys;
}

void Pending::AddKeys(const api::StoreObject& o) const {
  std::string key;
  auto& kind = sorted_[KindOf(o)];
  for (int slot = 0; slot <= kIdKey; ++slot) {
    if (kind[slot] != nullptr && KeyOf(o, slot, &key)) kind[slot]->insert(key);
  }
}

void Pending::RemoveKeys(const api::StoreObject& o) const {
  std::string key;
  auto& kind = sorted_[KindOf(o)];
  for (int slot = 0; slot <= kIdKey; ++slot) {
    if (kind[slot] != nullptr && KeyOf(o, slot, &key)) kind[slot]->erase(key);
  }
}

}  // namespace internal

WriteTx::WriteTx(std::shared_ptr<const Tables> base)
    : ReadTx(base.get(), &changes_), base_(std::move(base)) {}

void WriteTx::Reset(std::shared_ptr<const Tables> base) {
  base_ = std::move(base);
  tables_ = base_.get();
  changes_.Clear();
  retained_.clear();
  approx_bytes_ = 0;
  recording_undo_ = false;
  undo_.clear();
  saved_entries_ = 0;
  saved_bytes_ = 0;
}

const ObjectPtr* WriteTx::Current(api::ObjectKind kind, absl::string_view id,
                                  int64_t* entry) const {
  *entry = changes_.Find(kind, id);
  if (*entry >= 0) {
    const ObjectPtr& now = changes_.at(*entry).now;
    return now == nullptr ? nullptr : &now;
  }
  return tables_->Get(kind, id);
}

void WriteTx::Record(api::ObjectKind kind, int64_t entry, const ObjectPtr* current,
                     ObjectPtr now) {
  if (entry < 0) {
    // First touch: `current` is the committed state.
    ObjectPtr base = current == nullptr ? nullptr : *current;
    ObjectPtr anchor = base != nullptr ? base : now;
    entry = static_cast<int64_t>(changes_.Add(kind, std::move(anchor), base));
  } else if (recording_undo_ && static_cast<size_t>(entry) < saved_entries_) {
    // (Entries added since the checkpoint are simply dropped on rollback.)
    undo_.push_back(Undo{static_cast<size_t>(entry), changes_.at(entry).now});
  }
  ObjectPtr replaced = changes_.Assign(static_cast<size_t>(entry), std::move(now));
  // Committed objects stay alive with base_; ones this transaction wrote must be kept.
  if (replaced != nullptr && replaced != changes_.at(entry).anchor) {
    retained_.push_back(std::move(replaced));
  }
}

absl::Status WriteTx::CheckName(const api::StoreObject& object) const {
  const api::ObjectKind kind = KindOf(object);
  const std::string& name = NameOf(object);
  if (!HasUniqueNames(kind) || name.empty()) return absl::OkStatus();
  const api::StoreObject* other = nullptr;
  const Index index = Index::kName;
  Scan(kind, &index, Tables::NameKey(name), true, [&](const api::StoreObject& o) {
    if (other == nullptr && IdOf(o) != IdOf(object)) other = &o;
  });
  if (other == nullptr) return absl::OkStatus();
  return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " name \"", name,
                                               "\" is already in use by ", KindName(kind), " ",
                                               IdOf(*other)));
}

absl::Status WriteTx::CreateObject(api::StoreObject object) {
  const api::ObjectKind kind = KindOf(object);
  const std::string& id = IdOf(object);
  if (absl::Status s = ValidateId(kind, id); !s.ok()) return s;
  int64_t entry;
  const ObjectPtr* current = Current(kind, id, &entry);
  if (current != nullptr) {
    return absl::AlreadyExistsError(absl::StrCat(KindName(kind), " ", id, " already exists"));
  }
  if (entry >= 0 && changes_.at(entry).existed) {
    return absl::FailedPreconditionError(
        absl::StrCat(KindName(kind), " ", id,
                     " was deleted earlier in this transaction; update it instead of re-creating"));
  }
  if (absl::Status s = CheckName(object); !s.ok()) return s;
  MutableMetaOf(&object)->Clear();
  // Not const: the applier stamps its Meta (TakeProposal).
  ObjectPtr created = std::make_shared<api::StoreObject>(std::move(object));
  approx_bytes_ += created->ByteSizeLong() + 8;
  Record(kind, entry, nullptr, std::move(created));
  return absl::OkStatus();
}

absl::Status WriteTx::UpdateObject(api::StoreObject object) {
  const api::ObjectKind kind = KindOf(object);
  const std::string& id = IdOf(object);
  if (absl::Status s = ValidateId(kind, id); !s.ok()) return s;
  int64_t entry;
  const ObjectPtr* current = Current(kind, id, &entry);
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
  if (absl::Status s = CheckName(object); !s.ok()) return s;
  *MutableMetaOf(&object) = meta;
  ObjectPtr updated = std::make_shared<api::StoreObject>(std::move(object));
  approx_bytes_ += updated->ByteSizeLong() + 8;
  Record(kind, entry, current, std::move(updated));
  return absl::OkStatus();
}

absl::Status WriteTx::DeleteObject(api::ObjectKind kind, absl::string_view id) {
  if (absl::Status s = ValidateId(kind, id); !s.ok()) return s;
  int64_t entry;
  const ObjectPtr* current = Current(kind, id, &entry);
  if (current == nullptr) {
    return absl::NotFoundError(absl::StrCat(KindName(kind), " ", id, " not found"));
  }
  approx_bytes_ += id.size() + 16;
  Record(kind, entry, current, nullptr);
  return absl::OkStatus();
}

namespace {

// A REMOVE action's object: only the ID and the version read travel.
void RemovalStub(api::ObjectKind kind, const std::string& id, uint64_t read_version,
                 api::StoreObject* o) {
  switch (kind) {
    case api::OBJECT_KIND_NODE:
      o->mutable_node()->set_id(id);
      break;
    case api::OBJECT_KIND_SERVICE:
      o->mutable_service()->set_id(id);
      break;
    case api::OBJECT_KIND_TASK:
      o->mutable_task()->set_id(id);
      break;
    case api::OBJECT_KIND_NETWORK:
      o->mutable_network()->set_id(id);
      break;
    case api::OBJECT_KIND_SECRET:
      o->mutable_secret()->set_id(id);
      break;
    case api::OBJECT_KIND_CONFIG:
      o->mutable_config()->set_id(id);
      break;
    default:
      o->mutable_cluster()->set_id(id);
      break;
  }
  MutableMetaOf(o)->mutable_version()->set_index(read_version);
}

}  // namespace

// The encoding is what api::StoreProposal::SerializeAsString gives for the same proposal
// (fields in number order), written straight from the transaction's immutable objects instead
// of copying each one into a StoreProposal first.
bool WriteTx::TakeProposal(const google::protobuf::Timestamp& proposed_at,
                           DecodedProposal* decoded, std::string* data) {
  using google::protobuf::io::CodedOutputStream;
  static_assert(api::StoreProposal::kRequestFieldNumber == 1 &&
                    api::StoreProposal::kProposedAtFieldNumber == 2 &&
                    api::InternalRaftRequest::kActionsFieldNumber == 2 &&
                    api::StoreAction::kActionFieldNumber == 1 &&
                    api::StoreAction::kObjectFieldNumber == 2,
                "the field numbers written below");
  constexpr uint32_t kVarint = 0, kLengthDelimited = 2;
  struct Item {
    size_t entry;
    const api::StoreObject* object;
    uint32_t action;
    uint32_t object_size;
    uint32_t action_size;
  };
  std::vector<Item> items;
  items.reserve(changes_.entries().size());
  // Objects written for the proposal only. Like every object the transaction wrote, they are
  // not const: the applier may stamp them (see ApplyProposal).
  std::vector<std::shared_ptr<api::StoreObject>> stubs;
  size_t request_size = 0;
  for (size_t i = 0; i < changes_.entries().size(); ++i) {
    const internal::Pending::Entry& e = changes_.at(i);
    if (!e.existed && e.now == nullptr) continue;  // created and deleted again
    Item item;
    item.entry = i;
    if (e.now == nullptr) {
      item.action = api::StoreAction::REMOVE;
      stubs.push_back(std::make_shared<api::StoreObject>());
      RemovalStub(e.kind, IdOf(*e.anchor), e.read_version, stubs.back().get());
      item.object = stubs.back().get();
    } else if (e.existed) {
      item.action = api::StoreAction::UPDATE;
      item.object = e.now.get();
      // The version read travels: UpdateObject copied the Meta it checked against, so it is
      // already there.
      if (MetaOf(*e.now).version().index() != e.read_version) {
        stubs.push_back(std::make_shared<api::StoreObject>(*e.now));
        MutableMetaOf(stubs.back().get())->mutable_version()->set_index(e.read_version);
        item.object = stubs.back().get();
      }
    } else {
      item.action = api::StoreAction::CREATE;
      item.object = e.now.get();
    }
    // CreateObject and UpdateObject sized their objects, which have not changed since.
    item.object_size = static_cast<uint32_t>(item.object == e.now.get()
                                                 ? item.object->GetCachedSize()
                                                 : item.object->ByteSizeLong());
    item.action_size = static_cast<uint32_t>(
        1 + CodedOutputStream::VarintSize32(item.action) + 1 +
        CodedOutputStream::VarintSize32(item.object_size) + item.object_size);
    request_size += 1 + CodedOutputStream::VarintSize32(item.action_size) + item.action_size;
    items.push_back(item);
  }
  if (items.empty()) {
    Reset(std::move(base_));
    return false;
  }
  const uint32_t at_size = static_cast<uint32_t>(proposed_at.ByteSizeLong());
  const size_t total = 1 + CodedOutputStream::VarintSize32(static_cast<uint32_t>(request_size)) +
                       request_size + 1 + CodedOutputStream::VarintSize32(at_size) + at_size;
  std::string* out = data;
  out->clear();
  out->resize(total);
  uint8_t* p = reinterpret_cast<uint8_t*>(&(*out)[0]);
  p = CodedOutputStream::WriteTagToArray((1u << 3) | kLengthDelimited, p);
  p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(request_size), p);
  for (const Item& item : items) {
    p = CodedOutputStream::WriteTagToArray((2u << 3) | kLengthDelimited, p);
    p = CodedOutputStream::WriteVarint32ToArray(item.action_size, p);
    p = CodedOutputStream::WriteTagToArray((1u << 3) | kVarint, p);
    p = CodedOutputStream::WriteVarint32ToArray(item.action, p);
    p = CodedOutputStream::WriteTagToArray((2u << 3) | kLengthDelimited, p);
    p = CodedOutputStream::WriteVarint32ToArray(item.object_size, p);
    p = item.object->SerializeWithCachedSizesToArray(p);
  }
  p = CodedOutputStream::WriteTagToArray((2u << 3) | kLengthDelimited, p);
  p = CodedOutputStream::WriteVarint32ToArray(at_size, p);
  p = proposed_at.SerializeWithCachedSizesToArray(p);
  if (p != reinterpret_cast<uint8_t*>(&(*out)[0]) + total) {
    // Cannot happen unless an object changed under us (they are immutable): never send a
    // malformed entry.
    api::StoreProposal proposal;
    for (const Item& item : items) {
      api::StoreAction* a = proposal.mutable_request()->add_actions();
      a->set_action(static_cast<api::StoreAction::Action>(item.action));
      *a->mutable_object() = *item.object;
    }
    *proposal.mutable_proposed_at() = proposed_at;
    *out = proposal.SerializeAsString();
  }

  // Hand the objects over: each goes to the applier with no other reference to it.
  decoded->proposed_at = proposed_at;
  decoded->actions.clear();
  decoded->actions.reserve(items.size());
  size_t stub = 0;
  for (const Item& item : items) {
    std::shared_ptr<api::StoreObject> object;
    if (stub < stubs.size() && item.object == stubs[stub].get()) {
      object = std::move(stubs[stub++]);
    } else {
      // Made by make_shared<api::StoreObject> in CreateObject or UpdateObject: not const.
      object = std::const_pointer_cast<api::StoreObject>(
          changes_.at(item.entry).now);  // the entries' references go with Reset below
    }
    decoded->actions.push_back(DecodedProposal::Action{
        static_cast<api::StoreAction::Action>(item.action), std::move(object)});
  }
  Reset(std::move(base_));
  return true;
}

void WriteTx::Checkpoint() {
  recording_undo_ = true;
  undo_.clear();
  retained_.clear();  // the previous callback has returned
  saved_entries_ = changes_.entries().size();
  saved_bytes_ = approx_bytes_;
}

void WriteTx::Rollback() {
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
    changes_.Assign(it->entry, std::move(it->before));
  }
  undo_.clear();
  while (changes_.entries().size() > saved_entries_) changes_.PopBack();
  approx_bytes_ = saved_bytes_;
}

}  // namespace shoal::manager::store
