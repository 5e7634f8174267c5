#include "manager/store/persistent_map.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shoal::manager::store {
namespace {

using Map = PersistentMap<int>;

std::map<std::string, int> Contents(const Map& m) {
  std::map<std::string, int> out;
  m.ForEach([&](const std::string& k, int v) {
    out[k] = v;
    return true;
  });
  return out;
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
}

TEST(PersistentMapTest, ScanPrefixAndFrom) {
  Map m;
  const uint64_t gen = NewGeneration();
  for (const char* k : {"svc1", "svc10", "svc2", "svc"}) m.Set(k, 0, gen);
  m.Set(std::string("x\0y", 3), 1, gen);
  m.Set(std::string("x\0z", 3), 2, gen);
  m.Set("xa", 3, gen);
  std::vector<int> got;
  m.ScanPrefix(std::string("x\0", 2), [&](const std::string&, int v) {
    got.push_back(v);
    return true;
  });
  EXPECT_EQ(got, (std::vector<int>{1, 2}));

  std::vector<std::string> keys;
  m.ScanFrom("svc1", [&](const std::string& k, int) {
    keys.push_back(k);
    return keys.size() < 3;  // stops early
  });
  EXPECT_EQ(keys, (std::vector<std::string>{"svc1", "svc10", "svc2"}));
}

// Random operations against std::map, across a chain of copies (each copy continues with a new
// generation, as the store does), checking every retained copy stays as it was.
TEST(PersistentMapTest, RandomizedAgainstStdMap) {
  const char* env = std::getenv("SHOAL_TEST_SEED");
  const unsigned seed = env != nullptr ? std::stoul(env) : std::random_device{}();
  std::printf("seed %u (replay with SHOAL_TEST_SEED=%u)\n", seed, seed);
  std::mt19937 rng(seed);
  Map m;
  std::map<std::string, int> model;
  std::vector<std::pair<Map, std::map<std::string, int>>> versions;
  uint64_t gen = NewGeneration();
  for (int step = 0; step < 20000; ++step) {
    const std::string key = "k" + std::to_string(rng() % 2000);
    if (rng() % 3 == 0) {
      EXPECT_EQ(m.Erase(key, gen), model.erase(key) == 1) << "seed " << seed;
    } else {
      const int v = static_cast<int>(rng());
      EXPECT_EQ(m.Set(key, v, gen), model.count(key) == 0) << "seed " << seed;
      model[key] = v;
    }
    if (step % 1000 == 999) {
      versions.emplace_back(m, model);
      gen = NewGeneration();
      ASSERT_TRUE(m.CheckInvariants()) << "seed " << seed;
    }
  }
  EXPECT_EQ(Contents(m), model) << "seed " << seed;
  for (const auto& [copy, expected] : versions) {
    EXPECT_EQ(Contents(copy), expected) << "seed " << seed;
    EXPECT_TRUE(copy.CheckInvariants());
  }
  // AVL: height <= 1.44 log2(n + 2).
  EXPECT_LE(m.height(), 17);
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
  EXPECT_LE(m.height(), 24);  // 1.44 * log2(100000)
  for (int i = 0; i < 100000; i += 3) {
    std::snprintf(buf, sizeof buf, "%08d", i);
    m.Erase(buf, gen);
  }
  EXPECT_TRUE(m.CheckInvariants());
  EXPECT_EQ(m.size(), 66666u);
}

}  // namespace
}  // namespace shoal::manager::store
