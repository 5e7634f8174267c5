// Clock: the one way Shoal code reads time or waits, so that time can be injected.
//
// Components that have timeouts (Raft ticks, heartbeats, restart delays, update monitors) take a
// Clock&. Production code uses RealClock(); tests and simulations use ManualClock, which only
// moves when told to and so makes timing deterministic.
//
// Thread-safety: every method may be called from any thread.
#ifndef SHOAL_COMMON_CLOCK_H_
#define SHOAL_COMMON_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace shoal {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Blocks until Now() >= deadline.
  virtual void SleepUntil(absl::Time deadline) = 0;
};

// The process-wide wall clock.
Clock& RealClock();

// A clock that stands still until Advance() or Set() moves it. SleepUntil() blocks until another
// thread advances the clock past the deadline.
class ManualClock : public Clock {
 public:
  explicit ManualClock(absl::Time start = absl::UnixEpoch() + absl::Hours(24 * 365 * 50))
      : now_(start) {}

  absl::Time Now() const override;
  void SleepUntil(absl::Time deadline) override;

  void Advance(absl::Duration d);
  // REQUIRES: t >= Now(); time never runs backwards.
  void Set(absl::Time t);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal

#endif  // SHOAL_COMMON_CLOCK_H_
