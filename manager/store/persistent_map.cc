#include "manager/store/persistent_map.h"

#include <atomic>

namespace shoal::manager::store {

uint64_t NewGeneration() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace shoal::manager::store
