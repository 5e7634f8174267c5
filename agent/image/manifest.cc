#include "agent/image/manifest.h"

#include <sys/utsname.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/image/digest.h"
#include "nlohmann/json.hpp"

namespace shoal::agent::image {
namespace {

using nlohmann::json;

absl::Status Malformed(absl::string_view what, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed ", std::string(what), ": ", std::string(problem)));
}

absl::StatusOr<json> ParseJson(absl::string_view body, absl::string_view what) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Malformed(what, "not valid JSON");
  if (!doc.is_object()) return Malformed(what, "not a JSON object");
  return doc;
}

// The string at `key`, "" when absent; an error when present with another type.
absl::StatusOr<std::string> OptionalString(const json& obj, const char* key,
                                           absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return Malformed(what, absl::StrCat("\"", key, "\" is not a string"));
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> OptionalStrings(const json& obj, const char* key,
                                                         absl::string_view what) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_array()) {
    return Malformed(what, absl::StrCat("\"", key, "\" is not a list of strings"));
  }
  for (const json& v : *it) {
    if (!v.is_string()) {
      return Malformed(what, absl::StrCat("\"", key, "\" is not a list of strings"));
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> OptionalStringMap(const json& obj,
                                                                     const char* key,
                                                                     absl::string_view what) {
  std::map<std::string, std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_object()) return Malformed(what, absl::StrCat("\"", key, "\" is not an object"));
  for (auto kv = it->begin(); kv != it->end(); ++kv) {
    if (!kv.value().is_string()) {
      return Malformed(what, absl::StrCat("\"", key, ".", kv.key(), "\" is not a string"));
    }
    out[kv.key()] = kv.value().get<std::string>();
  }
  return out;
}

// The keys of an object-valued field ("ExposedPorts": {"80/tcp": {}}).
absl::StatusOr<std::vector<std::string>> OptionalKeys(const json& obj, const char* key,
                                                      absl::string_view what) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (!it->is_object()) return Malformed(what, absl::StrCat("\"", key, "\" is not an object"));
  for (auto kv = it->begin(); kv != it->end(); ++kv) out.push_back(kv.key());
  return out;
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& d, absl::string_view what) {
  if (!d.is_object()) return Malformed(what, "a descriptor is not an object");
  Descriptor out;
  auto media = OptionalString(d, "mediaType", what);
  if (!media.ok()) return media.status();
  out.media_type = *std::move(media);
  auto digest = OptionalString(d, "digest", what);
  if (!digest.ok()) return digest.status();
  if (digest->empty()) return Malformed(what, "a descriptor has no \"digest\"");
  if (absl::Status s = ValidateDigest(*digest); !s.ok()) return Malformed(what, s.message());
  out.digest = *std::move(digest);
  auto size = d.find("size");
  if (size == d.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return Malformed(what, absl::StrCat("descriptor ", out.digest,
                                        " has no valid \"size\" (a non-negative integer)"));
  }
  out.size = size->get<int64_t>();
  auto urls = OptionalStrings(d, "urls", what);
  if (!urls.ok()) return urls.status();
  out.urls = *std::move(urls);
  auto annotations = OptionalStringMap(d, "annotations", what);
  if (!annotations.ok()) return annotations.status();
  out.annotations = *std::move(annotations);
  if (auto p = d.find("platform"); p != d.end() && !p->is_null()) {
    if (!p->is_object()) return Malformed(what, "\"platform\" is not an object");
    Platform platform;
    auto os = OptionalString(*p, "os", what);
    auto arch = OptionalString(*p, "architecture", what);
    auto variant = OptionalString(*p, "variant", what);
    if (!os.ok()) return os.status();
    if (!arch.ok()) return arch.status();
    if (!variant.ok()) return variant.status();
    platform.os = *std::move(os);
    platform.architecture = *std::move(arch);
    platform.variant = *std::move(variant);
    out.platform = std::move(platform);
  }
  return out;
}

absl::Status CheckSchemaVersion(const json& doc, absl::string_view what) {
  auto v = doc.find("schemaVersion");
  if (v == doc.end() || !v->is_number_integer()) {
    return Malformed(what, "no \"schemaVersion\"");
  }
  if (v->get<int64_t>() != 2) {
    return Malformed(what, absl::StrCat("\"schemaVersion\" is ", v->get<int64_t>(), ", not 2"));
  }
  return absl::OkStatus();
}

// containerd's normalizeArch.
void NormalizeArch(std::string& arch, std::string& variant) {
  if (arch == "i386" || arch == "i686") {
    arch = "386";
    variant.clear();
  } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (variant == "v1") variant.clear();
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (variant == "8" || variant == "v8") variant.clear();
  } else if (arch == "armhf") {
    arch = "arm";
    variant = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    variant = "v6";
  } else if (arch == "arm") {
    if (variant.empty() || variant == "7") {
      variant = "v7";
    } else if (variant == "5" || variant == "6" || variant == "8") {
      variant = absl::StrCat("v", variant);
    }
  }
}

// How well `have` suits `want`: 0 is an exact match, larger is worse, -1 is no match.
int MatchRank(const Platform& have_in, const Platform& want_in) {
  Platform have = NormalizePlatform(have_in);
  Platform want = NormalizePlatform(want_in);
  if (have.os != want.os || have.architecture != want.architecture) return -1;
  if (have.variant == want.variant) return 0;
  // An arm host runs older arm variants: v8 runs v7, v6, v5; v7 runs v6, v5; v6 runs v5.
  if (want.architecture == "arm" && want.variant.size() == 2 && have.variant.size() == 2 &&
      want.variant[0] == 'v' && have.variant[0] == 'v') {
    int w = want.variant[1] - '0';
    int h = have.variant[1] - '0';
    if (h >= 5 && h < w && w <= 8) return w - h;
  }
  return -1;
}

}  // namespace

bool IsIndexMediaType(absl::string_view m) {
  return m == media_type::kDockerManifestList || m == media_type::kOciIndex;
}

bool IsManifestMediaType(absl::string_view m) {
  return m == media_type::kDockerManifest || m == media_type::kOciManifest;
}

bool IsSchema1MediaType(absl::string_view m) {
  return m == media_type::kDockerSchema1 || m == media_type::kDockerSchema1Signed;
}

std::string ManifestAcceptHeader() {
  return absl::StrJoin({media_type::kDockerManifestList, media_type::kOciIndex,
                        media_type::kDockerManifest, media_type::kOciManifest},
                       ", ");
}

std::string Platform::String() const {
  std::string s = absl::StrCat(os, "/", architecture);
  if (!variant.empty()) absl::StrAppend(&s, "/", variant);
  return s;
}

Platform NormalizePlatform(Platform p) {
  p.os = absl::AsciiStrToLower(p.os);
  if (p.os == "macos") p.os = "darwin";
  p.architecture = absl::AsciiStrToLower(p.architecture);
  p.variant = absl::AsciiStrToLower(p.variant);
  NormalizeArch(p.architecture, p.variant);
  return p;
}

Platform PlatformFromMachine(absl::string_view os, absl::string_view machine) {
  Platform p;
  p.os = std::string(os);
  std::string m = absl::AsciiStrToLower(machine);
  if (m == "x86_64" || m == "amd64") {
    p.architecture = "amd64";
  } else if (m == "aarch64" || m == "arm64" || m == "armv8l" || m == "aarch64_be") {
    p.architecture = "arm64";
  } else if (m.size() >= 5 && m.compare(0, 4, "armv") == 0 && m[4] >= '5' && m[4] <= '7') {
    p.architecture = "arm";
    p.variant = absl::StrCat("v", std::string(1, m[4]));
  } else if (m == "i386" || m == "i486" || m == "i586" || m == "i686") {
    p.architecture = "386";
  } else {
    p.architecture = m;  // ppc64le, s390x, riscv64, mips64le: uname and Go agree
  }
  return NormalizePlatform(std::move(p));
}

Platform HostPlatform() {
  struct utsname u;
  if (::uname(&u) != 0) return Platform{"linux", "amd64", ""};
  return PlatformFromMachine("linux", u.machine);
}

absl::StatusOr<Platform> ParsePlatform(absl::string_view s) {
  std::vector<std::string> parts = absl::StrSplit(s, '/');
  if (parts.size() < 2 || parts.size() > 3) {
    return absl::InvalidArgumentError(absl::StrCat("invalid platform \"", std::string(s),
                                                   "\": want OS/ARCH[/VARIANT], e.g. linux/arm64"));
  }
  for (const std::string& p : parts) {
    if (p.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid platform \"", std::string(s), "\": want OS/ARCH[/VARIANT], e.g. linux/arm64"));
    }
    for (char c : p) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
        return absl::InvalidArgumentError(absl::StrCat("invalid platform \"", std::string(s),
                                                       "\": unexpected character '",
                                                       std::string(1, c), "'"));
      }
    }
  }
  Platform p{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
  return NormalizePlatform(std::move(p));
}

bool PlatformMatches(const Platform& have, const Platform& want) {
  return MatchRank(have, want) >= 0;
}

absl::StatusOr<std::string> DetectManifestMediaType(absl::string_view content_type,
                                                    absl::string_view body) {
  // "application/...+json; charset=utf-8" → the type before parameters.
  std::string ct = absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
  if (IsIndexMediaType(ct) || IsManifestMediaType(ct) || IsSchema1MediaType(ct)) return ct;
  absl::StatusOr<json> doc = ParseJson(body, "manifest");
  if (!doc.ok()) return doc.status();
  auto media = OptionalString(*doc, "mediaType", "manifest");
  if (!media.ok()) return media.status();
  if (!media->empty()) return *media;
  if (auto v = doc->find("schemaVersion");
      v != doc->end() && v->is_number_integer() && v->get<int64_t>() == 1) {
    return std::string(media_type::kDockerSchema1);
  }
  if (doc->contains("manifests")) return std::string(media_type::kOciIndex);
  if (doc->contains("layers") || doc->contains("config")) {
    return std::string(media_type::kOciManifest);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the registry answered with a document that is not an image manifest (Content-Type \"",
      std::string(content_type), "\")"));
}

absl::StatusOr<ImageManifest> ParseImageManifest(absl::string_view body,
                                                 absl::string_view media_type) {
  constexpr absl::string_view kWhat = "image manifest";
  if (!IsManifestMediaType(media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", std::string(media_type), "\" is not an image manifest media type"));
  }
  absl::StatusOr<json> doc = ParseJson(body, kWhat);
  if (!doc.ok()) return doc.status();
  if (absl::Status s = CheckSchemaVersion(*doc, kWhat); !s.ok()) return s;
  ImageManifest m;
  m.media_type = std::string(media_type);
  auto own = OptionalString(*doc, "mediaType", kWhat);
  if (!own.ok()) return own.status();
  if (!own->empty() && *own != media_type) {
    return Malformed(
        kWhat, absl::StrCat("its \"mediaType\" ", *own, " contradicts ", std::string(media_type)));
  }
  auto config = doc->find("config");
  if (config == doc->end()) return Malformed(kWhat, "no \"config\"");
  absl::StatusOr<Descriptor> c = ParseDescriptor(*config, kWhat);
  if (!c.ok()) return c.status();
  m.config = *std::move(c);
  auto layers = doc->find("layers");
  if (layers == doc->end() || !layers->is_array()) {
    return Malformed(kWhat, "no \"layers\" list");
  }
  for (const json& l : *layers) {
    absl::StatusOr<Descriptor> d = ParseDescriptor(l, kWhat);
    if (!d.ok()) return d.status();
    m.layers.push_back(*std::move(d));
  }
  auto annotations = OptionalStringMap(*doc, "annotations", kWhat);
  if (!annotations.ok()) return annotations.status();
  m.annotations = *std::move(annotations);
  return m;
}

absl::StatusOr<ImageIndex> ParseImageIndex(absl::string_view body, absl::string_view media_type) {
  constexpr absl::string_view kWhat = "manifest list";
  if (!IsIndexMediaType(media_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", std::string(media_type), "\" is not a manifest list media type"));
  }
  absl::StatusOr<json> doc = ParseJson(body, kWhat);
  if (!doc.ok()) return doc.status();
  if (absl::Status s = CheckSchemaVersion(*doc, kWhat); !s.ok()) return s;
  ImageIndex index;
  index.media_type = std::string(media_type);
  auto manifests = doc->find("manifests");
  if (manifests == doc->end() || !manifests->is_array()) {
    return Malformed(kWhat, "no \"manifests\" list");
  }
  for (const json& e : *manifests) {
    absl::StatusOr<Descriptor> d = ParseDescriptor(e, kWhat);
    if (!d.ok()) return d.status();
    index.manifests.push_back(*std::move(d));
  }
  return index;
}

absl::StatusOr<Descriptor> SelectPlatform(const ImageIndex& index, const Platform& want) {
  const Descriptor* best = nullptr;
  int best_rank = -1;
  const Descriptor* any = nullptr;  // the first entry without a platform
  std::vector<std::string> listed;
  for (const Descriptor& d : index.manifests) {
    if (!d.platform.has_value()) {
      if (any == nullptr) any = &d;
      continue;
    }
    listed.push_back(d.platform->String());
    int rank = MatchRank(*d.platform, want);
    if (rank >= 0 && (best == nullptr || rank < best_rank)) {
      best = &d;
      best_rank = rank;
    }
  }
  if (best != nullptr) return *best;
  if (any != nullptr) return *any;
  return absl::NotFoundError(absl::StrCat(
      "no matching manifest for ", NormalizePlatform(want).String(),
      " in the manifest list entries (the list has: ",
      listed.empty() ? std::string("no platforms") : absl::StrJoin(listed, ", "), ")"));
}

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view body) {
  constexpr absl::string_view kWhat = "image config";
  absl::StatusOr<json> doc = ParseJson(body, kWhat);
  if (!doc.ok()) return doc.status();
  ImageConfig c;
  auto os = OptionalString(*doc, "os", kWhat);
  auto arch = OptionalString(*doc, "architecture", kWhat);
  auto variant = OptionalString(*doc, "variant", kWhat);
  if (!os.ok()) return os.status();
  if (!arch.ok()) return arch.status();
  if (!variant.ok()) return variant.status();
  c.platform = Platform{*os, *arch, *variant};

  if (auto cfg = doc->find("config"); cfg != doc->end() && !cfg->is_null()) {
    if (!cfg->is_object()) return Malformed(kWhat, "\"config\" is not an object");
    auto strings = [&](const char* key, std::vector<std::string>& out) -> absl::Status {
      auto v = OptionalStrings(*cfg, key, kWhat);
      if (!v.ok()) return v.status();
      out = *std::move(v);
      return absl::OkStatus();
    };
    auto string = [&](const char* key, std::string& out) -> absl::Status {
      auto v = OptionalString(*cfg, key, kWhat);
      if (!v.ok()) return v.status();
      out = *std::move(v);
      return absl::OkStatus();
    };
    for (absl::Status s : {strings("Entrypoint", c.entrypoint), strings("Cmd", c.cmd),
                           strings("Env", c.env), string("WorkingDir", c.working_dir),
                           string("User", c.user), string("StopSignal", c.stop_signal)}) {
      if (!s.ok()) return s;
    }
    auto labels = OptionalStringMap(*cfg, "Labels", kWhat);
    if (!labels.ok()) return labels.status();
    c.labels = *std::move(labels);
    auto ports = OptionalKeys(*cfg, "ExposedPorts", kWhat);
    if (!ports.ok()) return ports.status();
    c.exposed_ports = *std::move(ports);
    auto volumes = OptionalKeys(*cfg, "Volumes", kWhat);
    if (!volumes.ok()) return volumes.status();
    c.volumes = *std::move(volumes);
    if (auto hc = cfg->find("Healthcheck"); hc != cfg->end() && !hc->is_null()) {
      if (!hc->is_object()) return Malformed(kWhat, "\"Healthcheck\" is not an object");
      HealthConfig h;
      auto test = OptionalStrings(*hc, "Test", kWhat);
      if (!test.ok()) return test.status();
      h.test = *std::move(test);
      auto number = [&](const char* key) -> absl::StatusOr<int64_t> {
        auto it = hc->find(key);
        if (it == hc->end() || it->is_null()) return 0;
        if (!it->is_number_integer()) {
          return Malformed(kWhat, absl::StrCat("\"Healthcheck.", key, "\" is not an integer"));
        }
        return it->get<int64_t>();
      };
      auto interval = number("Interval");
      auto timeout = number("Timeout");
      auto start = number("StartPeriod");
      auto retries = number("Retries");
      for (const auto* v : {&interval, &timeout, &start, &retries}) {
        if (!v->ok()) return v->status();
      }
      h.interval_ns = *interval;
      h.timeout_ns = *timeout;
      h.start_period_ns = *start;
      h.retries = static_cast<int>(*retries);
      c.healthcheck = std::move(h);
    }
  }

  if (auto rootfs = doc->find("rootfs"); rootfs != doc->end() && !rootfs->is_null()) {
    if (!rootfs->is_object()) return Malformed(kWhat, "\"rootfs\" is not an object");
    auto ids = OptionalStrings(*rootfs, "diff_ids", kWhat);
    if (!ids.ok()) return ids.status();
    for (const std::string& id : *ids) {
      if (absl::Status s = ValidateDigest(id); !s.ok()) {
        return Malformed(kWhat, absl::StrCat("rootfs.diff_ids: ", s.message()));
      }
    }
    c.diff_ids = *std::move(ids);
  }
  return c;
}

}  // namespace shoal::agent::image
