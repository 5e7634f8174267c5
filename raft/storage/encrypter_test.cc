// Tests of the sealing layer: AesGcmEncrypter, NoEncryption, CRC-32C and the record frame.
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "raft/storage/aes_gcm_encrypter.h"
#include "raft/storage/crc32c.h"
#include "raft/storage/encrypter.h"
#include "raft/storage/record.h"

namespace shoal::raft {
namespace {

std::unique_ptr<AesGcmEncrypter> NewAes() {
  auto enc = AesGcmEncrypter::Create(AesGcmEncrypter::GenerateKey());
  EXPECT_TRUE(enc.ok()) << enc.status();
  return std::move(*enc);
}

TEST(AesGcmEncrypterTest, RoundTripsAndHidesPlaintext) {
  auto enc = NewAes();
  const std::string plain = "MARKER-secret-service-definition";
  auto sealed = enc->Seal(plain, "ad");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->size(), plain.size() + AesGcmEncrypter::kOverhead);
  EXPECT_FALSE(absl::StrContains(*sealed, "MARKER"));
  auto opened = enc->Open(*sealed, "ad");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, plain);
}

TEST(AesGcmEncrypterTest, EmptyPlaintextAndAssociatedData) {
  auto enc = NewAes();
  auto sealed = enc->Seal("", "");
  ASSERT_TRUE(sealed.ok());
  auto opened = enc->Open(*sealed, "");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "");
}

TEST(AesGcmEncrypterTest, NoncesAreFresh) {
  auto enc = NewAes();
  EXPECT_NE(*enc->Seal("same", "ad"), *enc->Seal("same", "ad"));
}

TEST(AesGcmEncrypterTest, WrongAssociatedDataFails) {
  auto enc = NewAes();
  auto sealed = enc->Seal("payload", "entry 1");
  auto opened = enc->Open(*sealed, "entry 2");
  EXPECT_TRUE(absl::IsDataLoss(opened.status())) << opened.status();
}

TEST(AesGcmEncrypterTest, WrongKeyFails) {
  auto a = NewAes();
  auto b = NewAes();
  auto sealed = a->Seal("payload", "ad");
  auto opened = b->Open(*sealed, "ad");
  EXPECT_TRUE(absl::IsDataLoss(opened.status())) << opened.status();
}

TEST(AesGcmEncrypterTest, EveryFlippedByteAndEveryTruncationFails) {
  auto enc = NewAes();
  const std::string sealed = *enc->Seal("a short payload", "ad");
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] ^= 0x01;
    EXPECT_FALSE(enc->Open(bad, "ad").ok()) << "flipped byte " << i;
  }
  for (size_t n = 0; n < sealed.size(); ++n) {
    EXPECT_FALSE(enc->Open(sealed.substr(0, n), "ad").ok()) << "truncated to " << n;
  }
}

TEST(AesGcmEncrypterTest, RejectsWrongKeySize) {
  EXPECT_TRUE(absl::IsInvalidArgument(AesGcmEncrypter::Create("short").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(AesGcmEncrypter::Create(std::string(33, 'k')).status()));
}

TEST(AesGcmEncrypterTest, LargePayload) {
  auto enc = NewAes();
  std::string big(3 << 20, 'x');
  auto sealed = enc->Seal(big, "ad");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(*enc->Open(*sealed, "ad"), big);
}

TEST(NoEncryptionTest, PassesThrough) {
  NoEncryption none;
  EXPECT_EQ(*none.Seal("plain", "ad"), "plain");
  EXPECT_EQ(*none.Open("plain", "other"), "plain");
}

TEST(Crc32cTest, KnownVectors) {
  // RFC 3720 (iSCSI) appendix B.4 and the common check value.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32cExtendPortable(0, "123456789"), 0xE3069283u);
}

TEST(Crc32cTest, HardwareMatchesPortableAndExtends) {
  std::mt19937 rng(7);
  for (size_t len : {0, 1, 7, 8, 9, 63, 64, 65, 1000, 4097}) {
    std::string data(len, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    const uint32_t whole = Crc32c(data);
    EXPECT_EQ(whole, Crc32cExtendPortable(0, data)) << len;
    const size_t split = len / 3;
    EXPECT_EQ(whole, Crc32cExtend(Crc32c(data.substr(0, split)), data.substr(split))) << len;
  }
}

TEST(RecordCodecTest, RoundTripAndCorruptionNamesTheRecord) {
  auto enc = NewAes();
  RecordCodec codec(enc.get());
  const std::string framed = *codec.Encode("value", "ad");
  EXPECT_EQ(*codec.Decode(framed, "ad", "entry 7"), "value");

  std::string flipped = framed;
  flipped.back() ^= 0x40;
  absl::Status s = codec.Decode(flipped, "ad", "entry 7").status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "entry 7")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "checksum")) << s;

  s = codec.Decode(framed.substr(0, 3), "ad", "entry 7").status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;

  std::string versioned = framed;
  versioned[0] = 9;
  s = codec.Decode(versioned, "ad", "entry 7").status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "version")) << s;

  // Intact frame, wrong record: the seal, not the CRC, catches it.
  s = codec.Decode(framed, "other ad", "entry 8").status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "cannot be opened")) << s;
}

}  // namespace
}  // namespace shoal::raft
