// Spread preferences: reading a node's value for a `spread=` descriptor, and splitting a number
// of new tasks evenly over groups of nodes that already hold some. Used by Schedule().
//
// Pure functions; safe from any thread.
#ifndef SHOAL_SCHEDULER_SPREAD_H_
#define SHOAL_SCHEDULER_SPREAD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "objects.pb.h"

namespace shoal::scheduler {

// A parsed spread descriptor: "node.labels.<name>" or "engine.labels.<name>" (prefix case
// ignored, name case-sensitive), as Docker supports.
struct SpreadKey {
  bool engine = false;  // engine.labels rather than node.labels.
  std::string label;

  // nullopt for anything else (Docker ignores such a preference; so does the scheduler).
  static std::optional<SpreadKey> Parse(absl::string_view descriptor);
  // The node's value; "" when it lacks the label, which puts it with the other such nodes.
  const std::string& ValueOf(const api::Node& node) const;
};

// Splits `n` new tasks over groups holding `existing[i]` tasks so that the fullest group ends as
// empty as possible: groups below the resulting level are raised to it, groups above it get
// nothing. When the level does not divide evenly, the extra tasks go to the lowest-index groups
// at the level. Returns the share of each group; the shares sum to `n` (0 for no groups).
std::vector<int64_t> EvenSplit(absl::Span<const int64_t> existing, int64_t n);

}  // namespace shoal::scheduler

#endif  // SHOAL_SCHEDULER_SPREAD_H_
