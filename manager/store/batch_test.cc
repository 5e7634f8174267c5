// MemoryStore::Batch: bulk writes split into several entries, each callback atomic.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "manager/store/memory_store.h"
#include "manager/store/test_objects.h"
#include "store.pb.h"

namespace shoal::manager::store {
namespace {

using testing::Make;
using testing::MakeTask;
using testing::StoreFixture;

TEST(BatchTest, SplitsByObjectCount) {
  StoreOptions opts;
  opts.batch_max_objects = 100;
  StoreFixture f(opts);
  ASSERT_TRUE(f.store
                  .Batch([](Batch& b) {
                    for (int i = 0; i < 1000; ++i) {
                      absl::Status s = b.Update([i](WriteTx& tx) {
                        return tx.Create(MakeTask(absl::StrCat("t", i), "svc", i + 1));
                      });
                      if (!s.ok()) return s;
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  const auto entries = f.proposer.entries();
  EXPECT_EQ(entries.size(), 10u);
  for (const auto& e : entries) {
    api::StoreProposal p;
    ASSERT_TRUE(p.ParseFromString(e.data));
    EXPECT_EQ(p.request().actions_size(), 100);
  }
  EXPECT_EQ(f.store.Counts().of(api::OBJECT_KIND_TASK), 1000u);
}

TEST(BatchTest, SplitsByBytes) {
  StoreOptions opts;
  opts.batch_max_bytes = 10000;
  StoreFixture f(opts);
  ASSERT_TRUE(f.store
                  .Batch([](Batch& b) {
                    for (int i = 0; i < 20; ++i) {
                      absl::Status s = b.Update([i](WriteTx& tx) {
                        api::Secret sec = Make<api::Secret>(absl::StrCat("sec", i));
                        sec.mutable_spec()->set_data(std::string(3000, 'x'));
                        return tx.Create(sec);
                      });
                      if (!s.ok()) return s;
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  const auto entries = f.proposer.entries();
  EXPECT_EQ(entries.size(), 5u);  // 4 secrets reach 10000 bytes
  for (const auto& e : entries) EXPECT_LT(e.data.size(), 13000u);
  EXPECT_EQ(f.store.Counts().of(api::OBJECT_KIND_SECRET), 20u);
}

TEST(BatchTest, CallbacksAreAtomicAndSeeEarlierChanges) {
  StoreOptions opts;
  opts.batch_max_objects = 3;
  StoreFixture f(opts);
  ASSERT_TRUE(f.store
                  .Batch([](Batch& b) {
                    for (int i = 0; i < 5; ++i) {
                      EXPECT_TRUE(b.Update([i](WriteTx& tx) {
                                     return tx.Create(MakeTask(absl::StrCat("t", i), "svc", 1));
                                   }).ok());
                    }
                    // A failing callback leaves nothing behind.
                    absl::Status s = b.Update([](WriteTx& tx) {
                      EXPECT_TRUE(tx.Create(MakeTask("t-bad", "svc", 1)).ok());
                      return tx.Create(MakeTask("t0", "svc", 1));  // exists
                    });
                    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
                    // Later callbacks see the earlier ones, flushed (t0..t2) or not (t3, t4).
                    return b.Update([](WriteTx& tx) {
                      absl::Status st;
                      for (const char* id : {"t0", "t4"}) {
                        api::Task t = *tx.Get<api::Task>(id);
                        t.set_node_id("n1");
                        st.Update(tx.Update(t));
                      }
                      return st;
                    });
                  })
                  .ok());
  f.store.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.Count<api::Task>(), 5u);
    EXPECT_EQ(tx.Get<api::Task>("t-bad"), nullptr);
    std::vector<std::string> on_n1;
    for (const api::Task* t : tx.FindTasksByNode("n1")) on_n1.push_back(t->id());
    EXPECT_EQ(on_n1, (std::vector<std::string>{"t0", "t4"}));
  });
}

TEST(BatchTest, ProposalFailureStopsTheBatch) {
  StoreOptions opts;
  opts.batch_max_objects = 2;
  StoreFixture f(opts);
  int ran = 0;
  absl::Status s = f.store.Batch([&](Batch& b) {
    for (int i = 0; i < 10; ++i) {
      if (i == 4) f.proposer.FailWith(absl::UnavailableError("no leader"));
      absl::Status st = b.Update([&, i](WriteTx& tx) {
        ++ran;
        return tx.Create(MakeTask(absl::StrCat("t", i), "svc", 1));
      });
      if (i < 3) {
        EXPECT_TRUE(st.ok());
      }
      if (i >= 5) {
        EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
      }
    }
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ran, 6);  // t0..t5 ran; t5 completed the failed entry; the rest did not run
  EXPECT_EQ(f.store.Counts().of(api::OBJECT_KIND_TASK), 4u);
  EXPECT_EQ(f.store.Counts().version, 2u);
}

}  // namespace
}  // namespace shoal::manager::store
