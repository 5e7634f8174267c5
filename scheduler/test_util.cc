#include "scheduler/test_util.h"

#include <cstdio>

namespace shoal::scheduler::testing {

NodeBuilder::NodeBuilder(const std::string& id) {
  node_.set_id(id);
  node_.mutable_status()->set_state(api::NodeStatus::READY);
  node_.mutable_spec()->set_availability(api::NODE_AVAILABILITY_ACTIVE);
  node_.set_role(api::NODE_ROLE_WORKER);
  api::NodeDescription* d = node_.mutable_description();
  d->set_hostname(id);
  d->mutable_platform()->set_os("linux");
  d->mutable_platform()->set_architecture("amd64");
  d->mutable_resources()->set_nano_cpus(4 * kCpu);
  d->mutable_resources()->set_memory_bytes(8 * kGiB);
}

NodeBuilder& NodeBuilder::Label(const std::string& key, const std::string& value) {
  (*node_.mutable_spec()->mutable_annotations()->mutable_labels())[key] = value;
  return *this;
}
NodeBuilder& NodeBuilder::EngineLabel(const std::string& key, const std::string& value) {
  (*node_.mutable_description()->mutable_engine()->mutable_labels())[key] = value;
  return *this;
}
NodeBuilder& NodeBuilder::Manager() {
  node_.set_role(api::NODE_ROLE_MANAGER);
  return *this;
}
NodeBuilder& NodeBuilder::State(api::NodeStatus::State state) {
  node_.mutable_status()->set_state(state);
  return *this;
}
NodeBuilder& NodeBuilder::Availability(api::NodeAvailability availability) {
  node_.mutable_spec()->set_availability(availability);
  return *this;
}
NodeBuilder& NodeBuilder::Hostname(const std::string& hostname) {
  node_.mutable_description()->set_hostname(hostname);
  return *this;
}
NodeBuilder& NodeBuilder::Platform(const std::string& os, const std::string& arch) {
  node_.mutable_description()->mutable_platform()->set_os(os);
  node_.mutable_description()->mutable_platform()->set_architecture(arch);
  return *this;
}
NodeBuilder& NodeBuilder::Addr(const std::string& addr) {
  node_.mutable_status()->set_addr(addr);
  return *this;
}
NodeBuilder& NodeBuilder::NanoCpus(int64_t nano_cpus) {
  node_.mutable_description()->mutable_resources()->set_nano_cpus(nano_cpus);
  return *this;
}
NodeBuilder& NodeBuilder::Memory(int64_t bytes) {
  node_.mutable_description()->mutable_resources()->set_memory_bytes(bytes);
  return *this;
}
NodeBuilder& NodeBuilder::Discrete(const std::string& kind, int64_t amount) {
  api::GenericResource* g = node_.mutable_description()->mutable_resources()->add_generic();
  g->mutable_discrete()->set_kind(kind);
  g->mutable_discrete()->set_value(amount);
  return *this;
}
NodeBuilder& NodeBuilder::Named(const std::string& kind, const std::string& unit) {
  api::GenericResource* g = node_.mutable_description()->mutable_resources()->add_generic();
  g->mutable_named()->set_kind(kind);
  g->mutable_named()->set_value(unit);
  return *this;
}

TaskBuilder::TaskBuilder(const std::string& id) {
  task_.set_id(id);
  task_.set_service_id("svc");
  task_.mutable_spec_version()->set_index(1);
  task_.set_desired_state(api::TASK_STATE_RUNNING);
  task_.mutable_status()->set_state(api::TASK_STATE_PENDING);
}

TaskBuilder& TaskBuilder::Id(const std::string& id) {
  task_.set_id(id);
  return *this;
}
TaskBuilder& TaskBuilder::Service(const std::string& service_id, uint64_t spec_version) {
  task_.set_service_id(service_id);
  task_.mutable_spec_version()->set_index(spec_version);
  return *this;
}
TaskBuilder& TaskBuilder::NoSpecVersion() {
  task_.clear_spec_version();
  return *this;
}
TaskBuilder& TaskBuilder::Constraint(const std::string& expr) {
  task_.mutable_spec()->mutable_placement()->add_constraints(expr);
  return *this;
}
TaskBuilder& TaskBuilder::Spread(const std::string& descriptor) {
  task_.mutable_spec()
      ->mutable_placement()
      ->add_preferences()
      ->mutable_spread()
      ->set_spread_descriptor(descriptor);
  return *this;
}
TaskBuilder& TaskBuilder::MaxReplicas(uint64_t n) {
  task_.mutable_spec()->mutable_placement()->set_max_replicas(n);
  return *this;
}
TaskBuilder& TaskBuilder::Platform(const std::string& os, const std::string& arch) {
  api::Platform* p = task_.mutable_spec()->mutable_placement()->add_platforms();
  p->set_os(os);
  p->set_architecture(arch);
  return *this;
}
TaskBuilder& TaskBuilder::NanoCpus(int64_t nano_cpus) {
  task_.mutable_spec()->mutable_resources()->mutable_reservations()->set_nano_cpus(nano_cpus);
  return *this;
}
TaskBuilder& TaskBuilder::Memory(int64_t bytes) {
  task_.mutable_spec()->mutable_resources()->mutable_reservations()->set_memory_bytes(bytes);
  return *this;
}
TaskBuilder& TaskBuilder::Generic(const std::string& kind, int64_t amount) {
  api::GenericResource* g =
      task_.mutable_spec()->mutable_resources()->mutable_reservations()->add_generic();
  g->mutable_discrete()->set_kind(kind);
  g->mutable_discrete()->set_value(amount);
  return *this;
}
TaskBuilder& TaskBuilder::HostPort(uint32_t port, api::PortConfig::Protocol protocol) {
  api::PortConfig* p = task_.mutable_endpoint()->add_ports();
  p->set_protocol(protocol);
  p->set_target_port(80);
  p->set_published_port(port);
  p->set_publish_mode(api::PortConfig::HOST);
  return *this;
}
TaskBuilder& TaskBuilder::IngressPort(uint32_t port) {
  api::PortConfig* p = task_.mutable_endpoint()->add_ports();
  p->set_target_port(80);
  p->set_published_port(port);
  p->set_publish_mode(api::PortConfig::INGRESS);
  return *this;
}
TaskBuilder& TaskBuilder::Node(const std::string& node_id) {
  task_.set_node_id(node_id);
  return *this;
}
TaskBuilder& TaskBuilder::DesiredState(api::TaskState state) {
  task_.set_desired_state(state);
  return *this;
}

std::vector<api::Task> TaskBuilder::Replicas(int n, const std::string& prefix) const {
  std::vector<api::Task> out;
  out.reserve(n);
  for (int i = 1; i <= n; ++i) {
    char id[32];
    std::snprintf(id, sizeof(id), "%03d", i);
    out.push_back(task_);
    out.back().set_id(prefix + id);
    out.back().set_slot(i);
  }
  return out;
}

NodeSet MakeNodeSet(const std::vector<api::Node>& nodes) {
  NodeSet set;
  for (const api::Node& n : nodes) set.AddOrUpdateNode(n);
  return set;
}

std::map<std::string, int> TasksPerNode(const Decisions& d) {
  std::map<std::string, int> out;
  for (const Assignment& a : d.assigned) ++out[a.node_id];
  return out;
}

std::map<std::string, int> TasksPerLabel(const Decisions& d, const NodeSet& nodes,
                                         const std::string& label) {
  std::map<std::string, int> out;
  for (const Assignment& a : d.assigned) {
    const auto& labels = nodes.Find(a.node_id)->node().spec().annotations().labels();
    auto it = labels.find(label);
    ++out[it == labels.end() ? "" : it->second];
  }
  return out;
}

}  // namespace shoal::scheduler::testing
