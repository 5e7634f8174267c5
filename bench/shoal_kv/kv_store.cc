#include "bench/shoal_kv/kv_store.h"

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"

namespace shoal::kv {

std::string KvStore::Apply(uint64_t index, const std::string& data) {
  etcdserverpb::PutRequest put;
  if (!put.ParseFromString(data)) return "";
  absl::MutexLock lock(&mu_);
  revision_ = static_cast<int64_t>(index);
  mvccpb::KeyValue& kv = kvs_[put.key()];
  std::string previous = kv.key().empty() ? std::string() : kv.SerializeAsString();
  if (kv.key().empty()) {
    kv.set_key(put.key());
    kv.set_create_revision(revision_);
  }
  kv.set_mod_revision(revision_);
  kv.set_version(kv.version() + 1);
  kv.set_value(put.value());
  return previous;
}

std::string KvStore::Snapshot() {
  etcdserverpb::RangeResponse all;  // a convenient container: a header and a list of KeyValues
  absl::MutexLock lock(&mu_);
  all.mutable_header()->set_revision(revision_);
  for (const auto& [key, kv] : kvs_) *all.add_kvs() = kv;
  return all.SerializeAsString();
}

absl::Status KvStore::Restore(const std::string& data) {
  etcdserverpb::RangeResponse all;
  if (!all.ParseFromString(data)) return absl::DataLossError("shoal_kv: snapshot does not parse");
  std::map<std::string, mvccpb::KeyValue> kvs;
  for (const mvccpb::KeyValue& kv : all.kvs()) kvs[kv.key()] = kv;
  absl::MutexLock lock(&mu_);
  kvs_ = std::move(kvs);
  revision_ = all.header().revision();
  return absl::OkStatus();
}

std::optional<mvccpb::KeyValue> KvStore::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return std::nullopt;
  return it->second;
}

int64_t KvStore::revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

size_t KvStore::size() const {
  absl::MutexLock lock(&mu_);
  return kvs_.size();
}

}  // namespace shoal::kv
