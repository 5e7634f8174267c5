// SHOAL_REQUIRE: a test that needs something this machine may lack (root, a Debian package)
// skips without it, naming what is missing — except in CI (CI=true), where every test must run
// (tools/setup installs the packages, CI runs as root): there the test fails instead, so that a
// missing prerequisite can never pass CI as a silent skip.
#ifndef SHOAL_TESTS_HARNESS_PREREQUISITE_H_
#define SHOAL_TESTS_HARNESS_PREREQUISITE_H_

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"

// Not in shoal::testing: including this must not hide ::testing (gmock matchers) from code
// inside namespace shoal.
namespace shoal_prerequisite {

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::strcmp(ci, "true") == 0;
}

}  // namespace shoal_prerequisite

// In a void function (a test body or SetUp): returns from it when `condition` does not hold.
#define SHOAL_REQUIRE(condition, what)                                     \
  do {                                                                     \
    if (!(condition)) {                                                    \
      if (::shoal_prerequisite::InCi()) {                                  \
        FAIL() << "missing prerequisite in CI: " << what                   \
               << " (tools/setup installs the packages; CI runs as root)"; \
      } else {                                                             \
        GTEST_SKIP() << what;                                              \
      }                                                                    \
    }                                                                      \
  } while (0)

#endif  // SHOAL_TESTS_HARNESS_PREREQUISITE_H_
