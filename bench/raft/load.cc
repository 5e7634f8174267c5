#include "bench/raft/load.h"

#include <algorithm>
#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/raft/kv_client.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/alarm.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"

namespace shoal::bench {
namespace {

using Steady = std::chrono::steady_clock;

// Latency samples kept per worker thread; beyond this only counts are kept (bounded memory).
constexpr size_t kMaxSamplesPerThread = 4'000'000;
// How long a client waits after a failed Put before its next one.
constexpr auto kRetryDelay = std::chrono::milliseconds(10);

std::chrono::system_clock::time_point SystemDeadline(Steady::time_point steady_deadline) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(steady_deadline -
                                                                         Steady::now());
}

Steady::duration ToSteady(absl::Duration d) {
  return std::chrono::duration_cast<Steady::duration>(absl::ToChronoNanoseconds(d));
}

// A fixed, printable value: deterministic, and not trivially compressible.
std::string MakeValue(size_t size) {
  std::string value(size, 'x');
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (char& c : value) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    c = static_cast<char>('a' + (x >> 59) % 26);
  }
  return value;
}

bool ConnectAll(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                absl::Duration timeout) {
  const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
  for (const auto& channel : channels) {
    if (!channel->WaitForConnected(deadline)) return false;
  }
  return true;
}

// State every worker of one RunLoad reads; counters are atomics.
struct LoadPlan {
  const LoadOptions* options = nullptr;
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs;  // one per connection
  std::string value;
  Steady::time_point measure_start;
  Steady::time_point measure_end;  // time-bounded runs only
  bool by_total = false;
  std::atomic<uint64_t> next_key{0};
  std::atomic<int64_t> measured_issued{0};  // Puts issued inside the window (count-bounded runs)
};

// What a worker learned; merged by RunLoad after the threads end.
struct WorkerTally {
  std::vector<int64_t> latency_ns;
  int64_t writes = 0;
  int64_t errors = 0;
  std::string first_error;
  Steady::time_point last_measured_completion{};
};

// One thread with one CompletionQueue, driving the slots (clients) assigned to it. Each slot has
// exactly one operation pending at any time: a Put in flight, or a retry timer after a failure.
class Worker {
 public:
  Worker(LoadPlan& plan, std::vector<int> slots) : plan_(plan), slots_(std::move(slots)) {}

  void Run() {
    active_ = static_cast<int>(slots_.size());
    if (active_ == 0) return;
    for (int slot : slots_) Issue(slot, Steady::now());
    void* tag = nullptr;
    bool ok = false;
    while (cq_.Next(&tag, &ok)) {
      std::unique_ptr<Op> op(static_cast<Op*>(tag));
      const Steady::time_point now = Steady::now();
      if (op->kind == Op::kPut) {
        const bool success = op->status.ok();
        Record(*op, success, now);
        if (!success && !ShouldStop(now)) {
          // Owned by the queue until the alarm fires and Next() hands it back.
          Op* retry = new Op(Op::kRetry, op->slot);
          retry->alarm.Set(&cq_, std::chrono::system_clock::now() + kRetryDelay, retry);
          continue;
        }
      }
      if (ShouldStop(now)) {
        if (--active_ == 0) cq_.Shutdown();
      } else {
        Issue(op->slot, now);
      }
    }
  }

  WorkerTally& tally() { return tally_; }

 private:
  struct Op {
    enum Kind { kPut, kRetry };
    Op(Kind k, int s) : kind(k), slot(s) {}
    Kind kind;
    int slot;
    bool measured = false;
    Steady::time_point start;
    grpc::ClientContext ctx;
    etcdserverpb::PutResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::PutResponse>> reader;
    grpc::Alarm alarm;
  };

  bool ShouldStop(Steady::time_point now) const {
    const LoadOptions& o = *plan_.options;
    if (o.cancel != nullptr && o.cancel->load(std::memory_order_relaxed)) return true;
    if (plan_.by_total) return plan_.measured_issued.load(std::memory_order_relaxed) >= o.total;
    return now >= plan_.measure_end;
  }

  void Issue(int slot, Steady::time_point now) {
    const LoadOptions& o = *plan_.options;
    auto op = std::make_unique<Op>(Op::kPut, slot);
    if (plan_.by_total) {
      op->measured = now >= plan_.measure_start &&
                     plan_.measured_issued.fetch_add(1, std::memory_order_relaxed) < o.total;
    }
    const uint64_t n = plan_.next_key.fetch_add(1, std::memory_order_relaxed);
    etcdserverpb::PutRequest request;
    request.set_key(absl::StrCat(
        o.key_prefix, absl::Dec(n % static_cast<uint64_t>(o.key_space), absl::kZeroPad8)));
    request.set_value(plan_.value);
    op->ctx.set_deadline(absl::ToChronoTime(absl::Now() + o.request_timeout));
    op->start = Steady::now();
    auto& stub = plan_.stubs[static_cast<size_t>(slot) % plan_.stubs.size()];
    op->reader = stub->PrepareAsyncPut(&op->ctx, request, &cq_);
    op->reader->StartCall();
    Op* raw = op.release();
    raw->reader->Finish(&raw->response, &raw->status, raw);
  }

  void Record(const Op& op, bool success, Steady::time_point now) {
    bool in_window;
    if (plan_.by_total) {
      in_window = op.measured;
      if (in_window)
        tally_.last_measured_completion = std::max(tally_.last_measured_completion, now);
    } else {
      in_window = now >= plan_.measure_start && now < plan_.measure_end;
    }
    if (!in_window) return;
    if (!success) {
      ++tally_.errors;
      if (tally_.first_error.empty()) {
        tally_.first_error =
            absl::StrCat("code ", op.status.error_code(), ": ", op.status.error_message());
      }
      return;
    }
    ++tally_.writes;
    if (tally_.latency_ns.size() < kMaxSamplesPerThread) {
      tally_.latency_ns.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - op.start).count());
    }
  }

  LoadPlan& plan_;
  std::vector<int> slots_;
  grpc::CompletionQueue cq_;
  int active_ = 0;
  WorkerTally tally_;
};

}  // namespace

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options) {
  if (options.clients < 1) return absl::InvalidArgumentError("clients must be >= 1");
  if (options.threads < 1) return absl::InvalidArgumentError("threads must be >= 1");
  if (options.key_space < 1) return absl::InvalidArgumentError("key space must be >= 1");
  if (options.total <= 0 && options.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("need a positive duration or total");
  }
  const int connections =
      options.connections > 0 ? options.connections : std::min(options.clients, 16);

  LoadPlan plan;
  plan.options = &options;
  plan.value = MakeValue(options.value_size);
  plan.by_total = options.total > 0;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < connections; ++c) {
    channels.push_back(NewChannel(options.endpoint, c));
    plan.stubs.push_back(etcdserverpb::KV::NewStub(channels.back()));
  }
  if (!ConnectAll(channels, options.connect_timeout)) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", options.endpoint));
  }

  const int threads = std::min(options.threads, options.clients);
  std::vector<std::vector<int>> slots(static_cast<size_t>(threads));
  for (int s = 0; s < options.clients; ++s) slots[static_cast<size_t>(s % threads)].push_back(s);

  const Steady::time_point begin = Steady::now();
  plan.measure_start = begin + ToSteady(options.warmup);
  plan.measure_end = plan.measure_start + ToSteady(options.duration);

  std::vector<std::unique_ptr<Worker>> workers;
  for (auto& s : slots) workers.push_back(std::make_unique<Worker>(plan, s));
  std::vector<std::thread> running;
  for (auto& w : workers) running.emplace_back([&w] { w->Run(); });
  for (auto& t : running) t.join();
  const Steady::time_point finished = Steady::now();

  LoadResult result;
  result.clients = options.clients;
  result.connections = connections;
  std::vector<double> latency_ms;
  Steady::time_point window_end = plan.measure_start;
  for (auto& w : workers) {
    WorkerTally& t = w->tally();
    result.writes += t.writes;
    result.errors += t.errors;
    if (result.first_error.empty()) result.first_error = t.first_error;
    window_end = std::max(window_end, t.last_measured_completion);
    for (int64_t ns : t.latency_ns) latency_ms.push_back(static_cast<double>(ns) / 1e6);
  }
  if (!plan.by_total) window_end = std::min(plan.measure_end, finished);
  result.seconds = std::chrono::duration<double>(window_end - plan.measure_start).count();
  if (result.seconds > 0) result.writes_per_s = static_cast<double>(result.writes) / result.seconds;
  result.latency_ms = Summarize(std::move(latency_ms));
  return result;
}

absl::StatusOr<ProbeResult> TimeUntilWriteCommits(const ProbeOptions& options,
                                                  const std::function<absl::Status()>& start) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("no endpoints to probe");
  if (options.attempt_interval <= absl::ZeroDuration() ||
      options.attempt_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("attempt interval and deadline must be positive");
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs;
  for (size_t i = 0; i < options.endpoints.size(); ++i) {
    channels.push_back(NewChannel(options.endpoints[i], static_cast<int>(i)));
    stubs.push_back(etcdserverpb::KV::NewStub(channels.back()));
  }
  // Connection set-up is not part of what is measured; a survivor that cannot be reached now
  // simply fails its attempts later.
  (void)ConnectAll(channels, absl::Seconds(2));

  etcdserverpb::PutRequest request;
  request.set_key(options.key);
  request.set_value(MakeValue(options.value_size));

  struct Attempt {
    size_t endpoint = 0;
    grpc::ClientContext ctx;
    etcdserverpb::PutResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::PutResponse>> reader;
  };
  grpc::CompletionQueue cq;
  std::list<Attempt> in_flight;

  if (start) {
    absl::Status started = start();
    if (!started.ok()) return started;
  }
  const Steady::time_point t0 = Steady::now();
  const Steady::time_point hard_end = t0 + ToSteady(options.timeout);
  const Steady::duration interval = ToSteady(options.attempt_interval);
  Steady::time_point next_launch = t0;
  std::optional<ProbeResult> result;
  int attempts = 0;
  std::string last_error;

  while (true) {
    Steady::time_point now = Steady::now();
    const bool launching = !result.has_value() && now < hard_end;
    if (launching && now >= next_launch) {
      const Steady::time_point deadline =
          std::min(now + ToSteady(options.attempt_deadline), hard_end);
      for (size_t e = 0; e < stubs.size(); ++e) {
        Attempt& a = in_flight.emplace_back();
        a.endpoint = e;
        a.ctx.set_deadline(SystemDeadline(deadline));
        a.reader = stubs[e]->PrepareAsyncPut(&a.ctx, request, &cq);
        a.reader->StartCall();
        a.reader->Finish(&a.response, &a.status, &a);
        ++attempts;
      }
      next_launch += interval;
      if (next_launch <= now) next_launch = now + interval;  // never burst to catch up
      continue;
    }
    if (!launching && in_flight.empty()) break;
    // Attempts all carry deadlines no later than hard_end, so this wait always ends.
    const Steady::time_point wake = launching ? next_launch : hard_end + std::chrono::seconds(5);
    void* tag = nullptr;
    bool ok = false;
    const auto next = cq.AsyncNext(&tag, &ok, SystemDeadline(wake));
    if (next == grpc::CompletionQueue::TIMEOUT) continue;
    if (next == grpc::CompletionQueue::SHUTDOWN) break;
    now = Steady::now();
    auto* done = static_cast<Attempt*>(tag);
    if (done->status.ok()) {
      if (!result.has_value()) {
        ProbeResult r;
        r.elapsed = absl::FromChrono(now - t0);
        r.endpoint = options.endpoints[done->endpoint];
        r.attempts = attempts;
        result = r;
        for (Attempt& a : in_flight) {
          if (&a != done) a.ctx.TryCancel();
        }
      }
    } else {
      last_error = absl::StrCat(options.endpoints[done->endpoint], ": code ",
                                done->status.error_code(), ": ", done->status.error_message());
    }
    in_flight.remove_if([done](const Attempt& a) { return &a == done; });
  }
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
  if (result.has_value()) return *result;
  return absl::DeadlineExceededError(
      absl::StrCat("no write committed within ", absl::FormatDuration(options.timeout), " (",
                   attempts, " attempts; last error ", last_error, ")"));
}

}  // namespace shoal::bench
