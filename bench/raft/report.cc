#include "bench/raft/report.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace shoal::bench {

double Round(double value, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(value * scale) / scale;
}

nlohmann::ordered_json SummaryJson(const Summary& s) {
  return {{"count", s.count},         {"mean", Round(s.mean, 3)}, {"min", Round(s.min, 3)},
          {"p50", Round(s.p50, 3)},   {"p90", Round(s.p90, 3)},   {"p99", Round(s.p99, 3)},
          {"p999", Round(s.p999, 3)}, {"max", Round(s.max, 3)}};
}

nlohmann::ordered_json LoadJson(const LoadResult& r) {
  nlohmann::ordered_json j = {
      {"clients", r.clients},
      {"connections", r.connections},
      {"seconds", Round(r.seconds, 3)},
      {"writes", r.writes},
      {"errors", r.errors},
      {"writes_per_s", Round(r.writes_per_s, 1)},
      {"p50_ms", Round(r.latency_ms.p50, 3)},
      {"p99_ms", Round(r.latency_ms.p99, 3)},
      {"max_ms", Round(r.latency_ms.max, 3)},
      {"latency_ms", SummaryJson(r.latency_ms)},
  };
  if (!r.first_error.empty()) j["first_error"] = r.first_error;
  return j;
}

nlohmann::ordered_json ProbeJson(const ProbeResult& r) {
  return {{"elapsed_s", Round(absl::ToDoubleSeconds(r.elapsed), 4)},
          {"endpoint", r.endpoint},
          {"attempts", r.attempts}};
}

nlohmann::ordered_json StatusJson(const MemberStatus& s) {
  nlohmann::ordered_json j = {{"endpoint", s.endpoint}, {"ok", s.status.ok()}};
  if (s.status.ok()) {
    j["member_id"] = absl::StrCat(absl::Hex(s.member_id));
    j["leader"] = absl::StrCat(absl::Hex(s.leader));
    j["is_leader"] = s.leader != 0 && s.leader == s.member_id;
    j["raft_index"] = s.raft_index;
    j["raft_term"] = s.raft_term;
  } else {
    j["error"] = s.status.ToString();
  }
  return j;
}

}  // namespace shoal::bench
