#include "manager/store/tables.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace shoal::manager::store {
namespace {

constexpr char kSep = '\0';

// Appends `v` as `digits` lower-case hex digits (zero-padded, as printf's %0Nx).
void AppendHex(uint64_t v, int digits, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const size_t at = out->size();
  out->resize(at + digits);
  for (int i = digits - 1; i >= 0; --i, v >>= 4) (*out)[at + i] = kHex[v & 0xf];
}

void AppendSlotValue(absl::string_view service_id, uint64_t slot, std::string* out) {
  out->append(service_id.data(), service_id.size());
  out->push_back(kSep);
  out->push_back('s');
  AppendHex(slot, 16, out);
}

void AppendServiceNodeValue(absl::string_view service_id, absl::string_view node_id,
                            std::string* out) {
  out->append(service_id.data(), service_id.size());
  out->push_back(kSep);
  out->push_back('n');
  out->append(node_id.data(), node_id.size());
}

}  // namespace

std::string Tables::NameKey(absl::string_view name) { return absl::AsciiStrToLower(name); }

std::string Tables::DesiredStateKey(api::TaskState state) {
  std::string out;
  AppendHex(static_cast<uint32_t>(state), 8, &out);
  return out;
}

// One index for both kinds of slot: "s" + slot for replicated tasks, "n" + node ID for a global
// service's tasks (slot 0), so each task costs one entry.
std::string Tables::SlotKey(absl::string_view service_id, uint64_t slot) {
  std::string out;
  AppendSlotValue(service_id, slot, &out);
  return out;
}

std::string Tables::ServiceNodeKey(absl::string_view service_id, absl::string_view node_id) {
  std::string out;
  AppendServiceNodeValue(service_id, node_id, &out);
  return out;
}

bool Tables::IndexKey(const api::StoreObject& o, Index index, std::string* key) {
  key->clear();
  if (o.object_case() != api::StoreObject::kTask) {
    // Tasks are not indexed by name: their names derive from service, slot and ID, which are.
    if (index != Index::kName) return false;
    const std::string& name = NameOf(o);
    if (name.empty()) return false;
    key->resize(name.size());
    for (size_t i = 0; i < name.size(); ++i) (*key)[i] = absl::ascii_tolower(name[i]);
  } else {
    const api::Task& t = o.task();
    switch (index) {
      case Index::kName:
        return false;
      case Index::kServiceId:
        if (t.service_id().empty()) return false;
        key->append(t.service_id());
        break;
      case Index::kNodeId:
        if (t.node_id().empty()) return false;
        key->append(t.node_id());
        break;
      case Index::kDesiredState:
        AppendHex(static_cast<uint32_t>(t.desired_state()), 8, key);
        break;
      case Index::kSlot:
        if (t.service_id().empty()) return false;
        if (t.slot() != 0) {
          AppendSlotValue(t.service_id(), t.slot(), key);
        } else if (!t.node_id().empty()) {
          AppendServiceNodeValue(t.service_id(), t.node_id(), key);
        } else {
          return false;
        }
        break;
    }
  }
  key->push_back(kSep);
  key->append(IdOf(o));
  return true;
}

bool Tables::SameIndexEntries(const api::StoreObject& a, const api::StoreObject& b) {
  if (a.object_case() != b.object_case() || IdOf(a) != IdOf(b)) return false;
  if (a.object_case() != api::StoreObject::kTask) return NameOf(a) == NameOf(b);
  const api::Task& x = a.task();
  const api::Task& y = b.task();
  return x.service_id() == y.service_id() && x.slot() == y.slot() &&
         x.node_id() == y.node_id() && x.desired_state() == y.desired_state();
}

void Tables::Put(ObjectPtr object, const ObjectPtr* old, uint64_t gen) {
  const api::ObjectKind kind = KindOf(*object);
  Table& t = table(kind);
  const std::string& id = IdOf(*object);
  if (old == nullptr || !SameIndexEntries(**old, *object)) {
    // Reused buffers: no allocation per write once they have grown.
    thread_local std::string before, after;
    for (int i = 0; i < kNumIndexes; ++i) {
      const Index index = static_cast<Index>(i);
      if (!Indexed(kind, index)) continue;
      const bool had = old != nullptr && IndexKey(**old, index, &before);
      const bool has = IndexKey(*object, index, &after);
      if (had && has && before == after) continue;
      if (had) t.indexes[i].Erase(before, gen);
      if (has) t.indexes[i].Set(after, {}, gen);
    }
  }
  t.objects.Set(id, std::move(object), gen);
}

bool Tables::Remove(api::ObjectKind kind, absl::string_view id, uint64_t gen) {
  Table& t = table(kind);
  const ObjectPtr* old = t.objects.Find(id);
  if (old == nullptr) return false;
  thread_local std::string key;
  for (int i = 0; i < kNumIndexes; ++i) {
    if (Indexed(kind, static_cast<Index>(i)) && IndexKey(**old, static_cast<Index>(i), &key)) {
      t.indexes[i].Erase(key, gen);
    }
  }
  t.objects.Erase(id, gen);
  return true;
}

void Tables::FindExact(api::ObjectKind kind, Index index, absl::string_view value,
                       std::vector<const api::StoreObject*>* out) const {
  std::string prefix(value);
  prefix.push_back(kSep);
  Scan(kind, &index, prefix, [&](absl::string_view key, const api::StoreObject& o) {
    // A longer value that merely starts with `value` and a NUL is not a match: IDs hold no NUL.
    if (key.find(kSep, prefix.size()) == absl::string_view::npos) out->push_back(&o);
    return true;
  });
}

void Tables::FindPrefix(api::ObjectKind kind, Index index, absl::string_view prefix,
                        std::vector<const api::StoreObject*>* out) const {
  Scan(kind, &index, prefix, [&](absl::string_view, const api::StoreObject& o) {
    out->push_back(&o);
    return true;
  });
}

void Tables::FindIdPrefix(api::ObjectKind kind, absl::string_view prefix,
                          std::vector<const api::StoreObject*>* out) const {
  Scan(kind, nullptr, prefix, [&](absl::string_view, const api::StoreObject& o) {
    out->push_back(&o);
    return true;
  });
}

const api::StoreObject* Tables::NameConflict(const api::StoreObject& object) const {
  const api::ObjectKind kind = KindOf(object);
  const std::string& name = NameOf(object);
  if (!HasUniqueNames(kind) || name.empty()) return nullptr;
  std::vector<const api::StoreObject*> holders;
  FindExact(kind, Index::kName, NameKey(name), &holders);
  for (const api::StoreObject* h : holders) {
    if (IdOf(*h) != IdOf(object)) return h;
  }
  return nullptr;
}

}  // namespace shoal::manager::store
