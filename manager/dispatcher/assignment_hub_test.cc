#include "manager/dispatcher/assignment_hub.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {
namespace {

api::Task MakeTask(const std::string& id, const std::string& node_id) {
  api::Task task;
  task.set_id(id);
  task.set_service_id("svc");
  task.set_node_id(node_id);
  return task;
}

class AssignmentHubTest : public ::testing::Test {
 protected:
  AssignmentHubTest() : store_(&proposer_) { proposer_.Attach(&store_); }

  void Put(const api::Task& task, bool create = true) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) {
      if (create) return tx.Create(task);
      api::Task updated = *tx.Get<api::Task>(task.id());
      updated.set_node_id(task.node_id());
      return tx.Update(std::move(updated));
    });
    ASSERT_TRUE(s.ok()) << s;
  }
  uint64_t Version() { return store_.version(); }

  // Events until `n` arrived (or 10 s passed).
  std::vector<std::string> Collect(AssignmentHub::Handle& h, size_t n) {
    std::vector<std::string> ids;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    std::vector<store::StoreEvent> events;
    while (ids.size() < n && absl::Now() < deadline) {
      absl::Status s = h->Next(deadline, &events);
      if (!s.ok()) {
        ids.push_back(std::string("!") + absl::StatusCodeToString(s.code()));
        break;
      }
      for (const auto& e : events) ids.push_back(e.object->task().id());
    }
    return ids;
  }

  store::DirectProposer proposer_;
  store::MemoryStore store_;
};

TEST_F(AssignmentHubTest, RoutesTasksToTheirNodesAfterTheView) {
  AssignmentHub hub(&store_);
  Put(MakeTask("before", "n1"));
  auto n1 = hub.Subscribe("n1");
  auto n2 = hub.Subscribe("n2");
  (*n1)->SkipThrough(Version());  // the view holds "before"
  (*n2)->SkipThrough(Version());
  Put(MakeTask("a", "n1"));
  Put(MakeTask("b", "n2"));
  Put(MakeTask("c", "n1"));
  EXPECT_EQ(Collect(*n1, 2), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Collect(*n2, 1), (std::vector<std::string>{"b"}));
  // A task moving from n1 to n2 reaches both.
  Put(MakeTask("a", "n2"), /*create=*/false);
  EXPECT_EQ(Collect(*n1, 1), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Collect(*n2, 1), (std::vector<std::string>{"a"}));
  EXPECT_EQ(hub.subscription_count(), 2u);
  n2.reset();
  EXPECT_EQ(hub.subscription_count(), 1u);
}

TEST_F(AssignmentHubTest, ASubscriptionThatFallsBehindIsToldToResync) {
  AssignmentHubOptions options;
  options.subscription_queue_limit = 3;
  AssignmentHub hub(&store_, options);
  auto n1 = hub.Subscribe("n1");
  (*n1)->SkipThrough(Version());
  // Five events in one transaction: a subscription takes a change's events all at once, so the
  // fourth overflows its queue whenever the consumer looks.
  ASSERT_TRUE(store_
                  .Update([](store::WriteTx& tx) {
                    for (int i = 0; i < 5; ++i) {
                      if (absl::Status s = tx.Create(MakeTask("t" + std::to_string(i), "n1"));
                          !s.ok()) {
                        return s;
                      }
                    }
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(Collect(*n1, 1), (std::vector<std::string>{"!ABORTED"}));
  // After a new view, events flow again.
  (*n1)->SkipThrough(Version());
  Put(MakeTask("after", "n1"));
  EXPECT_EQ(Collect(*n1, 1), (std::vector<std::string>{"after"}));
}

}  // namespace
}  // namespace shoal::manager
