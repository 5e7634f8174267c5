// Object factories and a store fixture for the store's tests.
#ifndef SHOAL_MANAGER_STORE_TEST_OBJECTS_H_
#define SHOAL_MANAGER_STORE_TEST_OBJECTS_H_

#include <string>

#include "common/clock.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"
#include "objects.pb.h"

namespace shoal::manager::store::testing {

inline void SetName(api::Node* o, const std::string& n) {
  o->mutable_description()->set_hostname(n);
}
inline void SetName(api::Service* o, const std::string& n) {
  o->mutable_spec()->mutable_annotations()->set_name(n);
}
inline void SetName(api::Task* o, const std::string& n) { o->mutable_annotations()->set_name(n); }
template <class T>
void SetName(T* o, const std::string& n) {  // Network, Secret, Config, Cluster
  o->mutable_spec()->mutable_annotations()->set_name(n);
}

inline void SetLabel(api::Task* o, const std::string& k, const std::string& v) {
  (*o->mutable_annotations()->mutable_labels())[k] = v;
}
template <class T>
void SetLabel(T* o, const std::string& k, const std::string& v) {
  (*o->mutable_spec()->mutable_annotations()->mutable_labels())[k] = v;
}

template <class T>
T Make(const std::string& id, const std::string& name = "") {
  T o;
  o.set_id(id);
  if (!name.empty()) SetName(&o, name);
  return o;
}

inline api::Service MakeService(const std::string& id, const std::string& name) {
  api::Service s = Make<api::Service>(id, name);
  s.mutable_spec()->mutable_replicated()->set_replicas(1);
  return s;
}

inline api::Task MakeTask(const std::string& id, const std::string& service_id, uint64_t slot,
                          const std::string& node_id = "",
                          api::TaskState desired = api::TASK_STATE_RUNNING) {
  api::Task t;
  t.set_id(id);
  t.set_service_id(service_id);
  t.set_slot(slot);
  t.set_node_id(node_id);
  t.set_desired_state(desired);
  t.mutable_spec()->mutable_container_spec()->set_image("busybox@sha256:0123456789abcdef");
  return t;
}

// A store wired to a DirectProposer, with a manual clock.
struct StoreFixture {
  explicit StoreFixture(StoreOptions options = {}) : store(&proposer, WithClock(options, &clock)) {
    proposer.Attach(&store);
  }
  static StoreOptions WithClock(StoreOptions o, Clock* c) {
    o.clock = c;
    return o;
  }
  ManualClock clock;
  DirectProposer proposer;
  MemoryStore store;
};

}  // namespace shoal::manager::store::testing

#endif  // SHOAL_MANAGER_STORE_TEST_OBJECTS_H_
