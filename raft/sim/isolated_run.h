// RunSimulationInChild: one simulation seed in a forked child process.
//
// The Raft core stops the process when one of its internal checks fails (RAFT_CHECK, as etcd's
// raft panics). A batch of seeds run in one process would end there; running each seed in a
// child turns such a stop into one failing seed ("core abort") and the batch goes on. The child
// prints its own failure report (and, on an abort, the trace of its last events) to stdout /
// stderr; the parent gets the verdict and the statistics.
//
// Thread-safety: call from a single-threaded process (it forks).
#ifndef SHOAL_RAFT_SIM_ISOLATED_RUN_H_
#define SHOAL_RAFT_SIM_ISOLATED_RUN_H_

#include "raft/sim/cluster_sim.h"

namespace shoal::raft::sim {

// Like RunSimulation, but in a child process. SimResult::report is only the replay hint: the
// full report went to the child's stdout.
SimResult RunSimulationInChild(const SimOptions& options);

}  // namespace shoal::raft::sim

#endif  // SHOAL_RAFT_SIM_ISOLATED_RUN_H_
