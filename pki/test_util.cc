#include "pki/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "pki/keys.h"

namespace shoal::pki::testing {

absl::Time TestNow() {
  return absl::FromCivil(absl::CivilSecond(2030, 1, 1, 0, 0, 0), absl::UTCTimeZone());
}

IssuedNode IssueNode(const RootCA& ca, const std::string& node_id, Role role,
                     const std::string& cluster_id, absl::Duration validity, absl::Time now) {
  auto kc = GenerateKeyAndCsr();
  EXPECT_TRUE(kc.ok()) << kc.status();
  if (!kc.ok()) return {};
  auto cert = ca.IssueNodeCertificate(kc->csr_pem, node_id, role, cluster_id, validity, now);
  EXPECT_TRUE(cert.ok()) << cert.status();
  if (!cert.ok()) return {};
  return {*cert, kc->key_pem};
}

RootCA NewRootCA(absl::Time now) {
  auto ca = RootCA::Create(now);
  if (!ca.ok()) {
    ADD_FAILURE() << ca.status();
    abort();
  }
  return *std::move(ca);
}

std::string RunOpenSsl(const std::string& args, const std::string& pem, bool* ok) {
  *ok = false;
  if (access("/usr/bin/openssl", X_OK) != 0) return "";
  const char* tmpdir = getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(tmpdir ? tmpdir : "/tmp", "/openssl-in-XXXXXX");
  const int fd = mkstemp(path.data());
  if (fd < 0) return "";
  close(fd);
  std::ofstream(path) << pem;
  const std::string quoted = absl::StrCat("'", path, "'");
  const std::string cmd = absl::StrContains(args, "%IN%")
                              ? absl::StrCat("/usr/bin/openssl ",
                                             absl::StrReplaceAll(args, {{"%IN%", quoted}}), " 2>&1")
                              : absl::StrCat("/usr/bin/openssl ", args, " -in ", quoted, " 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  unlink(path.c_str());
  *ok = WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
  return out;
}

}  // namespace shoal::pki::testing
