#include "pki/renewal.h"

#include <cstdint>

#include "absl/random/distributions.h"

namespace shoal::pki {

absl::Time RenewalTime(absl::Time not_before, absl::Time not_after, absl::BitGenRef gen) {
  const absl::Duration validity = not_after - not_before;
  if (validity <= absl::ZeroDuration()) return not_before;
  // Nanoseconds fit easily: 20 years is about 6.3e17 ns, int64 holds 9.2e18.
  const int64_t ns = absl::ToInt64Nanoseconds(validity);
  const int64_t lo = ns / 10 * 5 + ns % 10 * 5 / 10;
  const int64_t hi = ns / 10 * 8 + ns % 10 * 8 / 10;
  const int64_t offset = absl::Uniform(absl::IntervalClosedClosed, gen, lo, hi);
  return not_before + absl::Nanoseconds(offset);
}

}  // namespace shoal::pki
