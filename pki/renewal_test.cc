// RenewalTime: uniform within [50 %, 80 %] of the validity period.
#include "pki/renewal.h"

#include <cstdint>
#include <random>

#include "absl/random/random.h"
#include "gtest/gtest.h"

namespace shoal::pki {
namespace {

TEST(RenewalTimeTest, UniformBetweenHalfAndFourFifths) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const absl::Time nb = absl::FromUnixSeconds(1'900'000'000);
  const absl::Time na = nb + absl::Hours(24 * 90);
  const absl::Duration v = na - nb;
  constexpr int kSamples = 20000;
  double sum = 0, lo = 1, hi = 0;
  int buckets[3] = {0, 0, 0};  // [50,60) [60,70) [70,80]
  for (int i = 0; i < kSamples; ++i) {
    const absl::Time t = RenewalTime(nb, na, rng);
    ASSERT_GE(t, nb + v * 0.5);
    ASSERT_LE(t, nb + v * 0.8);
    const double f = absl::FDivDuration(t - nb, v);
    sum += f;
    lo = std::min(lo, f);
    hi = std::max(hi, f);
    buckets[std::min(2, static_cast<int>((f - 0.5) / 0.1))]++;
  }
  // Uniform: mean 0.65 (sd of the mean ~0.0006), the range is covered, thirds are balanced.
  EXPECT_NEAR(sum / kSamples, 0.65, 0.005);
  EXPECT_LT(lo, 0.502);
  EXPECT_GT(hi, 0.798);
  for (int b : buckets) EXPECT_NEAR(b, kSamples / 3.0, kSamples * 0.03);
}

TEST(RenewalTimeTest, WorksWithAbslBitGenAndShortCertificates) {
  absl::BitGen gen;
  const absl::Time nb = absl::FromUnixSeconds(1'900'000'000);
  const absl::Time t = RenewalTime(nb, nb + absl::Hours(1), gen);
  EXPECT_GE(t, nb + absl::Minutes(30));
  EXPECT_LE(t, nb + absl::Minutes(48));
  // Expired or nonsensical validity: renew at once.
  EXPECT_EQ(RenewalTime(nb, nb, gen), nb);
  EXPECT_EQ(RenewalTime(nb, nb - absl::Hours(1), gen), nb);
}

}  // namespace
}  // namespace shoal::pki
