// MemoryStore: CRUD for every kind, indexes, transactions (merging, optimistic concurrency,
// atomicity) and Raft-facing behaviour (versions, determinism, snapshots, proposer errors).
// Batch is in batch_test.cc, watching in watch_test.cc, the store on real Raft in
// raft_store_test.cc.
#include "manager/store/memory_store.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "manager/store/test_objects.h"
#include "store.pb.h"

namespace shoal::manager::store {
namespace {

using testing::Make;
using testing::MakeService;
using testing::MakeTask;
using testing::SetLabel;
using testing::SetName;
using testing::StoreFixture;

template <class T>
std::vector<std::string> Ids(const std::vector<const T*>& objects) {
  std::vector<std::string> ids;
  for (const T* o : objects) ids.push_back(o->id());
  return ids;
}

template <class T>
T Read(const MemoryStore& store, const std::string& id) {
  T out;
  store.View([&](const ReadTx& tx) {
    if (const T* o = tx.Get<T>(id)) out = *o;
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// CRUD, for every kind

template <class T>
class CrudTest : public ::testing::Test {};
using Kinds = ::testing::Types<api::Node, api::Service, api::Task, api::Network, api::Secret,
                               api::Config, api::Cluster>;
TYPED_TEST_SUITE(CrudTest, Kinds);

TYPED_TEST(CrudTest, CreateReadUpdateDelete) {
  using T = TypeParam;
  StoreFixture f;
  const absl::Time t0 = f.clock.Now();
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(Make<T>("id1", "one")); }).ok());
  const uint64_t created_at = f.proposer.last_index();

  T got = Read<T>(f.store, "id1");
  EXPECT_EQ(got.id(), "id1");
  EXPECT_EQ(got.meta().version().index(), created_at);
  EXPECT_EQ(got.meta().created_at().seconds(), absl::ToUnixSeconds(t0));
  EXPECT_EQ(got.meta().updated_at().seconds(), absl::ToUnixSeconds(t0));

  f.clock.Advance(absl::Seconds(10));
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    T copy = *tx.Get<T>("id1");
                    SetLabel(&copy, "k", "v");
                    return tx.Update(copy);
                  })
                  .ok());
  got = Read<T>(f.store, "id1");
  EXPECT_EQ(got.meta().version().index(), f.proposer.last_index());
  EXPECT_GT(got.meta().version().index(), created_at);
  EXPECT_EQ(got.meta().created_at().seconds(), absl::ToUnixSeconds(t0));
  EXPECT_EQ(got.meta().updated_at().seconds(), absl::ToUnixSeconds(t0 + absl::Seconds(10)));

  f.store.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.Count<T>(), 1u);
    EXPECT_EQ(tx.List<T>().size(), 1u);
  });
  EXPECT_EQ(f.store.Counts().of(store::ObjectTraits<T>::kKind), 1u);

  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.template Delete<T>("id1"); }).ok());
  f.store.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.Get<T>("id1"), nullptr);
    EXPECT_EQ(tx.Count<T>(), 0u);
  });
  EXPECT_EQ(f.store.Update([](WriteTx& tx) { return tx.template Delete<T>("id1"); }).code(),
            absl::StatusCode::kNotFound);
}

TYPED_TEST(CrudTest, DuplicateIdIsRefused) {
  using T = TypeParam;
  StoreFixture f;
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(Make<T>("x")); }).ok());
  absl::Status s = f.store.Update([](WriteTx& tx) { return tx.Create(Make<T>("x")); });
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_EQ(f.store.Update([](WriteTx& tx) { return tx.Create(Make<T>("")); }).code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Indexes

TEST(IndexTest, NamesAndIdPrefixes) {
  StoreFixture f;
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    for (const auto& [id, name] : std::vector<std::pair<std::string, std::string>>{
                             {"s1abc", "Web"}, {"s1abd", "web-db"}, {"s2", "api"}}) {
                      if (absl::Status s = tx.Create(MakeService(id, name)); !s.ok()) return s;
                    }
                    return tx.Create(Make<api::Network>("n1", "web"));
                  })
                  .ok());
  f.store.View([](const ReadTx& tx) {
    EXPECT_EQ(Ids(tx.FindByName<api::Service>("web")), std::vector<std::string>{"s1abc"});
    EXPECT_EQ(Ids(tx.FindByName<api::Service>("WEB")), std::vector<std::string>{"s1abc"});
    EXPECT_EQ(Ids(tx.FindByName<api::Network>("web")), std::vector<std::string>{"n1"});
    EXPECT_EQ(Ids(tx.FindByNamePrefix<api::Service>("we")),
              (std::vector<std::string>{"s1abc", "s1abd"}));
    EXPECT_EQ(Ids(tx.FindByIdPrefix<api::Service>("s1")),
              (std::vector<std::string>{"s1abc", "s1abd"}));
    EXPECT_EQ(Ids(tx.FindByIdPrefix<api::Service>("s1abd")), std::vector<std::string>{"s1abd"});
    EXPECT_TRUE(tx.FindByIdPrefix<api::Service>("s3").empty());
    EXPECT_TRUE(tx.FindByName<api::Service>("we").empty());
  });
}

TEST(IndexTest, TaskIndexesFollowUpdatesAndRemovals) {
  StoreFixture f;
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    absl::Status s;
                    s.Update(tx.Create(MakeTask("t1", "svcA", 1, "node1")));
                    s.Update(tx.Create(MakeTask("t2", "svcA", 2, "node2")));
                    s.Update(
                        tx.Create(MakeTask("t3", "svcA", 1, "node1", api::TASK_STATE_SHUTDOWN)));
                    s.Update(tx.Create(MakeTask("t4", "svcB", 0, "node1")));
                    s.Update(tx.Create(MakeTask("t5", "svcB", 0)));  // not scheduled yet
                    return s;
                  })
                  .ok());
  f.store.View([](const ReadTx& tx) {
    EXPECT_EQ(Ids(tx.FindTasksByService("svcA")), (std::vector<std::string>{"t1", "t2", "t3"}));
    EXPECT_EQ(Ids(tx.FindTasksByNode("node1")), (std::vector<std::string>{"t1", "t3", "t4"}));
    EXPECT_EQ(Ids(tx.FindTasksByDesiredState(api::TASK_STATE_RUNNING)),
              (std::vector<std::string>{"t1", "t2", "t4", "t5"}));
    EXPECT_EQ(Ids(tx.FindTasksBySlot("svcA", 1)), (std::vector<std::string>{"t1", "t3"}));
    EXPECT_EQ(Ids(tx.FindTasksByServiceAndNode("svcB", "node1")), std::vector<std::string>{"t4"});
    EXPECT_TRUE(tx.FindTasksByServiceAndNode("svcB", "node2").empty());
    EXPECT_TRUE(tx.FindTasksByService("svc").empty());  // no prefix matches
  });

  // Move t1 to node2 and shut it down; remove t4.
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    api::Task t1 = *tx.Get<api::Task>("t1");
                    t1.set_node_id("node2");
                    t1.set_desired_state(api::TASK_STATE_SHUTDOWN);
                    absl::Status s = tx.Update(t1);
                    s.Update(tx.Delete<api::Task>("t4"));
                    // The transaction's reads see its own writes, indexes included.
                    EXPECT_EQ(Ids(tx.FindTasksByNode("node1")), std::vector<std::string>{"t3"});
                    return s;
                  })
                  .ok());
  f.store.View([](const ReadTx& tx) {
    EXPECT_EQ(Ids(tx.FindTasksByNode("node1")), std::vector<std::string>{"t3"});
    EXPECT_EQ(Ids(tx.FindTasksByNode("node2")), (std::vector<std::string>{"t1", "t2"}));
    EXPECT_EQ(Ids(tx.FindTasksByDesiredState(api::TASK_STATE_SHUTDOWN)),
              (std::vector<std::string>{"t1", "t3"}));
    EXPECT_EQ(Ids(tx.FindTasksByService("svcB")), std::vector<std::string>{"t5"});
    // Node slots are a global service's (slot 0); replicated tasks are found by slot number.
    EXPECT_TRUE(tx.FindTasksByServiceAndNode("svcA", "node2").empty());
    EXPECT_TRUE(tx.FindTasksByServiceAndNode("svcB", "node1").empty());
  });
}

TEST(IndexTest, UniqueNamesPerKind) {
  StoreFixture f;
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    absl::Status s = tx.Create(MakeService("s1", "web"));
                    s.Update(tx.Create(Make<api::Secret>("sec1", "web")));  // other kind: fine
                    s.Update(tx.Create(Make<api::Node>("n1", "host")));
                    s.Update(tx.Create(Make<api::Node>("n2", "host")));  // hostnames may repeat
                    s.Update(tx.Create(MakeService("s2", "")));
                    s.Update(tx.Create(MakeService("s3", "")));  // unnamed never conflict
                    return s;
                  })
                  .ok());
  absl::Status s = f.store.Update([](WriteTx& tx) { return tx.Create(MakeService("s4", "Web")); });
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_NE(s.message().find("service s1"), absl::string_view::npos) << s;
  s = f.store.Update([](WriteTx& tx) { return tx.Create(Make<api::Secret>("sec2", "WEB")); });
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  f.store.View([](const ReadTx& tx) {
    EXPECT_EQ(Ids(tx.FindByName<api::Node>("host")), (std::vector<std::string>{"n1", "n2"}));
  });
}

TEST(IndexTest, NamesMayMoveBetweenObjectsInOneEntry) {
  StoreFixture f;
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    absl::Status s = tx.Create(MakeService("a", "x"));
                    s.Update(tx.Create(MakeService("b", "y")));
                    return s;
                  })
                  .ok());
  // Through a transaction: a temporary name, as a user would.
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    auto rename = [&](const char* id, const char* name) {
                      api::Service s = *tx.Get<api::Service>(id);
                      SetName(&s, name);
                      return tx.Update(s);
                    };
                    absl::Status s = rename("a", "tmp");
                    s.Update(rename("b", "x"));
                    s.Update(rename("a", "y"));
                    return s;
                  })
                  .ok());
  f.store.View([](const ReadTx& tx) {
    EXPECT_EQ(Ids(tx.FindByName<api::Service>("x")), std::vector<std::string>{"b"});
    EXPECT_EQ(Ids(tx.FindByName<api::Service>("y")), std::vector<std::string>{"a"});
  });
  // The merged entry holds "a -> y" before "b -> x": apply checks names on the final state.
  ASSERT_EQ(f.proposer.entries().size(), 2u);
  api::StoreProposal p;
  ASSERT_TRUE(p.ParseFromString(f.proposer.entries()[1].data));
  ASSERT_EQ(p.request().actions_size(), 2);
  EXPECT_EQ(p.request().actions(0).object().service().id(), "a");
}

// ---------------------------------------------------------------------------------------------
// Transactions

TEST(TransactionTest, ChangesToOneObjectMerge) {
  StoreFixture f;
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    absl::Status s = tx.Create(MakeTask("t1", "svc", 1));
                    api::Task t = *tx.Get<api::Task>("t1");
                    EXPECT_EQ(t.meta().version().index(), 0u);  // not applied yet
                    t.set_node_id("n1");
                    s.Update(tx.Update(t));
                    s.Update(tx.Create(MakeTask("t2", "svc", 2)));
                    s.Update(tx.Delete<api::Task>("t2"));  // cancels out
                    EXPECT_EQ(tx.changed_objects(), 2u);
                    return s;
                  })
                  .ok());
  ASSERT_EQ(f.proposer.entries().size(), 1u);
  api::StoreProposal p;
  ASSERT_TRUE(p.ParseFromString(f.proposer.entries()[0].data));
  ASSERT_EQ(p.request().actions_size(), 1);
  EXPECT_EQ(p.request().actions(0).action(), api::StoreAction::CREATE);
  EXPECT_EQ(p.request().actions(0).object().task().node_id(), "n1");

  // Update then delete: one REMOVE carrying the version read.
  const uint64_t v = Read<api::Task>(f.store, "t1").meta().version().index();
  ASSERT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    api::Task t = *tx.Get<api::Task>("t1");
                    t.set_slot(7);
                    absl::Status s = tx.Update(t);
                    s.Update(tx.Delete<api::Task>("t1"));
                    return s;
                  })
                  .ok());
  ASSERT_TRUE(p.ParseFromString(f.proposer.entries().back().data));
  ASSERT_EQ(p.request().actions_size(), 1);
  EXPECT_EQ(p.request().actions(0).action(), api::StoreAction::REMOVE);
  EXPECT_EQ(p.request().actions(0).object().task().meta().version().index(), v);

  // Nothing changed, or everything cancelled out: no proposal at all.
  const size_t entries = f.proposer.entries().size();
  EXPECT_TRUE(f.store.Update([](WriteTx&) { return absl::OkStatus(); }).ok());
  EXPECT_TRUE(f.store
                  .Update([](WriteTx& tx) {
                    absl::Status s = tx.Create(MakeTask("t9", "svc", 1));
                    s.Update(tx.Delete<api::Task>("t9"));
                    return s;
                  })
                  .ok());
  EXPECT_EQ(f.proposer.entries().size(), entries);
}

TEST(TransactionTest, RecreatingADeletedObjectIsRefused) {
  StoreFixture f;
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeTask("t1", "s", 1)); }).ok());
  absl::Status s = f.store.Update([](WriteTx& tx) {
    EXPECT_TRUE(tx.Delete<api::Task>("t1").ok());
    return tx.Create(MakeTask("t1", "s", 2));
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(Read<api::Task>(f.store, "t1").id(), "");
}

TEST(TransactionTest, CallbackErrorProposesNothing) {
  StoreFixture f;
  absl::Status s = f.store.Update([](WriteTx& tx) {
    EXPECT_TRUE(tx.Create(MakeTask("t1", "s", 1)).ok());
    return absl::InvalidArgumentError("changed my mind");
  });
  EXPECT_EQ(s, absl::InvalidArgumentError("changed my mind"));
  EXPECT_TRUE(f.proposer.entries().empty());
  EXPECT_EQ(f.store.Counts().of(api::OBJECT_KIND_TASK), 0u);
}

TEST(TransactionTest, StaleVersionIsRefusedBeforeProposing) {
  StoreFixture f;
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeService("s", "web")); }).ok());
  api::Service stale = Read<api::Service>(f.store, "s");
  stale.mutable_meta()->mutable_version()->set_index(stale.meta().version().index() + 5);
  absl::Status s = f.store.Update([&](WriteTx& tx) { return tx.Update(stale); });
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_EQ(f.proposer.entries().size(), 1u);
}

// Two writers read the same version; the one applied second is refused in full.
TEST(TransactionTest, ConcurrentWriterLosesWithAborted) {
  StoreFixture f;
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeService("s", "web")); }).ok());
  absl::Status inner;
  absl::Status outer = f.store.Update([&](WriteTx& tx) {
    api::Service mine = *tx.Get<api::Service>("s");
    // Another writer (here: nested on this thread, so the interleaving is fixed) reads the same
    // version and commits first.
    inner = f.store.Update([](WriteTx& tx2) {
      api::Service theirs = *tx2.Get<api::Service>("s");
      SetLabel(&theirs, "winner", "inner");
      return tx2.Update(theirs);
    });
    SetLabel(&mine, "winner", "outer");
    absl::Status s = tx.Update(mine);
    s.Update(tx.Create(MakeTask("t-outer", "s", 1)));  // must not survive either
    return s;
  });
  EXPECT_TRUE(inner.ok()) << inner;
  EXPECT_EQ(outer.code(), absl::StatusCode::kAborted) << outer;
  EXPECT_NE(outer.message().find("update out of sequence: service s changed since it was read"),
            absl::string_view::npos)
      << outer;
  api::Service got = Read<api::Service>(f.store, "s");
  EXPECT_EQ(got.spec().annotations().labels().at("winner"), "inner");
  EXPECT_EQ(Read<api::Task>(f.store, "t-outer").id(), "");
}

// Two writers create objects with the same name from the same view: the second is refused.
TEST(TransactionTest, ConcurrentNameClaimLosesWithAlreadyExists) {
  StoreFixture f;
  absl::Status inner;
  absl::Status outer = f.store.Update([&](WriteTx& tx) {
    inner = f.store.Update([](WriteTx& tx2) { return tx2.Create(MakeService("s1", "web")); });
    return tx.Create(MakeService("s2", "web"));
  });
  EXPECT_TRUE(inner.ok());
  EXPECT_EQ(outer.code(), absl::StatusCode::kAlreadyExists) << outer;
  EXPECT_EQ(f.store.Counts().of(api::OBJECT_KIND_SERVICE), 1u);
}

// An entry whose last action fails leaves no trace of the others.
TEST(TransactionTest, EntryIsAtomic) {
  StoreFixture f;
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeService("s", "web")); }).ok());
  const uint64_t version = f.store.version();
  const std::string before = f.store.Snapshot();

  api::StoreProposal p;
  auto* a1 = p.mutable_request()->add_actions();
  a1->set_action(api::StoreAction::CREATE);
  *a1->mutable_object()->mutable_task() = MakeTask("t1", "s", 1);
  auto* a2 = p.mutable_request()->add_actions();
  a2->set_action(api::StoreAction::UPDATE);
  *a2->mutable_object()->mutable_service() = Read<api::Service>(f.store, "s");
  a2->mutable_object()->mutable_service()->set_pending_delete(true);
  auto* a3 = p.mutable_request()->add_actions();
  a3->set_action(api::StoreAction::REMOVE);
  a3->mutable_object()->mutable_network()->set_id("no-such-network");
  absl::Status s = MemoryStore::DecodeResult(f.store.Apply(version + 1, p.SerializeAsString()));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_EQ(f.store.version(), version);
  EXPECT_EQ(f.store.Snapshot(), before);

  // Without the failing action, the same entry applies, every object at the entry's index.
  p.mutable_request()->mutable_actions()->RemoveLast();
  s = MemoryStore::DecodeResult(f.store.Apply(version + 7, p.SerializeAsString()));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(f.store.version(), version + 7);
  EXPECT_EQ(Read<api::Task>(f.store, "t1").meta().version().index(), version + 7);
  EXPECT_EQ(Read<api::Service>(f.store, "s").meta().version().index(), version + 7);
}

TEST(TransactionTest, OldOrGarbledEntriesChangeNothing) {
  StoreFixture f;
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeService("s", "web")); }).ok());
  const std::string before = f.store.Snapshot();
  EXPECT_EQ(MemoryStore::DecodeResult(f.store.Apply(f.store.version(), "")).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(MemoryStore::DecodeResult(f.store.Apply(f.store.version() + 1, "\xff\xff")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f.store.Snapshot(), before);
}

// ---------------------------------------------------------------------------------------------
// Raft-facing behaviour

TEST(RaftFacingTest, VersionIsTheRaftIndex) {
  StoreFixture f;
  f.proposer.SetIndexGap(3);  // Raft's own entries take indexes too
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeService("s", "web")); }).ok());
  EXPECT_EQ(f.proposer.last_index(), 4u);
  EXPECT_EQ(f.store.version(), 4u);
  EXPECT_EQ(Read<api::Service>(f.store, "s").meta().version().index(), 4u);
  f.store.View([](const ReadTx& tx) { EXPECT_EQ(tx.version(), 4u); });
}

TEST(RaftFacingTest, ProposerErrorSurfacesUnchangedAndChangesNothing) {
  StoreFixture f;
  ASSERT_TRUE(f.store.Update([](WriteTx& tx) { return tx.Create(MakeService("s", "web")); }).ok());
  const std::string before = f.store.Snapshot();
  const absl::Status unavailable = absl::UnavailableError("raft: no leader");
  f.proposer.FailWith(unavailable);
  absl::Status s = f.store.Update([](WriteTx& tx) {
    api::Service svc = *tx.Get<api::Service>("s");
    svc.set_pending_delete(true);
    absl::Status st = tx.Update(svc);
    st.Update(tx.Create(MakeTask("t", "s", 1)));
    return st;
  });
  EXPECT_EQ(s, unavailable);
  EXPECT_EQ(f.store.Snapshot(), before);
  EXPECT_EQ(f.store.Batch([](Batch& b) {
    return b.Update([](WriteTx& tx) { return tx.Create(MakeTask("t", "s", 1)); });
  }),
            unavailable);
  EXPECT_EQ(f.store.Snapshot(), before);
}

TEST(RaftFacingTest, ReadOnlyStoreRefusesWrites) {
  MemoryStore store(nullptr);
  EXPECT_EQ(store.Update([](WriteTx& tx) { return tx.Create(MakeService("s", "web")); }).code(),
            absl::StatusCode::kFailedPrecondition);
}

// The same entries make byte-identical stores, whatever the local clocks say.
TEST(RaftFacingTest, ApplyIsDeterministic) {
  StoreFixture a;
  for (int i = 0; i < 40; ++i) {
    a.clock.Advance(absl::Milliseconds(1234));
    absl::Status s = a.store.Update([i](WriteTx& tx) {
      const std::string id = absl::StrCat("s", i % 7);
      // Every ninth round tries a name in use: the transaction refuses it.
      api::Service svc = MakeService(id, absl::StrCat("svc", i % 9 == 8 ? 0 : i % 7));
      for (int l = 0; l < 20; ++l) SetLabel(&svc, absl::StrCat("label", (l * 7919) % 20), "v");
      SetLabel(&svc, "round", absl::StrCat(i));
      absl::Status st;
      if (const api::Service* old = tx.Get<api::Service>(id)) {
        *svc.mutable_meta() = old->meta();
        st.Update(tx.Update(svc));
      } else {
        st.Update(tx.Create(svc));
      }
      st.Update(tx.Create(MakeTask(absl::StrCat("t", i), id, 1, "n1")));
      if (i % 10 == 9) st.Update(tx.Delete<api::Task>(absl::StrCat("t", i - 5)));
      return st;
    });
    EXPECT_EQ(s.ok(), i % 9 != 8 || i % 7 == 0) << i << " " << s;
  }
  // Entries that fail at apply time, too.
  api::StoreProposal bad;
  auto* act = bad.mutable_request()->add_actions();
  act->set_action(api::StoreAction::REMOVE);
  act->mutable_object()->mutable_task()->set_id("t0");  // version 0: out of sequence
  absl::StatusOr<std::string> r = a.proposer.Propose(bad.SerializeAsString(), absl::Now());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(MemoryStore::DecodeResult(*r).code(), absl::StatusCode::kAborted);

  // Replay into two fresh stores whose clocks disagree with a's and with each other.
  StoreFixture b;
  b.clock.Advance(absl::Hours(100));
  StoreFixture c;
  std::vector<DirectProposer::Entry> entries = a.proposer.entries();
  ASSERT_GT(entries.size(), 10u);
  std::vector<std::string> results_b, results_c;
  for (const auto& e : entries) {
    results_b.push_back(b.store.Apply(e.index, e.data));
    results_c.push_back(c.store.Apply(e.index, e.data));
  }
  EXPECT_EQ(results_b, results_c);
  EXPECT_EQ(a.store.Snapshot(), b.store.Snapshot());
  EXPECT_EQ(a.store.Snapshot(), c.store.Snapshot());
}

TEST(RaftFacingTest, SnapshotRestoreRoundTrip) {
  StoreFixture a;
  ASSERT_TRUE(a.store
                  .Update([](WriteTx& tx) {
                    api::Service svc = MakeService("s1", "web");
                    for (int i = 0; i < 10; ++i) SetLabel(&svc, absl::StrCat("k", i), "v");
                    absl::Status s = tx.Create(svc);
                    s.Update(tx.Create(MakeTask("t1", "s1", 1, "n1")));
                    s.Update(tx.Create(MakeTask("t2", "s1", 2, "n2")));
                    s.Update(tx.Create(Make<api::Node>("n1", "host1")));
                    s.Update(tx.Create(Make<api::Network>("net", "ingress")));
                    s.Update(tx.Create(Make<api::Secret>("sec", "pw")));
                    s.Update(tx.Create(Make<api::Config>("cfg", "conf")));
                    s.Update(tx.Create(Make<api::Cluster>("c", "default")));
                    return s;
                  })
                  .ok());
  const std::string snap = a.store.Snapshot();
  // The store writes the snapshot itself; it must be exactly protobuf's deterministic encoding.
  api::StoreSnapshot parsed;
  ASSERT_TRUE(parsed.ParseFromString(snap));
  EXPECT_EQ(parsed.version(), a.store.version());
  EXPECT_EQ(parsed.tasks_size(), 2);
  EXPECT_EQ(parsed.clusters(0).id(), "c");
  std::string reencoded;
  {
    google::protobuf::io::StringOutputStream stream(&reencoded);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    parsed.SerializeToCodedStream(&coded);
  }
  EXPECT_EQ(reencoded, snap);

  StoreFixture b;
  ASSERT_TRUE(b.store.Update([](WriteTx& tx) { return tx.Create(MakeService("old", "x")); }).ok());
  std::unique_ptr<Watcher> w = b.store.ViewAndWatch([](const ReadTx&) {});
  ASSERT_TRUE(b.store.Restore(snap).ok());
  EXPECT_EQ(b.store.Snapshot(), snap);
  EXPECT_EQ(b.store.version(), a.store.version());
  for (int k = 1; k <= kNumKinds; ++k) {
    EXPECT_EQ(b.store.Counts().by_kind[k], a.store.Counts().by_kind[k]) << k;
  }
  b.store.View([](const ReadTx& tx) {
    EXPECT_EQ(tx.Get<api::Service>("old"), nullptr);
    EXPECT_EQ(Ids(tx.FindTasksByService("s1")), (std::vector<std::string>{"t1", "t2"}));
    EXPECT_EQ(Ids(tx.FindTasksByNode("n2")), std::vector<std::string>{"t2"});
    EXPECT_EQ(Ids(tx.FindByName<api::Service>("web")), std::vector<std::string>{"s1"});
    EXPECT_EQ(Ids(tx.FindByName<api::Node>("host1")), std::vector<std::string>{"n1"});
  });
  // Watchers of the replaced store must start over.
  EXPECT_EQ(w->Next(absl::InfinitePast()).status().code(), absl::StatusCode::kAborted);

  // A broken snapshot changes nothing.
  EXPECT_EQ(b.store.Restore("\x0a\xff").code(), absl::StatusCode::kDataLoss);
  api::StoreSnapshot dup;
  *dup.add_tasks() = MakeTask("t", "s", 1);
  *dup.add_tasks() = MakeTask("t", "s", 2);
  EXPECT_EQ(b.store.Restore(dup.SerializeAsString()).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(b.store.Snapshot(), snap);

  // Writes continue on top of the restored store.
  b.proposer.SetIndexGap(a.proposer.last_index());
  ASSERT_TRUE(b.store.Update([](WriteTx& tx) { return tx.Create(MakeTask("t3", "s1", 3)); }).ok());
  b.store.View([](const ReadTx& tx) { EXPECT_EQ(tx.FindTasksByService("s1").size(), 3u); });
}

}  // namespace
}  // namespace shoal::manager::store
