// NodeSet: every node the scheduler knows, by ID, each with its NodeInfo. The scheduler loop keeps
// it in step with the store (nodes created, updated, removed; tasks assigned, finished) and hands
// it to Schedule(), which records its own placements in it.
//
// Not thread-safe: one owner.
#ifndef SHOAL_SCHEDULER_NODE_SET_H_
#define SHOAL_SCHEDULER_NODE_SET_H_

#include <functional>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "objects.pb.h"
#include "scheduler/node_info.h"

namespace shoal::scheduler {

class NodeSet {
 public:
  // Adds `node`, or replaces the Node object of a known one (keeping its tasks and recomputing
  // its available resources).
  void AddOrUpdateNode(const api::Node& node);
  // Forgets a node and its tasks. Returns false if it was unknown.
  bool RemoveNode(absl::string_view node_id);

  // Records `task` on task.node_id() (see NodeInfo::AddTask). Returns false when that node is
  // unknown or nothing changed.
  bool AddTask(const api::Task& task);
  // Forgets a task recorded on `node_id`. Returns false when it was not there.
  bool RemoveTask(absl::string_view node_id, absl::string_view task_id);

  // nullptr when unknown. Pointers stay valid until that node is removed.
  NodeInfo* Find(absl::string_view node_id);
  const NodeInfo* Find(absl::string_view node_id) const;

  size_t size() const { return nodes_.size(); }
  // Nodes in ID order.
  using Map = std::map<std::string, NodeInfo, std::less<>>;
  Map::iterator begin() { return nodes_.begin(); }
  Map::iterator end() { return nodes_.end(); }
  Map::const_iterator begin() const { return nodes_.begin(); }
  Map::const_iterator end() const { return nodes_.end(); }

 private:
  Map nodes_;
};

}  // namespace shoal::scheduler

#endif  // SHOAL_SCHEDULER_NODE_SET_H_
