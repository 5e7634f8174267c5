// Test helpers for the orchestrator loops: a store on a DirectProposer with a ManualClock shared
// by the store and the loops, and shortcuts to write nodes, services and task states and to read
// tasks back.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_TEST_UTIL_H_
#define SHOAL_MANAGER_ORCHESTRATOR_TEST_UTIL_H_

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "manager/orchestrator/common.h"
#include "manager/store/memory_store.h"
#include "manager/store/test_objects.h"
#include "proto/objects.pb.h"

namespace shoal::manager::orchestrator::testing {

class OrchestratorFixture {
 public:
  OrchestratorFixture() = default;

  store::MemoryStore& store() { return f_.store; }
  ManualClock& clock() { return f_.clock; }
  OrchestratorOptions options() {
    OrchestratorOptions o;
    o.clock = &f_.clock;
    return o;
  }

  void Write(const std::function<absl::Status(store::WriteTx&)>& fn) {
    absl::Status s = f_.store.Update(fn);
    ASSERT_TRUE(s.ok()) << s;
  }

  // A cluster with the given history limit (and optionally a default log driver).
  void AddCluster(int64_t history_limit, const std::string& log_driver = "") {
    api::Cluster c;
    c.set_id("cluster");
    c.mutable_spec()->mutable_annotations()->set_name("default");
    c.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(history_limit);
    if (!log_driver.empty()) {
      c.mutable_spec()->mutable_task_defaults()->mutable_log_driver()->set_name(log_driver);
    }
    Write([&](store::WriteTx& tx) { return tx.Create(c); });
  }

  // A READY, ACTIVE worker.
  void AddNode(const std::string& id, const std::map<std::string, std::string>& labels = {}) {
    api::Node n;
    n.set_id(id);
    n.mutable_description()->set_hostname("host-" + id);
    n.mutable_status()->set_state(api::NodeStatus::READY);
    for (const auto& [k, v] : labels) {
      (*n.mutable_spec()->mutable_annotations()->mutable_labels())[k] = v;
    }
    Write([&](store::WriteTx& tx) { return tx.Create(n); });
  }
  void UpdateNode(const std::string& id, const std::function<void(api::Node*)>& change) {
    Write([&](store::WriteTx& tx) -> absl::Status {
      api::Node n = *tx.Get<api::Node>(id);
      change(&n);
      return tx.Update(n);
    });
  }
  void RemoveNode(const std::string& id) {
    Write([&](store::WriteTx& tx) { return tx.Delete<api::Node>(id); });
  }

  static api::Service Replicated(const std::string& id, const std::string& name,
                                 uint64_t replicas) {
    api::Service s;
    s.set_id(id);
    s.mutable_spec()->mutable_annotations()->set_name(name);
    s.mutable_spec()->mutable_task_template()->mutable_container_spec()->set_image("sim/run");
    s.mutable_spec()->mutable_replicated()->set_replicas(replicas);
    s.mutable_spec_version()->set_index(1);
    return s;
  }
  static api::Service Global(const std::string& id, const std::string& name) {
    api::Service s = Replicated(id, name, 0);
    s.mutable_spec()->mutable_global();
    return s;
  }
  static api::Service ReplicatedJob(const std::string& id, const std::string& name,
                                    uint64_t max_concurrent, uint64_t total) {
    api::Service s = Replicated(id, name, 0);
    s.mutable_spec()->mutable_replicated_job()->set_max_concurrent(max_concurrent);
    s.mutable_spec()->mutable_replicated_job()->set_total_completions(total);
    s.mutable_job_status()->mutable_job_iteration()->set_index(1);
    return s;
  }
  static api::Service GlobalJob(const std::string& id, const std::string& name) {
    api::Service s = Replicated(id, name, 0);
    s.mutable_spec()->mutable_global_job();
    s.mutable_job_status()->mutable_job_iteration()->set_index(1);
    return s;
  }
  static void SetRestart(api::Service* s, api::RestartPolicy::Condition condition,
                         absl::Duration delay, uint64_t max_attempts = 0,
                         absl::Duration window = absl::ZeroDuration()) {
    api::RestartPolicy* p = s->mutable_spec()->mutable_task_template()->mutable_restart_policy();
    p->set_condition(condition);
    p->mutable_delay()->set_seconds(absl::ToInt64Seconds(delay));
    p->set_max_attempts(max_attempts);
    if (window > absl::ZeroDuration()) {
      p->mutable_window()->set_seconds(absl::ToInt64Seconds(window));
    }
  }

  void AddService(const api::Service& s) {
    Write([&](store::WriteTx& tx) { return tx.Create(s); });
  }
  void UpdateService(const std::string& id, const std::function<void(api::Service*)>& change) {
    Write([&](store::WriteTx& tx) -> absl::Status {
      api::Service s = *tx.Get<api::Service>(id);
      change(&s);
      return tx.Update(s);
    });
  }
  void SetReplicas(const std::string& id, uint64_t replicas) {
    UpdateService(id, [&](api::Service* s) {
      s->mutable_spec()->mutable_replicated()->set_replicas(replicas);
    });
  }

  // What the scheduler and an agent would write.
  void Assign(const std::string& task_id, const std::string& node_id,
              api::TaskState state = api::TASK_STATE_RUNNING) {
    UpdateTask(task_id, [&](api::Task* t) {
      t->set_node_id(node_id);
      t->mutable_status()->set_state(state);
    });
  }
  void SetState(const std::string& task_id, api::TaskState state) {
    UpdateTask(task_id, [&](api::Task* t) {
      t->mutable_status()->set_state(state);
      ToProto(clock().Now(), t->mutable_status()->mutable_timestamp());
    });
  }
  void UpdateTask(const std::string& id, const std::function<void(api::Task*)>& change) {
    Write([&](store::WriteTx& tx) -> absl::Status {
      const api::Task* t = tx.Get<api::Task>(id);
      if (t == nullptr) return absl::NotFoundError("no task " + id);
      api::Task copy = *t;
      change(&copy);
      return tx.Update(copy);
    });
  }

  std::vector<api::Task> Tasks(const std::string& service_id) {
    std::vector<api::Task> out;
    f_.store.View([&](const store::ReadTx& tx) {
      for (const api::Task* t : tx.FindTasksByService(service_id)) out.push_back(*t);
    });
    return out;
  }
  // Tasks with the given desired state, sorted by slot then node.
  std::vector<api::Task> TasksDesired(const std::string& service_id, api::TaskState desired) {
    std::vector<api::Task> out;
    for (api::Task& t : Tasks(service_id)) {
      if (t.desired_state() == desired) out.push_back(std::move(t));
    }
    std::sort(out.begin(), out.end(), [](const api::Task& a, const api::Task& b) {
      if (a.slot() != b.slot()) return a.slot() < b.slot();
      return a.node_id() < b.node_id();
    });
    return out;
  }
  std::vector<api::Task> Live(const std::string& service_id) {
    std::vector<api::Task> out;
    for (api::Task& t : Tasks(service_id)) {
      if (IsLive(t)) out.push_back(std::move(t));
    }
    std::sort(out.begin(), out.end(), [](const api::Task& a, const api::Task& b) {
      if (a.slot() != b.slot()) return a.slot() < b.slot();
      return a.node_id() < b.node_id();
    });
    return out;
  }
  std::vector<uint64_t> LiveSlots(const std::string& service_id) {
    std::vector<uint64_t> out;
    for (const api::Task& t : Live(service_id)) out.push_back(t.slot());
    return out;
  }
  std::vector<std::string> LiveNodes(const std::string& service_id) {
    std::vector<std::string> out;
    for (const api::Task& t : Live(service_id)) out.push_back(t.node_id());
    return out;
  }
  bool HasTask(const std::string& id) {
    bool found = false;
    f_.store.View([&](const store::ReadTx& tx) { found = tx.Get<api::Task>(id) != nullptr; });
    return found;
  }
  bool HasService(const std::string& id) {
    bool found = false;
    f_.store.View([&](const store::ReadTx& tx) { found = tx.Get<api::Service>(id) != nullptr; });
    return found;
  }
  api::Task GetTask(const std::string& id) {
    api::Task out;
    f_.store.View([&](const store::ReadTx& tx) {
      if (const api::Task* t = tx.Get<api::Task>(id)) out = *t;
    });
    return out;
  }

 private:
  store::testing::StoreFixture f_;
};

// Waits (polling, wall-clock bounded) until `cond` holds; true if it did.
inline bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return cond();
}

}  // namespace shoal::manager::orchestrator::testing

#endif  // SHOAL_MANAGER_ORCHESTRATOR_TEST_UTIL_H_
