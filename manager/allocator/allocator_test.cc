#include "manager/allocator/allocator.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "manager/store/test_objects.h"

namespace shoal::manager {
namespace {

using store::testing::MakeService;
using store::testing::MakeTask;
using store::testing::StoreFixture;

api::PortConfig Port(uint32_t target, uint32_t published,
                     api::PortConfig::PublishMode mode = api::PortConfig::INGRESS) {
  api::PortConfig p;
  p.set_target_port(target);
  p.set_published_port(published);
  p.set_publish_mode(mode);
  return p;
}

class AllocatorTest : public ::testing::Test {
 protected:
  AllocatorTest() : allocator_(&f_.store, Options()) {}

  AllocatorOptions Options() {
    AllocatorOptions o;
    o.clock = &f_.clock;
    return o;
  }

  void CreateService(const std::string& id, const std::string& name,
                     const std::vector<api::PortConfig>& ports, bool endpoint_spec = true) {
    api::Service s = MakeService(id, name);
    if (endpoint_spec) {
      api::EndpointSpec* e = s.mutable_spec()->mutable_endpoint_spec();
      for (const api::PortConfig& p : ports) *e->add_ports() = p;
    }
    ASSERT_TRUE(f_.store.Update([&](store::WriteTx& tx) { return tx.Create(s); }).ok());
  }

  void UpdateService(const std::string& id, const std::function<void(api::Service*)>& change) {
    ASSERT_TRUE(f_.store
                    .Update([&](store::WriteTx& tx) {
                      api::Service s = *tx.Get<api::Service>(id);
                      change(&s);
                      return tx.Update(s);
                    })
                    .ok());
  }

  // `n` NEW tasks of `service_id`, IDs "<service_id>-t<i>".
  void CreateTasks(const std::string& service_id, int n,
                   const std::function<void(api::Task*)>& change = nullptr) {
    ASSERT_TRUE(f_.store
                    .Update([&](store::WriteTx& tx) {
                      for (int i = 1; i <= n; ++i) {
                        api::Task t = MakeTask(absl::StrCat(service_id, "-t", i), service_id, i);
                        if (change) change(&t);
                        if (absl::Status s = tx.Create(t); !s.ok()) return s;
                      }
                      return absl::OkStatus();
                    })
                    .ok());
  }

  api::Task GetTask(const std::string& id) {
    api::Task out;
    f_.store.View([&](const store::ReadTx& tx) {
      if (const api::Task* t = tx.Get<api::Task>(id)) out = *t;
    });
    return out;
  }
  api::Service GetService(const std::string& id) {
    api::Service out;
    f_.store.View([&](const store::ReadTx& tx) {
      if (const api::Service* s = tx.Get<api::Service>(id)) out = *s;
    });
    return out;
  }
  std::vector<uint32_t> Published(const std::string& service_id) {
    std::vector<uint32_t> out;
    const api::Service svc = GetService(service_id);
    for (const api::PortConfig& p : svc.endpoint().ports()) {
      out.push_back(p.published_port());
    }
    return out;
  }

  // Waits (real time, bounded) for `cond`, moving the manual clock on so that the loop's batch
  // window passes.
  bool WaitFor(const std::function<bool()>& cond) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (cond()) return true;
      f_.clock.Advance(absl::Milliseconds(10));
      absl::SleepFor(absl::Milliseconds(2));
    }
    return cond();
  }

  StoreFixture f_;
  Allocator allocator_;
};

TEST_F(AllocatorTest, NewTasksGetTheEndpointAndBecomePending) {
  CreateService("s1", "web",
                {Port(80, 0), Port(443, 8443), Port(9000, 9000, api::PortConfig::HOST)});
  CreateTasks("s1", 3);
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());

  api::Service svc = GetService("s1");
  EXPECT_EQ(Published("s1"), (std::vector<uint32_t>{30000, 8443, 9000}));
  EXPECT_TRUE(svc.endpoint().has_spec());
  EXPECT_EQ(svc.endpoint().spec().ports_size(), 3);
  for (int i = 1; i <= 3; ++i) {
    api::Task t = GetTask(absl::StrCat("s1-t", i));
    EXPECT_EQ(t.status().state(), api::TASK_STATE_PENDING);
    EXPECT_EQ(t.status().message(), kAllocatedMessage);
    EXPECT_EQ(t.status().err(), "");
    EXPECT_TRUE(t.status().has_timestamp());
    ASSERT_EQ(t.endpoint().ports_size(), 3);
    EXPECT_EQ(t.endpoint().ports(0).published_port(), 30000u);
    EXPECT_EQ(t.endpoint().ports(1).published_port(), 8443u);
  }
  // A second pass changes nothing.
  const uint64_t version = f_.store.version();
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(f_.store.version(), version);
}

TEST_F(AllocatorTest, ServiceWithoutEndpointSpec) {
  CreateService("s1", "plain", {}, /*endpoint_spec=*/false);
  CreateTasks("s1", 2);
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_FALSE(GetService("s1").has_endpoint());
  api::Task t = GetTask("s1-t1");
  EXPECT_EQ(t.status().state(), api::TASK_STATE_PENDING);
  EXPECT_FALSE(t.has_endpoint());
}

TEST_F(AllocatorTest, OnlyNewTasksMeantToRunAreAllocated) {
  CreateService("s1", "web", {Port(80, 0)});
  CreateTasks("s1", 1);
  CreateTasks("s1", 3, [](api::Task* t) {
    if (t->slot() == 2) t->set_desired_state(api::TASK_STATE_SHUTDOWN);
    if (t->slot() == 3) t->mutable_status()->set_state(api::TASK_STATE_RUNNING);
    t->set_id(absl::StrCat("x", t->slot()));
  });
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(GetTask("s1-t1").status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(GetTask("x1").status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(GetTask("x2").status().state(), api::TASK_STATE_NEW);
  EXPECT_EQ(GetTask("x2").status().message(), "");
  EXPECT_EQ(GetTask("x3").status().state(), api::TASK_STATE_RUNNING);
  EXPECT_FALSE(GetTask("x3").has_endpoint());
}

TEST_F(AllocatorTest, TasksWithNetworksWaitForNetworkAllocation) {
  CreateService("s1", "web", {});
  CreateTasks("s1", 1, [](api::Task* t) { t->mutable_spec()->add_networks()->set_target("net1"); });
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  api::Task t = GetTask("s1-t1");
  EXPECT_EQ(t.status().state(), api::TASK_STATE_NEW);
  EXPECT_EQ(t.status().message(), kWaitingForNetworksMessage);
  EXPECT_EQ(t.status().message(), "waiting for network allocation");
  // Written once: the next pass finds the message already there.
  const uint64_t version = f_.store.version();
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(f_.store.version(), version);
}

TEST_F(AllocatorTest, PortConflictKeepsTasksNewUntilThePortIsReleased) {
  CreateService("a", "web", {Port(80, 8080)});
  CreateService("b", "api", {Port(81, 8080)});
  CreateTasks("a", 1);
  CreateTasks("b", 2);
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(GetTask("a-t1").status().state(), api::TASK_STATE_PENDING);
  const std::string conflict =
      "port 8080/tcp is already published by service web (ID a); publish another port or "
      "remove it from that service";
  for (const char* id : {"b-t1", "b-t2"}) {
    api::Task t = GetTask(id);
    EXPECT_EQ(t.status().state(), api::TASK_STATE_NEW);
    EXPECT_EQ(t.status().message(), conflict);
    EXPECT_EQ(t.status().err(), conflict);
  }
  EXPECT_FALSE(GetService("b").has_endpoint());
  // Written once.
  uint64_t version = f_.store.version();
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(f_.store.version(), version);

  // Deleting a releases 8080: b gets it.
  ASSERT_TRUE(
      f_.store.Update([](store::WriteTx& tx) { return tx.Delete<api::Service>("a"); }).ok());
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(Published("b"), (std::vector<uint32_t>{8080}));
  for (const char* id : {"b-t1", "b-t2"}) {
    api::Task t = GetTask(id);
    EXPECT_EQ(t.status().state(), api::TASK_STATE_PENDING);
    EXPECT_EQ(t.status().message(), kAllocatedMessage);
    EXPECT_EQ(t.status().err(), "");
    EXPECT_EQ(t.endpoint().ports(0).published_port(), 8080u);
  }
}

TEST_F(AllocatorTest, DynamicPortsAreUniqueAndKeptAcrossUpdates) {
  CreateService("a", "web", {Port(80, 0)});
  CreateService("b", "api", {Port(80, 0)});
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(Published("a"), (std::vector<uint32_t>{30000}));
  EXPECT_EQ(Published("b"), (std::vector<uint32_t>{30001}));
  UpdateService("a", [](api::Service* s) {
    api::EndpointSpec* e = s->mutable_spec()->mutable_endpoint_spec();
    *e->add_ports() = Port(443, 0);
  });
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(Published("a"), (std::vector<uint32_t>{30000, 30002}));
  // Tasks of the new spec copy the new endpoint.
  CreateTasks("a", 1);
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(GetTask("a-t1").endpoint().ports_size(), 2);
}

TEST_F(AllocatorTest, PendingDeleteReleasesPorts) {
  CreateService("a", "web", {Port(80, 8080)});
  CreateService("b", "api", {Port(81, 8080)});
  CreateTasks("b", 1);
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(GetTask("b-t1").status().state(), api::TASK_STATE_NEW);
  UpdateService("a", [](api::Service* s) { s->set_pending_delete(true); });
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(GetTask("b-t1").status().state(), api::TASK_STATE_PENDING);
  EXPECT_EQ(Published("b"), (std::vector<uint32_t>{8080}));
}

TEST_F(AllocatorTest, ANewAllocatorRebuildsThePortTableFromTheStore) {
  CreateService("a", "web", {Port(80, 0)});
  ASSERT_TRUE(allocator_.ReconcileOnce().ok());
  ASSERT_EQ(Published("a"), (std::vector<uint32_t>{30000}));
  const uint64_t version = f_.store.version();

  // A new leader's allocator: nothing to rewrite, and 30000 stays a's.
  Allocator other(&f_.store, Options());
  ASSERT_TRUE(other.ReconcileOnce().ok());
  EXPECT_EQ(f_.store.version(), version);
  CreateService("c", "db", {Port(5432, 0)});
  ASSERT_TRUE(other.ReconcileOnce().ok());
  EXPECT_EQ(Published("c"), (std::vector<uint32_t>{30001}));
}

TEST_F(AllocatorTest, LoopFollowsTheStore) {
  allocator_.Start();
  CreateService("a", "web", {Port(80, 8080)});
  CreateTasks("a", 2);
  ASSERT_TRUE(WaitFor([&] { return GetTask("a-t2").status().state() == api::TASK_STATE_PENDING; }));
  EXPECT_EQ(Published("a"), (std::vector<uint32_t>{8080}));

  // A conflict, then its resolution, through the change stream alone.
  CreateService("b", "api", {Port(81, 8080)});
  CreateTasks("b", 1);
  ASSERT_TRUE(WaitFor([&] { return !GetTask("b-t1").status().message().empty(); }));
  EXPECT_EQ(GetTask("b-t1").status().state(), api::TASK_STATE_NEW);
  EXPECT_NE(GetTask("b-t1").status().message().find("8080/tcp"), std::string::npos);
  UpdateService("a", [](api::Service* s) {
    s->mutable_spec()->mutable_endpoint_spec()->mutable_ports(0)->set_published_port(8081);
  });
  ASSERT_TRUE(WaitFor([&] { return GetTask("b-t1").status().state() == api::TASK_STATE_PENDING; }));
  EXPECT_EQ(Published("b"), (std::vector<uint32_t>{8080}));
  EXPECT_EQ(Published("a"), (std::vector<uint32_t>{8081}));
  allocator_.Stop();
  allocator_.Stop();  // Idempotent.

  // Started again (leadership regained): picks up what came meanwhile.
  CreateTasks("a", 1, [](api::Task* t) { t->set_id("a-late"); });
  allocator_.Start();
  ASSERT_TRUE(
      WaitFor([&] { return GetTask("a-late").status().state() == api::TASK_STATE_PENDING; }));
  allocator_.Stop();
}

TEST_F(AllocatorTest, WriteFailuresAreRetried) {
  CreateService("a", "web", {});
  CreateTasks("a", 1);
  f_.proposer.FailWith(absl::UnavailableError("not the leader"), /*once=*/true);
  EXPECT_FALSE(allocator_.ReconcileOnce().ok());
  EXPECT_EQ(GetTask("a-t1").status().state(), api::TASK_STATE_NEW);
  allocator_.Start();
  ASSERT_TRUE(WaitFor([&] { return GetTask("a-t1").status().state() == api::TASK_STATE_PENDING; }));
}

TEST_F(AllocatorTest, PeriodicResyncRewritesNothing) {
  CreateService("a", "web", {Port(80, 8080)});
  CreateService("b", "api", {Port(81, 8080)});
  CreateTasks("a", 2);
  CreateTasks("b", 1);
  CreateTasks("a", 1, [](api::Task* t) {
    t->set_id("a-net");
    t->mutable_spec()->add_networks()->set_target("net1");
  });
  allocator_.Start();
  ASSERT_TRUE(WaitFor([&] {
    return GetTask("a-t2").status().state() == api::TASK_STATE_PENDING &&
           !GetTask("b-t1").status().message().empty() &&
           !GetTask("a-net").status().message().empty();
  }));
  const uint64_t version = f_.store.version();
  const uint64_t passes = allocator_.passes();
  f_.clock.Advance(absl::Seconds(6));
  ASSERT_TRUE(WaitFor([&] { return allocator_.passes() > passes; }));
  EXPECT_EQ(f_.store.version(), version);
  allocator_.Stop();
}

}  // namespace
}  // namespace shoal::manager
