// ViewAndWatch: events, filters, transaction grouping, back-pressure, and the consistency of a
// view with its stream under concurrent writers.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "manager/store/memory_store.h"
#include "manager/store/test_objects.h"

namespace shoal::manager::store {
namespace {

using testing::MakeService;
using testing::MakeTask;
using testing::SetLabel;
using testing::StoreFixture;

absl::Time Soon() { return absl::Now() + absl::Seconds(30); }

TEST(WatchTest, EventsOfOneTransactionArriveTogether) {
  StoreFixture f;
  uint64_t seen_services = 99;
  std::unique_ptr<Watcher> w =
      f.store.ViewAndWatch([&](const ReadTx& tx) { seen_services = tx.Count<api::Service>(); });
  EXPECT_EQ(seen_services, 0u);
  EXPECT_EQ(w->start_version(), 0u);
  EXPECT_EQ(w->Next(absl::InfinitePast()).status().code(), absl::StatusCode::kDeadlineExceeded);

  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    absl::Status s = tx.Create(MakeService("s", "web"));
                    s.Update(tx.Create(MakeTask("t1", "s", 1)));
                    return s;
                  })
                  .ok());
  absl::StatusOr<StoreChange> c = w->Next(Soon());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->version, f.store.version());
  ASSERT_EQ(c->events.size(), 2u);
  EXPECT_EQ(c->events[0].action, api::StoreAction::CREATE);
  EXPECT_EQ(c->events[0].kind(), api::OBJECT_KIND_SERVICE);
  EXPECT_EQ(c->events[0].object->service().meta().version().index(), c->version);
  EXPECT_EQ(c->events[1].object->task().id(), "t1");

  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    api::Task t = *tx.Get<api::Task>("t1");
                    t.set_node_id("n1");
                    absl::Status s = tx.Update(t);
                    s.Update(tx.Delete<api::Service>("s"));
                    return s;
                  })
                  .ok());
  c = w->Next(Soon());
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->events.size(), 2u);
  EXPECT_EQ(c->events[0].action, api::StoreAction::UPDATE);
  EXPECT_EQ(c->events[0].object->task().node_id(), "n1");
  ASSERT_NE(c->events[0].old_object, nullptr);
  EXPECT_EQ(c->events[0].old_object->task().node_id(), "");
  EXPECT_EQ(c->events[1].action, api::StoreAction::REMOVE);
  EXPECT_EQ(c->events[1].object->service().id(), "s");  // as it was

  w->Close();
  EXPECT_EQ(w->Next(absl::InfinitePast()).status().code(), absl::StatusCode::kCancelled);
}

TEST(WatchTest, FailedEntriesAreNotEvents) {
  StoreFixture f;
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeService("s", "web")); }).ok());
  std::unique_ptr<Watcher> w = f.store.ViewAndWatch([](const ReadTx&) {});
  api::StoreProposal p;
  auto* a = p.mutable_request()->add_actions();
  a->set_action(api::StoreAction::CREATE);
  *a->mutable_object()->mutable_service() = MakeService("s", "again");
  EXPECT_FALSE(MemoryStore::DecodeResult(f.store.Apply(100, p.SerializeAsString())).ok());
  EXPECT_EQ(w->Next(absl::InfinitePast()).status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(WatchTest, Filters) {
  StoreFixture f;
  std::unique_ptr<Watcher> services =
      f.store.ViewAndWatch([](const ReadTx&) {}, WatchFilter::Kind(api::OBJECT_KIND_SERVICE));
  std::unique_ptr<Watcher> of_a =
      f.store.ViewAndWatch([](const ReadTx&) {}, WatchFilter::TasksOfService("a"));
  std::unique_ptr<Watcher> on_n1 =
      f.store.ViewAndWatch([](const ReadTx&) {}, WatchFilter::TasksOnNode("n1"));

  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    absl::Status s = tx.Create(MakeService("a", "a"));
                    s.Update(tx.Create(MakeTask("ta", "a", 1, "n1")));
                    s.Update(tx.Create(MakeTask("tb", "b", 1, "n2")));
                    return s;
                  })
                  .ok());
  // A task moving from n1 to n2 still reaches n1's watcher (it must learn the task left).
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    api::Task t = *tx.Get<api::Task>("ta");
                    t.set_node_id("n2");
                    return tx.Update(t);
                  })
                  .ok());
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Delete<api::Task>("tb"); }).ok());

  auto drain = [](Watcher& w) {
    std::vector<std::string> got;
    for (;;) {
      absl::StatusOr<StoreChange> c = w.Next(absl::InfinitePast());
      if (!c.ok()) break;
      for (const StoreEvent& e : c->events) {
        got.push_back(absl::StrCat(api::StoreAction::Action_Name(e.action), " ", IdOf(*e.object)));
      }
    }
    return got;
  };
  EXPECT_EQ(drain(*services), std::vector<std::string>{"CREATE a"});
  EXPECT_EQ(drain(*of_a), (std::vector<std::string>{"CREATE ta", "UPDATE ta"}));
  EXPECT_EQ(drain(*on_n1), (std::vector<std::string>{"CREATE ta", "UPDATE ta"}));
}

// A watcher that does not keep up is closed; writers never wait for it.
TEST(WatchTest, SlowWatcherIsClosedWithoutBlockingWrites) {
  StoreFixture f;
  WatchFilter slow_filter;
  slow_filter.queue_limit = 10;
  std::unique_ptr<Watcher> slow = f.store.ViewAndWatch([](const ReadTx&) {}, slow_filter);
  std::unique_ptr<Watcher> fast = f.store.ViewAndWatch([](const ReadTx&) {});
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(
        f.store
            .Update([i](WriteTx& tx) { return tx.Create(MakeTask(absl::StrCat("t", i), "s", 1)); })
            .ok());
    ASSERT_TRUE(fast->Next(Soon()).ok());
  }
  absl::StatusOr<StoreChange> c = slow->Next(absl::InfinitePast());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted) << c.status();
  EXPECT_NE(c.status().message().find("new ViewAndWatch"), absl::string_view::npos);
}

TEST(WatchTest, NextWaitsForAWriterOnAnotherThread) {
  StoreFixture f;
  std::unique_ptr<Watcher> w = f.store.ViewAndWatch([](const ReadTx&) {});
  std::thread writer([&] {
    EXPECT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeTask("t", "s", 1)); }).ok());
  });
  absl::StatusOr<StoreChange> c = w->Next(Soon());
  writer.join();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->events.size(), 1u);
}

TEST(WatchTest, DestroyingTheStoreClosesWatchers) {
  auto f = std::make_unique<StoreFixture>();
  std::unique_ptr<Watcher> w = f->store.ViewAndWatch([](const ReadTx&) {});
  f.reset();
  EXPECT_EQ(w->Next(Soon()).status().code(), absl::StatusCode::kCancelled);
}

// Writers race on a small set of tasks while watchers start at arbitrary points. Each watcher's
// view plus its events must rebuild exactly the final store: nothing missed, nothing twice,
// versions strictly increasing.
TEST(WatchTest, ViewPlusEventsEqualsFinalStateUnderConcurrentWriters) {
  const char* env = std::getenv("SHOAL_TEST_SEED");
  const unsigned seed = env != nullptr ? std::stoul(env) : std::random_device{}();
  std::printf("seed %u (replay with SHOAL_TEST_SEED=%u; thread timing still varies)\n", seed, seed);
  StoreOptions opts;
  opts.watch_queue_limit = 1 << 20;
  StoreFixture f(opts);

  struct Mirror {
    std::unique_ptr<Watcher> watcher;
    std::map<std::string, std::string> objects;  // ID -> serialized task
    std::vector<std::string> errors;
    std::thread consumer;
  };
  constexpr int kWriters = 2, kOpsPerWriter = 300, kWatchers = 8, kTasks = 40;
  std::atomic<int> ops_done{0};

  auto writer = [&](unsigned writer_seed) {
    std::mt19937 rng(writer_seed);
    for (int op = 0; op < kOpsPerWriter; ++op) {
      const std::string id = absl::StrCat("t", rng() % kTasks);
      const unsigned what = rng() % 4;
      for (;;) {  // retry lost races, as real writers do
        absl::Status s = f.store.Update([&](WriteTx& tx) {
          const api::Task* t = tx.Get<api::Task>(id);
          if (t == nullptr) return tx.Create(MakeTask(id, absl::StrCat("svc", rng() % 3), 1));
          if (what == 0) return tx.Delete<api::Task>(id);
          api::Task copy = *t;
          copy.set_node_id(absl::StrCat("n", rng() % 5));
          SetLabel(&copy, "op", absl::StrCat(op));
          return tx.Update(copy);
        });
        if (s.code() != absl::StatusCode::kAborted && s.code() != absl::StatusCode::kNotFound &&
            s.code() != absl::StatusCode::kAlreadyExists) {
          EXPECT_TRUE(s.ok()) << s;
          break;
        }
      }
      ++ops_done;
    }
  };

  auto consume = [](Mirror* m) {
    uint64_t last = m->watcher->start_version();
    for (;;) {
      absl::StatusOr<StoreChange> c = m->watcher->Next(Soon());
      if (!c.ok()) {
        m->errors.push_back(std::string(c.status().message()));
        return;
      }
      if (c->version <= last) m->errors.push_back(absl::StrCat("version ", c->version, " again"));
      last = c->version;
      for (const StoreEvent& e : c->events) {
        const std::string& id = IdOf(*e.object);
        const bool present = m->objects.count(id) == 1;
        if (id == "done") return;
        switch (e.action) {
          case api::StoreAction::CREATE:
            if (present) m->errors.push_back("duplicate create of " + id);
            m->objects[id] = e.object->task().SerializeAsString();
            break;
          case api::StoreAction::UPDATE:
            if (!present || m->objects[id] != e.old_object->task().SerializeAsString()) {
              m->errors.push_back("update of " + id + " does not follow what the mirror holds");
            }
            m->objects[id] = e.object->task().SerializeAsString();
            break;
          default:
            if (!present) m->errors.push_back("remove of absent " + id);
            m->objects.erase(id);
        }
      }
    }
  };

  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) writers.emplace_back(writer, seed + i);
  std::vector<std::unique_ptr<Mirror>> mirrors;
  std::mt19937 rng(seed);
  for (int i = 0; i < kWatchers; ++i) {
    // Start each watcher once the writers got some way (a condition, not a sleep).
    const int target = static_cast<int>(rng() % (kWriters * kOpsPerWriter));
    while (ops_done.load() < target) std::this_thread::yield();
    auto m = std::make_unique<Mirror>();
    m->watcher = f.store.ViewAndWatch(
        [&](const ReadTx& tx) {
          for (const api::Task* t : tx.List<api::Task>())
            m->objects[t->id()] = t->SerializeAsString();
        },
        WatchFilter::Kind(api::OBJECT_KIND_TASK));
    m->consumer = std::thread(consume, m.get());
    mirrors.push_back(std::move(m));
  }
  for (auto& t : writers) t.join();
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeTask("done", "", 0)); }).ok());

  std::map<std::string, std::string> final_state;
  f.store.View([&](const ReadTx& tx) {
    for (const api::Task* t : tx.List<api::Task>()) {
      if (t->id() != "done") final_state[t->id()] = t->SerializeAsString();
    }
  });
  for (auto& m : mirrors) {
    m->consumer.join();
    EXPECT_TRUE(m->errors.empty()) << m->errors.front() << " (seed " << seed << ")";
    EXPECT_EQ(m->objects, final_state) << "seed " << seed;
  }
}

}  // namespace
}  // namespace shoal::manager::store
