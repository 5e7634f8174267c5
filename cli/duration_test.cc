#include "cli/duration.h"

#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

TEST(ParseDurationTest, GoSyntaxAndDays) {
  EXPECT_EQ(*ParseDuration("2160h"), absl::Hours(2160));
  EXPECT_EQ(*ParseDuration("90d"), absl::Hours(2160));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("1d12h"), absl::Hours(36));
  EXPECT_EQ(*ParseDuration("45s"), absl::Seconds(45));
  EXPECT_EQ(*ParseDuration("1.5h"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration(".5s"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("10us"), absl::Microseconds(10));
  EXPECT_EQ(*ParseDuration("10\xc2\xb5s"), absl::Microseconds(10));
  EXPECT_EQ(*ParseDuration("7ns"), absl::Nanoseconds(7));
  EXPECT_EQ(*ParseDuration("0"), absl::ZeroDuration());
  EXPECT_EQ(*ParseDuration("0s"), absl::ZeroDuration());
}

TEST(ParseDurationTest, RejectsWithAnExample) {
  for (const char* bad : {"", "90", "h", "1x", "-1h", "1h-", "1.h.5", "abc", "1 h", ".s", "inf"}) {
    absl::StatusOr<absl::Duration> d = ParseDuration(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_NE(d.status().message().find("e.g. 90d"), std::string::npos) << d.status();
  }
}

TEST(HumanDurationTest, DockerApproximations) {
  EXPECT_EQ(HumanDuration(absl::Milliseconds(300)), "Less than a second");
  EXPECT_EQ(HumanDuration(absl::Seconds(1)), "1 second");
  EXPECT_EQ(HumanDuration(absl::Seconds(5)), "5 seconds");
  EXPECT_EQ(HumanDuration(absl::Seconds(90)), "About a minute");
  EXPECT_EQ(HumanDuration(absl::Minutes(45)), "45 minutes");
  EXPECT_EQ(HumanDuration(absl::Minutes(70)), "About an hour");
  EXPECT_EQ(HumanDuration(absl::Hours(5)), "5 hours");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 3)), "3 days");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 21)), "3 weeks");
  EXPECT_EQ(HumanDuration(absl::Hours(2160)), "3 months");
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 365 * 3)), "3 years");
}

TEST(GoDurationStringTest, AsGoPrintsThem) {
  EXPECT_EQ(GoDurationString(absl::ZeroDuration()), "0s");
  EXPECT_EQ(GoDurationString(absl::Nanoseconds(4)), "4ns");
  EXPECT_EQ(GoDurationString(absl::Microseconds(1500)), "1.5ms");
  EXPECT_EQ(GoDurationString(absl::Nanoseconds(2500)), "2.5\xc2\xb5s");
  EXPECT_EQ(GoDurationString(absl::Milliseconds(500)), "500ms");
  EXPECT_EQ(GoDurationString(absl::Seconds(5)), "5s");
  EXPECT_EQ(GoDurationString(absl::Milliseconds(1500)), "1.5s");
  EXPECT_EQ(GoDurationString(absl::Seconds(90)), "1m30s");
  EXPECT_EQ(GoDurationString(absl::Minutes(5)), "5m0s");
  EXPECT_EQ(GoDurationString(absl::Hours(1)), "1h0m0s");
  EXPECT_EQ(GoDurationString(absl::Hours(26) + absl::Seconds(3)), "26h0m3s");
  EXPECT_EQ(GoDurationString(-absl::Seconds(2)), "-2s");
}

TEST(DurationProtoTest, RoundTrips) {
  const absl::Duration d = absl::Seconds(5) + absl::Nanoseconds(7);
  const google::protobuf::Duration p = ToProto(d);
  EXPECT_EQ(p.seconds(), 5);
  EXPECT_EQ(p.nanos(), 7);
  EXPECT_EQ(FromProto(p), d);
}

}  // namespace
}  // namespace shoal::cli
