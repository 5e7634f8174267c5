// SimRng: the one source of randomness of a simulation run.
//
// Determinism is the whole point of the simulation: a failing seed must replay bit for bit. So
// every random decision (message delays, drops, crashes, client choices, election-timeout seeds)
// is drawn from a single SimRng seeded from the run's seed, in the order events happen. The
// generator (xoshiro256**, seeded through splitmix64) and the helpers below are written out here
// rather than taken from <random>, whose distributions differ between standard libraries.
//
// Thread-safety: none; a simulation is single-threaded.
#ifndef SHOAL_RAFT_SIM_RNG_H_
#define SHOAL_RAFT_SIM_RNG_H_

#include <cstdint>

namespace shoal::raft::sim {

class SimRng {
 public:
  explicit SimRng(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& s : s_) s = SplitMix64(x);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n). REQUIRES: n > 0. The modulo bias is negligible for the small n used here.
  uint64_t Uniform(uint64_t n) { return Next() % n; }

  // Uniform in [lo, hi]. REQUIRES: lo <= hi.
  int64_t Range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Uniform(static_cast<uint64_t>(hi - lo) + 1));
  }

  // Uniform in [0, 1).
  double UniformDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  bool Bernoulli(double p) { return UniformDouble() < p; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  uint64_t s_[4];
};

}  // namespace shoal::raft::sim

#endif  // SHOAL_RAFT_SIM_RNG_H_
