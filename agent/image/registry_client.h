// registry_client: a Docker Registry HTTP API v2 client (pull only), on libcurl.
//
// The agent pulls images itself (containerd 1.6 pulls client-side): GetManifest resolves a
// reference to the image manifest for a platform, following a manifest list / OCI index; FetchBlob
// streams a blob (config, layer) to a sink — e.g. a containerd ContentWriter — while verifying it.
//
// Integrity: every manifest and blob is checked against its digest (sha256, sha384 or sha512) and
// its size as the referring descriptor gives them; a manifest fetched by tag is checked against
// the registry's Docker-Content-Digest header when there is one. A mismatch is DATA_LOSS naming
// the digest. Blob bytes reach the sink as they arrive, so a caller must not trust (commit) what
// it wrote until FetchBlob returns OK — containerd's Content.Commit verifies the digest again.
//
// Endpoints: docker.io is https://registry-1.docker.io; every other registry is
// https://<domain>, except insecure registries, spoken to over plain HTTP: the domains listed in
// RegistryOptions::insecure_registries (exactly as written in references, "host:port"), IP
// addresses inside a listed CIDR ("10.0.0.0/8"), and — Docker's rule — loopback: 127.0.0.0/8,
// ::1 and "localhost". (Docker resolves names and checks their addresses against the CIDRs; this
// client does not resolve names: list such registries by name.)
//
// Authentication: a request answered 401 with `WWW-Authenticate: Bearer realm=...,service=...,
// scope=...` gets a token from the realm (GET with ?service=&scope=, with HTTP basic credentials
// when the registry has some configured) and is retried with `Authorization: Bearer`. Tokens are
// cached per (realm, service, scope) until they expire (expires_in, 60 s when absent), and later
// requests to that registry send them up front. A `Basic` challenge is answered with the
// configured credentials. Credentials are never sent to another host on a redirect (libcurl
// drops the Authorization header when a redirect changes host).
//
// Errors (absl::Status), with messages that name the registry, the reference or the digest:
//   NOT_FOUND          "manifest for 127.0.0.1:5000/app:2 not found: manifest unknown"
//                      "pull access denied for app: repository does not exist or may require
//                      authorization: ..." (the registry does not know the repository; when
//                      it answers MANIFEST_UNKNOWN for a tag, GET /v2/<name>/tags/list tells)
//                      "no matching manifest for linux/arm64 in the manifest list entries ..."
//   PERMISSION_DENIED  "pull access denied for ...: repository does not exist or may require
//                      authorization: ..." (401/403 after authenticating)
//   UNAUTHENTICATED    the token server refused the configured credentials
//   UNAVAILABLE        "cannot reach registry 127.0.0.1:5000: ..." (connection refused, DNS, TLS,
//                      a broken transfer), or an HTTP 5xx
//   DEADLINE_EXCEEDED  no connection within connect_timeout; no data for stall_timeout; a
//                      manifest or token request longer than request_timeout
//   DATA_LOSS          digest or size mismatch
//   FAILED_PRECONDITION  a schema 1 manifest, or a media type this client does not pull
//   RESOURCE_EXHAUSTED HTTP 429 (rate limited)
//   CANCELLED          TransferOptions::cancelled returned true
//   (a sink's own error is returned as it is)
//
// Thread-safety: every method may be called from any thread, concurrently; transfers run in
// parallel (each call uses its own curl handle; idle handles are pooled so that connections are
// reused). Callbacks run on the calling thread.
#ifndef SHOAL_AGENT_IMAGE_REGISTRY_CLIENT_H_
#define SHOAL_AGENT_IMAGE_REGISTRY_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/image/manifest.h"
#include "agent/image/reference.h"
#include "common/clock.h"

namespace shoal::agent::image {

struct RegistryCredentials {
  std::string username;
  std::string password;
};

struct RegistryOptions {
  // Registries spoken to over plain HTTP: "host:port" or "host" exactly as in references, or an
  // IPv4/IPv6 CIDR matching IP-address hosts (shoald's --insecure-registry). Loopback always is.
  std::vector<std::string> insecure_registries;
  // Credentials per registry domain as in references ("docker.io", "127.0.0.1:5000").
  std::map<std::string, RegistryCredentials> credentials;
  // Docker's rule: loopback registries (127.0.0.0/8, ::1, localhost) are insecure. Tests of the
  // HTTPS path turn it off.
  bool loopback_is_insecure = true;
  // PEM bundle of the CAs trusted for HTTPS; empty: the system's (/etc/ssl/certs).
  std::string ca_file;
  absl::Duration connect_timeout = absl::Seconds(15);
  // A transfer that moves no byte for this long fails (DEADLINE_EXCEEDED).
  absl::Duration stall_timeout = absl::Seconds(30);
  // The whole of a manifest, token or HEAD request (blob transfers have no total limit).
  absl::Duration request_timeout = absl::Seconds(60);
  // Redirects followed per request (blob downloads often redirect to a storage service).
  int max_redirects = 10;
  // Manifests larger than this are refused (distribution's own limit is 4 MiB).
  int64_t max_manifest_size = int64_t{4} << 20;
  std::string user_agent;  // default "shoal/<version>"
  // Token expiry; RealClock() when null.
  Clock* clock = nullptr;
};

// Bytes of one blob (or manifest) transferred so far; total is the descriptor's size.
struct PullProgress {
  std::string digest;
  int64_t done = 0;
  int64_t total = 0;
};
using ProgressCallback = std::function<void(const PullProgress&)>;

// Receives a blob's bytes in order. A non-OK status aborts the transfer and is returned.
using BlobSink = std::function<absl::Status(absl::string_view chunk)>;

struct TransferOptions {
  // Called as bytes arrive (at most every 1 MiB or 200 ms, and once at the end).
  ProgressCallback progress;
  // Polled during the transfer (at least once a second); true aborts it (CANCELLED).
  std::function<bool()> cancelled;
  // FetchBlob only: resume at this byte (a Range request; bytes before it are not given to the
  // sink). The digest cannot be checked then — only the size is — so the caller's store must
  // verify the whole blob (containerd's Commit does).
  int64_t offset = 0;
};

// "3.1 MB / 12 MB" (decimal units, as docker pull shows them).
std::string FormatPullProgress(int64_t done, int64_t total);
// "3.1 MB", "950 kB", "12 B".
std::string HumanSize(int64_t bytes);

// What GetManifest found.
struct ResolvedManifest {
  // The reference as asked, with digest() set to target.digest.
  Reference reference;
  // What the reference names: a manifest list / index, or the image manifest itself.
  Descriptor target;
  // Its bytes exactly as served (their digest is target.digest).
  std::string target_json;
  // The image manifest for the platform (equal to target when the reference names one).
  Descriptor manifest;
  std::string manifest_json;
  ImageManifest image;
  // The platform of the chosen index entry; the requested one when there was no index.
  Platform platform;
};

class RegistryClient {
 public:
  explicit RegistryClient(RegistryOptions options = {});
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // Fetches the manifest `ref` names (by digest when it has one, else by tag) and, when it is a
  // manifest list / OCI index, the image manifest for `platform`.
  absl::StatusOr<ResolvedManifest> GetManifest(const Reference& ref,
                                               const Platform& platform = HostPlatform(),
                                               const TransferOptions& options = {});

  // What `ref` names, without fetching the manifest's body when the registry tells its digest
  // (HEAD, as docker's --resolve-image does): media type, digest, size.
  absl::StatusOr<Descriptor> Resolve(const Reference& ref, const TransferOptions& options = {});

  // Streams blob `blob` of repository `repo` (its domain and path; tag and digest are ignored)
  // into `sink`, verifying its size and digest.
  absl::Status FetchBlob(const Reference& repo, const Descriptor& blob, const BlobSink& sink,
                         const TransferOptions& options = {});

  // FetchBlob into a string, for small blobs (image configs); refuses blobs over `max_size`.
  absl::StatusOr<std::string> FetchBlobToString(const Reference& repo, const Descriptor& blob,
                                                int64_t max_size = int64_t{16} << 20,
                                                const TransferOptions& options = {});

  // The base URL requests for `domain` go to: "https://registry-1.docker.io" for docker.io,
  // "http://127.0.0.1:5000" for an insecure registry, "https://<domain>" otherwise.
  std::string BaseUrl(absl::string_view domain) const;
  // True when `domain` is spoken to over plain HTTP (see above).
  bool IsInsecure(absl::string_view domain) const;

 private:
  struct Request;
  struct Response;
  // One challenge of a WWW-Authenticate header.
  struct Challenge {
    std::string scheme;                         // lowercase: "bearer", "basic"
    std::map<std::string, std::string> params;  // lowercase keys: realm, service, scope
  };
  struct Token {
    std::string value;
    absl::Time expiry;
  };
  class Handle;

  // Performs `request` for `ref`'s repository with authentication: a 401 is answered once by
  // authenticating and retrying. The returned response may be any HTTP status; transport
  // errors are statuses.
  absl::StatusOr<Response> Do(const Reference& ref, Request& request);
  absl::StatusOr<Response> Perform(const Request& request, const std::string& authorization);
  // The Authorization header to send for `ref` up front (a cached token), or "".
  std::string CachedAuthorization(const Reference& ref);
  // Answers `challenges`: fetches a token or picks basic credentials; returns the header.
  absl::StatusOr<std::string> Authorize(const Reference& ref,
                                        const std::vector<Challenge>& challenges,
                                        const TransferOptions& options);
  absl::StatusOr<std::string> FetchToken(const Reference& ref, const Challenge& challenge,
                                         const TransferOptions& options);
  // The error for a non-2xx response to a request about `ref`.
  absl::Status ErrorFor(const Reference& ref, absl::string_view what, const Response& response);
  // The manifest `expected` describes (by digest), or else the one `named` names; verified
  // against the expected or asked-for digest (or the registry's Docker-Content-Digest).
  absl::StatusOr<std::string> FetchManifestBody(const Reference& named, const Descriptor* expected,
                                                const TransferOptions& options,
                                                std::string* media_type);

  std::unique_ptr<Handle> TakeHandle();
  void ReturnHandle(std::unique_ptr<Handle> handle);

  const RegistryOptions options_;
  Clock& clock_;
  std::string user_agent_;

  absl::Mutex mu_;
  // Per registry domain: the last challenge, so later requests authenticate up front.
  std::map<std::string, std::vector<Challenge>> challenges_ ABSL_GUARDED_BY(mu_);
  // Per "realm\nservice\nscope".
  std::map<std::string, Token> tokens_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Handle>> idle_handles_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::agent::image

#endif  // SHOAL_AGENT_IMAGE_REGISTRY_CLIENT_H_
