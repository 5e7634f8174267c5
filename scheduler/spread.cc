#include "scheduler/spread.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/match.h"

namespace shoal::scheduler {
namespace {

constexpr absl::string_view kNodeLabels = "node.labels.";
constexpr absl::string_view kEngineLabels = "engine.labels.";

const std::string& EmptyString() {
  static const std::string* const empty = new std::string();
  return *empty;
}

}  // namespace

std::optional<SpreadKey> SpreadKey::Parse(absl::string_view descriptor) {
  for (absl::string_view prefix : {kNodeLabels, kEngineLabels}) {
    if (descriptor.size() > prefix.size() && absl::StartsWithIgnoreCase(descriptor, prefix)) {
      return SpreadKey{prefix == kEngineLabels, std::string(descriptor.substr(prefix.size()))};
    }
  }
  return std::nullopt;
}

const std::string& SpreadKey::ValueOf(const api::Node& node) const {
  const auto& labels =
      engine ? node.description().engine().labels() : node.spec().annotations().labels();
  auto it = labels.find(label);
  return it == labels.end() ? EmptyString() : it->second;
}

std::vector<int64_t> EvenSplit(absl::Span<const int64_t> existing, int64_t n) {
  const size_t k = existing.size();
  std::vector<int64_t> share(k, 0);
  if (k == 0 || n <= 0) return share;

  // Fill from the emptiest group up: the next group joins while it is below the level the
  // groups already joined would reach with all `n` tasks.
  std::vector<size_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return existing[a] < existing[b]; });
  int64_t total = n;  // New tasks plus those already in the joined groups.
  size_t joined = 0;
  while (joined < k &&
         (joined == 0 || existing[order[joined]] * static_cast<int64_t>(joined) < total)) {
    total += existing[order[joined]];
    ++joined;
  }
  const int64_t level = total / static_cast<int64_t>(joined);
  int64_t extra = total % static_cast<int64_t>(joined);

  std::vector<size_t> raised(order.begin(), order.begin() + joined);
  std::sort(raised.begin(), raised.end());
  for (size_t i : raised) {
    share[i] = level - existing[i];
    if (extra > 0) {
      ++share[i];
      --extra;
    }
  }
  return share;
}

}  // namespace shoal::scheduler
