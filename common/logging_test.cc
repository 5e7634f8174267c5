#include "common/logging.h"

#include "gtest/gtest.h"

namespace shoal {
namespace {

TEST(JsonEscapeTest, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonEscape("plain"), "plain");
  EXPECT_EQ(JsonEscape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(JsonEscape("line\nnext\t"), "line\\nnext\\t");
  EXPECT_EQ(JsonEscape(std::string("\x01", 1)), "\\u0001");
}

TEST(InitLoggingTest, RejectsUnknownLevelAndFormat) {
  absl::Status s = InitLogging("loud", "text");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("debug, info, warn or error"), std::string::npos);
  s = InitLogging("info", "xml");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("text or json"), std::string::npos);
}

TEST(InitLoggingTest, AcceptsEveryDocumentedCombination) {
  for (const char* level : {"debug", "info", "warn", "error"}) {
    for (const char* format : {"text", "json"}) {
      EXPECT_TRUE(InitLogging(level, format).ok()) << level << " " << format;
    }
  }
}

}  // namespace
}  // namespace shoal
