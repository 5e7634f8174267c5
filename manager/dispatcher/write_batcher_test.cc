#include "manager/dispatcher/write_batcher.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {
namespace {

api::Node MakeNode(const std::string& id) {
  api::Node node;
  node.set_id(id);
  return node;
}

class WriteBatcherTest : public ::testing::Test {
 protected:
  WriteBatcherTest() : store_(&proposer_) { proposer_.Attach(&store_); }

  bool Exists(const std::string& id) {
    bool found = false;
    store_.View([&](const store::ReadTx& tx) { found = tx.Get<api::Node>(id) != nullptr; });
    return found;
  }

  store::DirectProposer proposer_;
  store::MemoryStore store_;
};

TEST_F(WriteBatcherTest, WritesQueuedDuringACommitGoOutTogether) {
  WriteBatcher batcher(&store_);
  absl::Notification first_running, release;
  absl::Notification first_done;
  absl::Status first_result;
  batcher.WriteAsync(
      [&](store::WriteTx& tx) {
        first_running.Notify();
        release.WaitForNotification();
        return tx.Create(MakeNode("n0"));
      },
      [&](absl::Status s) {
        first_result = s;
        first_done.Notify();
      });
  first_running.WaitForNotification();

  // While the first commit is in flight, ten more writes queue up.
  std::vector<absl::Status> results(10);
  std::vector<absl::Notification> done(10);
  for (int i = 0; i < 10; ++i) {
    batcher.WriteAsync(
        [i](store::WriteTx& tx) { return tx.Create(MakeNode(absl::StrCat("n", i + 1))); },
        [&, i](absl::Status s) {
          results[i] = s;
          done[i].Notify();
        });
  }
  release.Notify();
  first_done.WaitForNotification();
  for (auto& d : done) d.WaitForNotification();
  EXPECT_TRUE(first_result.ok()) << first_result;
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(results[i].ok()) << i << ": " << results[i];
    EXPECT_TRUE(Exists(absl::StrCat("n", i + 1)));
  }
  EXPECT_EQ(batcher.commits(), 2u);
}

TEST_F(WriteBatcherTest, OneWritersErrorDropsOnlyItsOwnChanges) {
  WriteBatcher batcher(&store_);
  ASSERT_TRUE(batcher.Write([](store::WriteTx& tx) { return tx.Create(MakeNode("a")); }).ok());
  // Creating "a" again fails; the other write in the same commit lands.
  absl::Notification running, release, d1, d2;
  absl::Status r1, r2;
  batcher.WriteAsync(
      [&](store::WriteTx&) {
        running.Notify();
        release.WaitForNotification();
        return absl::OkStatus();
      },
      [](absl::Status) {});
  running.WaitForNotification();
  batcher.WriteAsync([](store::WriteTx& tx) { return tx.Create(MakeNode("a")); },
                     [&](absl::Status s) {
                       r1 = s;
                       d1.Notify();
                     });
  batcher.WriteAsync([](store::WriteTx& tx) { return tx.Create(MakeNode("b")); },
                     [&](absl::Status s) {
                       r2 = s;
                       d2.Notify();
                     });
  release.Notify();
  d1.WaitForNotification();
  d2.WaitForNotification();
  EXPECT_EQ(r1.code(), absl::StatusCode::kAlreadyExists) << r1;
  EXPECT_TRUE(r2.ok()) << r2;
  EXPECT_TRUE(Exists("b"));
}

TEST_F(WriteBatcherTest, ProposerErrorsReachEveryWriter) {
  store::MemoryStore read_only(nullptr);
  WriteBatcher batcher(&read_only);
  absl::Status s = batcher.Write([](store::WriteTx& tx) { return tx.Create(MakeNode("x")); });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST_F(WriteBatcherTest, DestructionFailsWhatIsStillQueued) {
  auto batcher = std::make_unique<WriteBatcher>(&store_);
  absl::Notification running, release, queued_done;
  absl::Status queued;
  batcher->WriteAsync(
      [&](store::WriteTx&) {
        running.Notify();
        release.WaitForNotification();
        return absl::OkStatus();
      },
      [](absl::Status) {});
  running.WaitForNotification();
  batcher->WriteAsync([](store::WriteTx& tx) { return tx.Create(MakeNode("late")); },
                      [&](absl::Status s) {
                        queued = s;
                        queued_done.Notify();
                      });
  std::thread destroy([&] { batcher.reset(); });
  release.Notify();
  destroy.join();
  ASSERT_TRUE(queued_done.HasBeenNotified());
  // Either it made the last commit or it was refused; never silently dropped.
  if (!queued.ok()) {
    EXPECT_EQ(queued.code(), absl::StatusCode::kUnavailable);
    EXPECT_FALSE(Exists("late"));
  } else {
    EXPECT_TRUE(Exists("late"));
  }
}

}  // namespace
}  // namespace shoal::manager
