#include "manager/store/tables.h"

#include <algorithm>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shoal::manager::store {
namespace {

constexpr char kSep = '\0';

using IndexEntries = absl::InlinedVector<std::pair<Index, std::string>, kNumIndexes>;

// The full index keys ("<value>\0<id>") an object occupies.
IndexEntries EntriesOf(const api::StoreObject& o) {
  IndexEntries out;
  const std::string& id = IdOf(o);
  auto add = [&](Index index, std::string value) {
    value.push_back(kSep);
    value.append(id);
    out.emplace_back(index, std::move(value));
  };
  if (o.object_case() != api::StoreObject::kTask) {
    const std::string& name = NameOf(o);
    if (!name.empty()) add(Index::kName, Tables::NameKey(name));
    return out;
  }
  // Tasks: no name entry (their names derive from service, slot and ID, which are indexed).
  const api::Task& t = o.task();
  if (!t.service_id().empty()) {
    add(Index::kServiceId, t.service_id());
    if (t.slot() != 0) {
      add(Index::kSlot, Tables::SlotKey(t.service_id(), t.slot()));
    } else if (!t.node_id().empty()) {
      add(Index::kSlot, Tables::ServiceNodeKey(t.service_id(), t.node_id()));
    }
  }
  if (!t.node_id().empty()) add(Index::kNodeId, t.node_id());
  add(Index::kDesiredState, Tables::DesiredStateKey(t.desired_state()));
  return out;
}

bool Contains(const IndexEntries& entries, const std::pair<Index, std::string>& e) {
  return std::find(entries.begin(), entries.end(), e) != entries.end();
}

}  // namespace

std::string Tables::NameKey(absl::string_view name) { return absl::AsciiStrToLower(name); }

std::string Tables::DesiredStateKey(api::TaskState state) {
  return absl::StrFormat("%08x", static_cast<uint32_t>(state));
}

// One index for both kinds of slot: "s" + slot for replicated tasks, "n" + node ID for a global
// service's tasks (slot 0), so each task costs one entry.
std::string Tables::SlotKey(absl::string_view service_id, uint64_t slot) {
  return absl::StrCat(service_id, absl::string_view(&kSep, 1), "s", absl::StrFormat("%016x", slot));
}

std::string Tables::ServiceNodeKey(absl::string_view service_id, absl::string_view node_id) {
  return absl::StrCat(service_id, absl::string_view(&kSep, 1), "n", node_id);
}

void Tables::Put(ObjectPtr object, uint64_t gen) {
  const api::ObjectKind kind = KindOf(*object);
  Table& t = table(kind);
  const std::string& id = IdOf(*object);
  IndexEntries added = EntriesOf(*object);
  if (const ObjectPtr* old = t.objects.Find(id)) {
    IndexEntries previous = EntriesOf(**old);
    for (const auto& e : previous) {
      if (!Contains(added, e)) t.indexes[static_cast<int>(e.first)].Erase(e.second, gen);
    }
    for (const auto& e : added) {
      if (!Contains(previous, e)) t.indexes[static_cast<int>(e.first)].Set(e.second, {}, gen);
    }
  } else {
    for (const auto& e : added) t.indexes[static_cast<int>(e.first)].Set(e.second, {}, gen);
  }
  t.objects.Set(id, std::move(object), gen);
}

bool Tables::Remove(api::ObjectKind kind, absl::string_view id, uint64_t gen) {
  Table& t = table(kind);
  const ObjectPtr* old = t.objects.Find(id);
  if (old == nullptr) return false;
  for (const auto& e : EntriesOf(**old)) t.indexes[static_cast<int>(e.first)].Erase(e.second, gen);
  t.objects.Erase(id, gen);
  return true;
}

void Tables::FindExact(api::ObjectKind kind, Index index, absl::string_view value,
                       std::vector<const api::StoreObject*>* out) const {
  const Table& t = table(kind);
  std::string prefix(value);
  prefix.push_back(kSep);
  t.indexes[static_cast<int>(index)].ScanPrefix(prefix, [&](const std::string& key, const Unit&) {
    absl::string_view id = absl::string_view(key).substr(prefix.size());
    // A longer value that merely starts with `value` and a NUL is not a match: IDs hold no NUL.
    if (id.find(kSep) != absl::string_view::npos) return true;
    if (const ObjectPtr* o = t.objects.Find(id)) out->push_back(o->get());
    return true;
  });
}

void Tables::FindPrefix(api::ObjectKind kind, Index index, absl::string_view prefix,
                        std::vector<const api::StoreObject*>* out) const {
  const Table& t = table(kind);
  t.indexes[static_cast<int>(index)].ScanPrefix(prefix, [&](const std::string& key, const Unit&) {
    const size_t sep = key.rfind(kSep);
    if (const ObjectPtr* o = t.objects.Find(absl::string_view(key).substr(sep + 1))) {
      out->push_back(o->get());
    }
    return true;
  });
}

void Tables::FindIdPrefix(api::ObjectKind kind, absl::string_view prefix,
                          std::vector<const api::StoreObject*>* out) const {
  table(kind).objects.ScanPrefix(prefix, [&](const std::string&, const ObjectPtr& o) {
    out->push_back(o.get());
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
