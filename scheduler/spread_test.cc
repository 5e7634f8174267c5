#include "scheduler/spread.h"

#include <vector>

#include "gtest/gtest.h"
#include "scheduler/test_util.h"

namespace shoal::scheduler {
namespace {

using V = std::vector<int64_t>;

TEST(EvenSplit, EmptyGroupsShareEvenlyExtrasToTheFirst) {
  EXPECT_EQ(EvenSplit(V{0, 0, 0}, 9), (V{3, 3, 3}));
  EXPECT_EQ(EvenSplit(V{0, 0, 0}, 10), (V{4, 3, 3}));
  EXPECT_EQ(EvenSplit(V{0, 0, 0}, 2), (V{1, 1, 0}));
  EXPECT_EQ(EvenSplit(V{0, 0, 0}, 0), (V{0, 0, 0}));
  EXPECT_EQ(EvenSplit(V{}, 5), V{});
}

TEST(EvenSplit, FillsTheEmptiestFirst) {
  EXPECT_EQ(EvenSplit(V{4, 0, 0}, 4), (V{0, 2, 2}));
  EXPECT_EQ(EvenSplit(V{4, 0, 0}, 2), (V{0, 1, 1}));
  EXPECT_EQ(EvenSplit(V{4, 0, 0}, 9), (V{1, 4, 4}));  // 13 in all: 5, 4, 4.
  EXPECT_EQ(EvenSplit(V{4, 1, 0}, 1), (V{0, 0, 1}));
  EXPECT_EQ(EvenSplit(V{2, 2, 5}, 3), (V{2, 1, 0}));
  EXPECT_EQ(EvenSplit(V{10, 0}, 3), (V{0, 3}));
}

TEST(EvenSplit, SharesAlwaysSumToN) {
  const V existing = {7, 0, 3, 3, 12, 1};
  for (int64_t n = 0; n < 60; ++n) {
    V s = EvenSplit(existing, n);
    int64_t sum = 0, top = 0, bottom = INT64_MAX;
    for (size_t i = 0; i < s.size(); ++i) {
      ASSERT_GE(s[i], 0);
      sum += s[i];
      if (s[i] > 0) top = std::max(top, existing[i] + s[i]);
      bottom = std::min(bottom, existing[i] + s[i]);
    }
    EXPECT_EQ(sum, n);
    // Nobody was raised more than one above the lowest group.
    if (n > 0) {
      EXPECT_LE(top - bottom, 1) << "n=" << n;
    }
  }
}

TEST(SpreadKey, ParsesLabelDescriptors) {
  auto k = SpreadKey::Parse("node.labels.zone");
  ASSERT_TRUE(k.has_value());
  EXPECT_FALSE(k->engine);
  EXPECT_EQ(k->label, "zone");
  k = SpreadKey::Parse("Engine.Labels.Rack");
  ASSERT_TRUE(k.has_value());
  EXPECT_TRUE(k->engine);
  EXPECT_EQ(k->label, "Rack");
  EXPECT_FALSE(SpreadKey::Parse("node.labels.").has_value());
  EXPECT_FALSE(SpreadKey::Parse("node.hostname").has_value());
}

TEST(SpreadKey, ValueOfMissingLabelIsEmpty) {
  api::Node n = testing::NodeBuilder("n").Label("zone", "a").EngineLabel("rack", "r1").Build();
  EXPECT_EQ(SpreadKey::Parse("node.labels.zone")->ValueOf(n), "a");
  EXPECT_EQ(SpreadKey::Parse("engine.labels.rack")->ValueOf(n), "r1");
  EXPECT_EQ(SpreadKey::Parse("node.labels.rack")->ValueOf(n), "");
}

}  // namespace
}  // namespace shoal::scheduler
