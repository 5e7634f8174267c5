// RAFT_CHECK: invariant checks that stay on in optimized builds. A violated invariant in the
// consensus core means the log or the state machine can no longer be trusted; continuing would
// risk diverging replicas, so the process stops (as etcd's raft panics).
#ifndef SHOAL_RAFT_CORE_CHECK_H_
#define SHOAL_RAFT_CORE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define RAFT_CHECK(cond, msg)                                                                      \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "%s:%d: raft invariant violated: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   msg);                                                                           \
      std::abort();                                                                                \
    }                                                                                              \
  } while (0)

#endif  // SHOAL_RAFT_CORE_CHECK_H_
