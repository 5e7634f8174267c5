// Builders of Node and Task objects for the scheduler's tests and benchmark, with defaults that
// make a node schedulable (READY, ACTIVE, linux/amd64, 4 CPUs, 8 GiB) and a task plain (service
// "svc", spec version 1, no reservations).
#ifndef SHOAL_SCHEDULER_TEST_UTIL_H_
#define SHOAL_SCHEDULER_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "objects.pb.h"
#include "scheduler/scheduler.h"

namespace shoal::scheduler::testing {

inline constexpr int64_t kGiB = int64_t{1} << 30;
inline constexpr int64_t kMiB = int64_t{1} << 20;
inline constexpr int64_t kCpu = 1'000'000'000;  // nano-CPUs

class NodeBuilder {
 public:
  explicit NodeBuilder(const std::string& id);
  NodeBuilder& Label(const std::string& key, const std::string& value);
  NodeBuilder& EngineLabel(const std::string& key, const std::string& value);
  NodeBuilder& Manager();
  NodeBuilder& State(api::NodeStatus::State state);
  NodeBuilder& Availability(api::NodeAvailability availability);
  NodeBuilder& Hostname(const std::string& hostname);
  NodeBuilder& Platform(const std::string& os, const std::string& arch);
  NodeBuilder& Addr(const std::string& addr);
  NodeBuilder& NanoCpus(int64_t nano_cpus);
  NodeBuilder& Memory(int64_t bytes);
  NodeBuilder& Discrete(const std::string& kind, int64_t amount);
  NodeBuilder& Named(const std::string& kind, const std::string& unit);
  const api::Node& Build() const { return node_; }

 private:
  api::Node node_;
};

class TaskBuilder {
 public:
  explicit TaskBuilder(const std::string& id = "t");
  TaskBuilder& Id(const std::string& id);
  TaskBuilder& Service(const std::string& service_id, uint64_t spec_version = 1);
  TaskBuilder& NoSpecVersion();
  TaskBuilder& Constraint(const std::string& expr);
  TaskBuilder& Spread(const std::string& descriptor);
  TaskBuilder& MaxReplicas(uint64_t n);
  TaskBuilder& Platform(const std::string& os, const std::string& arch);
  TaskBuilder& NanoCpus(int64_t nano_cpus);
  TaskBuilder& Memory(int64_t bytes);
  TaskBuilder& Generic(const std::string& kind, int64_t amount);
  TaskBuilder& HostPort(uint32_t port, api::PortConfig::Protocol protocol = api::PortConfig::TCP);
  TaskBuilder& IngressPort(uint32_t port);
  TaskBuilder& Node(const std::string& node_id);
  TaskBuilder& DesiredState(api::TaskState state);
  const api::Task& Build() const { return task_; }
  // `n` copies with IDs "<prefix>001", "<prefix>002", ...
  std::vector<api::Task> Replicas(int n, const std::string& prefix = "t") const;

 private:
  api::Task task_;
};

// A NodeSet holding `nodes`.
NodeSet MakeNodeSet(const std::vector<api::Node>& nodes);

// Node ID -> tasks assigned to it by `d`.
std::map<std::string, int> TasksPerNode(const Decisions& d);
// Label value (of node label `label`) -> tasks assigned to nodes with that value ("" = none).
std::map<std::string, int> TasksPerLabel(const Decisions& d, const NodeSet& nodes,
                                         const std::string& label);

}  // namespace shoal::scheduler::testing

#endif  // SHOAL_SCHEDULER_TEST_UTIL_H_
