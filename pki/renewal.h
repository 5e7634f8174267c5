// renewal: when a node renews its certificate.
//
// Each node renews at a random point between 50 % and 80 % of its certificate's validity, so
// that a swarm whose certificates were all issued together (after `swarm init`, or after a root
// rotation) does not send every CSR to the CA at once, and a node that fails a renewal still has
// at least a fifth of the validity left to retry.
//
// Thread-safety: a pure function; the caller owns the generator.
#ifndef SHOAL_PKI_RENEWAL_H_
#define SHOAL_PKI_RENEWAL_H_

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"

namespace shoal::pki {

// A time uniformly distributed in [not_before + 0.5 * v, not_before + 0.8 * v] where
// v = not_after - not_before (at nanosecond resolution). A certificate with v <= 0 renews at
// not_before, i.e. at once. Accepts absl::BitGen, or any seeded URBG for replayable tests.
absl::Time RenewalTime(absl::Time not_before, absl::Time not_after, absl::BitGenRef gen);

}  // namespace shoal::pki

#endif  // SHOAL_PKI_RENEWAL_H_
