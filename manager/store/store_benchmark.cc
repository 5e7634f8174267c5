// Micro-benchmark of the store, without Raft (DirectProposer applies each entry at once), so the
// figures are the store's own CPU cost: what a manager spends per entry on top of consensus.
//
// Run by hand (not in CI):
//   bazel run -c opt //manager/store:store_benchmark -- [--benchmark_repetitions=3]
//
// Benchmarks:
//   BM_BatchCreateTasks     100,000 task creates through Store::Batch (500 per entry): the
//                           writer's transaction, proposal encoding, and Apply.
//   BM_ApplyTaskEntries     Apply alone of those 200 entries into a fresh store: what every
//                           follower pays.
//   BM_ViewGetTask          View + Get<Task> of a random task among 100,000.
//   BM_ViewTasksByService   View + FindTasksByService (100 tasks) among 100,000.
//   BM_ViewGetTaskWhileApplying  the same as BM_ViewGetTask while another thread keeps applying
//                           single-task updates (readers never wait for the applier).
//   BM_Snapshot, BM_Restore  Snapshot() / Restore() of the 100,000-task store (36 MiB).
//
// Measured (-c opt, 2 vCPU VM shared with other jobs: +-40% between runs; four runs):
//   BatchCreateTasks   2.7-5.0 s per 100,000 tasks (20-37k creates/s), 200 entries;
//                      heap +357 MiB, of which ~36 MiB are the entries DirectProposer keeps:
//                      ~3.2 KB per task, ~1.9 KB of it the Task message itself
//   ApplyTaskEntries   0.71-0.99 s (100-140k task creates/s applied)
//   ViewGetTask        ~560 ns;  ViewTasksByService (100 tasks) 28-37 us
//   ViewGetTaskWhileApplying  ~640 ns while ~28k single-task Updates ran beside it
//   Snapshot 233-235 ms, Restore 807-819 ms for 36 MiB (two runs)
// The writer side costs ~4x Apply: the transaction builds (and then frees) its own indexed copy
// of what it writes so that it can read its own writes; Apply rebuilds them from the entry.
#include <malloc.h>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "google/protobuf/arena.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"
#include "store.pb.h"

namespace shoal::manager::store {
namespace {

constexpr int kTasks = 100000;
constexpr int kTasksPerService = 100;

std::string TaskId(int i) {
  return absl::StrCat("task", 1000000 + i, "qz8k2m4n5p6r7s");  // 25 chars, as Swarm IDs
}

api::Task BenchTask(int i) {
  api::Task t;
  t.set_id(TaskId(i));
  t.set_service_id(absl::StrCat("svc", 1000 + i / kTasksPerService, "ab8k2m4n5p6r7s9t0v"));
  t.set_slot(i % kTasksPerService + 1);
  t.set_node_id(absl::StrCat("node", 100 + i % 50, "x8k2m4n5p6r7s9t0v1"));
  t.set_desired_state(api::TASK_STATE_RUNNING);
  t.mutable_annotations()->set_name(absl::StrCat("web.", t.slot(), ".", t.id()));
  api::ContainerSpec* c = t.mutable_spec()->mutable_container_spec();
  c->set_image(
      "nginx:1.25@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31");
  c->add_env("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  c->add_env("NGINX_VERSION=1.25.3");
  (*c->mutable_labels())["com.example.team"] = "web";
  t.mutable_status()->set_state(api::TASK_STATE_RUNNING);
  t.mutable_status()->set_message("started");
  return t;
}

struct Fixture {
  Fixture() : store(&proposer) { proposer.Attach(&store); }
  DirectProposer proposer;
  MemoryStore store;
};

void Fill(Fixture* f) {
  absl::Status s = f->store.Batch([](Batch& b) {
    for (int i = 0; i < kTasks; ++i) {
      absl::Status st = b.Update([i](WriteTx& tx) { return tx.Create(BenchTask(i)); });
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) std::abort();
}

// Bytes the allocator has handed out and not had back.
size_t HeapInUse() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

void BM_BatchCreateTasks(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    auto f = std::make_unique<Fixture>();
    const size_t heap_before = HeapInUse();
    state.ResumeTiming();
    Fill(f.get());
    state.PauseTiming();
    state.counters["entries"] = static_cast<double>(f->proposer.entries().size());
    // The store's memory, plus the entries DirectProposer keeps (~the snapshot's size).
    state.counters["heap_MiB"] = static_cast<double>(HeapInUse() - heap_before) / (1 << 20);
    state.counters["task_proto_bytes"] = static_cast<double>(BenchTask(0).SpaceUsedLong());
    f.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_BatchCreateTasks)->Unit(benchmark::kMillisecond)->Iterations(3);

// The write benchmarks below each run one phase on a fresh store of kTasks tasks (filled with
// the timer paused) and report "us_per_op": wall-clock microseconds per task written, end to end
// (the callback, the transaction, proposal encoding, Apply and publishing).
Fixture& Filled();
const std::string& FilledSnapshot();

// With PERF_CTL_FIFO set to perf's control FIFO (perf record --control=fifo:<path> -D -1), the
// profile covers the timed phases only.
void PerfControl(const char* command) {
  static FILE* const ctl = [] {
    const char* path = std::getenv("PERF_CTL_FIFO");
    return path == nullptr ? nullptr : std::fopen(path, "w");
  }();
  if (ctl != nullptr) {
    std::fputs(command, ctl);
    std::fflush(ctl);
  }
}

template <class Op>
void TimedPhase(benchmark::State& state, bool prefill, Op op) {
  double total_us = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto f = std::make_unique<Fixture>();
    if (prefill) {
      // Restored rather than re-filled through Batch: quicker, and keeps the write path out of
      // the set-up (so that a profile of the benchmark shows the phase alone).
      if (!f->store.Restore(FilledSnapshot()).ok()) std::abort();
      f->proposer.SetLastIndex(f->store.version());
    }
    const size_t entries_before = f->proposer.entries().size();
    const absl::Time start = absl::Now();
    PerfControl("enable\n");
    state.ResumeTiming();
    op(f.get());
    state.PauseTiming();
    PerfControl("disable\n");
    total_us += absl::ToDoubleMicroseconds(absl::Now() - start);
    state.counters["entries"] =
        static_cast<double>(f->proposer.entries().size() - entries_before);
    f.reset();
    state.ResumeTiming();
  }
  state.counters["us_per_op"] = total_us / (static_cast<double>(state.iterations()) * kTasks);
  state.SetItemsProcessed(state.iterations() * kTasks);
}

// 100,000 task updates through one Batch, one callback each (read, copy, change, Update: what
// the dispatcher and the orchestrators do). `change` edits the copy.
template <class Change>
void UpdateAll(Fixture* f, Change change) {
  absl::Status s = f->store.Batch([&](Batch& b) {
    for (int i = 0; i < kTasks; ++i) {
      const std::string id = TaskId(i);
      absl::Status st = b.Update([&](WriteTx& tx) {
        const api::Task* t = tx.Get<api::Task>(id);
        if (t == nullptr) return absl::NotFoundError(id);
        api::Task updated = *t;
        change(i, &updated);
        return tx.Update(std::move(updated));
      });
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) std::abort();
}

void BM_WriteCreate(benchmark::State& state) { TimedPhase(state, false, Fill); }
BENCHMARK(BM_WriteCreate)->Unit(benchmark::kMillisecond)->Iterations(3);

// Status only: no index changes.
void BM_WriteUpdateStatus(benchmark::State& state) {
  TimedPhase(state, true, [](Fixture* f) {
    UpdateAll(f, [](int, api::Task* t) {
      t->mutable_status()->set_state(api::TASK_STATE_SHUTDOWN);
      t->mutable_status()->set_message("shutdown");
    });
  });
}
BENCHMARK(BM_WriteUpdateStatus)->Unit(benchmark::kMillisecond)->Iterations(3);

// node_id moves: the kNodeId index entry moves (kSlot too for slot-0 tasks; these have slots).
void BM_WriteUpdateNode(benchmark::State& state) {
  TimedPhase(state, true, [](Fixture* f) {
    UpdateAll(f, [](int i, api::Task* t) {
      t->set_node_id(absl::StrCat("node", 100 + (i + 7) % 50, "x8k2m4n5p6r7s9t0v1"));
    });
  });
}
BENCHMARK(BM_WriteUpdateNode)->Unit(benchmark::kMillisecond)->Iterations(3);

// desired_state change, as a scale-down marks tasks for shutdown: kDesiredState moves.
void BM_WriteUpdateDesired(benchmark::State& state) {
  TimedPhase(state, true, [](Fixture* f) {
    UpdateAll(f, [](int, api::Task* t) { t->set_desired_state(api::TASK_STATE_SHUTDOWN); });
  });
}
BENCHMARK(BM_WriteUpdateDesired)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_WriteDelete(benchmark::State& state) {
  TimedPhase(state, true, [](Fixture* f) {
    absl::Status s = f->store.Batch([](Batch& b) {
      for (int i = 0; i < kTasks; ++i) {
        const std::string id = TaskId(i);
        absl::Status st = b.Update([&](WriteTx& tx) { return tx.Delete<api::Task>(id); });
        if (!st.ok()) return st;
      }
      return absl::OkStatus();
    });
    if (!s.ok()) std::abort();
  });
}
BENCHMARK(BM_WriteDelete)->Unit(benchmark::kMillisecond)->Iterations(3);

// What protobuf itself costs per task, for comparison with the write benchmarks: a copy (what
// a writer makes of the object it changes), and encoding / decoding a 500-task proposal.
void BM_ProtoTaskCopy(benchmark::State& state) {
  const api::Task t = BenchTask(7);
  for (auto _ : state) {
    api::Task copy = t;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_ProtoTaskCopy);

std::string FiveHundredTaskProposal() {
  api::StoreProposal p;
  for (int i = 0; i < 500; ++i) {
    api::StoreAction* a = p.mutable_request()->add_actions();
    a->set_action(api::StoreAction::UPDATE);
    *a->mutable_object()->mutable_task() = BenchTask(i);
  }
  return p.SerializeAsString();
}

void BM_ProtoParse500(benchmark::State& state) {
  const std::string data = FiveHundredTaskProposal();
  for (auto _ : state) {
    api::StoreProposal p;
    if (!p.ParseFromString(data)) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * 500);
}
BENCHMARK(BM_ProtoParse500);

void BM_ProtoParse500Arena(benchmark::State& state) {
  const std::string data = FiveHundredTaskProposal();
  for (auto _ : state) {
    google::protobuf::Arena arena;
    auto* p = google::protobuf::Arena::CreateMessage<api::StoreProposal>(&arena);
    if (!p->ParseFromString(data)) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * 500);
}
BENCHMARK(BM_ProtoParse500Arena);

void BM_ApplyTaskEntries(benchmark::State& state) {
  Fixture source;
  Fill(&source);
  const std::vector<DirectProposer::Entry> entries = source.proposer.entries();
  for (auto _ : state) {
    state.PauseTiming();
    auto f = std::make_unique<Fixture>();
    state.ResumeTiming();
    for (const auto& e : entries) benchmark::DoNotOptimize(f->store.Apply(e.index, e.data));
    state.PauseTiming();
    f.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_ApplyTaskEntries)->Unit(benchmark::kMillisecond)->Iterations(3);

Fixture& Filled() {
  static Fixture* f = [] {
    auto* fx = new Fixture();
    Fill(fx);
    return fx;
  }();
  return *f;
}

const std::string& FilledSnapshot() {
  static const std::string* const snap = new std::string(Filled().store.Snapshot());
  return *snap;
}

void BM_ViewGetTask(benchmark::State& state) {
  Fixture& f = Filled();
  std::mt19937 rng(1);
  std::vector<std::string> ids;
  for (int i = 0; i < 1024; ++i) ids.push_back(BenchTask(rng() % kTasks).id());
  size_t n = 0;
  for (auto _ : state) {
    f.store.View([&](const ReadTx& tx) {
      benchmark::DoNotOptimize(tx.Get<api::Task>(ids[n++ % ids.size()]));
    });
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ViewGetTask);

void BM_ViewTasksByService(benchmark::State& state) {
  Fixture& f = Filled();
  std::mt19937 rng(2);
  std::vector<std::string> services;
  for (int i = 0; i < 256; ++i) services.push_back(BenchTask(rng() % kTasks).service_id());
  size_t n = 0;
  for (auto _ : state) {
    f.store.View([&](const ReadTx& tx) {
      auto tasks = tx.FindTasksByService(services[n++ % services.size()]);
      if (tasks.size() != kTasksPerService) std::abort();
    });
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ViewTasksByService);

void BM_ViewGetTaskWhileApplying(benchmark::State& state) {
  Fixture& f = Filled();
  std::atomic<bool> stop{false};
  std::atomic<long> updates{0};
  std::thread writer([&] {
    std::mt19937 rng(3);
    while (!stop.load()) {
      const std::string id = BenchTask(rng() % kTasks).id();
      absl::Status s = f.store.Update([&](WriteTx& tx) {
        api::Task t = *tx.Get<api::Task>(id);
        t.mutable_status()->set_message(absl::StrCat("tick ", updates.load()));
        return tx.Update(t);
      });
      if (s.ok()) ++updates;
    }
  });
  std::mt19937 rng(4);
  std::vector<std::string> ids;
  for (int i = 0; i < 1024; ++i) ids.push_back(BenchTask(rng() % kTasks).id());
  size_t n = 0;
  for (auto _ : state) {
    f.store.View([&](const ReadTx& tx) {
      benchmark::DoNotOptimize(tx.Get<api::Task>(ids[n++ % ids.size()]));
    });
  }
  stop = true;
  writer.join();
  state.SetItemsProcessed(state.iterations());
  state.counters["concurrent_updates"] = static_cast<double>(updates.load());
}
BENCHMARK(BM_ViewGetTaskWhileApplying)->UseRealTime();

void BM_Snapshot(benchmark::State& state) {
  Fixture& f = Filled();
  size_t bytes = 0;
  for (auto _ : state) bytes = f.store.Snapshot().size();
  state.counters["snapshot_MiB"] = static_cast<double>(bytes) / (1 << 20);
}
BENCHMARK(BM_Snapshot)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Restore(benchmark::State& state) {
  const std::string snap = Filled().store.Snapshot();
  for (auto _ : state) {
    state.PauseTiming();
    auto other = std::make_unique<MemoryStore>(nullptr);
    state.ResumeTiming();
    if (!other->Restore(snap).ok()) std::abort();
    state.PauseTiming();
    other.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_Restore)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace shoal::manager::store

BENCHMARK_MAIN();
