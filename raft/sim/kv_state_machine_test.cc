#include "raft/sim/kv_state_machine.h"

#include "gtest/gtest.h"

namespace shoal::raft::sim {
namespace {

KvCommand Cmd(KvCommand::Kind kind, uint64_t client, uint64_t seq, std::string key,
              std::string value = "", std::optional<std::string> expected = std::nullopt) {
  KvCommand c;
  c.kind = kind;
  c.client = client;
  c.seq = seq;
  c.key = std::move(key);
  c.value = std::move(value);
  c.expected = std::move(expected);
  return c;
}

TEST(KvCommandTest, EncodeDecodeRoundTrip) {
  for (const KvCommand& c :
       {Cmd(KvCommand::Kind::kPut, 7, 3, "k0", "v"), Cmd(KvCommand::Kind::kGet, 1, 1, "k"),
        Cmd(KvCommand::Kind::kCas, 2, 9, "k", "new", std::string("")),
        Cmd(KvCommand::Kind::kCas, 2, 10, "k", "new", std::nullopt)}) {
    const std::optional<KvCommand> d = KvCommand::Decode(c.Encode());
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->kind, c.kind);
    EXPECT_EQ(d->client, c.client);
    EXPECT_EQ(d->seq, c.seq);
    EXPECT_EQ(d->key, c.key);
    EXPECT_EQ(d->value, c.value);
    EXPECT_EQ(d->expected, c.expected);
  }
  EXPECT_FALSE(KvCommand::Decode("garbage").has_value());
  EXPECT_FALSE(KvCommand::Decode("").has_value());
}

TEST(KvStateMachineTest, RetriesApplyOnceAndReturnTheOriginalResult) {
  KvStateMachine kv;
  KvResult r;
  EXPECT_EQ(kv.Apply(Cmd(KvCommand::Kind::kPut, 1, 1, "k", "a"), &r),
            KvStateMachine::Outcome::kApplied);
  EXPECT_EQ(kv.Apply(Cmd(KvCommand::Kind::kCas, 2, 1, "k", "b", std::string("a")), &r),
            KvStateMachine::Outcome::kApplied);
  EXPECT_TRUE(r.cas_succeeded);
  EXPECT_EQ(kv.Apply(Cmd(KvCommand::Kind::kPut, 1, 2, "k", "c"), &r),
            KvStateMachine::Outcome::kApplied);
  // Client 2's CAS committed again (a retry): not re-applied, and still reports success.
  EXPECT_EQ(kv.Apply(Cmd(KvCommand::Kind::kCas, 2, 1, "k", "b", std::string("a")), &r),
            KvStateMachine::Outcome::kDuplicate);
  EXPECT_TRUE(r.cas_succeeded);
  EXPECT_EQ(kv.Get("k"), "c");
  // Client 1's first put again: older than its latest command, ignored.
  EXPECT_EQ(kv.Apply(Cmd(KvCommand::Kind::kPut, 1, 1, "k", "a"), &r),
            KvStateMachine::Outcome::kStale);
  EXPECT_EQ(kv.Get("k"), "c");
}

TEST(KvStateMachineTest, GetThroughTheLogRemembersWhatItRead) {
  KvStateMachine kv;
  KvResult r;
  kv.Apply(Cmd(KvCommand::Kind::kPut, 1, 1, "k", "a"), &r);
  kv.Apply(Cmd(KvCommand::Kind::kGet, 2, 1, "k"), &r);
  EXPECT_EQ(r.value, "a");
  kv.Apply(Cmd(KvCommand::Kind::kPut, 1, 2, "k", "b"), &r);
  EXPECT_EQ(kv.Apply(Cmd(KvCommand::Kind::kGet, 2, 1, "k"), &r),
            KvStateMachine::Outcome::kDuplicate);
  EXPECT_EQ(r.value, "a");
}

TEST(KvStateMachineTest, SnapshotRoundTrip) {
  KvStateMachine kv;
  KvResult r;
  kv.Apply(Cmd(KvCommand::Kind::kPut, 1, 1, "k1", "a"), &r);
  kv.Apply(Cmd(KvCommand::Kind::kPut, 2, 5, "k2", "b"), &r);
  kv.Apply(Cmd(KvCommand::Kind::kGet, 3, 2, "k3"), &r);
  KvStateMachine copy;
  ASSERT_TRUE(copy.Restore(kv.Serialize()).ok());
  EXPECT_EQ(copy.Serialize(), kv.Serialize());
  EXPECT_EQ(copy.Get("k2"), "b");
  EXPECT_EQ(copy.Apply(Cmd(KvCommand::Kind::kPut, 2, 5, "k2", "b"), &r),
            KvStateMachine::Outcome::kDuplicate);
  ASSERT_TRUE(copy.Restore("").ok());
  EXPECT_EQ(copy.size(), 0u);
  EXPECT_FALSE(copy.Restore("3\x1f"
                            "0")
                   .ok());
}

}  // namespace
}  // namespace shoal::raft::sim
