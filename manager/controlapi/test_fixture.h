// ControlApiFixture: a ControlApi over a MemoryStore fed by a DirectProposer (through a proposer
// that can slip a concurrent write in before the next proposal applies) and a FakeRaftControl,
// with helpers to seed nodes, networks, secrets, configs and tasks and to read objects back.
#ifndef SHOAL_MANAGER_CONTROLAPI_TEST_FIXTURE_H_
#define SHOAL_MANAGER_CONTROLAPI_TEST_FIXTURE_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "manager/controlapi/control_api.h"
#include "manager/fake_raft_control.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"
#include "proto/objects.pb.h"

namespace shoal::manager::testing {

// A DirectProposer that can run something just before it applies the next proposal: a write
// that slips in between a transaction and its commit, as a concurrent manager's would.
class RacingProposer : public store::Proposer {
 public:
  store::DirectProposer& inner() { return inner_; }
  void BeforeNext(std::function<void()> fn) { before_ = std::move(fn); }

  absl::StatusOr<std::string> Propose(std::string data, absl::Time deadline) override {
    if (before_) {
      std::function<void()> fn = std::move(before_);
      before_ = nullptr;
      fn();
    }
    return inner_.Propose(std::move(data), deadline);
  }

 private:
  store::DirectProposer inner_;
  std::function<void()> before_;  // test thread only
};

class ControlApiFixture : public ::testing::Test {
 protected:
  ControlApiFixture()
      : clock_(absl::FromUnixSeconds(1700000000)),
        store_(&proposer_, StoreOpts(&clock_)),
        raft_(1, "node1") {
    proposer_.inner().Attach(&store_);
    ControlApiOptions o;
    o.clock = &clock_;
    o.manager_addr = "10.0.0.1:2377";
    o.timeout = absl::Seconds(5);
    api_ = std::make_unique<ControlApi>(&store_, &raft_, o);
  }

  static store::StoreOptions StoreOpts(Clock* clock) {
    store::StoreOptions o;
    o.clock = clock;
    return o;
  }

  template <class T>
  void Create(T object) {
    absl::Status s =
        store_.Update([&](store::WriteTx& tx) { return tx.Create(std::move(object)); });
    ASSERT_TRUE(s.ok()) << s;
  }
  // Read-modify-write of a stored object.
  template <class T>
  void Modify(const std::string& id, const std::function<void(T*)>& fn) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) -> absl::Status {
      const T* cur = tx.Get<T>(id);
      if (cur == nullptr) return absl::NotFoundError(id);
      T copy = *cur;
      fn(&copy);
      return tx.Update(std::move(copy));
    });
    ASSERT_TRUE(s.ok()) << s;
  }
  template <class T>
  T Stored(const std::string& id) {
    T out;
    store_.View([&](const store::ReadTx& tx) {
      if (const T* o = tx.Get<T>(id)) out = *o;
    });
    return out;
  }
  template <class T>
  bool Exists(const std::string& id) {
    bool found = false;
    store_.View([&](const store::ReadTx& tx) { found = tx.Get<T>(id) != nullptr; });
    return found;
  }

  void AddNode(const std::string& id, api::NodeStatus::State state,
               api::NodeAvailability availability = api::NODE_AVAILABILITY_ACTIVE,
               const std::string& zone = "") {
    api::Node n;
    n.set_id(id);
    n.mutable_description()->set_hostname("host-" + id);
    n.mutable_status()->set_state(state);
    n.mutable_spec()->set_availability(availability);
    if (!zone.empty()) (*n.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = zone;
    Create(std::move(n));
  }
  void AddNetwork(const std::string& id, const std::string& name, bool ingress = false) {
    api::Network n;
    n.set_id(id);
    n.mutable_spec()->mutable_annotations()->set_name(name);
    n.mutable_spec()->set_ingress(ingress);
    Create(std::move(n));
  }
  void AddSecret(const std::string& id, const std::string& name, const std::string& data,
                 bool internal = false) {
    api::Secret s;
    s.set_id(id);
    s.mutable_spec()->mutable_annotations()->set_name(name);
    s.mutable_spec()->set_data(data);
    s.set_internal(internal);
    Create(std::move(s));
  }
  void AddConfig(const std::string& id, const std::string& name, const std::string& data) {
    api::Config c;
    c.set_id(id);
    c.mutable_spec()->mutable_annotations()->set_name(name);
    c.mutable_spec()->set_data(data);
    Create(std::move(c));
  }

  // A valid replicated service spec.
  static api::ServiceSpec Spec(const std::string& name, uint64_t replicas = 1) {
    api::ServiceSpec spec;
    spec.mutable_annotations()->set_name(name);
    spec.mutable_task_template()->mutable_container_spec()->set_image("nginx:1.25");
    spec.mutable_replicated()->set_replicas(replicas);
    return spec;
  }

  // Creates the service and returns it; fails the test on error.
  api::Service CreateService(const api::ServiceSpec& spec) {
    api::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    api::CreateServiceResponse resp;
    grpc::Status s = api_->CreateService(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.service();
  }
  grpc::Status TryCreateService(const api::ServiceSpec& spec) {
    api::CreateServiceRequest req;
    *req.mutable_spec() = spec;
    api::CreateServiceResponse resp;
    return api_->CreateService(req, &resp);
  }

  ManualClock clock_;
  RacingProposer proposer_;
  store::MemoryStore store_;
  FakeRaftControl raft_;
  std::unique_ptr<ControlApi> api_;
};

}  // namespace shoal::manager::testing

#endif  // SHOAL_MANAGER_CONTROLAPI_TEST_FIXTURE_H_
