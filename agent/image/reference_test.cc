#include "agent/image/reference.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "agent/image/digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::agent::image {
namespace {

using ::testing::HasSubstr;

const std::string kHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kDigest = "sha256:" + kHex;

struct Case {
  std::string input;
  std::string domain;
  std::string path;
  std::string tag;
  std::string digest;
  std::string canonical;
  std::string familiar;
};

class ParseTest : public ::testing::TestWithParam<Case> {};

TEST_P(ParseTest, NormalisesAsDocker) {
  const Case& c = GetParam();
  absl::StatusOr<Reference> ref = Reference::Parse(c.input);
  ASSERT_TRUE(ref.ok()) << c.input << ": " << ref.status();
  EXPECT_EQ(ref->domain(), c.domain) << c.input;
  EXPECT_EQ(ref->path(), c.path) << c.input;
  EXPECT_EQ(ref->tag(), c.tag) << c.input;
  EXPECT_EQ(ref->digest(), c.digest) << c.input;
  EXPECT_EQ(ref->String(), c.canonical) << c.input;
  EXPECT_EQ(ref->FamiliarString(), c.familiar) << c.input;
  // The canonical and the familiar forms parse back to the same reference.
  absl::StatusOr<Reference> again = Reference::Parse(ref->String());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *ref);
  absl::StatusOr<Reference> familiar = Reference::Parse(ref->FamiliarString());
  ASSERT_TRUE(familiar.ok()) << familiar.status();
  EXPECT_EQ(*familiar, *ref);
}

INSTANTIATE_TEST_SUITE_P(
    References, ParseTest,
    ::testing::Values(
        Case{"busybox", "docker.io", "library/busybox", "latest", "",
             "docker.io/library/busybox:latest", "busybox:latest"},
        Case{"busybox:1.36", "docker.io", "library/busybox", "1.36", "",
             "docker.io/library/busybox:1.36", "busybox:1.36"},
        Case{"user/app", "docker.io", "user/app", "latest", "", "docker.io/user/app:latest",
             "user/app:latest"},
        Case{"user/app:v2", "docker.io", "user/app", "v2", "", "docker.io/user/app:v2",
             "user/app:v2"},
        Case{"docker.io/busybox", "docker.io", "library/busybox", "latest", "",
             "docker.io/library/busybox:latest", "busybox:latest"},
        Case{"index.docker.io/busybox", "docker.io", "library/busybox", "latest", "",
             "docker.io/library/busybox:latest", "busybox:latest"},
        Case{"docker.io/library/busybox:1", "docker.io", "library/busybox", "1", "",
             "docker.io/library/busybox:1", "busybox:1"},
        // "library/" is dropped from the short form only for two-component paths.
        Case{"library/a/b", "docker.io", "library/a/b", "latest", "",
             "docker.io/library/a/b:latest", "library/a/b:latest"},
        Case{"a/b/c", "docker.io", "a/b/c", "latest", "", "docker.io/a/b/c:latest", "a/b/c:latest"},
        Case{"localhost/x", "localhost", "x", "latest", "", "localhost/x:latest",
             "localhost/x:latest"},
        Case{"localhost:5000/x", "localhost:5000", "x", "latest", "", "localhost:5000/x:latest",
             "localhost:5000/x:latest"},
        Case{"127.0.0.1:5000/x:1", "127.0.0.1:5000", "x", "1", "", "127.0.0.1:5000/x:1",
             "127.0.0.1:5000/x:1"},
        Case{"registry.example.com/a/b/c:tag", "registry.example.com", "a/b/c", "tag", "",
             "registry.example.com/a/b/c:tag", "registry.example.com/a/b/c:tag"},
        Case{"Registry.Example.COM:443/app", "Registry.Example.COM:443", "app", "latest", "",
             "Registry.Example.COM:443/app:latest", "Registry.Example.COM:443/app:latest"},
        Case{"[::1]:5000/app", "[::1]:5000", "app", "latest", "", "[::1]:5000/app:latest",
             "[::1]:5000/app:latest"},
        Case{"name@" + kDigest, "docker.io", "library/name", "", kDigest,
             "docker.io/library/name@" + kDigest, "name@" + kDigest},
        Case{"name:tag@" + kDigest, "docker.io", "library/name", "tag", kDigest,
             "docker.io/library/name:tag@" + kDigest, "name:tag@" + kDigest},
        Case{"127.0.0.1:5000/a/b@" + kDigest, "127.0.0.1:5000", "a/b", "", kDigest,
             "127.0.0.1:5000/a/b@" + kDigest, "127.0.0.1:5000/a/b@" + kDigest},
        // A first component without '.' or ':' that is not "localhost" is a path component.
        Case{"myregistry/app", "docker.io", "myregistry/app", "latest", "",
             "docker.io/myregistry/app:latest", "myregistry/app:latest"},
        // "localhost:5000" alone is repository "localhost" with tag "5000", as in Docker.
        Case{"localhost:5000", "docker.io", "library/localhost", "5000", "",
             "docker.io/library/localhost:5000", "localhost:5000"},
        // Separators: '.', '_', '__', and runs of '-'.
        Case{"x/a.b_c__d--e-f/g", "docker.io", "x/a.b_c__d--e-f/g", "latest", "",
             "docker.io/x/a.b_c__d--e-f/g:latest", "x/a.b_c__d--e-f/g:latest"},
        Case{"a.b-c/d_e", "a.b-c", "d_e", "latest", "", "a.b-c/d_e:latest", "a.b-c/d_e:latest"},
        // Tags: word characters, '.', '-'; uppercase allowed; up to 128.
        Case{"app:V1.2-rc_3", "docker.io", "library/app", "V1.2-rc_3", "",
             "docker.io/library/app:V1.2-rc_3", "app:V1.2-rc_3"},
        Case{"app:_x", "docker.io", "library/app", "_x", "", "docker.io/library/app:_x", "app:_x"},
        Case{"app:" + std::string(128, 'a'), "docker.io", "library/app", std::string(128, 'a'), "",
             "docker.io/library/app:" + std::string(128, 'a'), "app:" + std::string(128, 'a')},
        Case{"sha256sum", "docker.io", "library/sha256sum", "latest", "",
             "docker.io/library/sha256sum:latest", "sha256sum:latest"},
        Case{"a", "docker.io", "library/a", "latest", "", "docker.io/library/a:latest", "a:latest"},
        Case{"0", "docker.io", "library/0", "latest", "", "docker.io/library/0:latest",
             "0:latest"}));

TEST(ReferenceTest, ParseNormalizedNamedAddsNoTag) {
  absl::StatusOr<Reference> ref = Reference::ParseNormalizedNamed("busybox");
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->tag(), "");
  EXPECT_EQ(ref->String(), "docker.io/library/busybox");
  EXPECT_EQ(ref->FamiliarString(), "busybox");
  EXPECT_EQ(ref->ManifestReference(), "latest");
}

TEST(ReferenceTest, NamesAndManifestReference) {
  absl::StatusOr<Reference> ref = Reference::Parse("user/app:v1@" + kDigest);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->Name(), "docker.io/user/app");
  EXPECT_EQ(ref->FamiliarName(), "user/app");
  // Pulled by digest: the tag only informs.
  EXPECT_EQ(ref->ManifestReference(), kDigest);
  EXPECT_EQ(ref->WithDigest("").ManifestReference(), "v1");
  EXPECT_EQ(ref->WithTag("").String(), "docker.io/user/app@" + kDigest);

  absl::StatusOr<Reference> local = Reference::Parse("127.0.0.1:5000/busybox");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->FamiliarName(), "127.0.0.1:5000/busybox");
  EXPECT_EQ(local->Name(), "127.0.0.1:5000/busybox");
}

struct BadCase {
  std::string input;
  std::string message;
};

class BadReferenceTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadReferenceTest, IsRefusedWithAClearMessage) {
  const BadCase& c = GetParam();
  absl::StatusOr<Reference> ref = Reference::Parse(c.input);
  ASSERT_FALSE(ref.ok()) << c.input << " parsed as " << ref->String();
  EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ref.status().message()), HasSubstr(c.message)) << c.input;
}

INSTANTIATE_TEST_SUITE_P(
    References, BadReferenceTest,
    ::testing::Values(
        BadCase{"", "repository name must have at least one component"},
        BadCase{"Busybox", "invalid reference format: repository name must be lowercase"},
        BadCase{"user/App", "invalid reference format: repository name must be lowercase"},
        BadCase{"Foo/bar", "invalid reference format: repository name must be lowercase"},
        BadCase{"localhost:5000/Foo:tag", "repository name must be lowercase"},
        BadCase{kHex, "cannot specify 64-byte hexadecimal strings"},
        BadCase{"busybox:", "invalid tag \"\""}, BadCase{"busybox:.x", "invalid tag \".x\""},
        BadCase{"busybox:-x", "invalid tag"},
        // "busybox:a" has a ':' so it is a registry host, and not a valid one.
        BadCase{"busybox:a/b", "invalid reference format: invalid registry host \"busybox:a\""},
        BadCase{"busybox:a:b", "invalid tag"},
        BadCase{"app:" + std::string(129, 'a'), "invalid tag"},
        BadCase{"busybox@", "invalid checksum digest format"},
        BadCase{"busybox@sha256", "invalid checksum digest format"},
        BadCase{"busybox@sha256:abc", "invalid checksum digest length"},
        BadCase{"busybox@sha256:" + std::string(64, 'G'), "invalid checksum digest format"},
        BadCase{"busybox@sha256:" + std::string(64, 'A'), "lowercase hex"},
        BadCase{"busybox@md5:" + std::string(32, 'a'), "unsupported digest algorithm"},
        BadCase{"busybox@" + kDigest + "@" + kDigest, "invalid checksum digest"},
        BadCase{"a//b", "invalid repository name component \"\""},
        BadCase{"a/", "invalid repository name component \"\""},
        BadCase{"/a", "invalid repository name component \"\""},
        BadCase{"-a", "invalid repository name component \"-a\""},
        BadCase{"a-", "invalid repository name component"},
        BadCase{"a..b", "invalid repository name component"},
        BadCase{"a___b", "invalid repository name component"},
        BadCase{"a.-b", "invalid repository name component"},
        BadCase{"a b", "invalid repository name component"},
        BadCase{"example.com/", "repository name must have at least one component"},
        BadCase{"example.com:port/app", "invalid registry host \"example.com:port\""},
        BadCase{"-bad.com/app", "invalid registry host"},
        BadCase{"bad..com/app", "invalid registry host"},
        // Docker's parser accepts this one as a reference without a registry (its domain regexp
        // fails, its path regexp matches); that reference cannot be pulled, so it is refused.
        BadCase{"bad_host.com/app", "invalid registry host"},
        BadCase{"host.com:/app", "invalid registry host"},
        BadCase{":tag", "repository name must have at least one component"},
        BadCase{"example.com/" + std::string(250, 'a'),
                "repository name must not be more than 255 characters"}));

TEST(ReferenceTest, NameLengthLimitCountsTheDomain) {
  // 255 in all is fine, 256 is not.
  std::string path(255 - std::string("example.com/").size(), 'a');
  EXPECT_TRUE(Reference::Parse("example.com/" + path).ok());
  EXPECT_FALSE(Reference::Parse("example.com/" + path + "a").ok());
  // docker.io/library/ counts too.
  std::string official(255 - std::string("docker.io/library/").size(), 'b');
  EXPECT_TRUE(Reference::Parse(official).ok());
  EXPECT_FALSE(Reference::Parse(official + "b").ok());
}

TEST(ReferenceTest, ErrorsQuoteTheInput) {
  absl::StatusOr<Reference> ref = Reference::Parse("Busybox:1");
  ASSERT_FALSE(ref.ok());
  EXPECT_EQ(ref.status().message(),
            "invalid reference format: repository name must be lowercase: \"Busybox:1\"");
}

TEST(DigestTest, Validates) {
  EXPECT_TRUE(ValidateDigest(kDigest).ok());
  EXPECT_TRUE(ValidateDigest("sha512:" + std::string(128, 'a')).ok());
  EXPECT_TRUE(ValidateDigest("sha384:" + std::string(96, '0')).ok());
  EXPECT_FALSE(ValidateDigest("sha512:" + std::string(64, 'a')).ok());
  EXPECT_FALSE(ValidateDigest("sha256:").ok());
  EXPECT_FALSE(ValidateDigest(":" + kHex).ok());
  EXPECT_FALSE(ValidateDigest(kHex).ok());
  EXPECT_THAT(std::string(ValidateDigest("foo+bar:abc").message()),
              HasSubstr("unsupported digest algorithm"));
  EXPECT_THAT(std::string(ValidateDigest("Foo:abc").message()),
              HasSubstr("invalid checksum digest format"));
}

TEST(DigestTest, HashesIncrementally) {
  EXPECT_EQ(Sha256Digest(""), kDigest);
  EXPECT_EQ(Sha256Digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Digester d;
  d.Update("a");
  d.Update("");
  d.Update("bc");
  EXPECT_EQ(d.Final(), Sha256Digest("abc"));
  absl::StatusOr<Digester> sha512 = Digester::ForDigest("sha512:" + std::string(128, '0'));
  ASSERT_TRUE(sha512.ok()) << sha512.status();
  sha512->Update("abc");
  EXPECT_EQ(
      sha512->Final(),
      "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a8"
      "36ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  EXPECT_FALSE(Digester::ForDigest("md5:abc").ok());
}

}  // namespace
}  // namespace shoal::agent::image
