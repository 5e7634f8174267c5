// Unlock keys and node-key wrapping.
#include "pki/unlock_key.h"

#include <regex>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/keys.h"

namespace shoal::pki {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(UnlockKeyTest, HasDockersShapeAndRoundTrips) {
  const std::string key = GenerateUnlockKey();
  EXPECT_TRUE(std::regex_match(key, std::regex("^SWMKEY-1-[A-Za-z0-9+/]{43}$"))) << key;
  auto kek = ParseUnlockKey(key);
  ASSERT_TRUE(kek.ok()) << kek.status();
  EXPECT_EQ(kek->size(), kUnlockKeySize);
  EXPECT_EQ(FormatUnlockKey(*kek), key);
  EXPECT_NE(GenerateUnlockKey(), key);
  // Typed at a prompt or piped from a file: surrounding whitespace and '=' padding are fine.
  EXPECT_EQ(*ParseUnlockKey("  " + key + "=\n"), *kek);
}

TEST(UnlockKeyTest, MalformedKeysAreRefused) {
  const std::string good = GenerateUnlockKey();
  for (const std::string& bad :
       {std::string(""), std::string("SWMKEY-1-"), good.substr(9), "SWMTKN-1-" + good.substr(9),
        good.substr(0, good.size() - 1), good.substr(0, good.size() - 1) + "!", good + "AAAA"}) {
    auto kek = ParseUnlockKey(bad);
    ASSERT_FALSE(kek.ok()) << bad;
    EXPECT_EQ(kek.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(kek.status()), StartsWith("invalid unlock key: ")) << bad;
  }
}

TEST(UnlockKeyTest, WrapAndUnwrap) {
  auto kc = GenerateKeyAndCsr();
  ASSERT_TRUE(kc.ok());
  const std::string kek = GenerateUnlockKeyBytes();
  auto wrapped = WrapKey(kc->key_pem, kek);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_THAT(*wrapped, StartsWith("-----BEGIN SHOAL ENCRYPTED PRIVATE KEY-----\n"));
  EXPECT_TRUE(IsWrappedKey(*wrapped));
  EXPECT_FALSE(IsWrappedKey(kc->key_pem));
  EXPECT_FALSE(absl::StrContains(*wrapped, "BEGIN PRIVATE KEY"));
  auto unwrapped = UnwrapKey(*wrapped, kek);
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.status();
  EXPECT_EQ(*unwrapped, kc->key_pem);
  // A fresh salt and nonce every time.
  EXPECT_NE(*WrapKey(kc->key_pem, kek), *wrapped);
  // The PEM key parser refuses a wrapped key with a useful message instead of prompting.
  auto parsed = ParsePrivateKey(*wrapped);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(parsed.status()), HasSubstr("shoal swarm unlock"));
}

TEST(UnlockKeyTest, WrongKeyOrTamperingFails) {
  auto kc = GenerateKeyAndCsr();
  ASSERT_TRUE(kc.ok());
  const std::string kek = GenerateUnlockKeyBytes();
  auto wrapped = WrapKey(kc->key_pem, kek);
  ASSERT_TRUE(wrapped.ok());

  auto wrong = UnwrapKey(*wrapped, GenerateUnlockKeyBytes());
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(wrong.status()), StartsWith("invalid unlock key"));

  // Flip one base64 character in the body.
  std::string tampered = *wrapped;
  const size_t pos = tampered.find('\n') + 20;
  tampered[pos] = tampered[pos] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(UnwrapKey(tampered, kek).ok());

  EXPECT_THAT(Message(WrapKey(kc->key_pem, "short").status()),
              HasSubstr("invalid unlock key: expected 32 bytes, got 5"));
  EXPECT_THAT(Message(UnwrapKey(kc->key_pem, kek).status()), HasSubstr("not a wrapped key"));
}

}  // namespace
}  // namespace shoal::pki
