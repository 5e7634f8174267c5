#include "common/clock.h"

#include <cassert>

namespace shoal {
namespace {

class WallClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void SleepUntil(absl::Time deadline) override {
    const absl::Duration left = deadline - absl::Now();
    if (left > absl::ZeroDuration()) absl::SleepFor(left);
  }
};

}  // namespace

Clock& RealClock() {
  static WallClock* clock = new WallClock();
  return *clock;
}

absl::Time ManualClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void ManualClock::SleepUntil(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto reached = [this, deadline]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return now_ >= deadline; };
  mu_.Await(absl::Condition(&reached));
}

void ManualClock::Advance(absl::Duration d) {
  assert(d >= absl::ZeroDuration());
  absl::MutexLock lock(&mu_);
  now_ += d;
}

void ManualClock::Set(absl::Time t) {
  absl::MutexLock lock(&mu_);
  assert(t >= now_);
  now_ = t;
}

}  // namespace shoal
