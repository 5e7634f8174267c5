#include "manager/encryption/key_ring_encrypter.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::manager::encryption {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<KeyRingEncrypter> MustCreate(std::vector<DataKey> keys, uint32_t current) {
  auto ring = KeyRingEncrypter::Create(std::move(keys), current);
  EXPECT_TRUE(ring.ok()) << ring.status();
  return ring.ok() ? *std::move(ring) : nullptr;
}

uint32_t SealedKeyId(const std::string& sealed) {
  return (uint32_t{static_cast<unsigned char>(sealed[0])} << 24) |
         (uint32_t{static_cast<unsigned char>(sealed[1])} << 16) |
         (uint32_t{static_cast<unsigned char>(sealed[2])} << 8) |
         uint32_t{static_cast<unsigned char>(sealed[3])};
}

TEST(KeyRingEncrypterTest, RoundTripAndLayout) {
  auto ring = MustCreate({NewDataKey(7)}, 7);
  auto sealed = ring->Seal("hello raft", "entry/42");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->size(), KeyRingEncrypter::kOverhead + 10);
  EXPECT_EQ(std::string(sealed->data(), 4), std::string("\0\0\0\x07", 4));  // big-endian ID
  auto opened = ring->Open(*sealed, "entry/42");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "hello raft");
}

TEST(KeyRingEncrypterTest, EmptyPlaintext) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  auto sealed = ring->Seal("", "");
  ASSERT_TRUE(sealed.ok());
  auto opened = ring->Open(*sealed, "");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "");
}

TEST(KeyRingEncrypterTest, MarkerPlaintextNeverAppearsInSealedBytes) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  const std::string marker = "MARKER-PLAINTEXT-d41d8cd98f00b204";
  const std::string record = absl::StrCat("prefix ", marker, " ", marker, " suffix");
  for (int i = 0; i < 20; ++i) {
    auto sealed = ring->Seal(record, "snapshot");
    ASSERT_TRUE(sealed.ok());
    EXPECT_FALSE(absl::StrContains(*sealed, marker));
    EXPECT_FALSE(absl::StrContains(*sealed, "prefix"));
  }
}

TEST(KeyRingEncrypterTest, AssociatedDataIsBound) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  auto sealed = ring->Seal("value", "entry/1");
  ASSERT_TRUE(sealed.ok());
  auto opened = ring->Open(*sealed, "entry/2");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();
}

TEST(KeyRingEncrypterTest, RotationKeepsOldRecordsReadable) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  auto old_record = ring->Seal("sealed under key 1", "e1");
  ASSERT_TRUE(old_record.ok());
  EXPECT_EQ(SealedKeyId(*old_record), 1u);

  ASSERT_TRUE(ring->AddKeyAndMakeCurrent(NewDataKey(2)).ok());
  EXPECT_EQ(ring->current_id(), 2u);
  EXPECT_THAT(ring->key_ids(), ElementsAre(1u, 2u));
  auto new_record = ring->Seal("sealed under key 2", "e2");
  ASSERT_TRUE(new_record.ok());
  EXPECT_EQ(SealedKeyId(*new_record), 2u);

  auto a = ring->Open(*old_record, "e1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, "sealed under key 1");
  auto b = ring->Open(*new_record, "e2");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, "sealed under key 2");
}

TEST(KeyRingEncrypterTest, DroppedKeyIsDataLossNamingTheId) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  auto old_record = ring->Seal("old", "e1");
  ASSERT_TRUE(old_record.ok());
  ASSERT_TRUE(ring->AddKeyAndMakeCurrent(NewDataKey(2)).ok());
  ASSERT_TRUE(ring->DropKey(1).ok());
  EXPECT_THAT(ring->key_ids(), ElementsAre(2u));
  auto opened = ring->Open(*old_record, "e1");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("data-encryption key 1,"));
}

TEST(KeyRingEncrypterTest, CannotDropTheCurrentKey) {
  auto ring = MustCreate({NewDataKey(1), NewDataKey(2)}, 2);
  absl::Status s = ring->DropKey(2);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(ring->DropKey(99).ok());  // absent: nothing to do
  EXPECT_TRUE(ring->DropKey(1).ok());
  EXPECT_THAT(ring->key_ids(), ElementsAre(2u));
}

TEST(KeyRingEncrypterTest, TamperedKeyIdIsDataLoss) {
  auto ring = MustCreate({NewDataKey(1), NewDataKey(2)}, 1);
  auto sealed = ring->Seal("value", "ad");
  ASSERT_TRUE(sealed.ok());

  // Pointing at another key on the ring: authentication fails.
  std::string other = *sealed;
  other[3] = 2;
  auto opened = ring->Open(other, "ad");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << opened.status();

  // Pointing at a key the ring does not have: the message names it.
  std::string unknown = *sealed;
  unknown[0] = 0x01;  // 0x01000001 = 16777217
  opened = ring->Open(unknown, "ad");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(opened.status().message()), HasSubstr("key 16777217"));

  // And a flipped ciphertext bit.
  std::string flipped = *sealed;
  flipped[flipped.size() / 2] ^= 0x10;
  EXPECT_EQ(ring->Open(flipped, "ad").status().code(), absl::StatusCode::kDataLoss);
}

TEST(KeyRingEncrypterTest, TruncatedRecordIsDataLoss) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  EXPECT_EQ(ring->Open("", "").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ring->Open(std::string("\0\0\0\x01", 4), "").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(KeyRingEncrypterTest, SameKeyIdWithAnotherKeyIsRefused) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  absl::Status s = ring->AddKeyAndMakeCurrent(NewDataKey(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(ring->current_id(), 1u);
}

TEST(KeyRingEncrypterTest, ReAddingAKeyOnlyMakesItCurrent) {
  const DataKey k1 = NewDataKey(1);
  auto ring = MustCreate({k1, NewDataKey(2)}, 2);
  ASSERT_TRUE(ring->AddKeyAndMakeCurrent(k1).ok());
  EXPECT_EQ(ring->current_id(), 1u);
  EXPECT_THAT(ring->key_ids(), ElementsAre(1u, 2u));
}

TEST(KeyRingEncrypterTest, CreateValidatesKeys) {
  EXPECT_EQ(KeyRingEncrypter::Create({}, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeyRingEncrypter::Create({NewDataKey(1)}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeyRingEncrypter::Create({NewDataKey(1), NewDataKey(1)}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeyRingEncrypter::Create({DataKey{1, "short"}}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeyRingEncrypter::Create({NewDataKey(0)}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MustCreate({NewDataKey(1)}, 1)->AddKeyAndMakeCurrent(DataKey{2, "short"}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KeyRingEncrypterTest, StateRecreatesAnEquivalentRing) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  ASSERT_TRUE(ring->AddKeyAndMakeCurrent(NewDataKey(5)).ok());
  auto sealed1 = ring->Seal("one", "");
  const DekState state = ring->State();
  EXPECT_EQ(state.current_id, 5u);
  ASSERT_EQ(state.keys.size(), 2u);
  auto copy = KeyRingEncrypter::Create(state);
  ASSERT_TRUE(copy.ok()) << copy.status();
  auto opened = (*copy)->Open(*sealed1, "");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "one");
}

TEST(KeyRingEncrypterTest, SealAndOpenConcurrentWithRotation) {
  auto ring = MustCreate({NewDataKey(1)}, 1);
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string ad = absl::StrCat(t, "/", i);
        auto sealed = ring->Seal(ad, ad);
        if (!sealed.ok()) {
          failures++;
          continue;
        }
        auto opened = ring->Open(*sealed, ad);
        // The rotator never drops keys, so every record stays readable.
        if (!opened.ok() || *opened != ad) failures++;
      }
    });
  }
  std::thread rotator([&] {
    for (uint32_t id = 2; id < 50; ++id) {
      ASSERT_TRUE(ring->AddKeyAndMakeCurrent(NewDataKey(id)).ok());
    }
    done = true;
  });
  for (auto& w : workers) w.join();
  rotator.join();
  EXPECT_TRUE(done);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(ring->current_id(), 49u);
}

}  // namespace
}  // namespace shoal::manager::encryption
