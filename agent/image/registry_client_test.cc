// RegistryClient against a real docker-registry (tools/lab/registry) holding the busybox test image
// (tools/lab/image), and against testdata/fake_registry.py for what a real registry will not do:
// bearer tokens, tampered content, canned manifest lists, schema 1, redirects, broken and stalled
// transfers, TLS with a private CA.
#include "agent/image/registry_client.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/image/digest.h"
#include "agent/image/manifest.h"
#include "agent/image/reference.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/prerequisite.h"
#include "tests/harness/process.h"

namespace shoal::agent::image {
namespace {

using ::nlohmann::json;
using ::shoal::testing::ChildProcess;
using ::shoal::testing::CommandOptions;
using ::shoal::testing::CommandResult;
using ::shoal::testing::PickFreeLoopbackPort;
using ::shoal::testing::RunCommand;
using ::shoal::testing::RunfilePath;
using ::shoal::testing::TempDir;
using ::shoal::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

// --- helpers -----------------------------------------------------------------------------------

std::string FindTool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  absl::StrAppend(&dirs, ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  for (absl::string_view dir : absl::StrSplit(dirs, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string Python() {
  if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  return FindTool("python3");
}

// tools/lab/NAME: from the runfiles when the lab scripts are a data dependency, else next to this
// package in the source tree (runfiles are symlinks into it).
std::string LabScript(const std::string& name) {
  std::string direct = RunfilePath("tools/lab/" + name);
  if (::access(direct.c_str(), X_OK) == 0) return direct;
  std::error_code ec;
  fs::path data = fs::canonical(RunfilePath("agent/image/testdata/fake_registry.py"), ec);
  if (ec) return "";
  fs::path script =
      data.parent_path().parent_path().parent_path().parent_path() / "tools" / "lab" / name;
  return ::access(script.c_str(), X_OK) == 0 ? script.string() : "";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Reference Ref(const std::string& s) {
  absl::StatusOr<Reference> r = Reference::Parse(s);
  EXPECT_TRUE(r.ok()) << s << ": " << r.status();
  return r.ok() ? *r : Reference();
}

std::string Base64(const std::string& s) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
    for (int k = 3; k >= 0; --k) out.push_back(kAlphabet[(v >> (6 * k)) & 63]);
  }
  if (i + 1 == s.size()) {
    uint32_t v = uint8_t(s[i]) << 16;
    out += {kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == s.size()) {
    uint32_t v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
    out += {kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

// The fake registry: a python3 process serving `config` (see fake_registry.py).
class FakeRegistry {
 public:
  static std::unique_ptr<FakeRegistry> Start(const json& config, const std::string& tls_cert = "",
                                             const std::string& tls_key = "") {
    auto fake = std::unique_ptr<FakeRegistry>(new FakeRegistry());
    const std::string dir = fake->dir_.path();
    std::ofstream(dir + "/config.json") << config.dump();
    std::vector<std::string> argv = {
        Python(),      RunfilePath("agent/image/testdata/fake_registry.py"),
        "--config",    dir + "/config.json",
        "--port-file", dir + "/port",
        "--log",       dir + "/requests.log"};
    if (!tls_cert.empty()) {
      argv.insert(argv.end(), {"--tls-cert", tls_cert, "--tls-key", tls_key});
    }
    absl::StatusOr<ChildProcess> child = ChildProcess::Start(argv, dir + "/server.log");
    EXPECT_TRUE(child.ok()) << child.status();
    if (!child.ok()) return nullptr;
    fake->process_ = *std::move(child);
    bool up = WaitFor([&] { return fs::exists(dir + "/port"); }, absl::Seconds(20));
    EXPECT_TRUE(up) << "fake registry did not start: " << ReadFile(dir + "/server.log");
    if (!up) return nullptr;
    fake->port_ = std::stoi(ReadFile(dir + "/port"));
    return fake;
  }

  int port() const { return port_; }
  std::string domain() const { return absl::StrCat("127.0.0.1:", port_); }
  // The requests served so far, oldest first.
  std::vector<json> Requests() const {
    std::vector<json> out;
    std::ifstream in(std::string(dir_.path()) + "/requests.log");
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }
  int CountPath(const std::string& path) const {
    int n = 0;
    for (const json& r : Requests()) n += r["path"] == path ? 1 : 0;
    return n;
  }

 private:
  FakeRegistry() : dir_("shoal-fakereg") {}
  TempDir dir_;
  ChildProcess process_;  // killed and reaped (by PID) when the fake goes away
  int port_ = 0;
};

// A fake registry's routes, built up with content-addressed blobs and manifests.
struct Routes {
  json routes = json::object();

  Descriptor Blob(const std::string& repo, const std::string& content,
                  const std::string& media = media_type::kOciLayerGzip) {
    Descriptor d{media, Sha256Digest(content), static_cast<int64_t>(content.size())};
    routes[absl::StrCat("/v2/", repo, "/blobs/", d.digest)] = {{"body_b64", Base64(content)}};
    return d;
  }
  // Serves `body` for the manifest at `digest` and, when `tag` is set, at the tag.
  Descriptor Manifest(const std::string& repo, const std::string& body, const std::string& media,
                      const std::string& tag = "") {
    Descriptor d{media, Sha256Digest(body), static_cast<int64_t>(body.size())};
    json route = {{"body_b64", Base64(body)},
                  {"headers", {{"Content-Type", media}, {"Docker-Content-Digest", d.digest}}}};
    routes[absl::StrCat("/v2/", repo, "/manifests/", d.digest)] = route;
    if (!tag.empty()) routes[absl::StrCat("/v2/", repo, "/manifests/", tag)] = route;
    return d;
  }
};

json DescriptorJson(const Descriptor& d) {
  json j = {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (d.platform.has_value()) {
    j["platform"] = {{"os", d.platform->os}, {"architecture", d.platform->architecture}};
    if (!d.platform->variant.empty()) j["platform"]["variant"] = d.platform->variant;
  }
  return j;
}

std::string ManifestJson(const Descriptor& config, const std::vector<Descriptor>& layers,
                         const std::string& media = media_type::kOciManifest) {
  json j = {{"schemaVersion", 2}, {"mediaType", media}, {"config", DescriptorJson(config)}};
  j["layers"] = json::array();
  for (const Descriptor& l : layers) j["layers"].push_back(DescriptorJson(l));
  return j.dump();
}

// An image "app" in a fake registry: one config, one layer, its manifest tagged "1".
struct FakeImage {
  Routes routes;
  Descriptor config, layer, manifest;
  std::string layer_bytes;

  explicit FakeImage(const std::string& repo = "app", const std::string& arch = "amd64") {
    config = routes.Blob(
        repo,
        absl::StrCat(R"({"os":"linux","architecture":")", arch, R"(","config":{"Cmd":["sh"]}})"),
        media_type::kOciConfig);
    layer_bytes = std::string(300000, 'x') + "layer of " + arch;
    layer = routes.Blob(repo, layer_bytes);
    manifest = routes.Manifest(repo, ManifestJson(config, {layer}), media_type::kOciManifest, "1");
  }
};

RegistryOptions FastOptions() {
  RegistryOptions o;
  o.connect_timeout = absl::Seconds(5);
  o.stall_timeout = absl::Seconds(10);
  o.request_timeout = absl::Seconds(20);
  return o;
}

std::string Fetch(RegistryClient& client, const Reference& repo, const Descriptor& d,
                  absl::Status* status) {
  std::string out;
  *status = client.FetchBlob(repo, d, [&](absl::string_view chunk) {
    out.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  });
  return out;
}

// --- pure parts ---------------------------------------------------------------------------------

TEST(RegistryEndpointTest, DockerHubHttpsAndInsecureRegistries) {
  RegistryOptions o;
  o.insecure_registries = {"myreg:5000", "plainhost", "10.0.0.0/8", "fd00::/8"};
  RegistryClient client(o);
  EXPECT_EQ(client.BaseUrl("docker.io"), "https://registry-1.docker.io");
  EXPECT_EQ(client.BaseUrl("registry.example.com"), "https://registry.example.com");
  EXPECT_EQ(client.BaseUrl("registry.example.com:5000"), "https://registry.example.com:5000");
  // Docker's rule: loopback is insecure by default.
  EXPECT_EQ(client.BaseUrl("127.0.0.1:5000"), "http://127.0.0.1:5000");
  EXPECT_EQ(client.BaseUrl("127.8.9.10:5000"), "http://127.8.9.10:5000");
  EXPECT_EQ(client.BaseUrl("localhost:5000"), "http://localhost:5000");
  EXPECT_EQ(client.BaseUrl("[::1]:5000"), "http://[::1]:5000");
  // Listed ones.
  EXPECT_EQ(client.BaseUrl("myreg:5000"), "http://myreg:5000");
  EXPECT_EQ(client.BaseUrl("myreg:5001"), "https://myreg:5001");
  EXPECT_EQ(client.BaseUrl("plainhost:1234"), "http://plainhost:1234");
  EXPECT_EQ(client.BaseUrl("10.1.2.3:5000"), "http://10.1.2.3:5000");
  EXPECT_EQ(client.BaseUrl("11.1.2.3:5000"), "https://11.1.2.3:5000");
  EXPECT_EQ(client.BaseUrl("[fd00::1]:5000"), "http://[fd00::1]:5000");
  EXPECT_TRUE(client.IsInsecure("MYREG:5000"));
  EXPECT_FALSE(client.IsInsecure("docker.io"));

  RegistryOptions strict;
  strict.loopback_is_insecure = false;
  EXPECT_EQ(RegistryClient(strict).BaseUrl("127.0.0.1:5000"), "https://127.0.0.1:5000");
}

TEST(PullProgressTest, FormatsLikeDocker) {
  EXPECT_EQ(HumanSize(0), "0 B");
  EXPECT_EQ(HumanSize(999), "999 B");
  EXPECT_EQ(HumanSize(950000), "950 kB");
  EXPECT_EQ(HumanSize(3100000), "3.1 MB");
  EXPECT_EQ(HumanSize(12000000), "12 MB");
  EXPECT_EQ(HumanSize(int64_t{2} * 1000 * 1000 * 1000), "2.0 GB");
  EXPECT_EQ(FormatPullProgress(3146000, 12000000), "3.1 MB / 12 MB");
}

// --- the fake registry -------------------------------------------------------------------------

class FakeRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SHOAL_REQUIRE(!Python().empty(), "python3 is not installed (the fake registry needs it)");
  }
};

TEST_F(FakeRegistryTest, BearerTokenChallengeIsAnsweredAndTheTokenCached) {
  FakeImage image;
  json config = {{"auth", {{"type", "bearer"}, {"token", "tok-123"}, {"service", "fake-reg"}}},
                 {"routes", image.routes.routes}};
  auto fake = FakeRegistry::Start(config);
  ASSERT_NE(fake, nullptr);
  RegistryClient client(FastOptions());
  Reference ref = Ref(fake->domain() + "/app:1");

  absl::StatusOr<ResolvedManifest> m = client.GetManifest(ref);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->manifest.digest, image.manifest.digest);

  std::vector<json> requests = fake->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0]["path"], "/v2/app/manifests/1");
  EXPECT_EQ(requests[0]["authorization"], "");
  EXPECT_EQ(requests[1]["path"], "/token");
  EXPECT_THAT(requests[1]["query"]["service"], ElementsAre("fake-reg"));
  EXPECT_THAT(requests[1]["query"]["scope"], ElementsAre("repository:app:pull"));
  EXPECT_EQ(requests[2]["authorization"], "Bearer tok-123");

  // Later requests send the cached token up front: no more 401s, no second token request.
  absl::Status s;
  EXPECT_EQ(Fetch(client, ref, image.layer, &s), image.layer_bytes);
  ASSERT_TRUE(s.ok()) << s;
  absl::StatusOr<std::string> cfg = client.FetchBlobToString(ref, image.config);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  requests = fake->Requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[3]["authorization"], "Bearer tok-123");
  EXPECT_EQ(requests[4]["authorization"], "Bearer tok-123");
  EXPECT_EQ(fake->CountPath("/token"), 1);
}

TEST_F(FakeRegistryTest, ExpiredTokensAreRenewed) {
  FakeImage image;
  json config = {
      {"auth", {{"type", "bearer"}, {"token", "t"}, {"service", "s"}, {"expires_in", 60}}},
      {"routes", image.routes.routes}};
  auto fake = FakeRegistry::Start(config);
  ASSERT_NE(fake, nullptr);
  ManualClock clock;
  RegistryOptions o = FastOptions();
  o.clock = &clock;
  RegistryClient client(o);
  Reference ref = Ref(fake->domain() + "/app:1");
  ASSERT_TRUE(client.GetManifest(ref).ok());
  clock.Advance(absl::Seconds(30));
  ASSERT_TRUE(client.GetManifest(ref).ok());
  EXPECT_EQ(fake->CountPath("/token"), 1);
  clock.Advance(absl::Seconds(60));
  ASSERT_TRUE(client.GetManifest(ref).ok());
  EXPECT_EQ(fake->CountPath("/token"), 2);
}

TEST_F(FakeRegistryTest, TokenServerCredentials) {
  FakeImage image;
  json config = {{"auth",
                  {{"type", "bearer"},
                   {"token", "t"},
                   {"service", "s"},
                   {"username", "alice"},
                   {"password", "s3cret"}}},
                 {"routes", image.routes.routes}};
  auto fake = FakeRegistry::Start(config);
  ASSERT_NE(fake, nullptr);
  Reference ref = Ref(fake->domain() + "/app:1");

  RegistryOptions good = FastOptions();
  good.credentials[fake->domain()] = {"alice", "s3cret"};
  absl::StatusOr<ResolvedManifest> m = RegistryClient(good).GetManifest(ref);
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<json> requests = fake->Requests();
  ASSERT_GE(requests.size(), 2u);
  EXPECT_EQ(requests[1]["authorization"], "Basic " + Base64("alice:s3cret"));

  RegistryOptions bad = FastOptions();
  bad.credentials[fake->domain()] = {"alice", "wrong"};
  m = RegistryClient(bad).GetManifest(ref);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("refused the credentials of user \"alice\": incorrect username or "
                        "password"));

  m = RegistryClient(FastOptions()).GetManifest(ref);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("pull access denied for " + fake->domain() +
                        "/app: repository does not exist or may require authorization"));
}

TEST_F(FakeRegistryTest, BasicChallenge) {
  FakeImage image;
  json config = {{"auth", {{"type", "basic"}, {"username", "bob"}, {"password", "pw"}}},
                 {"routes", image.routes.routes}};
  auto fake = FakeRegistry::Start(config);
  ASSERT_NE(fake, nullptr);
  Reference ref = Ref(fake->domain() + "/app:1");
  RegistryOptions o = FastOptions();
  o.credentials[fake->domain()] = {"bob", "pw"};
  RegistryClient client(o);
  ASSERT_TRUE(client.GetManifest(ref).ok());
  absl::Status s;
  Fetch(client, ref, image.layer, &s);
  ASSERT_TRUE(s.ok()) << s;
  // One 401 in all: afterwards the credentials go up front.
  std::vector<json> requests = fake->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2]["authorization"], "Basic " + Base64("bob:pw"));

  absl::StatusOr<ResolvedManifest> m = RegistryClient(FastOptions()).GetManifest(ref);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("unauthorized: authentication required (no credentials are configured "
                        "for " +
                        fake->domain() + ")"));
}

TEST_F(FakeRegistryTest, TamperedBlobIsDataLoss) {
  FakeImage image;
  // Same length, other bytes.
  std::string evil = image.layer_bytes;
  evil[1000] = 'y';
  image.routes.routes[absl::StrCat("/v2/app/blobs/", image.layer.digest)] = {
      {"body_b64", Base64(evil)}};
  // Longer than the descriptor says.
  Descriptor config = image.config;
  image.routes.routes[absl::StrCat("/v2/app/blobs/", config.digest)] = {
      {"body_b64", Base64(std::string(config.size + 10, 'c'))}};
  auto fake = FakeRegistry::Start({{"routes", image.routes.routes}});
  ASSERT_NE(fake, nullptr);
  RegistryClient client(FastOptions());
  Reference ref = Ref(fake->domain() + "/app:1");

  absl::Status s;
  Fetch(client, ref, image.layer, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("blob " + image.layer.digest));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("failed verification: the registry sent content with digest " +
                        Sha256Digest(evil)));

  Fetch(client, ref, config, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("blob " + config.digest + " of " + fake->domain() +
                        "/app failed verification: the registry sent more than the " +
                        std::to_string(config.size) + " bytes"));
}

TEST_F(FakeRegistryTest, ShortBlobAndBadDescriptorsAreDataLoss) {
  FakeImage image;
  auto fake = FakeRegistry::Start({{"routes", image.routes.routes}});
  ASSERT_NE(fake, nullptr);
  RegistryClient client(FastOptions());
  Reference ref = Ref(fake->domain() + "/app:1");
  Descriptor claims_more = image.layer;
  claims_more.size += 1;
  absl::Status s;
  Fetch(client, ref, claims_more, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("the registry sent " + std::to_string(image.layer.size) +
                        " bytes, its descriptor says " + std::to_string(claims_more.size)));

  Descriptor bad_digest = image.layer;
  bad_digest.digest = "sha256:abc";
  Fetch(client, ref, bad_digest, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(FakeRegistryTest, TamperedManifestsAreDataLoss) {
  FakeImage image;
  // The tag's Docker-Content-Digest does not match what is served.
  image.routes.routes["/v2/app/manifests/liar"] = {
      {"body_b64", Base64(ManifestJson(image.config, {image.layer}))},
      {"headers",
       {{"Content-Type", media_type::kOciManifest},
        {"Docker-Content-Digest", "sha256:" + std::string(64, '0')}}}};
  // An index whose entry points at a manifest the registry serves altered.
  Descriptor entry = image.manifest;
  entry.platform = Platform{"linux", "amd64", ""};
  json index = {{"schemaVersion", 2},
                {"mediaType", media_type::kOciIndex},
                {"manifests", {DescriptorJson(entry)}}};
  image.routes.Manifest("app", index.dump(), media_type::kOciIndex, "multi");
  image.routes.routes[absl::StrCat("/v2/app/manifests/", image.manifest.digest)]["body_b64"] =
      Base64(ManifestJson(image.config, {image.layer, image.layer}));
  auto fake = FakeRegistry::Start({{"routes", image.routes.routes}});
  ASSERT_NE(fake, nullptr);
  RegistryClient client(FastOptions());

  absl::StatusOr<ResolvedManifest> m = client.GetManifest(Ref(fake->domain() + "/app:liar"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("manifest sha256:" + std::string(64, '0')));

  m = client.GetManifest(Ref(fake->domain() + "/app:multi"), Platform{"linux", "amd64", ""});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("manifest " + image.manifest.digest));

  // By digest: the body must have that digest.
  m = client.GetManifest(Ref(fake->domain() + "/app@" + image.manifest.digest));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << m.status();
}

TEST_F(FakeRegistryTest, ManifestListSelectsThePlatform) {
  Routes routes;
  FakeImage amd("app", "amd64");
  FakeImage arm("app", "arm64");
  routes.routes.update(amd.routes.routes);
  routes.routes.update(arm.routes.routes);
  auto docker_manifest = [&](FakeImage& img) {
    Descriptor d =
        routes.Manifest("app", ManifestJson(img.config, {img.layer}, media_type::kDockerManifest),
                        media_type::kDockerManifest);
    return d;
  };
  Descriptor a = docker_manifest(amd);
  a.platform = Platform{"linux", "amd64", ""};
  Descriptor b = docker_manifest(arm);
  b.platform = Platform{"linux", "arm64", "v8"};
  Descriptor attestation{media_type::kOciManifest, Sha256Digest("x"), 1};
  attestation.platform = Platform{"unknown", "unknown", ""};
  json list = {{"schemaVersion", 2},
               {"mediaType", media_type::kDockerManifestList},
               {"manifests", {DescriptorJson(a), DescriptorJson(b), DescriptorJson(attestation)}}};
  Descriptor list_desc =
      routes.Manifest("app", list.dump(), media_type::kDockerManifestList, "multi");
  auto fake = FakeRegistry::Start({{"routes", routes.routes}});
  ASSERT_NE(fake, nullptr);
  RegistryClient client(FastOptions());
  Reference ref = Ref(fake->domain() + "/app:multi");

  absl::StatusOr<ResolvedManifest> m = client.GetManifest(ref, Platform{"linux", "arm64", ""});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->target.digest, list_desc.digest);
  EXPECT_EQ(m->target.media_type, media_type::kDockerManifestList);
  EXPECT_EQ(m->target_json, list.dump());
  EXPECT_EQ(m->reference.String(), ref.String() + "@" + list_desc.digest);
  EXPECT_EQ(m->manifest.digest, b.digest);
  EXPECT_EQ(m->manifest.media_type, media_type::kDockerManifest);
  EXPECT_EQ(m->platform.String(), "linux/arm64/v8");
  EXPECT_EQ(m->image.config.digest, arm.config.digest);
  EXPECT_EQ(m->image.layers.at(0).digest, arm.layer.digest);

  m = client.GetManifest(ref, Platform{"linux", "amd64", ""});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->manifest.digest, a.digest);

  m = client.GetManifest(ref, Platform{"linux", "s390x", ""});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m.status().message(),
            "image " + fake->domain() +
                "/app:multi: no matching manifest for linux/s390x in the manifest list entries "
                "(the list has: linux/amd64, linux/arm64/v8, unknown/unknown)");
}

TEST_F(FakeRegistryTest, SchemaOneIsRefused) {
  Routes routes;
  routes.routes["/v2/old/manifests/1"] = {
      {"body", R"({"schemaVersion":1,"name":"old","tag":"1","fsLayers":[],"signatures":[]})"},
      {"headers", {{"Content-Type", media_type::kDockerSchema1Signed}}}};
  auto fake = FakeRegistry::Start({{"routes", routes.routes}});
  ASSERT_NE(fake, nullptr);
  absl::StatusOr<ResolvedManifest> m =
      RegistryClient(FastOptions()).GetManifest(Ref(fake->domain() + "/old:1"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("uses the Docker image manifest version 2, schema 1 format"));
}

TEST_F(FakeRegistryTest, ResolveUsesHead) {
  FakeImage image;
  auto fake = FakeRegistry::Start({{"routes", image.routes.routes}});
  ASSERT_NE(fake, nullptr);
  RegistryClient client(FastOptions());
  absl::StatusOr<Descriptor> d = client.Resolve(Ref(fake->domain() + "/app:1"));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, image.manifest.digest);
  EXPECT_EQ(d->size, image.manifest.size);
  EXPECT_EQ(d->media_type, media_type::kOciManifest);
  std::vector<json> requests = fake->Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0]["method"], "HEAD");

  d = client.Resolve(Ref(fake->domain() + "/app:2"));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr("manifest for " + fake->domain() + "/app:2 not found"));
}

TEST_F(FakeRegistryTest, BlobRedirectsAreFollowedWithinBounds) {
  FakeImage image;
  const std::string blob_path = absl::StrCat("/v2/app/blobs/", image.layer.digest);
  image.routes.routes["/storage/layer"] = image.routes.routes[blob_path];
  image.routes.routes[blob_path] = {{"redirect", "/storage/layer"}};
  Descriptor looping = image.routes.Blob("app", "loop");
  image.routes.routes[absl::StrCat("/v2/app/blobs/", looping.digest)] = {
      {"redirect", absl::StrCat("/v2/app/blobs/", looping.digest)}};
  auto fake = FakeRegistry::Start({{"routes", image.routes.routes}});
  ASSERT_NE(fake, nullptr);
  RegistryOptions o = FastOptions();
  o.max_redirects = 3;
  RegistryClient client(o);
  Reference ref = Ref(fake->domain() + "/app:1");
  absl::Status s;
  EXPECT_EQ(Fetch(client, ref, image.layer, &s), image.layer_bytes);
  EXPECT_TRUE(s.ok()) << s;

  Fetch(client, ref, looping, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("more than 3 redirects"));
}

TEST_F(FakeRegistryTest, BrokenAndStalledTransfers) {
  FakeImage image;
  Descriptor broken = image.routes.Blob("app", std::string(100000, 'b'));
  image.routes.routes[absl::StrCat("/v2/app/blobs/", broken.digest)]["truncate"] = true;
  Descriptor stalled = image.routes.Blob("app", std::string(1000, 's'));
  image.routes.routes[absl::StrCat("/v2/app/blobs/", stalled.digest)]["stall"] = true;
  auto fake = FakeRegistry::Start({{"routes", image.routes.routes}});
  ASSERT_NE(fake, nullptr);
  Reference ref = Ref(fake->domain() + "/app:1");
  RegistryOptions o = FastOptions();
  o.stall_timeout = absl::Seconds(1);
  RegistryClient client(o);

  absl::Status s;
  Fetch(client, ref, broken, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("the connection to registry " + fake->domain() + " broke"));

  Fetch(client, ref, stalled, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("did not answer in time"));

  // Cancellation ends a transfer that waits on the registry.
  TransferOptions cancel;
  cancel.cancelled = [] { return true; };
  s = client.FetchBlob(
      ref, stalled, [](absl::string_view) { return absl::OkStatus(); }, cancel);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;

  // A sink's error is returned as it is.
  s = client.FetchBlob(ref, image.layer,
                       [](absl::string_view) { return absl::ResourceExhaustedError("disk full"); });
  EXPECT_EQ(s, absl::ResourceExhaustedError("disk full"));
}

TEST_F(FakeRegistryTest, ProgressReportsBytesSoFarAndTotal) {
  FakeImage image;
  Descriptor big = image.routes.Blob("app", std::string(5 << 20, 'p'));
  auto fake = FakeRegistry::Start({{"routes", image.routes.routes}});
  ASSERT_NE(fake, nullptr);
  RegistryClient client(FastOptions());
  std::vector<PullProgress> seen;
  TransferOptions t;
  t.progress = [&](const PullProgress& p) { seen.push_back(p); };
  int64_t received = 0;
  absl::Status s = client.FetchBlob(
      Ref(fake->domain() + "/app:1"), big,
      [&](absl::string_view chunk) {
        received += chunk.size();
        return absl::OkStatus();
      },
      t);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(received, big.size);
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.front().done, 0);
  EXPECT_EQ(seen.back().done, big.size);
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].total, big.size);
    EXPECT_EQ(seen[i].digest, big.digest);
    if (i > 0) {
      EXPECT_GT(seen[i].done, seen[i - 1].done);
    }
  }
}

TEST_F(FakeRegistryTest, ConnectionRefused) {
  const int port = PickFreeLoopbackPort();  // nothing listens there
  RegistryClient client(FastOptions());
  absl::StatusOr<ResolvedManifest> m =
      client.GetManifest(Ref(absl::StrCat("127.0.0.1:", port, "/app:1")));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr(absl::StrCat("cannot reach registry 127.0.0.1:", port, ": ")));
}

TEST_F(FakeRegistryTest, HttpsWithAPrivateCa) {
  const std::string openssl = FindTool("openssl");
  SHOAL_REQUIRE(!openssl.empty(), "openssl is not installed");
  TempDir dir("shoal-tls");
  const std::string cert = dir.path() + "/cert.pem";
  const std::string key = dir.path() + "/key.pem";
  CommandResult r =
      RunCommand({openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days",
                  "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  FakeImage image;
  auto tls = FakeRegistry::Start({{"routes", image.routes.routes}}, cert, key);
  ASSERT_NE(tls, nullptr);
  Reference ref = Ref(tls->domain() + "/app:1");

  RegistryOptions trusted = FastOptions();
  trusted.loopback_is_insecure = false;
  trusted.ca_file = cert;
  absl::StatusOr<ResolvedManifest> m = RegistryClient(trusted).GetManifest(ref);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->manifest.digest, image.manifest.digest);

  // The system's CAs do not know this one.
  RegistryOptions untrusted = FastOptions();
  untrusted.loopback_is_insecure = false;
  m = RegistryClient(untrusted).GetManifest(ref);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("cannot reach registry " + tls->domain() + " over HTTPS"));

  // HTTPS to a plain-HTTP registry: the error says to list it as insecure.
  auto plain = FakeRegistry::Start({{"routes", image.routes.routes}});
  ASSERT_NE(plain, nullptr);
  m = RegistryClient(untrusted).GetManifest(Ref(plain->domain() + "/app:1"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("start shoald with --insecure-registry " + plain->domain()));
  // Listed as insecure, it works.
  untrusted.insecure_registries = {plain->domain()};
  EXPECT_TRUE(RegistryClient(untrusted).GetManifest(Ref(plain->domain() + "/app:1")).ok());
}

// --- a real docker-registry ---------------------------------------------------------------------

class RealRegistryTest : public ::testing::Test {
 protected:
  struct Lab {
    std::string skip_reason;
    std::unique_ptr<TempDir> dir;
    std::string registry_script;
    std::string registry_dir;
    std::string domain;
    std::string image_tar;
    std::string busybox_digest;  // the host image, busybox:1
    std::string other_digest;    // the riscv64-labelled image, busybox:other
    std::string other_arch;
  };
  static Lab* lab_;

  static std::string Missing() {
    for (const char* tool : {"docker-registry", "skopeo", "umoci", "curl"}) {
      if (FindTool(tool).empty()) {
        return absl::StrCat(tool,
                            " is not installed (Debian packages docker-registry skopeo "
                            "umoci curl)");
      }
    }
    if (::access("/bin/busybox", X_OK) != 0) return "busybox-static is not installed";
    if (Python().empty()) return "python3 is not installed";
    if (LabScript("image").empty() || LabScript("registry").empty()) {
      return "tools/lab/image or tools/lab/registry not found next to the test's runfiles";
    }
    return "";
  }

  // Runs a lab script; returns its stdout's last line, or fails the test.
  static std::string RunLab(const std::vector<std::string>& argv) {
    CommandOptions options;
    options.timeout = absl::Seconds(120);
    CommandResult r = RunCommand(argv, options);
    EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(argv, " ") << "\n" << r.out << r.err;
    std::string out(absl::StripTrailingAsciiWhitespace(r.out));
    size_t nl = out.rfind('\n');
    return nl == std::string::npos ? out : out.substr(nl + 1);
  }

  static void SetUpTestSuite() {
    lab_ = new Lab();
    lab_->skip_reason = Missing();
    if (!lab_->skip_reason.empty()) return;
    lab_->dir = std::make_unique<TempDir>("shoal-reg");
    const std::string dir = lab_->dir->path();
    const std::string image = LabScript("image");
    lab_->registry_script = LabScript("registry");
    lab_->registry_dir = dir + "/registry";
    lab_->image_tar = dir + "/busybox.tar";
    lab_->other_arch = HostPlatform().architecture == "riscv64" ? "s390x" : "riscv64";
    RunLab({image, "build", lab_->image_tar});
    RunLab({image, "build", dir + "/other.tar", "--arch", lab_->other_arch, "--cmd", "true"});
    // A port that was free a moment ago; retry once should another process take it meanwhile.
    for (int attempt = 0; attempt < 2 && lab_->domain.empty(); ++attempt) {
      CommandResult r = RunCommand({lab_->registry_script, "start", lab_->registry_dir, "--port",
                                    std::to_string(PickFreeLoopbackPort())});
      if (r.exit_code == 0) lab_->domain = std::string(absl::StripTrailingAsciiWhitespace(r.out));
    }
    ASSERT_FALSE(lab_->domain.empty()) << "tools/lab/registry start failed";
    auto digest_of = [](const std::string& pushed) { return pushed.substr(pushed.rfind('@') + 1); };
    lab_->busybox_digest = digest_of(
        RunLab({lab_->registry_script, "push", lab_->registry_dir, lab_->image_tar, "busybox:1"}));
    lab_->other_digest = digest_of(RunLab(
        {lab_->registry_script, "push", lab_->registry_dir, dir + "/other.tar", "busybox:other"}));
    RunLab({lab_->registry_script, "index", lab_->registry_dir, "busybox:multi",
            "1=" + HostPlatform().String(), "other=linux/" + lab_->other_arch});
  }

  static void TearDownTestSuite() {
    if (lab_ != nullptr && !lab_->registry_dir.empty()) {
      RunCommand({lab_->registry_script, "stop", lab_->registry_dir});
    }
    delete lab_;
    lab_ = nullptr;
  }

  void SetUp() override {
    SHOAL_REQUIRE(lab_->skip_reason.empty(), lab_->skip_reason);
    ASSERT_FALSE(lab_->domain.empty());
  }

  Reference R(const std::string& rest) { return Ref(lab_->domain + "/" + rest); }
};

RealRegistryTest::Lab* RealRegistryTest::lab_ = nullptr;

TEST_F(RealRegistryTest, PullsTheBusyboxImage) {
  RegistryClient client(FastOptions());
  const absl::Time start = absl::Now();
  absl::StatusOr<ResolvedManifest> m = client.GetManifest(R("busybox:1"));
  ASSERT_TRUE(m.ok()) << m.status();
  const absl::Time manifest_done = absl::Now();
  EXPECT_EQ(m->target.digest, lab_->busybox_digest);
  EXPECT_EQ(m->target.media_type, media_type::kOciManifest);
  EXPECT_EQ(m->manifest.digest, m->target.digest);
  EXPECT_EQ(Sha256Digest(m->manifest_json), lab_->busybox_digest);
  EXPECT_EQ(m->reference.String(), lab_->domain + "/busybox:1@" + lab_->busybox_digest);
  ASSERT_EQ(m->image.layers.size(), 1u);

  absl::StatusOr<std::string> config = client.FetchBlobToString(m->reference, m->image.config);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<ImageConfig> parsed = ParseImageConfig(*config);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->platform.architecture, HostPlatform().architecture);
  EXPECT_THAT(parsed->cmd, ElementsAre("sh"));
  ASSERT_EQ(parsed->diff_ids.size(), 1u);

  std::string layer;
  std::vector<PullProgress> progress;
  TransferOptions t;
  t.progress = [&](const PullProgress& p) { progress.push_back(p); };
  absl::Status s = client.FetchBlob(
      m->reference, m->image.layers[0],
      [&](absl::string_view chunk) {
        layer.append(chunk.data(), chunk.size());
        return absl::OkStatus();
      },
      t);
  ASSERT_TRUE(s.ok()) << s;
  const absl::Time end = absl::Now();
  EXPECT_EQ(static_cast<int64_t>(layer.size()), m->image.layers[0].size);
  EXPECT_EQ(Sha256Digest(layer), m->image.layers[0].digest);
  ASSERT_GE(layer.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(layer[0]), 0x1f);  // gzip
  EXPECT_EQ(static_cast<unsigned char>(layer[1]), 0x8b);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().done, m->image.layers[0].size);
  EXPECT_EQ(progress.back().total, m->image.layers[0].size);

  const int64_t bytes = m->target.size + m->image.config.size + m->image.layers[0].size;
  std::cout << "busybox pull from the local registry: manifest "
            << absl::ToDoubleMilliseconds(manifest_done - start) << " ms, config + layer "
            << absl::ToDoubleMilliseconds(end - manifest_done) << " ms, total "
            << absl::ToDoubleMilliseconds(end - start) << " ms for " << HumanSize(bytes)
            << std::endl;
  RecordProperty("pull_ms", std::to_string(absl::ToInt64Milliseconds(end - start)));
}

TEST_F(RealRegistryTest, PullsByDigestAndResolves) {
  RegistryClient client(FastOptions());
  absl::StatusOr<ResolvedManifest> m = client.GetManifest(R("busybox@" + lab_->busybox_digest));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->manifest.digest, lab_->busybox_digest);
  absl::StatusOr<Descriptor> d = client.Resolve(R("busybox:1"));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->digest, lab_->busybox_digest);
  EXPECT_EQ(d->size, m->target.size);
  EXPECT_EQ(d->media_type, media_type::kOciManifest);
}

TEST_F(RealRegistryTest, SelectsThePlatformFromAnIndex) {
  RegistryClient client(FastOptions());
  absl::StatusOr<ResolvedManifest> m = client.GetManifest(R("busybox:multi"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->target.media_type, media_type::kOciIndex);
  EXPECT_EQ(m->manifest.digest, lab_->busybox_digest);

  m = client.GetManifest(R("busybox:multi"), Platform{"linux", lab_->other_arch, ""});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->manifest.digest, lab_->other_digest);
  EXPECT_EQ(m->platform.architecture, lab_->other_arch);
  absl::StatusOr<std::string> config = client.FetchBlobToString(m->reference, m->image.config);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<ImageConfig> parsed = ParseImageConfig(*config);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->platform.architecture, lab_->other_arch);
  EXPECT_THAT(parsed->cmd, ElementsAre("true"));

  m = client.GetManifest(R("busybox:multi"), Platform{"linux", "mips64le", ""});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("no matching manifest for linux/mips64le in the manifest list entries"));
}

TEST_F(RealRegistryTest, UnknownRepositoryTagAndBlob) {
  RegistryClient client(FastOptions());
  absl::StatusOr<ResolvedManifest> m = client.GetManifest(R("nope:1"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("pull access denied for " + lab_->domain +
                        "/nope: repository does not exist or may require authorization"));

  m = client.GetManifest(R("busybox:nope"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m.status().message(),
            "manifest for " + lab_->domain + "/busybox:nope not found: manifest unknown");

  Descriptor missing{media_type::kOciLayerGzip, Sha256Digest("not there"), 9};
  absl::Status s;
  Fetch(client, R("busybox"), missing, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("blob " + missing.digest + " not found in " + lab_->domain + "/busybox"));
}

TEST_F(RealRegistryTest, WrongDescriptorSizesAreDataLoss) {
  RegistryClient client(FastOptions());
  absl::StatusOr<ResolvedManifest> m = client.GetManifest(R("busybox:1"));
  ASSERT_TRUE(m.ok()) << m.status();
  Descriptor smaller = m->image.config;
  smaller.size -= 1;
  absl::Status s;
  Fetch(client, m->reference, smaller, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(smaller.digest));
}

TEST_F(RealRegistryTest, ResumesAtAnOffset) {
  RegistryClient client(FastOptions());
  absl::StatusOr<ResolvedManifest> m = client.GetManifest(R("busybox:1"));
  ASSERT_TRUE(m.ok()) << m.status();
  const Descriptor& layer = m->image.layers.at(0);
  absl::Status s;
  std::string whole = Fetch(client, m->reference, layer, &s);
  ASSERT_TRUE(s.ok()) << s;
  std::string tail;
  TransferOptions t;
  t.offset = 1000;
  s = client.FetchBlob(
      m->reference, layer,
      [&](absl::string_view chunk) {
        tail.append(chunk.data(), chunk.size());
        return absl::OkStatus();
      },
      t);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(tail, whole.substr(1000));
}

TEST_F(RealRegistryTest, BasicAuthRegistry) {
  const std::string dir = lab_->dir->path() + "/auth-registry";
  CommandResult r =
      RunCommand({lab_->registry_script, "start", dir, "--port",
                  std::to_string(PickFreeLoopbackPort()), "--htpasswd", "alice:s3cret"});
  if (r.exit_code != 0 && absl::StrContains(r.err, "needs a bcrypt hasher")) {
    GTEST_SKIP() << r.err;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct Stop {
    std::string script, dir;
    ~Stop() { RunCommand({script, "stop", dir}); }
  } stop{lab_->registry_script, dir};
  const std::string domain(absl::StripTrailingAsciiWhitespace(r.out));
  RunLab({lab_->registry_script, "push", dir, lab_->image_tar, "busybox:1", "--creds",
          "alice:s3cret"});
  Reference ref = Ref(domain + "/busybox:1");

  absl::StatusOr<ResolvedManifest> m = RegistryClient(FastOptions()).GetManifest(ref);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("pull access denied for " + domain + "/busybox"));

  RegistryOptions wrong = FastOptions();
  wrong.credentials[domain] = {"alice", "wrong"};
  m = RegistryClient(wrong).GetManifest(ref);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kPermissionDenied);

  RegistryOptions right = FastOptions();
  right.credentials[domain] = {"alice", "s3cret"};
  RegistryClient client(right);
  m = client.GetManifest(ref);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->manifest.digest, lab_->busybox_digest);
  absl::Status s;
  Fetch(client, ref, m->image.layers.at(0), &s);
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace
}  // namespace shoal::agent::image
