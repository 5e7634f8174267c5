// Filters: each decides one reason a node cannot take a task (not ready, constraints, too
// little memory, a host port taken, ...) and explains that reason for N nodes, so that a task no
// node accepts carries a message the user can act on:
//   "no suitable node (3 nodes not available for new tasks; 1 node with insufficient memory)".
// The Pipeline (pipeline.h) runs them in order; the Scheduler prepares it once per group of
// identical tasks.
//
// Not thread-safe: a filter holds the task it was last enabled for.
#ifndef SHOAL_SCHEDULER_FILTER_H_
#define SHOAL_SCHEDULER_FILTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "objects.pb.h"
#include "scheduler/constraint.h"
#include "scheduler/node_info.h"

namespace shoal::scheduler {

// Why a node was refused. Several filters may give the same one (readiness and availability both
// read "not available for new tasks"); the pipeline counts nodes per Refusal, not per filter.
enum class Refusal : uint8_t {
  kNone = 0,
  kUnavailable,       // Not READY, or availability PAUSE/DRAIN.
  kConstraints,       // A placement constraint does not hold.
  kPlatform,          // The node's OS/architecture is not among the image's platforms.
  kCpu,               // Too few unreserved nano-CPUs.
  kMemory,            // Too little unreserved memory.
  kGenericResources,  // Too few units of a generic resource kind.
  kHostPort,          // A HOST-mode published port is already bound there.
  kMaxReplicas,       // The service already has Placement.max_replicas tasks there.
};
inline constexpr int kRefusalKinds = 9;

// "1 node" / "3 nodes".
std::string CountNodes(int n);

class Filter {
 public:
  virtual ~Filter() = default;

  // A short stable name, e.g. "resources".
  virtual absl::string_view name() const = 0;

  // Whether Check's answer for a node can change as tasks are placed on that node (resources,
  // ports, per-node replica counts). The scheduler checks the other filters once per node and
  // task group, and dynamic ones again after every placement on a node.
  virtual bool dynamic() const = 0;

  // Prepares the filter for tasks like `task` and says whether it applies to them (a task without
  // constraints needs no ConstraintFilter). Identical tasks (same service and spec version) give
  // the same answer. Check may be called only after it returned true.
  virtual bool Enabled(const api::Task& task) = 0;

  // Refusal::kNone when `node` may take the task as far as this filter knows, else why not.
  virtual Refusal Check(const NodeInfo& node) const = 0;

  // Explains `refusal` (one that Check returns) for `nodes` >= 1 nodes, e.g.
  // "2 nodes with insufficient memory".
  virtual std::string Explain(Refusal refusal, int nodes) const = 0;
};

// The node has a live session (NodeStatus READY).
class ReadyFilter : public Filter {
 public:
  absl::string_view name() const override { return "ready"; }
  bool dynamic() const override { return false; }
  bool Enabled(const api::Task&) override { return true; }
  Refusal Check(const NodeInfo& node) const override;
  std::string Explain(Refusal refusal, int nodes) const override;
};

// The node accepts new tasks (availability ACTIVE, not PAUSE or DRAIN).
class AvailabilityFilter : public Filter {
 public:
  absl::string_view name() const override { return "availability"; }
  bool dynamic() const override { return false; }
  bool Enabled(const api::Task&) override { return true; }
  Refusal Check(const NodeInfo& node) const override;
  std::string Explain(Refusal refusal, int nodes) const override;
};

// The node has the task's reserved nano-CPUs, memory and generic resources unreserved.
class ResourceFilter : public Filter {
 public:
  absl::string_view name() const override { return "resources"; }
  bool dynamic() const override { return true; }
  bool Enabled(const api::Task& task) override;
  Refusal Check(const NodeInfo& node) const override;
  std::string Explain(Refusal refusal, int nodes) const override;

 private:
  std::shared_ptr<const TaskDemand> demand_;
};

// The node satisfies every Placement.constraints expression. Constraints that do not parse
// (the Control API refuses them, so only a bug gets them here) refuse every node: running a
// task where the user said not to is worse than not running it.
class ConstraintFilter : public Filter {
 public:
  absl::string_view name() const override { return "constraints"; }
  bool dynamic() const override { return false; }
  bool Enabled(const api::Task& task) override;
  Refusal Check(const NodeInfo& node) const override;
  std::string Explain(Refusal refusal, int nodes) const override;

 private:
  bool valid_ = false;
  std::vector<Constraint> constraints_;
};

// The node's platform is one of Placement.platforms (empty OS or architecture there means any;
// x86_64 is amd64 and aarch64 is arm64).
class PlatformFilter : public Filter {
 public:
  absl::string_view name() const override { return "platform"; }
  bool dynamic() const override { return false; }
  bool Enabled(const api::Task& task) override;
  Refusal Check(const NodeInfo& node) const override;
  std::string Explain(Refusal refusal, int nodes) const override;

 private:
  std::vector<api::Platform> platforms_;  // Normalised.
};

// None of the task's HOST-mode published ports is already bound on the node.
class HostPortFilter : public Filter {
 public:
  absl::string_view name() const override { return "host-ports"; }
  bool dynamic() const override { return true; }
  bool Enabled(const api::Task& task) override;
  Refusal Check(const NodeInfo& node) const override;
  std::string Explain(Refusal refusal, int nodes) const override;

 private:
  std::vector<HostPort> ports_;
};

// The node runs fewer than Placement.max_replicas active tasks of the task's service.
class MaxReplicasFilter : public Filter {
 public:
  absl::string_view name() const override { return "max-replicas"; }
  bool dynamic() const override { return true; }
  bool Enabled(const api::Task& task) override;
  Refusal Check(const NodeInfo& node) const override;
  std::string Explain(Refusal refusal, int nodes) const override;

 private:
  std::string service_id_;
  uint64_t max_replicas_ = 0;
};

// The default filters in pipeline order: ready, availability, constraints, platform, resources,
// host ports, max replicas. Those that never change within a batch come first, so a node that
// could never run the task is explained by why it never could.
std::vector<std::unique_ptr<Filter>> DefaultFilters();

}  // namespace shoal::scheduler

#endif  // SHOAL_SCHEDULER_FILTER_H_
