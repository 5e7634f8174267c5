#include "raft/sim/linearizability.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "raft/sim/rng.h"

namespace shoal::raft::sim {
namespace {

using Verdict = LinearizabilityResult::Verdict;

bool Linearizable(const std::vector<KvOperation>& h) {
  const LinearizabilityResult r = CheckKvLinearizability(h);
  EXPECT_NE(r.verdict, Verdict::kUnknown) << r.explanation;
  return r.ok();
}

TEST(LinearizabilityTest, EmptyHistory) { EXPECT_TRUE(Linearizable({})); }

TEST(LinearizabilityTest, SequentialPutThenGet) {
  EXPECT_TRUE(Linearizable({MakePut(1, "x", "a", 0, 10), MakeGet(2, "x", "a", 20, 30)}));
}

TEST(LinearizabilityTest, GetOfUnwrittenKeyIsAbsent) {
  EXPECT_TRUE(Linearizable({MakeGet(1, "x", std::nullopt, 0, 10)}));
  EXPECT_FALSE(Linearizable({MakeGet(1, "x", "a", 0, 10)}));
}

TEST(LinearizabilityTest, StaleReadIsRejected) {
  // b overwrote a before the read started; the read still sees a.
  EXPECT_FALSE(Linearizable(
      {MakePut(1, "x", "a", 0, 10), MakePut(1, "x", "b", 20, 30), MakeGet(2, "x", "a", 40, 50)}));
}

TEST(LinearizabilityTest, LostWriteIsRejected) {
  // The put completed, yet a later read sees the key as never written.
  EXPECT_FALSE(Linearizable({MakePut(1, "x", "a", 0, 10), MakeGet(2, "x", std::nullopt, 20, 30)}));
}

TEST(LinearizabilityTest, ReadOfValueNeverWrittenIsRejected) {
  EXPECT_FALSE(Linearizable({MakePut(1, "x", "a", 0, 10), MakeGet(2, "x", "zzz", 5, 30)}));
}

TEST(LinearizabilityTest, ConcurrentWritesAllowEitherOrder) {
  // Two overlapping puts; later readers may see either, but all must agree on the last one.
  const KvOperation pa = MakePut(1, "x", "a", 0, 100);
  const KvOperation pb = MakePut(2, "x", "b", 10, 90);
  EXPECT_TRUE(Linearizable({pa, pb, MakeGet(3, "x", "a", 200, 210)}));
  EXPECT_TRUE(Linearizable({pa, pb, MakeGet(3, "x", "b", 200, 210)}));
  EXPECT_TRUE(
      Linearizable({pa, pb, MakeGet(3, "x", "b", 200, 210), MakeGet(3, "x", "b", 220, 230)}));
  EXPECT_FALSE(
      Linearizable({pa, pb, MakeGet(3, "x", "b", 200, 210), MakeGet(3, "x", "a", 220, 230)}));
}

TEST(LinearizabilityTest, ConcurrentReadsMaySeeOldOrNew) {
  // Reads overlapping a write may see before or after it — but not go back in time: a read that
  // starts after another read returned the new value must not see the old one.
  const KvOperation p0 = MakePut(1, "x", "old", 0, 5);
  const KvOperation p1 = MakePut(1, "x", "new", 10, 100);
  EXPECT_TRUE(
      Linearizable({p0, p1, MakeGet(2, "x", "old", 20, 30), MakeGet(3, "x", "new", 20, 30)}));
  EXPECT_TRUE(
      Linearizable({p0, p1, MakeGet(2, "x", "old", 20, 30), MakeGet(2, "x", "new", 40, 50)}));
  EXPECT_FALSE(
      Linearizable({p0, p1, MakeGet(2, "x", "new", 20, 30), MakeGet(2, "x", "old", 40, 50)}));
}

TEST(LinearizabilityTest, TouchingIntervalsAreConcurrent) {
  // The read is called at the very instant the put returns: either order is allowed.
  EXPECT_TRUE(Linearizable({MakeGet(2, "x", std::nullopt, 10, 20), MakePut(1, "x", "a", 0, 10)}));
}

TEST(LinearizabilityTest, TimedOutPutThatTookEffect) {
  EXPECT_TRUE(Linearizable({MakePut(1, "x", "a", 0, std::nullopt), MakeGet(2, "x", "a", 50, 60)}));
}

TEST(LinearizabilityTest, TimedOutPutThatDidNotTakeEffect) {
  EXPECT_TRUE(
      Linearizable({MakePut(1, "x", "a", 0, std::nullopt), MakeGet(2, "x", std::nullopt, 50, 60)}));
}

TEST(LinearizabilityTest, TimedOutPutTakesEffectAtMostOnceAndNotBeforeItsCall) {
  // The timed-out put may land late, but once seen it cannot disappear.
  EXPECT_TRUE(Linearizable({MakePut(1, "x", "a", 0, std::nullopt),
                            MakeGet(2, "x", std::nullopt, 50, 60), MakeGet(2, "x", "a", 70, 80)}));
  EXPECT_FALSE(Linearizable({MakePut(1, "x", "a", 0, std::nullopt), MakeGet(2, "x", "a", 50, 60),
                             MakeGet(2, "x", std::nullopt, 70, 80)}));
  // Seen before it was called: impossible.
  EXPECT_FALSE(Linearizable({MakeGet(2, "x", "a", 0, 10), MakePut(1, "x", "a", 20, std::nullopt)}));
}

TEST(LinearizabilityTest, TimedOutPutCannotUndoALaterCompletedWrite) {
  // a (timed out) may land after b, so reading a at the end is fine ...
  EXPECT_TRUE(Linearizable({MakePut(1, "x", "a", 0, std::nullopt), MakePut(2, "x", "b", 10, 20),
                            MakeGet(3, "x", "b", 30, 40), MakeGet(3, "x", "a", 50, 60)}));
  // ... but not flip-flop back to b afterwards, since a put takes effect once.
  EXPECT_FALSE(Linearizable({MakePut(1, "x", "a", 0, std::nullopt), MakePut(2, "x", "b", 10, 20),
                             MakeGet(3, "x", "a", 30, 40), MakeGet(3, "x", "b", 50, 60),
                             MakeGet(3, "x", "a", 70, 80)}));
}

TEST(LinearizabilityTest, ManyUnobservedTimedOutWritesStayCheap) {
  // Forty timed-out puts overlapping everything, none of them ever read: without care the search
  // tries every subset of them in every order.
  std::vector<KvOperation> h;
  for (int i = 0; i < 40; ++i) {
    h.push_back(MakePut(i, "x", "lost" + std::to_string(i), i * 10, std::nullopt));
    h.push_back(MakePut(100 + i, "x", "v" + std::to_string(i), i * 10 + 1, i * 10 + 5));
    h.push_back(MakeGet(200 + i, "x", "v" + std::to_string(i), i * 10 + 6, i * 10 + 8));
  }
  const LinearizabilityResult r = CheckKvLinearizability(h);
  EXPECT_TRUE(r.ok()) << r.explanation;
  EXPECT_LT(r.steps, 100000u);
  // One of them observed out of order still makes it non-linearizable.
  h.push_back(MakeGet(999, "x", "lost3", 1000, 1001));
  h.push_back(MakeGet(999, "x", "v39", 1002, 1003));
  EXPECT_FALSE(CheckKvLinearizability(h).ok());
}

TEST(LinearizabilityTest, UnobservedTimedOutWriteCanExplainAFailedCas) {
  // The timed-out put of "p" is never read, but only it explains why the CAS from "v" failed.
  EXPECT_TRUE(Linearizable({MakePut(1, "x", "v", 0, 10), MakePut(2, "x", "p", 20, std::nullopt),
                            MakeCas(3, "x", "v", "w", false, 30, 40)}));
  EXPECT_FALSE(
      Linearizable({MakePut(1, "x", "v", 0, 10), MakeCas(3, "x", "v", "w", false, 30, 40)}));
}

TEST(LinearizabilityTest, TimedOutGetIsIgnored) {
  EXPECT_TRUE(Linearizable({MakeGet(1, "x", "garbage", 0, std::nullopt)}));
}

TEST(LinearizabilityTest, CompareAndSwap) {
  EXPECT_TRUE(Linearizable({MakePut(1, "x", "a", 0, 10), MakeCas(2, "x", "a", "b", true, 20, 30),
                            MakeGet(3, "x", "b", 40, 50)}));
  EXPECT_FALSE(
      Linearizable({MakePut(1, "x", "a", 0, 10), MakeCas(2, "x", "z", "b", true, 20, 30)}));
  EXPECT_TRUE(Linearizable({MakePut(1, "x", "a", 0, 10), MakeCas(2, "x", "z", "b", false, 20, 30),
                            MakeGet(3, "x", "a", 40, 50)}));
  // Two concurrent CAS from the same old value: only one may win.
  const KvOperation put = MakePut(1, "x", "a", 0, 10);
  EXPECT_FALSE(Linearizable(
      {put, MakeCas(2, "x", "a", "b", true, 20, 30), MakeCas(3, "x", "a", "c", true, 20, 30)}));
  EXPECT_TRUE(Linearizable(
      {put, MakeCas(2, "x", "a", "b", true, 20, 30), MakeCas(3, "x", "a", "c", false, 20, 30)}));
  // CAS on an absent key.
  EXPECT_TRUE(Linearizable({MakeCas(1, "x", std::nullopt, "a", true, 0, 10)}));
  // A timed-out CAS applies only if its expectation held.
  EXPECT_FALSE(
      Linearizable({MakePut(1, "x", "a", 0, 10), MakeCas(2, "x", "z", "b", false, 20, std::nullopt),
                    MakeGet(3, "x", "b", 40, 50)}));
  EXPECT_TRUE(
      Linearizable({MakePut(1, "x", "a", 0, 10), MakeCas(2, "x", "a", "b", false, 20, std::nullopt),
                    MakeGet(3, "x", "b", 40, 50)}));
}

TEST(LinearizabilityTest, KeysAreIndependent) {
  // Each key alone is fine; the checker must not invent cross-key constraints.
  EXPECT_TRUE(Linearizable({MakePut(1, "x", "a", 0, 10), MakePut(1, "y", "b", 20, 30),
                            MakeGet(2, "y", "b", 40, 50), MakeGet(2, "x", "a", 60, 70)}));
  // A stale read on one key among many good ones is found and reported.
  std::vector<KvOperation> h;
  for (int k = 0; k < 20; ++k) {
    const std::string key = "k" + std::to_string(k);
    h.push_back(MakePut(1, key, "v1", 0, 10));
    h.push_back(MakePut(1, key, "v2", 20, 30));
    h.push_back(MakeGet(2, key, k == 13 ? "v1" : "v2", 40, 50));
  }
  const LinearizabilityResult r = CheckKvLinearizability(h);
  EXPECT_EQ(r.verdict, Verdict::kNotLinearizable);
  EXPECT_EQ(r.key, "k13");
  EXPECT_NE(r.explanation.find("Get(k13)"), std::string::npos) << r.explanation;
}

TEST(LinearizabilityTest, LargeConcurrentHistoryIsFast) {
  // 2000 operations on one key from 8 clients with heavy overlap, generated from a real
  // sequential execution (so it is linearizable): memoization keeps this quick.
  SimRng rng(7);
  std::vector<KvOperation> h;
  std::optional<std::string> state;
  int64_t t = 0;
  for (int i = 0; i < 2000; ++i) {
    t += 10;
    const int64_t call = t - rng.Range(0, 60);
    const int64_t ret = t + rng.Range(0, 60);
    if (rng.Bernoulli(0.5)) {
      state = "v" + std::to_string(i);
      h.push_back(MakePut(i % 8, "x", *state, call, ret));
    } else {
      h.push_back(MakeGet(i % 8, "x", state, call, ret));
    }
  }
  const LinearizabilityResult r = CheckKvLinearizability(h);
  EXPECT_TRUE(r.ok()) << r.explanation;
}

TEST(LinearizabilityTest, BudgetExhaustionIsUnknownNotAVerdict) {
  std::vector<KvOperation> h;
  for (int i = 0; i < 12; ++i) h.push_back(MakePut(i, "x", "v" + std::to_string(i), 0, 100));
  h.push_back(MakeGet(99, "x", "nope", 200, 300));
  LinearizabilityOptions options;
  options.max_steps_per_key = 100;
  EXPECT_EQ(CheckKvLinearizability(h, options).verdict, Verdict::kUnknown);
  EXPECT_EQ(CheckKvLinearizability(h).verdict, Verdict::kNotLinearizable);
}

// ---- Randomized comparison with a brute-force checker ----

// Tries every subset of timed-out ops and every order of the chosen ops that respects real time,
// running the map's sequential specification over the whole (multi-key) history at once — so it
// also checks the checker's split by key.
bool BruteForceLinearizable(const std::vector<KvOperation>& h) {
  const int n = static_cast<int>(h.size());
  std::vector<int> pending;
  for (int i = 0; i < n; ++i) {
    if (!h[i].return_time.has_value()) pending.push_back(i);
  }
  auto precedes = [&](int a, int b) {
    return h[a].return_time.has_value() && *h[a].return_time < h[b].call_time;
  };
  for (uint32_t mask = 0; mask < (1u << pending.size()); ++mask) {
    std::vector<int> chosen;
    for (int i = 0; i < n; ++i) {
      auto it = std::find(pending.begin(), pending.end(), i);
      if (it == pending.end() || (mask >> (it - pending.begin())) & 1) chosen.push_back(i);
    }
    std::sort(chosen.begin(), chosen.end());
    do {
      bool ok = true;
      for (size_t i = 0; i < chosen.size() && ok; ++i) {
        for (size_t j = i + 1; j < chosen.size() && ok; ++j) {
          if (precedes(chosen[j], chosen[i])) ok = false;
        }
      }
      std::map<std::string, std::string> kv;
      for (size_t i = 0; i < chosen.size() && ok; ++i) {
        const KvOperation& op = h[chosen[i]];
        const bool done = op.return_time.has_value();
        auto it = kv.find(op.key);
        const std::optional<std::string> cur =
            it == kv.end() ? std::nullopt : std::optional<std::string>(it->second);
        switch (op.kind) {
          case KvOpKind::kPut:
            kv[op.key] = op.value;
            break;
          case KvOpKind::kGet:
            if (done && op.read != cur) ok = false;
            break;
          case KvOpKind::kCas: {
            const bool match = cur == op.expected;
            if (done && match != op.cas_succeeded) ok = false;
            if (match) kv[op.key] = op.value;
            break;
          }
        }
      }
      if (ok) return true;
    } while (std::next_permutation(chosen.begin(), chosen.end()));
  }
  return false;
}

std::optional<std::string> RandomValue(SimRng& rng) {
  const int v = static_cast<int>(rng.Uniform(4));
  if (v == 0) return std::nullopt;
  return std::string(1, static_cast<char>('a' + v - 1));
}

// Either a history made from a real sequential run (linearizable by construction, then
// sometimes corrupted in one result), or one with arbitrary results.
std::vector<KvOperation> RandomHistory(SimRng& rng) {
  const int n = static_cast<int>(rng.Range(1, 7));
  const bool from_run = rng.Bernoulli(0.6);
  std::vector<KvOperation> h;
  std::map<std::string, std::string> kv;
  // Distinct linearization points in increasing order; intervals drawn around them.
  int64_t point = 0;
  for (int i = 0; i < n; ++i) {
    point += rng.Range(1, 4);
    const std::string key = rng.Bernoulli(0.7) ? "x" : "y";
    const int64_t call = point - rng.Range(0, 6);
    std::optional<int64_t> ret = point + rng.Range(0, 6);
    if (rng.Bernoulli(0.2)) ret = std::nullopt;
    auto it = kv.find(key);
    const std::optional<std::string> cur =
        it == kv.end() ? std::nullopt : std::optional<std::string>(it->second);
    const uint64_t kind = rng.Uniform(3);
    const std::optional<std::string> v = RandomValue(rng);
    const std::string value = v.value_or("a");
    if (kind == 0) {
      h.push_back(MakePut(i, key, value, call, ret));
      kv[key] = value;
    } else if (kind == 1) {
      h.push_back(MakeGet(i, key, from_run ? cur : RandomValue(rng), call, ret));
    } else {
      const std::optional<std::string> expected = rng.Bernoulli(0.5) ? cur : RandomValue(rng);
      const bool match = expected == cur;
      h.push_back(
          MakeCas(i, key, expected, value, from_run ? match : rng.Bernoulli(0.5), call, ret));
      if (match) kv[key] = value;
    }
  }
  if (from_run && rng.Bernoulli(0.3)) {
    KvOperation& op = h[rng.Uniform(h.size())];
    if (op.kind == KvOpKind::kGet) op.read = RandomValue(rng);
    if (op.kind == KvOpKind::kCas) op.cas_succeeded = !op.cas_succeeded;
    if (op.kind == KvOpKind::kPut) {  // Shift its interval later: may break real-time order.
      op.call_time += 8;
      if (op.return_time.has_value()) *op.return_time += 8;
    }
  }
  // Present them in a scrambled order: the checker must not depend on input order.
  for (size_t i = h.size(); i > 1; --i) std::swap(h[i - 1], h[rng.Uniform(i)]);
  return h;
}

uint64_t SeedFromEnv(uint64_t fallback) {
  const char* s = std::getenv("SHOAL_LIN_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : fallback;
}

TEST(LinearizabilityTest, AgreesWithBruteForceOnRandomSmallHistories) {
  const uint64_t seed = SeedFromEnv(20240611);
  SCOPED_TRACE("replay with SHOAL_LIN_SEED=" + std::to_string(seed));
  SimRng rng(seed);
  int linearizable = 0, not_linearizable = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    const std::vector<KvOperation> h = RandomHistory(rng);
    const bool expected = BruteForceLinearizable(h);
    const LinearizabilityResult got = CheckKvLinearizability(h);
    ASSERT_NE(got.verdict, Verdict::kUnknown);
    if (got.ok() != expected) {
      std::string dump;
      for (const KvOperation& op : h) dump += "  " + FormatOperation(op) + "\n";
      FAIL() << "iteration " << iter << ": brute force says " << expected << ", checker says "
             << got.ok() << "\n"
             << dump << got.explanation;
    }
    (expected ? linearizable : not_linearizable)++;
  }
  // Both outcomes must be well represented, or the comparison proves little.
  EXPECT_GT(linearizable, 4000);
  EXPECT_GT(not_linearizable, 4000);
  std::printf("seed %llu: %d linearizable, %d not\n", static_cast<unsigned long long>(seed),
              linearizable, not_linearizable);
}

}  // namespace
}  // namespace shoal::raft::sim
