// Schedule(): decides which node runs each pending task. A pure function of its inputs — no
// threads, clocks, I/O or store access — so the manager's scheduler loop gathers the pending
// tasks, calls it, and writes the decisions to the store.
//
// How tasks are placed:
//  * Tasks with the same service and spec version are identical for placement; each such group
//    is placed as one batch: the filters run once per node for the group, then the tasks are
//    dealt out (so 100,000 replicas cost about one pass over the nodes plus O(log n) per task).
//  * Spread preferences (Placement.preferences, `spread=node.labels.zone`, nested in order) split
//    the group over the label's values so that each value ends with as many of the service's
//    tasks as possible — counting tasks already running — and nodes without the label form one
//    more group of their own, as Docker documents. A value whose nodes fill up passes its share
//    to the others.
//  * Within a value, each task goes to the node with the fewest active tasks of the service,
//    then the fewest active tasks overall, then the lowest node ID. Resources, host ports and
//    max-replicas are re-checked after every placement, so a batch never overcommits a node.
//  * Tasks that already name a node (global services) are only checked against that node.
//  * A task no node accepts is returned as unplaced with "no suitable node (...)" saying why;
//    it stays PENDING and the loop retries it when nodes or resources change.
// The same NodeSet and tasks (in the same order) always give the same decisions.
//
// Not thread-safe (it mutates the NodeSet); call from the one scheduler loop.
#ifndef SHOAL_SCHEDULER_SCHEDULER_H_
#define SHOAL_SCHEDULER_SCHEDULER_H_

#include <string>
#include <vector>

#include "absl/types/span.h"
#include "objects.pb.h"
#include "scheduler/node_set.h"

namespace shoal::scheduler {

// One task placed on one node.
struct Assignment {
  std::string task_id;
  std::string node_id;
  // Generic resource units claimed for it: for Task.assigned_generic_resources.
  std::vector<api::GenericResource> generic_resources;
};

// One task no node accepted.
struct Unplaced {
  std::string task_id;
  // For TaskStatus.err, e.g.
  // "no suitable node (3 nodes not available for new tasks; 1 node with insufficient memory)".
  std::string reason;
};

struct Decisions {
  // Tasks that named their node first, then groups in (service ID, spec version) order, then
  // tasks without a spec version; input order within a group.
  std::vector<Assignment> assigned;
  std::vector<Unplaced> unplaced;
};

// Places `tasks` (PENDING; node_id empty, or set for a task that must run on that node) on the
// nodes of `*nodes`, and records each assignment in `*nodes` as NodeSet::AddTask would. If the
// loop then fails to write an assignment to the store, it undoes it with
// nodes->RemoveTask(node_id, task_id).
// REQUIRES: none of `tasks` is already recorded in `*nodes`; task IDs are unique.
Decisions Schedule(NodeSet* nodes, absl::Span<const api::Task* const> tasks);
Decisions Schedule(NodeSet* nodes, const std::vector<api::Task>& tasks);

}  // namespace shoal::scheduler

#endif  // SHOAL_SCHEDULER_SCHEDULER_H_
