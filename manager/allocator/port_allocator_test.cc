#include "manager/allocator/port_allocator.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shoal::manager {
namespace {

using Ports = google::protobuf::RepeatedPtrField<api::PortConfig>;

api::PortConfig Port(uint32_t target, uint32_t published,
                     api::PortConfig::PublishMode mode = api::PortConfig::INGRESS,
                     api::PortConfig::Protocol protocol = api::PortConfig::TCP) {
  api::PortConfig p;
  p.set_target_port(target);
  p.set_published_port(published);
  p.set_publish_mode(mode);
  p.set_protocol(protocol);
  return p;
}

api::EndpointSpec Spec(const std::vector<api::PortConfig>& ports) {
  api::EndpointSpec s;
  for (const api::PortConfig& p : ports) *s.add_ports() = p;
  return s;
}

Ports ToRepeated(const std::vector<api::PortConfig>& v) {
  Ports r;
  for (const api::PortConfig& p : v) *r.Add() = p;
  return r;
}

std::string NameOf(const std::string& id) { return id == "a" ? "web" : ""; }

std::vector<uint32_t> Published(const std::vector<api::PortConfig>& v) {
  std::vector<uint32_t> out;
  for (const api::PortConfig& p : v) out.push_back(p.published_port());
  return out;
}

TEST(PortAllocator, ExplicitDynamicAndHostPorts) {
  PortAllocator pa;
  auto got = pa.Allocate(
      "a",
      Spec({Port(80, 0), Port(443, 8443),
            Port(53, 0, api::PortConfig::INGRESS, api::PortConfig::UDP),
            Port(9000, 9000, api::PortConfig::HOST), Port(9001, 0, api::PortConfig::HOST)}),
      {}, NameOf);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Published(*got), (std::vector<uint32_t>{30000, 8443, 30000, 9000, 0}));
  EXPECT_EQ(pa.Owner(api::PortConfig::TCP, 30000), "a");
  EXPECT_EQ(pa.Owner(api::PortConfig::UDP, 30000), "a");
  EXPECT_EQ(pa.Owner(api::PortConfig::TCP, 8443), "a");
  EXPECT_EQ(pa.Owner(api::PortConfig::TCP, 9000), "");  // HOST ports are not cluster-wide.
  EXPECT_EQ(pa.size(), 3u);
}

TEST(PortAllocator, ConflictNamesTheOtherServiceAndChangesNothing) {
  PortAllocator pa;
  ASSERT_TRUE(pa.Allocate("a", Spec({Port(80, 8080)}), {}, NameOf).ok());
  auto b1 = pa.Allocate("b", Spec({Port(81, 0)}), {}, NameOf);
  ASSERT_TRUE(b1.ok());
  // b now asks for 8080 too: refused, and b keeps what it held.
  auto got = pa.Allocate("b", Spec({Port(80, 8080)}), ToRepeated(*b1), NameOf);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(got.status().message(),
            "port 8080/tcp is already published by service web (ID a); publish another port or "
            "remove it from that service");
  EXPECT_EQ(pa.Owner(api::PortConfig::TCP, 8080), "a");
  EXPECT_EQ(pa.Owner(api::PortConfig::TCP, 30000), "b");
  // The same number over UDP is another port.
  EXPECT_TRUE(pa.Allocate("c",
                          Spec({Port(80, 8080, api::PortConfig::INGRESS, api::PortConfig::UDP)}),
                          {}, NameOf)
                  .ok());
}

TEST(PortAllocator, DynamicPortsAreUniqueAndSurviveUpdates) {
  PortAllocator pa;
  auto a = pa.Allocate("a", Spec({Port(80, 0)}), {}, NameOf);
  auto b = pa.Allocate("b", Spec({Port(80, 0)}), {}, NameOf);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Published(*a), (std::vector<uint32_t>{30000}));
  EXPECT_EQ(Published(*b), (std::vector<uint32_t>{30001}));
  // a adds a port before its first: the existing one keeps 30000.
  auto a2 = pa.Allocate("a", Spec({Port(22, 0), Port(80, 0)}), ToRepeated(*a), NameOf);
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(Published(*a2), (std::vector<uint32_t>{30002, 30000}));
  // a drops port 80: 30000 is free again and goes to the next taker.
  auto a3 = pa.Allocate("a", Spec({Port(22, 0)}), ToRepeated(*a2), NameOf);
  ASSERT_TRUE(a3.ok());
  EXPECT_EQ(Published(*a3), (std::vector<uint32_t>{30002}));
  EXPECT_EQ(pa.Owner(api::PortConfig::TCP, 30000), "");
  auto c = pa.Allocate("c", Spec({Port(1, 0)}), {}, NameOf);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(Published(*c), (std::vector<uint32_t>{30000}));
}

TEST(PortAllocator, ExplicitPortsInTheRangeAreAvoidedByDynamicOnes) {
  PortAllocator pa;
  auto a = pa.Allocate("a", Spec({Port(80, 0), Port(81, 30000)}), {}, NameOf);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(Published(*a), (std::vector<uint32_t>{30001, 30000}));
}

TEST(PortAllocator, InvalidSpecs) {
  PortAllocator pa;
  auto twice = pa.Allocate("a", Spec({Port(80, 8080), Port(81, 8080)}), {}, NameOf);
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(twice.status().message(),
            "port 8080/tcp is published twice by the service; publish each port once");
  auto range = pa.Allocate("a", Spec({Port(80, 70000)}), {}, NameOf);
  EXPECT_EQ(range.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pa.size(), 0u);
}

TEST(PortAllocator, RangeExhausted) {
  PortAllocator pa;
  const int range = PortAllocator::kDynamicLast - PortAllocator::kDynamicFirst + 1;
  std::vector<api::PortConfig> many;
  for (int i = 0; i < range; ++i) many.push_back(Port(1000 + i, 0));
  auto all = pa.Allocate("a", Spec(many), {}, NameOf);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->back().published_port(), PortAllocator::kDynamicLast);
  auto more = pa.Allocate("b", Spec({Port(80, 0)}), {}, NameOf);
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(more.status().message(),
            "no free port left in the dynamic range 30000-32767 to publish target port 80/tcp; "
            "remove published ports from other services or publish an explicit port");
  pa.Release("a");
  EXPECT_EQ(pa.size(), 0u);
  EXPECT_TRUE(pa.Allocate("b", Spec({Port(80, 0)}), {}, NameOf).ok());
}

TEST(PortAllocator, RestoreReportsConflicts) {
  PortAllocator pa;
  EXPECT_TRUE(pa.Restore(
      "a", ToRepeated({Port(80, 30000), Port(81, 8080), Port(82, 9000, api::PortConfig::HOST)})));
  EXPECT_FALSE(pa.Restore("b", ToRepeated({Port(80, 8080), Port(81, 30005)})));
  EXPECT_EQ(pa.Owner(api::PortConfig::TCP, 8080), "a");
  EXPECT_EQ(pa.Owner(api::PortConfig::TCP, 30005), "b");
  EXPECT_EQ(pa.size(), 3u);
  // b's reallocation keeps 30005 for its dynamic port... only if the spec asked for a dynamic one
  // with that target; its explicit 8080 still conflicts.
  auto b =
      pa.Allocate("b", Spec({Port(81, 0)}), ToRepeated({Port(80, 8080), Port(81, 30005)}), NameOf);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(Published(*b), (std::vector<uint32_t>{30005}));
}

}  // namespace
}  // namespace shoal::manager
