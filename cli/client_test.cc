#include "cli/client.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace shoal::cli {
namespace {

TEST(ResolveHostTest, FlagThenEnvironmentThenDefault) {
  ::unsetenv("SHOAL_HOST");
  EXPECT_EQ(ResolveHost(""), kDefaultHost);
  ::setenv("SHOAL_HOST", "unix:///env.sock", 1);
  EXPECT_EQ(ResolveHost(""), "unix:///env.sock");
  EXPECT_EQ(ResolveHost("unix:///flag.sock"), "unix:///flag.sock");
  ::unsetenv("SHOAL_HOST");
}

TEST(GrpcTargetTest, AcceptsUnixForms) {
  EXPECT_EQ(*GrpcTarget("unix:///run/shoal/shoal.sock"), "unix:///run/shoal/shoal.sock");
  EXPECT_EQ(*GrpcTarget("unix:/tmp/x.sock"), "unix:///tmp/x.sock");
  EXPECT_EQ(*GrpcTarget("/tmp/x.sock"), "unix:///tmp/x.sock");
}

TEST(GrpcTargetTest, RejectsOtherFormsWithTheAcceptedOne) {
  for (const char* bad : {"tcp://127.0.0.1:2375", "relative.sock", "unix://relative", ""}) {
    absl::StatusOr<std::string> t = GrpcTarget(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_NE(t.status().message().find("unix:///"), std::string::npos);
  }
}

TEST(DescribeRpcErrorTest, UnavailableSaysHowToFixIt) {
  const std::string msg =
      DescribeRpcError(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connect failed"), "unix:///x");
  EXPECT_NE(msg.find("cannot reach shoald at unix:///x"), std::string::npos);
  EXPECT_NE(msg.find("SHOAL_HOST"), std::string::npos);
}

}  // namespace
}  // namespace shoal::cli
