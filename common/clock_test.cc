#include "common/clock.h"

#include <thread>

#include "gtest/gtest.h"

namespace shoal {
namespace {

TEST(ManualClockTest, StandsStillUntilAdvanced) {
  ManualClock clock;
  const absl::Time start = clock.Now();
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(clock.Now() - start, absl::Seconds(5));
}

TEST(ManualClockTest, SleepUntilWakesWhenAnotherThreadAdvances) {
  ManualClock clock;
  const absl::Time deadline = clock.Now() + absl::Milliseconds(100);
  std::thread sleeper([&] { clock.SleepUntil(deadline); });
  clock.Advance(absl::Milliseconds(50));
  clock.Advance(absl::Milliseconds(50));
  sleeper.join();  // Would hang (and time out the test) if the wake-up were lost.
  EXPECT_GE(clock.Now(), deadline);
}

TEST(ManualClockTest, SleepUntilPastDeadlineReturnsAtOnce) {
  ManualClock clock;
  clock.SleepUntil(clock.Now() - absl::Seconds(1));
  SUCCEED();
}

TEST(RealClockTest, MovesForward) {
  const absl::Time a = RealClock().Now();
  RealClock().SleepUntil(a + absl::Milliseconds(2));
  EXPECT_GE(RealClock().Now() - a, absl::Milliseconds(2));
}

}  // namespace
}  // namespace shoal
