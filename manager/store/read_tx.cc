#include "manager/store/read_tx.h"

#include <algorithm>
#include <utility>

#include "manager/store/write_tx.h"

namespace shoal::manager::store {

const api::StoreObject* ReadTx::PendingGet(api::ObjectKind kind, absl::string_view id) const {
  const int64_t i = pending_->Find(kind, id);
  if (i >= 0) return pending_->at(i).now.get();
  const ObjectPtr* o = tables_->Get(kind, id);
  return o == nullptr ? nullptr : o->get();
}

size_t ReadTx::PendingCount(api::ObjectKind kind) const {
  return static_cast<size_t>(static_cast<int64_t>(tables_->count(kind)) +
                             pending_->count_delta(kind));
}

// The committed objects the transaction has not touched, merged in key order with the ones it
// wrote.
void ReadTx::PendingScan(api::ObjectKind kind, const Index* index, absl::string_view prefix,
                         bool exact, std::vector<const api::StoreObject*>* out) const {
  std::string buf;
  if (exact) {
    buf.reserve(prefix.size() + 1);
    buf.append(prefix.data(), prefix.size());
    buf.push_back('\0');
    prefix = buf;
  }
  // A longer value that merely starts with `prefix` and a NUL is no exact match: IDs hold no NUL.
  auto matches = [&](absl::string_view key) {
    return !exact || key.find('\0', prefix.size()) == absl::string_view::npos;
  };
  if (!pending_->touches(kind)) {
    tables_->Scan(kind, index, prefix, [&](absl::string_view key, const api::StoreObject& o) {
      if (matches(key)) out->push_back(&o);
      return true;
    });
    return;
  }
  using Keyed = std::pair<absl::string_view, const api::StoreObject*>;
  std::vector<Keyed> committed, written;
  tables_->Scan(kind, index, prefix, [&](absl::string_view key, const api::StoreObject& o) {
    if (matches(key) && pending_->Find(kind, IdOf(o)) < 0) committed.emplace_back(key, &o);
    return true;
  });
  pending_->Scan(kind, index, prefix, [&](absl::string_view key, const api::StoreObject& o) {
    if (matches(key)) written.emplace_back(key, &o);
  });
  out->reserve(out->size() + committed.size() + written.size());
  auto c = committed.begin();
  auto w = written.begin();
  while (c != committed.end() || w != written.end()) {
    if (w == written.end() || (c != committed.end() && c->first < w->first)) {
      out->push_back((c++)->second);
    } else {
      out->push_back((w++)->second);
    }
  }
}

}  // namespace shoal::manager::store
