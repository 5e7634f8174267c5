#include "cli/output.h"

#include <sstream>

#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

TEST(TableTest, PadsColumnsLikeDocker) {
  Table t({"ID", "HOSTNAME", "STATUS"});
  t.AddRow({"abc", "node-1", "Ready"});
  t.AddRow({"abcdef", "n", "Down"});
  std::ostringstream out;
  t.Print(out);
  EXPECT_EQ(out.str(),
            "ID       HOSTNAME   STATUS\n"
            "abc      node-1     Ready\n"
            "abcdef   n          Down\n");
}

TEST(TableTest, NoTrailingBlanksWhenLastCellIsEmpty) {
  Table t({"A", "B"});
  t.AddRow({"x", ""});
  std::ostringstream out;
  t.Print(out);
  EXPECT_EQ(out.str(), "A   B\nx\n");
}

TEST(FormatTest, AcceptsTableAndJsonOnly) {
  Format f;
  EXPECT_TRUE(ParseFormat("", &f));
  EXPECT_EQ(f, Format::kTable);
  EXPECT_TRUE(ParseFormat("json", &f));
  EXPECT_EQ(f, Format::kJson);
  EXPECT_FALSE(ParseFormat("yaml", &f));
}

TEST(JsonLineTest, OneCompactObjectPerLine) {
  std::ostringstream out;
  PrintJsonLine(out, {{"ID", "x"}, {"Replicas", "1/1"}});
  EXPECT_EQ(out.str(), "{\"ID\":\"x\",\"Replicas\":\"1/1\"}\n");
}

}  // namespace
}  // namespace shoal::cli
