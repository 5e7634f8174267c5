// JSON shapes of the Raft benchmark's results, shared by the loadgen CLI and the runner so that
// a figure has one name wherever it is printed. Times are in milliseconds (`_ms`) or seconds
// (`_s`), as each key says.
#ifndef SHOAL_BENCH_RAFT_REPORT_H_
#define SHOAL_BENCH_RAFT_REPORT_H_

#include <string>

#include "bench/raft/kv_client.h"
#include "bench/raft/load.h"
#include "bench/raft/stats.h"
#include "nlohmann/json.hpp"

namespace shoal::bench {

// Rounds to `digits` decimals so printed figures do not pretend to more precision than they have.
double Round(double value, int digits);

// {"count", "mean", "min", "p50", "p90", "p99", "p999", "max"} in the summary's own unit.
nlohmann::ordered_json SummaryJson(const Summary& s);

// {"clients", "connections", "seconds", "writes", "errors", "writes_per_s", "p50_ms", "p99_ms",
//  "max_ms", "latency_ms": {...}, "first_error"?}
nlohmann::ordered_json LoadJson(const LoadResult& r);

nlohmann::ordered_json ProbeJson(const ProbeResult& r);

nlohmann::ordered_json StatusJson(const MemberStatus& s);

}  // namespace shoal::bench

#endif  // SHOAL_BENCH_RAFT_REPORT_H_
