#include "raft/sim/network.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shoal::raft::sim {
namespace {

TEST(EventQueueTest, RunsByTimeThenSchedulingOrder) {
  EventQueue q;
  std::string order;
  q.At(20, [&] { order += "c"; });
  q.At(10, [&] { order += "a"; });
  q.At(20, [&] { order += "d"; });
  q.At(10, [&] { order += "b"; });
  while (q.RunNext()) {
  }
  EXPECT_EQ(order, "abcd");
  EXPECT_EQ(q.now(), 20);
}

TEST(EventQueueTest, ActionsMayScheduleMore) {
  EventQueue q;
  std::vector<SimTime> times;
  std::function<void()> again = [&] {
    times.push_back(q.now());
    if (times.size() < 3) q.After(5, again);
  };
  q.At(1, again);
  while (q.RunNext()) {
  }
  EXPECT_EQ(times, (std::vector<SimTime>{1, 6, 11}));
}

// Sends `n` messages 1 -> 2 and returns the order in which they arrived.
std::vector<int> Deliveries(uint64_t seed, const NetworkOptions& options, int n,
                            const std::function<void(Network&)>& setup = nullptr) {
  EventQueue q;
  SimRng rng(seed);
  Network net(&q, &rng, options);
  if (setup) setup(net);
  std::vector<int> got;
  for (int i = 0; i < n; ++i) net.Send(1, 2, [&got, i] { got.push_back(i); });
  while (q.RunNext()) {
  }
  return got;
}

TEST(NetworkTest, SameSeedSameFate) {
  NetworkOptions o;
  o.drop_probability = 0.2;
  o.duplicate_probability = 0.2;
  EXPECT_EQ(Deliveries(5, o, 200), Deliveries(5, o, 200));
  EXPECT_NE(Deliveries(5, o, 200), Deliveries(6, o, 200));
}

TEST(NetworkTest, DelaysReorderDropsAndDuplicates) {
  NetworkOptions o;
  o.drop_probability = 0.1;
  o.duplicate_probability = 0.1;
  const std::vector<int> got = Deliveries(11, o, 2000);
  std::vector<int> count(2000, 0);
  bool reordered = false;
  for (size_t i = 0; i < got.size(); ++i) {
    ++count[got[i]];
    if (i > 0 && got[i] < got[i - 1]) reordered = true;
  }
  int lost = 0, dup = 0;
  for (int c : count) {
    lost += c == 0;
    dup += c == 2;
    EXPECT_LE(c, 2);
  }
  EXPECT_TRUE(reordered);
  EXPECT_GT(lost, 100);
  EXPECT_LT(lost, 300);
  EXPECT_GT(dup, 100);
  EXPECT_LT(dup, 300);
}

TEST(NetworkTest, PerfectNetworkDeliversEverythingOnce) {
  NetworkOptions o;
  o.drop_probability = 0;
  o.duplicate_probability = 0;
  EXPECT_EQ(Deliveries(3, o, 500).size(), 500u);
}

TEST(NetworkTest, PartitionsAndAsymmetricCuts) {
  EventQueue q;
  SimRng rng(1);
  NetworkOptions o;
  o.drop_probability = 0;
  o.duplicate_probability = 0;
  Network net(&q, &rng, o);
  net.Partition({{1, 2}, {3}});
  EXPECT_TRUE(net.LinkUp(1, 2));
  EXPECT_FALSE(net.LinkUp(1, 3));
  EXPECT_FALSE(net.LinkUp(3, 2));
  EXPECT_TRUE(net.LinkUp(1, 99));  // Endpoints in no group keep their links.
  net.Heal();
  net.CutOneWay(1, 2);
  EXPECT_FALSE(net.LinkUp(1, 2));
  EXPECT_TRUE(net.LinkUp(2, 1));

  int arrived = 0, lost = 0;
  net.Send(
      1, 2, [&] { ++arrived; }, [&](bool) { ++lost; });
  net.Send(
      2, 1, [&] { ++arrived; }, [&](bool) { ++lost; });
  EXPECT_EQ(lost, 1);
  // A message in flight when its link is cut is lost on arrival.
  net.Heal();
  net.Send(1, 2, [&] { ++arrived; });
  net.CutOneWay(1, 2);
  while (q.RunNext()) {
  }
  EXPECT_EQ(arrived, 1);
  EXPECT_EQ(net.stats().blocked, 2u);
}

}  // namespace
}  // namespace shoal::raft::sim
