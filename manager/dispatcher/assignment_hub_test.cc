#include "manager/dispatcher/assignment_hub.h"

#include <map>
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

TEST_F(AssignmentHubTest, ChangesCoalesceByObjectUntilTaken) {
  AssignmentHub hub(&store_);
  Put(MakeTask("gone", "n1"));
  auto n1 = hub.Subscribe("n1");
  (*n1)->SkipThrough(Version());
  // Ten changes to "a", one new task "b", then "gone" deleted: three objects pending.
  Put(MakeTask("a", "n1"));
  for (int i = 0; i < 9; ++i) Put(MakeTask("a", i % 2 ? "n1" : "n2"), /*create=*/false);
  Put(MakeTask("b", "n1"));
  ASSERT_TRUE(store_.Update([](store::WriteTx& tx) { return tx.Delete<api::Task>("gone"); }).ok());
  const uint64_t last_a = Version() - 2;
  // Wait until the last change is routed, then take everything at once.
  std::vector<store::StoreEvent> events;
  std::vector<store::StoreEvent> all;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto has_gone = [&] {
    for (const auto& e : all) {
      if (e.object->task().id() == "gone") return true;
    }
    return false;
  };
  while (!has_gone() && absl::Now() < deadline) {
    ASSERT_TRUE((*n1)->Next(deadline, &events).ok());
    for (auto& e : events) all.push_back(std::move(e));
  }
  // However the takes fell, each object comes at most once per take and the newest wins.
  std::map<std::string, store::StoreEvent> newest;
  for (auto& e : all) newest[e.object->task().id()] = e;
  ASSERT_EQ(newest.size(), 3u);
  EXPECT_EQ(newest["a"].object->task().meta().version().index(), last_a);
  // The last change moved it to n2: n1 hears of it as the node it left.
  EXPECT_EQ(newest["a"].object->task().node_id(), "n2");
  EXPECT_EQ(newest["gone"].action, api::StoreAction::REMOVE);
  EXPECT_EQ(newest["b"].action, api::StoreAction::CREATE);
}

TEST_F(AssignmentHubTest, ManyChangesWhileNotTakenAreOneEventPerObject) {
  AssignmentHub hub(&store_);
  auto n1 = hub.Subscribe("n1");
  (*n1)->SkipThrough(Version());
  // 500 changes to two tasks in one transaction each: the pending set never holds more than two
  // events, so a limit of 3 is never reached.
  Put(MakeTask("a", "n1"));
  Put(MakeTask("b", "n1"));
  for (int i = 0; i < 250; ++i) {
    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) -> absl::Status {
                      for (const char* id : {"a", "b"}) {
                        api::Task t = *tx.Get<api::Task>(id);
                        t.mutable_spec_version()->set_index(i + 1);
                        if (absl::Status s = tx.Update(std::move(t)); !s.ok()) return s;
                      }
                      return absl::OkStatus();
                    })
                    .ok());
  }
  std::vector<store::StoreEvent> events;
  int64_t a = 0, b = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while ((a < 250 || b < 250) && absl::Now() < deadline) {
    ASSERT_TRUE((*n1)->Next(deadline, &events).ok());
    ASSERT_LE(events.size(), 2u);
    for (const auto& e : events) {
      (e.object->task().id() == "a" ? a : b) = e.object->task().spec_version().index();
    }
  }
  EXPECT_EQ(a, 250);
  EXPECT_EQ(b, 250);
}

TEST_F(AssignmentHubTest, NotifiesWhenASubscriptionBecomesReady) {
  AssignmentHub hub(&store_);
  absl::Mutex mu;
  int calls = 0;
  auto n1 = hub.Subscribe("n1", [&] {
    absl::MutexLock lock(&mu);
    ++calls;
  });
  // n2's events tell when the hub has routed everything committed before them (it routes in
  // commit order).
  auto n2 = hub.Subscribe("n2");
  (*n1)->SkipThrough(Version());
  (*n2)->SkipThrough(Version());
  auto calls_reach = [&](int n) {
    absl::MutexLock lock(&mu);
    auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return calls >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(10));
  };
  auto calls_now = [&] {
    absl::MutexLock lock(&mu);
    return calls;
  };
  Put(MakeTask("a", "n1"));
  ASSERT_TRUE(calls_reach(1));
  // Edge-triggered: more events while some are pending do not call again.
  Put(MakeTask("b", "n1"));
  Put(MakeTask("x", "n2"));
  EXPECT_EQ(Collect(*n2, 1), (std::vector<std::string>{"x"}));  // "b" is routed
  EXPECT_EQ(calls_now(), 1);
  std::vector<store::StoreEvent> events;
  ASSERT_TRUE((*n1)->Take(&events).ok());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].object->task().id(), "a");
  EXPECT_EQ(events[1].object->task().id(), "b");
  // Everything taken: the next event calls again.
  Put(MakeTask("c", "n1"));
  ASSERT_TRUE(calls_reach(2));
  EXPECT_EQ(Collect(*n1, 1), (std::vector<std::string>{"c"}));
  // Unsubscribed: no more calls.
  n1.reset();
  Put(MakeTask("d", "n1"));
  Put(MakeTask("y", "n2"));
  EXPECT_EQ(Collect(*n2, 1), (std::vector<std::string>{"y"}));  // "d" was routed
  EXPECT_EQ(calls_now(), 2);
}

}  // namespace
}  // namespace shoal::manager
