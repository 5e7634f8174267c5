#include "agent/image/manifest.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "agent/image/digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shoal::agent::image {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string D(char c) { return "sha256:" + std::string(64, c); }

std::string Entry(char c, const std::string& os, const std::string& arch,
                  const std::string& variant = "") {
  std::string platform = absl::StrCat(R"({"os":")", os, R"(","architecture":")", arch, R"(")");
  if (!variant.empty()) absl::StrAppend(&platform, R"(,"variant":")", variant, R"(")");
  absl::StrAppend(&platform, "}");
  return absl::StrCat(R"({"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)",
                      R"("digest":")", D(c), R"(","size":)", 500 + c, R"(,"platform":)", platform,
                      "}");
}

// A manifest list as Docker Hub serves for a multi-arch image (plus a buildkit attestation).
std::string DockerHubLikeList() {
  return absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[)",
      Entry('a', "linux", "amd64"), ",", Entry('b', "linux", "arm", "v5"), ",",
      Entry('c', "linux", "arm", "v6"), ",", Entry('d', "linux", "arm", "v7"), ",",
      Entry('e', "linux", "arm64", "v8"), ",", Entry('f', "linux", "386"), ",",
      Entry('1', "linux", "ppc64le"), ",", Entry('2', "linux", "s390x"), ",",
      Entry('3', "windows", "amd64"), ",", Entry('4', "unknown", "unknown"), "]}");
}

absl::StatusOr<Descriptor> Select(const std::string& json, const std::string& platform) {
  absl::StatusOr<ImageIndex> index = ParseImageIndex(json, media_type::kDockerManifestList);
  if (!index.ok()) return index.status();
  absl::StatusOr<Platform> p = ParsePlatform(platform);
  if (!p.ok()) return p.status();
  return SelectPlatform(*index, *p);
}

TEST(SelectPlatformTest, PicksTheEntryForEachPlatform) {
  const std::string list = DockerHubLikeList();
  struct {
    std::string platform;
    char digest;
  } cases[] = {
      {"linux/amd64", 'a'},    {"linux/x86_64", 'a'},  {"linux/arm64", 'e'},
      {"linux/arm64/v8", 'e'}, {"linux/aarch64", 'e'}, {"linux/arm/v7", 'd'},
      {"linux/arm", 'd'},      {"linux/arm/v6", 'c'},  {"linux/arm/v5", 'b'},
      {"linux/386", 'f'},      {"linux/ppc64le", '1'}, {"linux/s390x", '2'},
      {"windows/amd64", '3'},  {"LINUX/AMD64", 'a'},
  };
  for (const auto& c : cases) {
    absl::StatusOr<Descriptor> d = Select(list, c.platform);
    ASSERT_TRUE(d.ok()) << c.platform << ": " << d.status();
    EXPECT_EQ(d->digest, D(c.digest)) << c.platform;
    EXPECT_EQ(d->size, 500 + c.digest);
  }
}

TEST(SelectPlatformTest, ArmFallsBackToOlderVariantsPreferringTheNewest) {
  const std::string list =
      absl::StrCat(R"({"schemaVersion":2,"manifests":[)", Entry('b', "linux", "arm", "v5"), ",",
                   Entry('c', "linux", "arm", "v6"), ",", Entry('a', "linux", "amd64"), "]}");
  absl::StatusOr<Descriptor> d = Select(list, "linux/arm/v7");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, D('c'));
  d = Select(list, "linux/arm/v5");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest, D('b'));
  // Newer variants never run on an older host.
  const std::string v8_only =
      absl::StrCat(R"({"schemaVersion":2,"manifests":[)", Entry('e', "linux", "arm", "v8"), "]}");
  EXPECT_FALSE(Select(v8_only, "linux/arm/v7").ok());
}

TEST(SelectPlatformTest, FirstOfEqualEntriesWins) {
  const std::string list =
      absl::StrCat(R"({"schemaVersion":2,"manifests":[)", Entry('a', "linux", "amd64"), ",",
                   Entry('b', "linux", "amd64"), "]}");
  absl::StatusOr<Descriptor> d = Select(list, "linux/amd64");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest, D('a'));
}

TEST(SelectPlatformTest, AmdVariantsMustMatch) {
  const std::string list =
      absl::StrCat(R"({"schemaVersion":2,"manifests":[)", Entry('a', "linux", "amd64", "v3"), ",",
                   Entry('b', "linux", "amd64", "v1"), "]}");
  absl::StatusOr<Descriptor> d = Select(list, "linux/amd64");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest, D('b'));  // v1 is plain amd64
}

TEST(SelectPlatformTest, NoMatchNamesWhatTheListHas) {
  const std::string list =
      absl::StrCat(R"({"schemaVersion":2,"manifests":[)", Entry('a', "linux", "amd64"), ",",
                   Entry('e', "linux", "arm64", "v8"), "]}");
  absl::StatusOr<Descriptor> d = Select(list, "linux/riscv64");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(d.status().message(),
            "no matching manifest for linux/riscv64 in the manifest list entries (the list has: "
            "linux/amd64, linux/arm64/v8)");
}

TEST(SelectPlatformTest, EntriesWithoutPlatformMatchLast) {
  const std::string list = absl::StrCat(
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")",
      D('9'), R"(","size":10},)", Entry('e', "linux", "arm64"), "]}");
  absl::StatusOr<ImageIndex> index = ParseImageIndex(list, media_type::kOciIndex);
  ASSERT_TRUE(index.ok()) << index.status();
  absl::StatusOr<Descriptor> d = SelectPlatform(*index, Platform{"linux", "arm64", ""});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest, D('e'));
  d = SelectPlatform(*index, Platform{"linux", "amd64", ""});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest, D('9'));
}

TEST(PlatformTest, FromMachineUsesGoNames) {
  EXPECT_EQ(PlatformFromMachine("linux", "x86_64").String(), "linux/amd64");
  EXPECT_EQ(PlatformFromMachine("linux", "aarch64").String(), "linux/arm64");
  EXPECT_EQ(PlatformFromMachine("linux", "armv7l").String(), "linux/arm/v7");
  EXPECT_EQ(PlatformFromMachine("linux", "armv6l").String(), "linux/arm/v6");
  EXPECT_EQ(PlatformFromMachine("linux", "i686").String(), "linux/386");
  EXPECT_EQ(PlatformFromMachine("linux", "ppc64le").String(), "linux/ppc64le");
  EXPECT_EQ(PlatformFromMachine("linux", "s390x").String(), "linux/s390x");
  EXPECT_EQ(HostPlatform().os, "linux");
  EXPECT_FALSE(HostPlatform().architecture.empty());
  EXPECT_NE(HostPlatform().architecture, "x86_64");
  EXPECT_NE(HostPlatform().architecture, "aarch64");
}

TEST(PlatformTest, Parse) {
  absl::StatusOr<Platform> p = ParsePlatform("linux/arm64/v8");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->String(), "linux/arm64");  // v8 is arm64's only variant
  p = ParsePlatform("linux/armhf");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->String(), "linux/arm/v7");
  EXPECT_FALSE(ParsePlatform("linux").ok());
  EXPECT_FALSE(ParsePlatform("linux//v7").ok());
  EXPECT_FALSE(ParsePlatform("a/b/c/d").ok());
  EXPECT_THAT(std::string(ParsePlatform("linux/am d64").status().message()),
              HasSubstr("unexpected character ' '"));
}

constexpr char kOciManifest[] = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
             "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
             "size": 472},
  "layers": [
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
     "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
     "size": 1088071},
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
     "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
     "size": 5, "annotations": {"a": "b"}}
  ],
  "annotations": {"org.opencontainers.image.created": "2000-01-01T00:00:00Z"}
})";

TEST(ManifestTest, ParsesAnOciManifest) {
  absl::StatusOr<ImageManifest> m = ParseImageManifest(kOciManifest, media_type::kOciManifest);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.digest, D('1'));
  EXPECT_EQ(m->config.size, 472);
  EXPECT_EQ(m->config.media_type, media_type::kOciConfig);
  ASSERT_EQ(m->layers.size(), 2u);
  EXPECT_EQ(m->layers[0].size, 1088071);
  EXPECT_EQ(m->layers[1].media_type, media_type::kOciLayerZstd);
  EXPECT_EQ(m->layers[1].annotations.at("a"), "b");
  EXPECT_EQ(m->annotations.size(), 1u);
}

TEST(ManifestTest, RefusesMalformedManifests) {
  auto err = [](const std::string& body, const std::string& media) {
    absl::StatusOr<ImageManifest> m = ParseImageManifest(body, media);
    EXPECT_FALSE(m.ok()) << body;
    return std::string(m.status().message());
  };
  EXPECT_THAT(err("not json", media_type::kOciManifest), HasSubstr("not valid JSON"));
  EXPECT_THAT(err("[]", media_type::kOciManifest), HasSubstr("not a JSON object"));
  EXPECT_THAT(err(R"({"schemaVersion":2,"layers":[]})", media_type::kOciManifest),
              HasSubstr("no \"config\""));
  EXPECT_THAT(err(R"({"schemaVersion":1})", media_type::kOciManifest),
              HasSubstr("\"schemaVersion\" is 1, not 2"));
  EXPECT_THAT(err(absl::StrCat(R"({"schemaVersion":2,"config":{"digest":")", D('1'),
                               R"(","size":-1},"layers":[]})"),
                  media_type::kOciManifest),
              HasSubstr("no valid \"size\""));
  EXPECT_THAT(err(R"({"schemaVersion":2,"config":{"digest":"sha256:12","size":1},"layers":[]})",
                  media_type::kOciManifest),
              HasSubstr("invalid checksum digest length"));
  EXPECT_THAT(err(kOciManifest, media_type::kDockerManifest), HasSubstr("contradicts"));
  EXPECT_THAT(err(kOciManifest, media_type::kOciIndex), HasSubstr("not an image manifest"));
}

TEST(ManifestTest, DetectsMediaTypes) {
  auto detect = [](const std::string& ct, const std::string& body) {
    absl::StatusOr<std::string> m = DetectManifestMediaType(ct, body);
    return m.ok() ? *m : "error: " + std::string(m.status().message());
  };
  EXPECT_EQ(detect("application/vnd.oci.image.index.v1+json; charset=utf-8", "x"),
            media_type::kOciIndex);
  EXPECT_EQ(detect("application/json", kOciManifest), media_type::kOciManifest);
  EXPECT_EQ(detect("", R"({"schemaVersion":2,"manifests":[]})"), media_type::kOciIndex);
  EXPECT_EQ(detect("", R"({"schemaVersion":2,"config":{},"layers":[]})"), media_type::kOciManifest);
  EXPECT_EQ(detect("text/plain", R"({"schemaVersion":1,"name":"x","fsLayers":[]})"),
            media_type::kDockerSchema1);
  EXPECT_EQ(detect(media_type::kDockerSchema1Signed, "{}"), media_type::kDockerSchema1Signed);
  EXPECT_THAT(detect("text/html", "<html>"), HasSubstr("not valid JSON"));
  EXPECT_THAT(detect("application/json", "{}"), HasSubstr("not an image manifest"));
  EXPECT_TRUE(IsSchema1MediaType(media_type::kDockerSchema1));
  EXPECT_TRUE(IsIndexMediaType(media_type::kDockerManifestList));
  EXPECT_TRUE(IsManifestMediaType(media_type::kDockerManifest));
  EXPECT_FALSE(IsManifestMediaType(media_type::kDockerSchema1));
}

TEST(ManifestTest, AcceptHeaderNamesTheFourSupportedTypes) {
  const std::string accept = ManifestAcceptHeader();
  for (const char* m : {media_type::kDockerManifest, media_type::kDockerManifestList,
                        media_type::kOciManifest, media_type::kOciIndex}) {
    EXPECT_THAT(accept, HasSubstr(m));
  }
  EXPECT_THAT(accept, ::testing::Not(HasSubstr("distribution.manifest.v1+")));  // schema 1
}

TEST(ImageConfigTest, ParsesWhatARuntimeNeeds) {
  const std::string config = R"({
    "created": "2000-01-01T00:00:00Z", "architecture": "arm", "variant": "v7", "os": "linux",
    "config": {
      "User": "nobody", "WorkingDir": "/srv", "StopSignal": "SIGQUIT",
      "Env": ["PATH=/bin", "A=b"], "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
      "Labels": {"l": "v"}, "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
      "Volumes": {"/data": {}},
      "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000,
                      "Timeout": 5000000000, "StartPeriod": 0, "Retries": 3}
    },
    "rootfs": {"type": "layers", "diff_ids": [
      "sha256:0d3ac7dbd7c1689f8f033cb04459d276be45b9fcb909b3b422b2c18418a31011"]},
    "history": [{"created_by": "x"}]
  })";
  absl::StatusOr<ImageConfig> c = ParseImageConfig(config);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->platform.String(), "linux/arm/v7");
  EXPECT_EQ(c->user, "nobody");
  EXPECT_EQ(c->working_dir, "/srv");
  EXPECT_EQ(c->stop_signal, "SIGQUIT");
  EXPECT_THAT(c->env, ElementsAre("PATH=/bin", "A=b"));
  EXPECT_THAT(c->entrypoint, ElementsAre("/bin/sh", "-c"));
  EXPECT_THAT(c->cmd, ElementsAre("echo hi"));
  EXPECT_EQ(c->labels.at("l"), "v");
  EXPECT_THAT(c->exposed_ports, ElementsAre("53/udp", "80/tcp"));
  EXPECT_THAT(c->volumes, ElementsAre("/data"));
  ASSERT_TRUE(c->healthcheck.has_value());
  EXPECT_THAT(c->healthcheck->test, ElementsAre("CMD-SHELL", "true"));
  EXPECT_EQ(c->healthcheck->interval_ns, 30000000000);
  EXPECT_EQ(c->healthcheck->retries, 3);
  ASSERT_EQ(c->diff_ids.size(), 1u);

  absl::StatusOr<ImageConfig> minimal = ParseImageConfig(R"({"os":"linux"})");
  ASSERT_TRUE(minimal.ok());
  EXPECT_TRUE(minimal->cmd.empty());
  EXPECT_FALSE(minimal->healthcheck.has_value());

  EXPECT_THAT(std::string(ParseImageConfig(R"({"config":{"Cmd":"sh"}})").status().message()),
              HasSubstr("\"Cmd\" is not a list of strings"));
  EXPECT_THAT(std::string(ParseImageConfig(R"({"rootfs":{"diff_ids":["x"]}})").status().message()),
              HasSubstr("rootfs.diff_ids"));
}

}  // namespace
}  // namespace shoal::agent::image
