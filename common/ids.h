// ids: identifiers for cluster objects (nodes, clusters, services, tasks, …).
//
// Docker Swarm's shape: 25 lower-case base36 characters carrying 128 random bits, so IDs are
// unguessable, uniform in length, and safe in file names, DNS labels and certificate subjects.
//
// Thread-safety: safe from any thread.
#ifndef SHOAL_COMMON_IDS_H_
#define SHOAL_COMMON_IDS_H_

#include <string>

namespace shoal {

inline constexpr size_t kIdLength = 25;

// A fresh random ID from the operating system's CSPRNG.
std::string NewId();

}  // namespace shoal

#endif  // SHOAL_COMMON_IDS_H_
