#include "manager/store/memory_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "manager/store/apply.h"
#include "manager/store/persistent_map.h"
#include "manager/store/wire_check.h"
#include "store.pb.h"

namespace shoal::manager::store {
namespace {

std::string EncodeResult(const absl::Status& status, uint64_t index) {
  api::StoreApplyResult r;
  r.set_code(static_cast<int32_t>(status.code()));
  r.set_message(std::string(status.message()));
  r.set_version(index);
  return r.SerializeAsString();
}

// The StoreSnapshot encoding of `t`, written straight from the stored objects instead of
// copying them into a StoreSnapshot first: the same bytes protobuf would produce (fields in
// number order: version, then each kind's objects in ID order), at a fraction of the cost.
// Deterministic serialization, since protobuf leaves map order (labels, options) unspecified
// otherwise and snapshots must be byte-identical across managers.
std::string EncodeSnapshot(const Tables& t) {
  static_assert(api::StoreSnapshot::kVersionFieldNumber == 1 &&
                    api::StoreSnapshot::kNodesFieldNumber == api::OBJECT_KIND_NODE + 1 &&
                    api::StoreSnapshot::kClustersFieldNumber == api::OBJECT_KIND_CLUSTER + 1,
                "StoreSnapshot's field numbers follow ObjectKind");
  constexpr uint32_t kVarint = 0, kLengthDelimited = 2;
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (t.version != 0) {
      coded.WriteTag((1u << 3) | kVarint);
      coded.WriteVarint64(t.version);
    }
    for (int kind = api::OBJECT_KIND_NODE; kind <= api::OBJECT_KIND_CLUSTER; ++kind) {
      const uint32_t tag = (static_cast<uint32_t>(kind + 1) << 3) | kLengthDelimited;
      t.objects(static_cast<api::ObjectKind>(kind))
          .ForEach([&](absl::string_view, const ObjectPtr& o) {
            const google::protobuf::MessageLite* m = nullptr;
            switch (o->object_case()) {
              case api::StoreObject::kNode:
                m = &o->node();
                break;
              case api::StoreObject::kService:
                m = &o->service();
                break;
              case api::StoreObject::kTask:
                m = &o->task();
                break;
              case api::StoreObject::kNetwork:
                m = &o->network();
                break;
              case api::StoreObject::kSecret:
                m = &o->secret();
                break;
              case api::StoreObject::kConfig:
                m = &o->config();
                break;
              default:
                m = &o->cluster();
                break;
            }
            coded.WriteTag(tag);
            coded.WriteVarint32(static_cast<uint32_t>(m->ByteSizeLong()));
            m->SerializeWithCachedSizes(&coded);
            return true;
          });
    }
  }
  return out;
}

// Moves the snapshot's objects of one kind into `t`.
template <class T>
absl::Status RestoreAll(google::protobuf::RepeatedPtrField<T>* objects, uint64_t gen, Tables* t) {
  const api::ObjectKind kind = ObjectTraits<T>::kKind;
  for (T& object : *objects) {
    if (absl::Status s = ValidateId(kind, object.id()); !s.ok()) {
      return absl::DataLossError(absl::StrCat("store snapshot: ", s.message()));
    }
    if (t->Get(kind, object.id()) != nullptr) {
      return absl::DataLossError(
          absl::StrCat("store snapshot: ", KindName(kind), " ", object.id(), " appears twice"));
    }
    t->Put(std::make_shared<const api::StoreObject>(Wrap(std::move(object))), nullptr, gen);
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Batch

Batch::Batch(MemoryStore* store) : store_(store), tx_(new WriteTx(store->Current())) {
  tx_->changes_.Reserve(std::min<size_t>(store_->options_.batch_max_objects, 4096));
}

absl::Status Batch::Update(const std::function<absl::Status(WriteTx&)>& fn) {
  if (!failed_.ok()) return failed_;
  tx_->Checkpoint();
  if (absl::Status s = fn(*tx_); !s.ok()) {
    tx_->Rollback();
    return s;
  }
  if (tx_->changed_objects() >= store_->options_.batch_max_objects ||
      tx_->approx_bytes() >= store_->options_.batch_max_bytes) {
    return Flush();
  }
  return absl::OkStatus();
}

absl::Status Batch::Flush() {
  if (!failed_.ok()) return failed_;
  if (tx_->changed_objects() == 0) return absl::OkStatus();
  absl::Status s = store_->Commit(*tx_);
  if (!s.ok()) {
    failed_ = s;
    return s;
  }
  ++entries_committed_;
  // Continue from the store as it now is: the flushed entry, and whatever else was applied.
  tx_->Reset(store_->Current());
  tx_->changes_.Reserve(std::min<size_t>(store_->options_.batch_max_objects, 4096));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// MemoryStore

MemoryStore::MemoryStore(Proposer* proposer, StoreOptions options)
    : proposer_(proposer),
      options_(options),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock()),
      state_(std::make_shared<const Tables>()) {}

MemoryStore::~MemoryStore() {
  absl::MutexLock lock(&mu_);
  for (auto& w : watchers_) w->CloseWith(absl::CancelledError("the store was shut down"));
}

std::shared_ptr<const Tables> MemoryStore::Current() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

void MemoryStore::View(const std::function<void(const ReadTx&)>& fn) const {
  std::shared_ptr<const Tables> tables = Current();
  ReadTx tx(tables.get());
  fn(tx);
}

absl::Status MemoryStore::Update(const std::function<absl::Status(WriteTx&)>& fn) {
  WriteTx tx(Current());
  if (absl::Status s = fn(tx); !s.ok()) return s;
  return Commit(tx);
}

absl::Status MemoryStore::Batch(const std::function<absl::Status(store::Batch&)>& fn) {
  store::Batch batch(this);
  if (absl::Status s = fn(batch); !s.ok()) return s;
  return batch.Flush();
}

absl::Status MemoryStore::Commit(WriteTx& tx) {
  if (tx.changed_objects() == 0) return absl::OkStatus();
  if (proposer_ == nullptr) {
    return absl::FailedPreconditionError("store: read-only (no proposer): cannot write");
  }
  const absl::Time now = clock_->Now();
  const int64_t seconds = absl::ToUnixSeconds(now);
  google::protobuf::Timestamp proposed_at;
  proposed_at.set_seconds(seconds);
  proposed_at.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(now - absl::FromUnixSeconds(seconds))));
  std::string data;
  DecodedProposal decoded;
  if (!tx.TakeProposal(proposed_at, &decoded, &data)) return absl::OkStatus();  // cancelled out
  // Apply takes the objects from here when the entry it applies is this one, byte for byte,
  // instead of parsing them back: parsing would give the same objects, provided the parser
  // accepts the bytes at all (a proto3 string holding invalid UTF-8 makes it refuse them, for
  // one), which WouldParse checks. Otherwise Apply parses, as it does for other managers'
  // entries, so the entry's bytes stay the truth either way.
  uint64_t ticket = 0;
  if (WouldParse(api::StoreProposal::descriptor(), data)) {
    ticket = RememberLocal(data, std::move(decoded));
  }
  absl::StatusOr<std::string> result =
      proposer_->Propose(std::move(data), absl::Now() + options_.proposal_timeout);
  if (ticket != 0) ForgetLocal(ticket);  // not applied (yet): Apply will parse it if it comes
  if (!result.ok()) return result.status();
  return DecodeResult(*result);
}

uint64_t MemoryStore::RememberLocal(const std::string& data, DecodedProposal decoded) {
  absl::MutexLock lock(&local_mu_);
  const uint64_t ticket = ++next_ticket_;
  local_.push_back(LocalProposal{ticket, data, std::move(decoded)});
  return ticket;
}

bool MemoryStore::TakeLocal(const std::string& data, DecodedProposal* decoded) {
  absl::MutexLock lock(&local_mu_);
  for (auto it = local_.begin(); it != local_.end(); ++it) {
    if (it->data.size() == data.size() && it->data == data) {
      *decoded = std::move(it->decoded);
      local_.erase(it);
      return true;
    }
  }
  return false;
}

void MemoryStore::ForgetLocal(uint64_t ticket) {
  absl::MutexLock lock(&local_mu_);
  for (auto it = local_.begin(); it != local_.end(); ++it) {
    if (it->ticket == ticket) {
      local_.erase(it);
      return;
    }
  }
}

absl::Status MemoryStore::DecodeResult(const std::string& result) {
  api::StoreApplyResult r;
  if (!r.ParseFromString(result)) {
    return absl::InternalError("store: the proposer returned an undecodable apply result");
  }
  return absl::Status(static_cast<absl::StatusCode>(r.code()), r.message());
}

std::unique_ptr<Watcher> MemoryStore::ViewAndWatch(const std::function<void(const ReadTx&)>& fn,
                                                   WatchFilter filter) {
  const size_t limit = filter.queue_limit != 0 ? filter.queue_limit : options_.watch_queue_limit;
  auto queue = std::make_shared<internal::WatchQueue>(std::move(filter), limit);
  std::shared_ptr<const Tables> tables;
  {
    // The view and the registration happen under the lock Publish holds: no entry can slip
    // between them.
    absl::MutexLock lock(&mu_);
    tables = state_;
    watchers_.push_back(queue);
  }
  ReadTx tx(tables.get());
  fn(tx);
  return std::unique_ptr<Watcher>(new Watcher(std::move(queue), tables->version));
}

StoreCounts MemoryStore::Counts() const {
  std::shared_ptr<const Tables> tables = Current();
  StoreCounts counts;
  counts.version = tables->version;
  for (int k = 1; k <= kNumKinds; ++k) {
    counts.by_kind[k] = tables->count(static_cast<api::ObjectKind>(k));
  }
  return counts;
}

uint64_t MemoryStore::version() const { return Current()->version; }

void MemoryStore::Publish(std::shared_ptr<const Tables> tables,
                          const std::vector<Change>& changes) {
  absl::MutexLock lock(&mu_);
  const uint64_t version = tables->version;
  state_ = std::move(tables);
  if (changes.empty()) return;
  size_t kept = 0;
  for (size_t i = 0; i < watchers_.size(); ++i) {
    if (watchers_[i]->Publish(version, changes)) watchers_[kept++] = std::move(watchers_[i]);
  }
  watchers_.resize(kept);
}

std::string MemoryStore::Apply(uint64_t index, const std::string& data) {
  absl::MutexLock apply_lock(&apply_mu_);
  std::shared_ptr<const Tables> current = Current();
  if (index <= current->version) {
    return EncodeResult(
        absl::FailedPreconditionError(absl::StrCat(
            "store: entry ", index, " is not after the store's version ", current->version)),
        index);
  }
  DecodedProposal proposal;
  if (!TakeLocal(data, &proposal) && !DecodeProposal(data, &proposal)) {
    return EncodeResult(
        absl::InvalidArgumentError(absl::StrCat("store: entry ", index, " is not a proposal")),
        index);
  }
  auto working = std::make_shared<Tables>(*current);
  std::vector<Change> changes;
  absl::Status s = ApplyProposal(proposal, index, NewGeneration(), working.get(), &changes);
  if (s.ok()) Publish(std::move(working), changes);
  return EncodeResult(s, index);
}

std::string MemoryStore::Snapshot() {
  // A published version never changes: no need to hold off Apply while encoding it.
  return EncodeSnapshot(*Current());
}

std::function<std::string()> MemoryStore::CaptureSnapshot() {
  return [version = Current()] { return EncodeSnapshot(*version); };
}

absl::Status MemoryStore::Restore(const std::string& data) {
  absl::MutexLock apply_lock(&apply_mu_);
  api::StoreSnapshot snap;
  if (!snap.ParseFromString(data)) return absl::DataLossError("store snapshot: undecodable");
  auto tables = std::make_shared<Tables>();
  const uint64_t gen = NewGeneration();
  for (absl::Status s : {RestoreAll(snap.mutable_nodes(), gen, tables.get()),
                         RestoreAll(snap.mutable_services(), gen, tables.get()),
                         RestoreAll(snap.mutable_tasks(), gen, tables.get()),
                         RestoreAll(snap.mutable_networks(), gen, tables.get()),
                         RestoreAll(snap.mutable_secrets(), gen, tables.get()),
                         RestoreAll(snap.mutable_configs(), gen, tables.get()),
                         RestoreAll(snap.mutable_clusters(), gen, tables.get())}) {
    if (!s.ok()) return s;
  }
  tables->version = snap.version();
  absl::MutexLock lock(&mu_);
  state_ = std::move(tables);
  for (auto& w : watchers_) {
    w->CloseWith(
        absl::AbortedError(absl::StrCat("the store was replaced by a Raft snapshot at version ",
                                        snap.version(), "; re-read it with a new ViewAndWatch")));
  }
  watchers_.clear();
  return absl::OkStatus();
}

}  // namespace shoal::manager::store
