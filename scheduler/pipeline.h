// Pipeline: runs the filters that apply to a task against nodes, stopping at a node's first
// refusal, and counts refusals so that a task nobody accepts can say why:
//   "3 nodes not available for new tasks; 1 node with insufficient memory".
//
// Not thread-safe: it holds the task it was last set up for and the counts.
#ifndef SHOAL_SCHEDULER_PIPELINE_H_
#define SHOAL_SCHEDULER_PIPELINE_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "objects.pb.h"
#include "scheduler/filter.h"
#include "scheduler/node_info.h"

namespace shoal::scheduler {

class Pipeline {
 public:
  // Which filters Check runs: all, or only those whose answer cannot / can change as tasks are
  // placed (see Filter::dynamic()).
  enum class Stage { kAll, kStatic, kDynamic };

  // The default filters (DefaultFilters()).
  Pipeline();
  explicit Pipeline(std::vector<std::unique_ptr<Filter>> filters);

  // Enables the filters that apply to tasks like `task` and resets the counts.
  void SetTask(const api::Task& task);

  // The first refusal of `node` among the enabled filters of `stage`, in pipeline order;
  // Refusal::kNone when it passes them all. Counts nothing.
  Refusal Check(const NodeInfo& node, Stage stage = Stage::kAll) const;

  // Check(node) that also counts the refusal for Explain(). Returns whether the node passed.
  bool Process(const NodeInfo& node);

  void ResetCounts();
  // Nodes refused for `refusal` since SetTask/ResetCounts.
  int count(Refusal refusal) const { return counts_[static_cast<int>(refusal)]; }

  // The counted refusals, most nodes first (ties in pipeline order), joined with "; ".
  // Empty when nothing was refused.
  std::string Explain() const;

 private:
  std::vector<std::unique_ptr<Filter>> filters_;
  // Enabled filters per stage, in pipeline order (indexes into filters_ would cost a hop).
  std::vector<const Filter*> all_, static_, dynamic_;
  std::array<int, kRefusalKinds> counts_{};
  // The filter that first gave each refusal: it explains the count.
  std::array<const Filter*, kRefusalKinds> explainer_{};
  std::array<int, kRefusalKinds> first_seen_{};  // Pipeline position of explainer_.
};

// The user-facing message for a task no node accepts: "no suitable node (<explanation>)", or
// "no suitable node" when the explanation is empty (no nodes at all).
std::string NoSuitableNode(absl::string_view explanation);

}  // namespace shoal::scheduler

#endif  // SHOAL_SCHEDULER_PIPELINE_H_
