// Latency and timing summaries for the benchmarks: nearest-rank percentiles over samples kept in
// full (a benchmark run holds at most a few million of them, so no histogram approximation).
//
// Pure functions; safe to call from any thread on data the caller owns.
#ifndef SHOAL_BENCH_RAFT_STATS_H_
#define SHOAL_BENCH_RAFT_STATS_H_

#include <cstdint>
#include <vector>

namespace shoal::bench {

struct Summary {
  int64_t count = 0;
  double mean = 0;
  double min = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double p999 = 0;
  double max = 0;
};

// The nearest-rank percentile of `sorted` (ascending): the smallest sample such that at least
// q·n samples are <= it. With 20 samples p99 is therefore the maximum, which is the honest
// reading of "p99 over 20 trials". REQUIRES: 0 < q <= 1. Returns 0 for no samples.
double Percentile(const std::vector<double>& sorted, double q);

// Sorts `samples` and summarises them. Units are the caller's.
Summary Summarize(std::vector<double> samples);

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_RAFT_STATS_H_
