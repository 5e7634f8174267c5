#include "scheduler/node_set.h"

namespace shoal::scheduler {

void NodeSet::AddOrUpdateNode(const api::Node& node) {
  auto it = nodes_.find(node.id());
  if (it == nodes_.end()) {
    nodes_.emplace(node.id(), NodeInfo(node));
  } else {
    it->second.SetNode(node);
  }
}

bool NodeSet::RemoveNode(absl::string_view node_id) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) return false;
  nodes_.erase(it);
  return true;
}

bool NodeSet::AddTask(const api::Task& task) {
  NodeInfo* n = Find(task.node_id());
  return n != nullptr && n->AddTask(task);
}

bool NodeSet::RemoveTask(absl::string_view node_id, absl::string_view task_id) {
  NodeInfo* n = Find(node_id);
  return n != nullptr && n->RemoveTask(task_id);
}

NodeInfo* NodeSet::Find(absl::string_view node_id) {
  auto it = nodes_.find(node_id);
  return it == nodes_.end() ? nullptr : &it->second;
}

const NodeInfo* NodeSet::Find(absl::string_view node_id) const {
  auto it = nodes_.find(node_id);
  return it == nodes_.end() ? nullptr : &it->second;
}

}  // namespace shoal::scheduler
