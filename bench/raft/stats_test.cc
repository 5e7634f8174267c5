#include "bench/raft/stats.h"

#include <vector>

#include "gtest/gtest.h"

namespace shoal::bench {
namespace {

TEST(PercentileTest, NearestRankOverTwentyTrialsMakesP99TheMaximum) {
  std::vector<double> v;
  for (int i = 1; i <= 20; ++i) v.push_back(i);
  EXPECT_EQ(Percentile(v, 0.50), 10);
  EXPECT_EQ(Percentile(v, 0.99), 20);
  EXPECT_EQ(Percentile(v, 0.05), 1);
}

TEST(PercentileTest, HundredSamplesP99IsTheNinetyNinth) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(Percentile(v, 0.99), 99);  // not 100: 0.99·100 must not round up
  EXPECT_EQ(Percentile(v, 0.50), 50);
  EXPECT_EQ(Percentile(v, 1.0), 100);
}

TEST(PercentileTest, EmptyAndSingle) {
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_EQ(Percentile({7}, 0.01), 7);
  EXPECT_EQ(Percentile({7}, 0.99), 7);
}

TEST(SummarizeTest, SortsAndSummarises) {
  Summary s = Summarize({5, 1, 4, 2, 3});
  EXPECT_EQ(s.count, 5);
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.p50, 3);
  EXPECT_EQ(s.p99, 5);
  EXPECT_EQ(s.max, 5);
}

TEST(SummarizeTest, NoSamplesIsAllZero) {
  Summary s = Summarize({});
  EXPECT_EQ(s.count, 0);
  EXPECT_EQ(s.p50, 0);
  EXPECT_EQ(s.max, 0);
}

}  // namespace
}  // namespace shoal::bench
