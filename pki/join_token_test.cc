// Join tokens: format, parsing, constant-time comparison semantics, and the root pin.
#include "pki/join_token.h"

#include <cstdint>
#include <random>
#include <regex>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"

namespace shoal::pki {
namespace {

using ::shoal::pki::testing::NewRootCA;
using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(JoinTokenTest, HasDockersShape) {
  RootCA ca = NewRootCA();
  const std::string token = GenerateJoinToken(ca.Digest());
  EXPECT_TRUE(std::regex_match(token, std::regex("^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$"))) << token;
  auto parsed = ParseJoinToken(token);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->root_digest, ca.Digest());
  EXPECT_EQ(parsed->secret, token.substr(token.size() - 25));
  // A second token for the same root shares the digest field, not the secret (rotation).
  const std::string other = GenerateJoinToken(ca.Digest());
  EXPECT_EQ(other.substr(0, 60), token.substr(0, 60));
  EXPECT_NE(other, token);
}

TEST(JoinTokenTest, SurroundingWhitespaceIsIgnored) {
  RootCA ca = NewRootCA();
  const std::string token = GenerateJoinToken(ca.Digest());
  EXPECT_TRUE(ParseJoinToken("  " + token + "\n").ok());
}

TEST(JoinTokenTest, MalformedTokensSayWhatIsWrong) {
  const std::string digest(50, '0');
  const std::string secret(25, 'a');
  struct Case {
    std::string token;
    std::string message;
  } cases[] = {
      {"", "invalid join token: it is empty"},
      {"SWMTKN-1-abc", "invalid join token: expected 4 fields separated by '-', found 3"},
      {"SWMTKN-1-" + digest + "-" + secret + "-x", "found 5"},
      {"SWMKEY-1-" + digest + "-" + secret, "it must start with \"SWMTKN-\""},
      {"SWMTKN-2-" + digest + "-" + secret, "unsupported version \"2\""},
      {"SWMTKN-1-" + digest.substr(1) + "-" + secret, "root CA digest has 49 characters"},
      {"SWMTKN-1-" + digest + "-" + secret + "a", "the secret has 26 characters"},
      {"SWMTKN-1-" + std::string(49, '0') + "A-" + secret,
       "root CA digest: 'A' is not a base36 digit"},
      {"SWMTKN-1-" + std::string(50, 'z') + "-" + secret, "root CA digest: value too large"},
      {"SWMTKN-1-" + digest + "-" + std::string(25, 'z'), "secret: value too large"},
  };
  for (const Case& c : cases) {
    auto parsed = ParseJoinToken(c.token);
    ASSERT_FALSE(parsed.ok()) << c.token;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(parsed.status()), HasSubstr("invalid join token: ")) << c.token;
    EXPECT_THAT(Message(parsed.status()), HasSubstr(c.message)) << c.token;
  }
}

TEST(JoinTokenTest, Base36KnownValues) {
  EXPECT_EQ(Base36Encode(std::string("\x01\x00", 2), 4), "0074");  // 256 = 7*36 + 4
  EXPECT_EQ(Base36Encode(std::string(32, '\0'), 50), std::string(50, '0'));
  EXPECT_EQ(Base36Encode("\x23", 1), "z");
  // The largest digest still fits in 50 digits, and the largest secret in 25.
  EXPECT_EQ(Base36Encode(std::string(32, '\xff'), 50).size(), 50u);
  EXPECT_EQ(Base36Encode(std::string(16, '\xff'), 25).size(), 25u);
  EXPECT_EQ(*Base36Decode("0074", 2), std::string("\x01\x00", 2));
}

TEST(JoinTokenTest, Base36RoundTripsRandomValues) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 500; ++i) {
    std::string bytes(32, '\0');
    for (char& b : bytes) b = static_cast<char>(rng());
    // Leading zero bytes exercise the padding.
    for (size_t z = rng() % 4; z > 0; --z) bytes[z - 1] = '\0';
    const std::string text = Base36Encode(bytes, 50);
    ASSERT_EQ(text.size(), 50u);
    auto back = Base36Decode(text, 32);
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(*back, bytes);
  }
}

TEST(JoinTokenTest, TokenMatchesSemantics) {
  const std::string a = "SWMTKN-1-" + std::string(50, '1') + "-" + std::string(25, 'a');
  std::string b = a;
  EXPECT_TRUE(TokenMatches(a, b));
  b.back() = 'b';
  EXPECT_FALSE(TokenMatches(a, b));
  b = a;
  b[0] = 'X';
  EXPECT_FALSE(TokenMatches(a, b));
  EXPECT_FALSE(TokenMatches(a, a.substr(0, a.size() - 1)));
  EXPECT_FALSE(TokenMatches(a, ""));
  EXPECT_TRUE(TokenMatches("", ""));
}

TEST(JoinTokenTest, PinningAcceptsOnlyTheTokensRoot) {
  RootCA ours = NewRootCA();
  RootCA theirs = NewRootCA();
  const std::string token = GenerateJoinToken(ours.Digest());

  auto pinned = VerifyRootAgainstToken(ours.cert_pem(), token);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(*pinned, ours.cert_pem());

  auto wrong = VerifyRootAgainstToken(theirs.cert_pem(), token);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(wrong.status()),
              HasSubstr("the manager's root CA does not match the join token"));

  // During a rotation the manager sends both roots; the pinned one is picked out.
  auto bundle = VerifyRootAgainstToken(theirs.cert_pem() + ours.cert_pem(), token);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  EXPECT_EQ(*bundle, ours.cert_pem());

  // A cross-signed copy of our root has our root's key and subject but a digest of its own: it
  // does not satisfy the pin.
  auto cross = theirs.CrossSign(ours.cert_pem());
  ASSERT_TRUE(cross.ok());
  EXPECT_FALSE(VerifyRootAgainstToken(*cross, token).ok());

  EXPECT_EQ(VerifyRootAgainstToken(ours.cert_pem(), "SWMTKN-1-bad").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyRootAgainstToken("garbage", token).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shoal::pki
