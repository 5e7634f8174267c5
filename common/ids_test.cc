#include "common/ids.h"

#include <set>

#include "gtest/gtest.h"

namespace shoal {
namespace {

TEST(NewIdTest, HasDockerShape) {
  for (int i = 0; i < 100; ++i) {
    const std::string id = NewId();
    ASSERT_EQ(id.size(), kIdLength);
    for (char c : id) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')) << id;
  }
}

TEST(NewIdTest, DoesNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(NewId()).second);
}

}  // namespace
}  // namespace shoal
