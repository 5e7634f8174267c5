#include "bench/shoal_kv/kv_store.h"

#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "gtest/gtest.h"

namespace shoal::kv {
namespace {

std::string Put(const std::string& k, const std::string& v) {
  etcdserverpb::PutRequest put;
  put.set_key(k);
  put.set_value(v);
  return put.SerializeAsString();
}

TEST(KvStoreTest, RevisionsAndVersionsFollowTheLog) {
  KvStore s;
  EXPECT_EQ(s.Apply(5, Put("a", "1")), "");
  std::string prev = s.Apply(7, Put("a", "2"));
  mvccpb::KeyValue p;
  ASSERT_TRUE(p.ParseFromString(prev));
  EXPECT_EQ(p.value(), "1");
  const auto kv = s.Get("a");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->value(), "2");
  EXPECT_EQ(kv->create_revision(), 5);
  EXPECT_EQ(kv->mod_revision(), 7);
  EXPECT_EQ(kv->version(), 2);
  EXPECT_EQ(s.revision(), 7);
}

TEST(KvStoreTest, SnapshotRestoresEverything) {
  KvStore a;
  for (int i = 0; i < 100; ++i) a.Apply(i + 1, Put("k" + std::to_string(i), std::to_string(i)));
  KvStore b;
  ASSERT_TRUE(b.Restore(a.Snapshot()).ok());
  EXPECT_EQ(b.size(), 100u);
  EXPECT_EQ(b.revision(), 100);
  EXPECT_EQ(b.Get("k42")->value(), "42");
  EXPECT_FALSE(b.Restore("\xff\xff garbage").ok());
}

}  // namespace
}  // namespace shoal::kv
