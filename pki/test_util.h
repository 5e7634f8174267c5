// Test helpers for pki/: issue node certificates in one call, and run the openssl CLI.
#ifndef SHOAL_PKI_TEST_UTIL_H_
#define SHOAL_PKI_TEST_UTIL_H_

#include <string>

#include "absl/time/time.h"
#include "pki/identity.h"
#include "pki/root_ca.h"

namespace shoal::pki::testing {

// A fixed "now" so certificates and expectations are reproducible: 2030-01-01T00:00:00Z.
absl::Time TestNow();

struct IssuedNode {
  std::string cert_pem;  // certificate (plus the CA's issued chain, if any)
  std::string key_pem;
};

// A fresh key, a CSR, and a certificate for it from `ca`. Fails the test on error.
IssuedNode IssueNode(const RootCA& ca, const std::string& node_id, Role role,
                     const std::string& cluster_id,
                     absl::Duration validity = RootCA::kDefaultNodeValidity,
                     absl::Time now = TestNow());

// A new root CA created at `now`. Fails the test on error.
RootCA NewRootCA(absl::Time now = TestNow());

// Runs `/usr/bin/openssl <args>` on a temp file holding `pem` (substituted for %IN% in args, or
// appended as `-in FILE`); returns stdout+stderr.
// Sets *ok to whether it exited 0. Returns "" and *ok=false if openssl is not installed.
std::string RunOpenSsl(const std::string& args, const std::string& pem, bool* ok);

}  // namespace shoal::pki::testing

#endif  // SHOAL_PKI_TEST_UTIL_H_
