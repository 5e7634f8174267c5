#include "scheduler/pipeline.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shoal::scheduler {

Pipeline::Pipeline() : Pipeline(DefaultFilters()) {}

Pipeline::Pipeline(std::vector<std::unique_ptr<Filter>> filters) : filters_(std::move(filters)) {}

void Pipeline::SetTask(const api::Task& task) {
  all_.clear();
  static_.clear();
  dynamic_.clear();
  for (const std::unique_ptr<Filter>& f : filters_) {
    if (!f->Enabled(task)) continue;
    all_.push_back(f.get());
    (f->dynamic() ? dynamic_ : static_).push_back(f.get());
  }
  ResetCounts();
}

Refusal Pipeline::Check(const NodeInfo& node, Stage stage) const {
  const std::vector<const Filter*>& list =
      stage == Stage::kAll ? all_ : (stage == Stage::kStatic ? static_ : dynamic_);
  for (const Filter* f : list) {
    Refusal r = f->Check(node);
    if (r != Refusal::kNone) return r;
  }
  return Refusal::kNone;
}

bool Pipeline::Process(const NodeInfo& node) {
  for (size_t i = 0; i < all_.size(); ++i) {
    Refusal r = all_[i]->Check(node);
    if (r == Refusal::kNone) continue;
    const int k = static_cast<int>(r);
    if (counts_[k]++ == 0) {
      explainer_[k] = all_[i];
      first_seen_[k] = static_cast<int>(i);
    }
    return false;
  }
  return true;
}

void Pipeline::ResetCounts() {
  counts_.fill(0);
  explainer_.fill(nullptr);
  first_seen_.fill(0);
}

std::string Pipeline::Explain() const {
  std::vector<int> kinds;
  for (int k = 1; k < kRefusalKinds; ++k) {
    if (counts_[k] > 0) kinds.push_back(k);
  }
  std::sort(kinds.begin(), kinds.end(), [&](int a, int b) {
    if (counts_[a] != counts_[b]) return counts_[a] > counts_[b];
    if (first_seen_[a] != first_seen_[b]) return first_seen_[a] < first_seen_[b];
    return a < b;
  });
  std::vector<std::string> parts;
  for (int k : kinds) parts.push_back(explainer_[k]->Explain(static_cast<Refusal>(k), counts_[k]));
  return absl::StrJoin(parts, "; ");
}

std::string NoSuitableNode(absl::string_view explanation) {
  if (explanation.empty()) return "no suitable node";
  return absl::StrCat("no suitable node (", explanation, ")");
}

}  // namespace shoal::scheduler
