// Throughput of the Raft transport between two members on loopback: APP messages carrying one
// 256-byte entry each, handed to Send() in groups (as a Raft Ready would), with at most
// kWindow messages outstanding so that the bounded queue never drops. Reports messages/s and
// payload MB/s (entry bytes only).
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "absl/time/clock.h"
#include "raft/transport/test_util.h"
#include "raft/transport/transport.h"

namespace shoal::raft {
namespace {

using testing::App;
using testing::Member;
using Record = testing::RecordingHandler::Record;

constexpr size_t kEntryBytes = 256;
constexpr uint64_t kWindow = 2048;  // Half the default per-peer queue.

void BM_AppMessages(benchmark::State& state) {
  const int per_send = static_cast<int>(state.range(0));
  Member a(1), b(2, {}, /*keep_messages=*/false);
  if (!a.transport().AddPeer(2, b.addr()).ok()) {
    state.SkipWithError("AddPeer failed");
    return;
  }
  std::vector<raftpb::Message> group;
  for (int i = 0; i < per_send; ++i) group.push_back(App(1, 2, i, kEntryBytes));

  uint64_t sent = 0;
  const absl::Time start = absl::Now();
  for (auto _ : state) {
    const uint64_t limit = sent + per_send > kWindow ? sent + per_send - kWindow : 0;
    b.handler().WaitUntil([limit](const Record& r) { return r.received_count >= limit; });
    a.transport().Send(group);
    sent += per_send;
  }
  if (!b.handler().WaitUntil([sent](const Record& r) { return r.received_count >= sent; })) {
    state.SkipWithError("not everything arrived");
    return;
  }
  // Rates over the whole run including the final drain, i.e. until everything was received.
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const Transport::Stats stats = a.transport().stats();
  if (stats.messages_dropped != 0) state.SkipWithError("messages were dropped");
  state.counters["msgs/s"] = static_cast<double>(sent) / seconds;
  state.counters["MB/s"] = static_cast<double>(sent * kEntryBytes) / 1e6 / seconds;
  state.counters["msgs/batch"] =
      static_cast<double>(stats.messages_sent) / static_cast<double>(stats.batches_sent);
}
BENCHMARK(BM_AppMessages)->Arg(1)->Arg(64)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace shoal::raft

BENCHMARK_MAIN();
