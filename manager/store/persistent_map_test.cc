#include "manager/store/persistent_map.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shoal::manager::store {
namespace {

using Map = PersistentMap<int>;
// Four entries per node: deep trees from few keys, so that splits, merges and refills of inner
// nodes all happen.
using SmallMap = PersistentMap<int, 4>;

template <class M>
std::map<std::string, int> Contents(const M& m) {
  std::map<std::string, int> out;
  m.ForEach([&](absl::string_view k, int v) {
    out[std::string(k)] = v;
    return true;
  });
  return out;
}

unsigned Seed() {
  const char* env = std::getenv("SHOAL_TEST_SEED");
  const unsigned seed = env != nullptr ? std::stoul(env) : std::random_device{}();
  std::printf("seed %u (replay with SHOAL_TEST_SEED=%u)\n", seed, seed);
  return seed;
}

TEST(PersistentMapTest, SetFindErase) {
  Map m;
  const uint64_t gen = NewGeneration();
  EXPECT_TRUE(m.Set("b", 2, gen));
  EXPECT_TRUE(m.Set("a", 1, gen));
  EXPECT_FALSE(m.Set("b", 20, gen));
  ASSERT_NE(m.Find("b"), nullptr);
  EXPECT_EQ(*m.Find("b"), 20);
  EXPECT_EQ(m.Find("c"), nullptr);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_TRUE(m.Erase("a", gen));
  EXPECT_FALSE(m.Erase("a", gen));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_TRUE(m.CheckInvariants());
  EXPECT_TRUE(m.Erase("b", gen));
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.height(), 0);
  EXPECT_TRUE(m.CheckInvariants());
  EXPECT_EQ(m.Find("b"), nullptr);
  EXPECT_TRUE(m.Set("", 7, gen));  // the empty key is a key like any other
  EXPECT_EQ(*m.Find(""), 7);
}

TEST(PersistentMapTest, CopiesAreIndependent) {
  Map a;
  uint64_t gen = NewGeneration();
  for (int i = 0; i < 100; ++i) a.Set(std::to_string(i), i, gen);
  const std::map<std::string, int> before = Contents(a);

  // The copy shares a's nodes, so it must write with a generation of its own.
  Map b = a;
  gen = NewGeneration();
  for (int i = 0; i < 100; i += 2) b.Erase(std::to_string(i), gen);
  for (int i = 100; i < 150; ++i) b.Set(std::to_string(i), i, gen);
  b.Set("5", 555, gen);

  EXPECT_EQ(Contents(a), before);
  EXPECT_EQ(b.size(), 100u);
  EXPECT_EQ(*b.Find("5"), 555);
  EXPECT_EQ(*a.Find("5"), 5);
  EXPECT_TRUE(a.CheckInvariants());
  EXPECT_TRUE(b.CheckInvariants());

  // Assignment and moves keep both sides consistent too.
  Map c;
  c = b;
  Map d = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): a moved-from map is empty
  EXPECT_EQ(Contents(c), Contents(d));
  c = std::move(d);
  EXPECT_EQ(c.size(), 100u);
}

TEST(PersistentMapTest, ScanPrefixAndFrom) {
  Map m;
  const uint64_t gen = NewGeneration();
  for (const char* k : {"svc1", "svc10", "svc2", "svc"}) m.Set(k, 0, gen);
  m.Set(std::string("x\0y", 3), 1, gen);
  m.Set(std::string("x\0z", 3), 2, gen);
  m.Set("xa", 3, gen);
  std::vector<int> got;
  m.ScanPrefix(std::string("x\0", 2), [&](absl::string_view, int v) {
    got.push_back(v);
    return true;
  });
  EXPECT_EQ(got, (std::vector<int>{1, 2}));

  std::vector<std::string> keys;
  m.ScanFrom("svc1", [&](absl::string_view k, int) {
    keys.emplace_back(k);
    return keys.size() < 3;  // stops early
  });
  EXPECT_EQ(keys, (std::vector<std::string>{"svc1", "svc10", "svc2"}));
}

TEST(PersistentMapTest, ScansCrossNodes) {
  SmallMap m;
  const uint64_t gen = NewGeneration();
  char buf[16];
  for (int i = 0; i < 1000; ++i) {
    std::snprintf(buf, sizeof buf, "k%04d", i);
    m.Set(buf, i, gen);
  }
  ASSERT_GE(m.height(), 4);
  for (int from : {0, 1, 3, 4, 5, 499, 996, 999}) {
    std::snprintf(buf, sizeof buf, "k%04d", from);
    int next = from;
    bool ordered = true;
    m.ScanFrom(buf, [&](absl::string_view, int v) {
      ordered = ordered && v == next++;
      return true;
    });
    EXPECT_TRUE(ordered) << from;
    EXPECT_EQ(next, 1000) << from;
  }
  int n = 0;
  m.ScanPrefix("k012", [&](absl::string_view k, int) {
    EXPECT_EQ(k.substr(0, 4), "k012");
    ++n;
    return true;
  });
  EXPECT_EQ(n, 10);
  n = 0;
  m.ScanFrom("k1", [&](absl::string_view, int) { return ++n < 0; });  // past the last key
  EXPECT_EQ(n, 0);
}

template <class M>
void RandomizedAgainstStdMap(int keys, int steps) {
  const unsigned seed = Seed();
  std::mt19937 rng(seed);
  M m;
  std::map<std::string, int> model;
  std::vector<std::pair<M, std::map<std::string, int>>> versions;
  uint64_t gen = NewGeneration();
  for (int step = 0; step < steps; ++step) {
    // Keys of varied length, some long, so nodes also reallocate to make room for bytes.
    const int k = static_cast<int>(rng() % keys);
    const std::string key = "k" + std::to_string(k) + std::string(k % 7 == 0 ? 100 : k % 5, 'x');
    // Phases that grow, shrink and churn the map, so merges and refills happen too.
    const int phase = (step / (steps / 6)) % 3;
    const unsigned erase_one_in = phase == 0 ? 4 : phase == 1 ? 2 : 3;
    if (rng() % erase_one_in == 0 || (phase == 1 && rng() % 3 == 0)) {
      ASSERT_EQ(m.Erase(key, gen), model.erase(key) == 1) << "seed " << seed;
    } else {
      const int v = static_cast<int>(rng());
      ASSERT_EQ(m.Set(key, v, gen), model.count(key) == 0) << "seed " << seed;
      model[key] = v;
    }
    ASSERT_EQ(m.size(), model.size());
    if (step % (steps / 20) == 0) {
      versions.emplace_back(m, model);
      gen = NewGeneration();
      ASSERT_TRUE(m.CheckInvariants()) << "seed " << seed << " step " << step;
    }
  }
  EXPECT_TRUE(m.CheckInvariants()) << "seed " << seed;
  EXPECT_EQ(Contents(m), model) << "seed " << seed;
  for (const auto& [k, v] : model) {
    const int* found = m.Find(k);
    ASSERT_NE(found, nullptr) << k;
    EXPECT_EQ(*found, v);
  }
  for (const auto& [copy, expected] : versions) {
    EXPECT_EQ(Contents(copy), expected) << "seed " << seed;
    EXPECT_TRUE(copy.CheckInvariants());
  }
}

// Random operations against std::map, across a chain of copies (each copy continues with a new
// generation, as the store does), checking every retained copy stays as it was.
TEST(PersistentMapTest, RandomizedAgainstStdMap) { RandomizedAgainstStdMap<Map>(2000, 30000); }
TEST(PersistentMapTest, RandomizedAgainstStdMapSmallNodes) {
  RandomizedAgainstStdMap<SmallMap>(500, 30000);
}

TEST(PersistentMapTest, SequentialInsertStaysBalanced) {
  Map m;
  const uint64_t gen = NewGeneration();
  char buf[16];
  for (int i = 0; i < 100000; ++i) {
    std::snprintf(buf, sizeof buf, "%08d", i);
    m.Set(buf, i, gen);
  }
  EXPECT_TRUE(m.CheckInvariants());
  EXPECT_LE(m.height(), 4);  // 24-entry leaves (appends split them 3/4 full): 4167, 174, 8, 1
  for (int i = 0; i < 100000; i += 3) {
    std::snprintf(buf, sizeof buf, "%08d", i);
    m.Erase(buf, gen);
  }
  EXPECT_TRUE(m.CheckInvariants());
  EXPECT_EQ(m.size(), 66666u);
  // Emptying it shrinks it level by level.
  for (int i = 0; i < 100000; ++i) {
    std::snprintf(buf, sizeof buf, "%08d", i);
    m.Erase(buf, gen);
    if (i % 9973 == 0) ASSERT_TRUE(m.CheckInvariants()) << i;
  }
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.height(), 0);
}

// Values are released exactly when the last map holding them lets go, whichever copy that is.
TEST(PersistentMapTest, SharedValuesLiveAsLongAsAnyCopy) {
  using PtrMap = PersistentMap<std::shared_ptr<int>, 4>;
  auto a = std::make_unique<PtrMap>();
  uint64_t gen = NewGeneration();
  std::vector<std::weak_ptr<int>> watched;
  for (int i = 0; i < 200; ++i) {
    auto v = std::make_shared<int>(i);
    watched.push_back(v);
    a->Set("k" + std::to_string(1000 + i), std::move(v), gen);
  }
  auto b = std::make_unique<PtrMap>(*a);
  gen = NewGeneration();
  for (int i = 0; i < 200; i += 2) b->Erase("k" + std::to_string(1000 + i), gen);
  b->Set("k1001", std::make_shared<int>(-1), gen);
  // a still holds every value.
  for (const auto& w : watched) EXPECT_FALSE(w.expired());
  a.reset();
  // Now only b's: the odd ones but k1001, which b replaced.
  for (int i = 0; i < 200; ++i) EXPECT_EQ(watched[i].expired(), i % 2 == 0 || i == 1) << i;
  EXPECT_EQ(**b->Find("k1001"), -1);
  EXPECT_TRUE(b->CheckInvariants());
  b.reset();
  for (const auto& w : watched) EXPECT_TRUE(w.expired());
}

}  // namespace
}  // namespace shoal::manager::store
