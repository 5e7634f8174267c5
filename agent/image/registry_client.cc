#include "agent/image/registry_client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/image/digest.h"
#include "common/version.h"
#include "nlohmann/json.hpp"

namespace shoal::agent::image {
namespace {

using nlohmann::json;

// Error bodies are kept up to this size (they are only read for their message).
constexpr int64_t kMaxErrorBody = 64 << 10;
constexpr int64_t kMaxTokenBody = 1 << 20;
// Progress is reported at most this often, and at the end.
constexpr int64_t kProgressBytes = 1 << 20;
constexpr absl::Duration kProgressInterval = absl::Milliseconds(200);
// Idle curl handles kept for connection reuse.
constexpr size_t kMaxIdleHandles = 8;
constexpr int kMaxIndexDepth = 4;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Base64(absl::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(n);
  return out;
}

std::string UrlEscape(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

// The host of a domain ("127.0.0.1:5000" → "127.0.0.1", "[::1]:5000" → "::1").
std::string HostOf(absl::string_view domain) {
  if (!domain.empty() && domain.front() == '[') {
    size_t close = domain.find(']');
    return std::string(
        domain.substr(1, close == absl::string_view::npos ? domain.size() - 1 : close - 1));
  }
  if (std::count(domain.begin(), domain.end(), ':') == 1) {
    return std::string(domain.substr(0, domain.find(':')));
  }
  return std::string(domain);
}

// Whether IP `host` lies in `cidr` ("10.0.0.0/8", "fd00::/8"). False when either is not an IP.
bool InCidr(const std::string& host, absl::string_view cidr) {
  size_t slash = cidr.find('/');
  if (slash == absl::string_view::npos) return false;
  std::string net(cidr.substr(0, slash));
  int bits = 0;
  if (!absl::SimpleAtoi(cidr.substr(slash + 1), &bits) || bits < 0) return false;
  unsigned char a[16], b[16];
  size_t len = 0;
  if (inet_pton(AF_INET, host.c_str(), a) == 1 && inet_pton(AF_INET, net.c_str(), b) == 1) {
    len = 4;
  } else if (inet_pton(AF_INET6, host.c_str(), a) == 1 &&
             inet_pton(AF_INET6, net.c_str(), b) == 1) {
    len = 16;
  } else {
    return false;
  }
  if (bits > static_cast<int>(len * 8)) return false;
  for (size_t i = 0; i < len && bits > 0; ++i, bits -= 8) {
    unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((a[i] & mask) != (b[i] & mask)) return false;
  }
  return true;
}

bool IsLoopback(const std::string& host) {
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  return InCidr(host, "127.0.0.0/8") || InCidr(host, "::1/128");
}

// Parses WWW-Authenticate header values: `Bearer realm="...",service="...", Basic realm="..."`.
template <typename Challenge>
std::vector<Challenge> ParseChallenges(const std::vector<std::string>& values) {
  std::vector<Challenge> out;
  for (const std::string& value : values) {
    size_t i = 0;
    const size_t n = value.size();
    auto skip_space = [&] {
      while (i < n && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) ++i;
    };
    auto token = [&] {
      size_t start = i;
      while (i < n && value[i] != ' ' && value[i] != '\t' && value[i] != ',' && value[i] != '=') {
        ++i;
      }
      return value.substr(start, i - start);
    };
    skip_space();
    while (i < n) {
      Challenge c;
      c.scheme = absl::AsciiStrToLower(token());
      if (c.scheme.empty()) break;
      // Parameters: key=value or key="quoted", comma separated, until the next scheme.
      while (true) {
        skip_space();
        size_t save = i;
        std::string key = absl::AsciiStrToLower(token());
        if (key.empty() || i >= n || value[i] != '=') {
          i = save;  // a new scheme (or the end)
          break;
        }
        ++i;  // '='
        std::string val;
        if (i < n && value[i] == '"') {
          ++i;
          while (i < n && value[i] != '"') {
            if (value[i] == '\\' && i + 1 < n) ++i;
            val.push_back(value[i++]);
          }
          if (i < n) ++i;  // closing quote
        } else {
          val = token();
        }
        c.params[key] = val;
      }
      out.push_back(std::move(c));
      skip_space();
    }
  }
  return out;
}

// "code lowercased: message" from a registry's {"errors": [...]} body, or "".
std::string RegistryErrorMessage(absl::string_view body, std::string* first_code) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return "";
  auto errors = doc.find("errors");
  if (errors == doc.end() || !errors->is_array() || errors->empty()) {
    // Token servers answer {"details": "..."} or {"error": "..."}.
    for (const char* key : {"details", "error", "message"}) {
      if (auto it = doc.find(key); it != doc.end() && it->is_string()) {
        return it->get<std::string>();
      }
    }
    return "";
  }
  std::vector<std::string> parts;
  for (const json& e : *errors) {
    if (!e.is_object()) continue;
    std::string code = e.value("code", std::string());
    std::string message = e.value("message", std::string());
    if (first_code != nullptr && first_code->empty()) *first_code = code;
    std::string lowered = absl::AsciiStrToLower(code);
    std::replace(lowered.begin(), lowered.end(), '_', ' ');
    if (message.empty() || message == lowered) {
      parts.push_back(lowered.empty() ? message : lowered);
    } else if (lowered.empty()) {
      parts.push_back(message);
    } else {
      parts.push_back(absl::StrCat(lowered, ": ", message));
    }
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct RegistryClient::Request {
  std::string method = "GET";  // GET or HEAD
  std::string url;
  std::vector<std::string> headers;  // besides Authorization
  // Who answers, for messages: "registry 127.0.0.1:5000".
  std::string peer;
  // The domain it belongs to (for --insecure-registry hints).
  std::string domain;
  bool total_timeout = true;
  // The body of a 2xx response goes to `sink` when set, else to Response::body (at most
  // `max_body` bytes: more fails with `too_large`).
  BlobSink sink;
  int64_t max_body = kMaxErrorBody;
  absl::Status too_large;
  // A 200 (rather than 206) answer to a Range request: the first bytes are not for the sink.
  int64_t skip_on_200 = 0;
  const TransferOptions* transfer = nullptr;
};

struct RegistryClient::Response {
  long status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // lowercase names, final response
  std::string url;                                           // after redirects

  std::string Header(absl::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
  std::vector<std::string> Headers(absl::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : headers) {
      if (k == name) out.push_back(v);
    }
    return out;
  }
  bool ok() const { return status >= 200 && status < 300; }
};

class RegistryClient::Handle {
 public:
  Handle() : curl_(curl_easy_init()) {}
  ~Handle() {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  CURL* get() const { return curl_; }

 private:
  CURL* curl_;
};

namespace {

// State of one curl transfer, shared with its callbacks.
struct Transfer {
  const void* request = nullptr;
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  absl::Status error;  // set by a callback that aborted the transfer
  int64_t skipped = 0;
};

}  // namespace

RegistryClient::RegistryClient(RegistryOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock()),
      user_agent_(options_.user_agent.empty() ? absl::StrCat("shoal/", kVersion)
                                              : options_.user_agent) {
  GlobalInit();
}

RegistryClient::~RegistryClient() = default;

std::unique_ptr<RegistryClient::Handle> RegistryClient::TakeHandle() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_handles_.empty()) {
      std::unique_ptr<Handle> h = std::move(idle_handles_.back());
      idle_handles_.pop_back();
      curl_easy_reset(h->get());
      return h;
    }
  }
  return std::make_unique<Handle>();
}

void RegistryClient::ReturnHandle(std::unique_ptr<Handle> handle) {
  absl::MutexLock lock(&mu_);
  if (idle_handles_.size() < kMaxIdleHandles) idle_handles_.push_back(std::move(handle));
}

bool RegistryClient::IsInsecure(absl::string_view domain) const {
  const std::string host = HostOf(domain);
  if (options_.loopback_is_insecure && IsLoopback(host)) return true;
  for (const std::string& entry : options_.insecure_registries) {
    if (absl::EqualsIgnoreCase(entry, domain)) return true;
    if (entry.find('/') != std::string::npos) {
      if (InCidr(host, entry)) return true;
    } else if (HostOf(entry) == entry && absl::EqualsIgnoreCase(entry, host)) {
      return true;  // "host" without a port: any port
    }
  }
  return false;
}

std::string RegistryClient::BaseUrl(absl::string_view domain) const {
  if (domain == kDefaultDomain) return "https://registry-1.docker.io";
  return absl::StrCat(IsInsecure(domain) ? "http://" : "https://", std::string(domain));
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Perform(const Request& request,
                                                                 const std::string& authorization) {
  std::unique_ptr<Handle> handle = TakeHandle();
  CURL* curl = handle->get();
  if (curl == nullptr) return absl::InternalError("libcurl could not create a handle");

  Transfer t;
  t.request = &request;
  char errbuf[CURL_ERROR_SIZE] = {0};

  struct curl_slist* headers = nullptr;
  for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  if (!authorization.empty()) {
    headers = curl_slist_append(headers, absl::StrCat("Authorization: ", authorization).c_str());
  }

  auto header_cb = +[](char* data, size_t size, size_t n, void* user) -> size_t {
    auto* t = static_cast<Transfer*>(user);
    absl::string_view line(data, size * n);
    line = absl::StripTrailingAsciiWhitespace(line);
    if (absl::StartsWith(line, "HTTP/")) {
      // A new response (after a redirect or a 100 Continue): forget the previous one.
      t->headers.clear();
      t->body.clear();
      t->status = 0;
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
      if (parts.size() >= 2) absl::SimpleAtoi(parts[1], &t->status);
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon != absl::string_view::npos) {
      t->headers.emplace_back(absl::AsciiStrToLower(line.substr(0, colon)),
                              std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
    }
    return size * n;
  };
  auto write_cb = +[](char* data, size_t size, size_t n, void* user) -> size_t {
    auto* t = static_cast<Transfer*>(user);
    const auto& req = *static_cast<const Request*>(t->request);
    absl::string_view chunk(data, size * n);
    bool success = t->status >= 200 && t->status < 300;
    if (success && req.sink) {
      if (t->status == 200 && t->skipped < req.skip_on_200) {
        size_t skip = std::min<int64_t>(req.skip_on_200 - t->skipped, chunk.size());
        t->skipped += skip;
        chunk.remove_prefix(skip);
        if (chunk.empty()) return size * n;
      }
      absl::Status s = req.sink(chunk);
      if (!s.ok()) {
        t->error = std::move(s);
        return 0;
      }
      return size * n;
    }
    int64_t cap = success ? req.max_body : kMaxErrorBody;
    if (static_cast<int64_t>(t->body.size() + chunk.size()) > cap) {
      if (success) {
        t->error = req.too_large.ok() ? absl::FailedPreconditionError(absl::StrCat(
                                            req.url, " answered with more than ", cap, " bytes"))
                                      : req.too_large;
        return 0;
      }
      chunk = chunk.substr(0, cap - t->body.size());  // keep the start of an error body
    }
    t->body.append(chunk.data(), chunk.size());
    return size * n;
  };
  auto xferinfo_cb = +[](void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
    auto* t = static_cast<Transfer*>(user);
    const auto& req = *static_cast<const Request*>(t->request);
    if (req.transfer != nullptr && req.transfer->cancelled && req.transfer->cancelled()) return 1;
    return 0;
  };

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  if (request.method == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, user_agent_.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, static_cast<long>(options_.max_redirects));
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                   std::max<long>(1, absl::ToInt64Seconds(options_.stall_timeout)));
  if (request.total_timeout) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options_.request_timeout)));
  }
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);

  CURLcode rc = curl_easy_perform(curl);
  char* effective = nullptr;
  curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &effective);
  std::string url = effective != nullptr ? effective : request.url;
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  ReturnHandle(std::move(handle));

  if (rc != CURLE_OK) {
    if (!t.error.ok()) return t.error;
    std::string detail = errbuf[0] != '\0' ? std::string(errbuf) : curl_easy_strerror(rc);
    const std::string& peer = request.peer;
    switch (rc) {
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        return absl::UnavailableError(absl::StrCat("cannot reach ", peer, ": ", detail));
      case CURLE_OPERATION_TIMEDOUT:
        return absl::DeadlineExceededError(
            absl::StrCat(peer, " did not answer in time (", url, "): ", detail));
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
        return absl::UnavailableError(absl::StrCat(
            "cannot reach ", peer, " over HTTPS: ", detail, ". If ", request.domain,
            " serves plain HTTP, start shoald with --insecure-registry ", request.domain,
            "; if its certificate comes from a private CA, add that CA to the system's trusted "
            "certificates"));
      case CURLE_TOO_MANY_REDIRECTS:
        return absl::UnavailableError(absl::StrCat(peer, ": more than ", options_.max_redirects,
                                                   " redirects for ", request.url));
      case CURLE_ABORTED_BY_CALLBACK:
        return absl::CancelledError(absl::StrCat("transfer from ", peer, " cancelled (", url, ")"));
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        return absl::UnavailableError(
            absl::StrCat("the connection to ", peer, " broke (", url, "): ", detail));
      default:
        return absl::UnavailableError(absl::StrCat(peer, ": ", url, ": ", detail, " (curl error ",
                                                   static_cast<int>(rc), ")"));
    }
  }
  Response response;
  response.status = t.status;
  response.headers = std::move(t.headers);
  response.body = std::move(t.body);
  response.url = std::move(url);
  return response;
}

std::string RegistryClient::CachedAuthorization(const Reference& ref) {
  const std::string scope = absl::StrCat("repository:", ref.path(), ":pull");
  absl::MutexLock lock(&mu_);
  auto it = challenges_.find(ref.domain());
  if (it == challenges_.end()) return "";
  for (const Challenge& c : it->second) {
    if (c.scheme == "bearer") {
      auto realm = c.params.find("realm");
      auto service = c.params.find("service");
      std::string key = absl::StrCat(realm != c.params.end() ? realm->second : "", "\n",
                                     service != c.params.end() ? service->second : "", "\n", scope);
      auto token = tokens_.find(key);
      if (token != tokens_.end() && token->second.expiry > clock_.Now()) {
        return absl::StrCat("Bearer ", token->second.value);
      }
      return "";
    }
  }
  for (const Challenge& c : it->second) {
    if (c.scheme == "basic") {
      auto creds = options_.credentials.find(ref.domain());
      if (creds == options_.credentials.end()) return "";
      return absl::StrCat(
          "Basic ", Base64(absl::StrCat(creds->second.username, ":", creds->second.password)));
    }
  }
  return "";
}

absl::StatusOr<std::string> RegistryClient::FetchToken(const Reference& ref,
                                                       const Challenge& challenge,
                                                       const TransferOptions& options) {
  auto param = [&](const char* key) {
    auto it = challenge.params.find(key);
    return it != challenge.params.end() ? it->second : std::string();
  };
  const std::string realm = param("realm");
  const std::string service = param("service");
  const std::string scope = absl::StrCat("repository:", ref.path(), ":pull");
  if (realm.empty()) {
    return absl::UnavailableError(absl::StrCat("registry ", ref.domain(),
                                               " asked for a bearer token without naming a realm "
                                               "(WWW-Authenticate has no realm=)"));
  }
  if (!absl::StartsWith(realm, "https://") && !absl::StartsWith(realm, "http://")) {
    return absl::UnavailableError(absl::StrCat(
        "registry ", ref.domain(), " named a token realm that is not an http(s) URL: ", realm));
  }

  Request request;
  request.url = realm;
  std::string sep = realm.find('?') == std::string::npos ? "?" : "&";
  if (!service.empty()) {
    absl::StrAppend(&request.url, sep, "service=", UrlEscape(service));
    sep = "&";
  }
  absl::StrAppend(&request.url, sep, "scope=", UrlEscape(scope));
  const std::string challenge_scope = param("scope");
  for (absl::string_view s : absl::StrSplit(challenge_scope, ' ', absl::SkipEmpty())) {
    if (s != scope) absl::StrAppend(&request.url, "&scope=", UrlEscape(s));
  }
  request.peer = absl::StrCat("the token server ", realm, " of registry ", ref.domain());
  request.domain = ref.domain();
  request.max_body = kMaxTokenBody;
  request.transfer = &options;
  request.headers.push_back("Accept: application/json");

  std::string authorization;
  auto creds = options_.credentials.find(ref.domain());
  if (creds != options_.credentials.end()) {
    authorization = absl::StrCat(
        "Basic ", Base64(absl::StrCat(creds->second.username, ":", creds->second.password)));
  }
  absl::StatusOr<Response> response = Perform(request, authorization);
  if (!response.ok()) return response.status();
  if (!response->ok()) {
    std::string message = RegistryErrorMessage(response->body, nullptr);
    if (message.empty()) message = absl::StrCat("HTTP ", response->status);
    if (response->status == 401 || response->status == 403) {
      if (creds != options_.credentials.end()) {
        return absl::UnauthenticatedError(
            absl::StrCat("registry ", ref.domain(), ": the token server ", realm,
                         " refused the credentials of user \"", creds->second.username,
                         "\": ", message, ". Check the user name and password"));
      }
      return absl::PermissionDeniedError(
          absl::StrCat("pull access denied for ", ref.FamiliarName(),
                       ": repository does not exist or may require authorization: ", message));
    }
    return absl::UnavailableError(absl::StrCat("registry ", ref.domain(), ": the token server ",
                                               realm, " answered HTTP ", response->status, ": ",
                                               message));
  }
  json doc = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  std::string token;
  int64_t expires_in = 60;
  if (!doc.is_discarded() && doc.is_object()) {
    for (const char* key : {"token", "access_token"}) {
      if (auto it = doc.find(key); it != doc.end() && it->is_string() && token.empty()) {
        token = it->get<std::string>();
      }
    }
    if (auto it = doc.find("expires_in"); it != doc.end() && it->is_number_integer()) {
      expires_in = std::max<int64_t>(60, it->get<int64_t>());  // as Docker: at least 60 s
    }
  }
  if (token.empty()) {
    return absl::UnavailableError(absl::StrCat("registry ", ref.domain(), ": the token server ",
                                               realm, " answered without a token"));
  }
  // Renew a little early: a token must not expire between the cache lookup and its use.
  absl::Duration lifetime = absl::Seconds(expires_in) * 0.9;
  absl::MutexLock lock(&mu_);
  tokens_[absl::StrCat(realm, "\n", service, "\n", scope)] = Token{token, clock_.Now() + lifetime};
  return absl::StrCat("Bearer ", token);
}

absl::StatusOr<std::string> RegistryClient::Authorize(const Reference& ref,
                                                      const std::vector<Challenge>& challenges,
                                                      const TransferOptions& options) {
  for (const Challenge& c : challenges) {
    if (c.scheme == "bearer") return FetchToken(ref, c, options);
  }
  for (const Challenge& c : challenges) {
    if (c.scheme == "basic") {
      auto creds = options_.credentials.find(ref.domain());
      if (creds == options_.credentials.end()) return std::string();
      return absl::StrCat(
          "Basic ", Base64(absl::StrCat(creds->second.username, ":", creds->second.password)));
    }
  }
  return std::string();
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Do(const Reference& ref,
                                                            Request& request) {
  static const TransferOptions kNoOptions;
  const TransferOptions& options = request.transfer != nullptr ? *request.transfer : kNoOptions;
  std::string authorization = CachedAuthorization(ref);
  absl::StatusOr<Response> response = Perform(request, authorization);
  if (!response.ok() || response->status != 401) return response;

  std::vector<Challenge> challenges =
      ParseChallenges<Challenge>(response->Headers("www-authenticate"));
  if (challenges.empty()) return response;
  {
    absl::MutexLock lock(&mu_);
    challenges_[ref.domain()] = challenges;
  }
  absl::StatusOr<std::string> fresh = Authorize(ref, challenges, options);
  if (!fresh.ok()) return fresh.status();
  if (fresh->empty() || (*fresh == authorization && !absl::StartsWith(*fresh, "Bearer "))) {
    return response;  // nothing (else) to answer the challenge with
  }
  return Perform(request, *fresh);
}

absl::Status RegistryClient::ErrorFor(const Reference& ref, absl::string_view what,
                                      const Response& response) {
  std::string code;
  std::string message = RegistryErrorMessage(response.body, &code);
  const std::string domain = ref.domain();
  const bool no_credentials = options_.credentials.count(domain) == 0;
  if (code == "NAME_UNKNOWN" || response.status == 401 || response.status == 403) {
    if (message.empty()) {
      message = response.status == 401 ? "unauthorized: authentication required"
                                       : absl::StrCat("HTTP ", response.status);
    }
    std::string text =
        absl::StrCat("pull access denied for ", ref.FamiliarName(),
                     ": repository does not exist or may require authorization: ", message);
    if (response.status == 401 && no_credentials) {
      absl::StrAppend(&text, " (no credentials are configured for ", domain, ")");
    }
    if (code == "NAME_UNKNOWN" || response.status == 404) return absl::NotFoundError(text);
    return absl::PermissionDeniedError(text);
  }
  if (response.status == 404) {
    if (what == "manifest") {
      return absl::NotFoundError(absl::StrCat("manifest for ", ref.FamiliarString(), " not found: ",
                                              message.empty() ? "manifest unknown" : message));
    }
    return absl::NotFoundError(absl::StrCat(what, " not found in ", ref.FamiliarName(), ": ",
                                            message.empty() ? "blob unknown" : message));
  }
  if (message.empty()) message = absl::StrCat("HTTP ", response.status);
  if (response.status == 429) {
    return absl::ResourceExhaustedError(
        absl::StrCat("registry ", domain, " refused to serve ", what, " of ", ref.FamiliarString(),
                     " (too many requests; retry later): ", message));
  }
  std::string text =
      absl::StrCat("registry ", domain, " answered HTTP ", response.status, " for ", what, " of ",
                   ref.FamiliarString(), " (", response.url, "): ", message);
  if (response.status >= 500) return absl::UnavailableError(text);
  return absl::UnknownError(text);
}

absl::StatusOr<std::string> RegistryClient::FetchManifestBody(const Reference& named,
                                                              const Descriptor* expected,
                                                              const TransferOptions& options,
                                                              std::string* media_type) {
  const std::string reference = expected != nullptr ? expected->digest : named.ManifestReference();
  Request request;
  request.url =
      absl::StrCat(BaseUrl(named.domain()), "/v2/", named.path(), "/manifests/", reference);
  request.headers.push_back(absl::StrCat("Accept: ", ManifestAcceptHeader()));
  request.peer = absl::StrCat("registry ", named.domain());
  request.domain = named.domain();
  request.transfer = &options;
  if (expected != nullptr && expected->size <= options_.max_manifest_size) {
    request.max_body = expected->size;
    request.too_large = absl::DataLossError(
        absl::StrCat("manifest ", expected->digest, " of ", named.FamiliarName(),
                     " failed verification: the registry sent more than the ", expected->size,
                     " bytes its descriptor gives"));
  } else {
    request.max_body = options_.max_manifest_size;
    request.too_large = absl::FailedPreconditionError(
        absl::StrCat("manifest for ", named.FamiliarString(), " is larger than ",
                     options_.max_manifest_size, " bytes; refusing it"));
  }
  absl::StatusOr<Response> response = Do(named, request);
  if (!response.ok()) return response.status();
  if (!response->ok()) {
    if (response->status == 404 && expected == nullptr) {
      // Registries such as distribution answer MANIFEST_UNKNOWN for a repository they do not
      // have; its tag list tells the two apart (NAME_UNKNOWN), for a clearer message.
      std::string code;
      RegistryErrorMessage(response->body, &code);
      if (code != "NAME_UNKNOWN") {
        Request probe;
        probe.url = absl::StrCat(BaseUrl(named.domain()), "/v2/", named.path(), "/tags/list?n=1");
        probe.peer = request.peer;
        probe.domain = request.domain;
        probe.transfer = &options;
        absl::StatusOr<Response> tags = Do(named, probe);
        std::string tags_code;
        if (tags.ok() && tags->status == 404) RegistryErrorMessage(tags->body, &tags_code);
        if (tags_code == "NAME_UNKNOWN") return ErrorFor(named, "manifest", *tags);
      }
    }
    return ErrorFor(expected != nullptr ? named.WithDigest(expected->digest) : named, "manifest",
                    *response);
  }

  // Which digest the body must have: the descriptor's, the one asked for, or the one the
  // registry claims (by tag).
  std::string want = expected != nullptr ? expected->digest : "";
  if (want.empty() && ValidateDigest(reference).ok()) want = reference;
  if (want.empty()) {
    std::string header = response->Header("docker-content-digest");
    if (!header.empty() && ValidateDigest(header).ok()) want = header;
  }
  if (!want.empty()) {
    absl::StatusOr<Digester> digester = Digester::ForDigest(want);
    if (!digester.ok()) return digester.status();
    digester->Update(response->body);
    std::string got = digester->Final();
    if (got != want) {
      return absl::DataLossError(absl::StrCat("manifest ", want, " of ", named.FamiliarName(),
                                              " failed verification: the registry sent content "
                                              "with digest ",
                                              got));
    }
  }
  if (expected != nullptr && static_cast<int64_t>(response->body.size()) != expected->size) {
    return absl::DataLossError(absl::StrCat(
        "manifest ", expected->digest, " of ", named.FamiliarName(), " failed verification: it is ",
        response->body.size(), " bytes, its descriptor says ", expected->size));
  }
  absl::StatusOr<std::string> media =
      DetectManifestMediaType(response->Header("content-type"), response->body);
  if (!media.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("manifest for ", named.FamiliarString(), ": ", media.status().message()));
  }
  *media_type = *std::move(media);
  return std::move(response->body);
}

namespace {
absl::Status Schema1Error(const Reference& ref) {
  return absl::FailedPreconditionError(absl::StrCat(
      "image ", ref.FamiliarString(),
      " uses the Docker image manifest version 2, schema 1 format, which is deprecated and not "
      "supported: push the image again with a current Docker, buildah or skopeo (they write "
      "schema 2 or OCI manifests)"));
}
}  // namespace

absl::StatusOr<ResolvedManifest> RegistryClient::GetManifest(const Reference& ref,
                                                             const Platform& platform,
                                                             const TransferOptions& options) {
  ResolvedManifest out;
  std::string media;
  absl::StatusOr<std::string> body = FetchManifestBody(ref, nullptr, options, &media);
  if (!body.ok()) return body.status();
  if (IsSchema1MediaType(media)) return Schema1Error(ref);

  out.target.media_type = media;
  out.target.digest = ref.digest().empty() ? Sha256Digest(*body) : ref.digest();
  out.target.size = static_cast<int64_t>(body->size());
  out.target_json = *std::move(body);
  out.reference = ref.WithDigest(out.target.digest);
  out.platform = NormalizePlatform(platform);

  Descriptor current = out.target;
  std::string current_json = out.target_json;
  for (int depth = 0; IsIndexMediaType(current.media_type); ++depth) {
    if (depth == kMaxIndexDepth) {
      return absl::FailedPreconditionError(absl::StrCat("image ", ref.FamiliarString(),
                                                        ": manifest lists nested more than ",
                                                        kMaxIndexDepth, " deep"));
    }
    absl::StatusOr<ImageIndex> index = ParseImageIndex(current_json, current.media_type);
    if (!index.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("image ", ref.FamiliarString(), ": ", index.status().message()));
    }
    absl::StatusOr<Descriptor> chosen = SelectPlatform(*index, platform);
    if (!chosen.ok()) {
      return absl::Status(chosen.status().code(), absl::StrCat("image ", ref.FamiliarString(), ": ",
                                                               chosen.status().message()));
    }
    if (chosen->platform.has_value()) out.platform = *chosen->platform;
    std::string child_media;
    absl::StatusOr<std::string> child = FetchManifestBody(ref, &*chosen, options, &child_media);
    if (!child.ok()) return child.status();
    // The descriptor's media type is authoritative when it names a known kind.
    if (IsIndexMediaType(chosen->media_type) || IsManifestMediaType(chosen->media_type) ||
        IsSchema1MediaType(chosen->media_type)) {
      child_media = chosen->media_type;
    }
    current = *std::move(chosen);
    current.media_type = child_media;
    current_json = *std::move(child);
  }
  if (IsSchema1MediaType(current.media_type)) return Schema1Error(ref);
  if (!IsManifestMediaType(current.media_type)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "image ", ref.FamiliarString(), ": unsupported manifest media type \"", current.media_type,
        "\" (supported: Docker schema 2 and OCI manifests, "
        "manifest lists and OCI indexes)"));
  }
  absl::StatusOr<ImageManifest> image = ParseImageManifest(current_json, current.media_type);
  if (!image.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("image ", ref.FamiliarString(), ": ", image.status().message()));
  }
  out.manifest = std::move(current);
  out.manifest_json = std::move(current_json);
  out.image = *std::move(image);
  return out;
}

absl::StatusOr<Descriptor> RegistryClient::Resolve(const Reference& ref,
                                                   const TransferOptions& options) {
  Request request;
  request.method = "HEAD";
  request.url = absl::StrCat(BaseUrl(ref.domain()), "/v2/", ref.path(), "/manifests/",
                             ref.ManifestReference());
  request.headers.push_back(absl::StrCat("Accept: ", ManifestAcceptHeader()));
  request.peer = absl::StrCat("registry ", ref.domain());
  request.domain = ref.domain();
  request.transfer = &options;
  absl::StatusOr<Response> response = Do(ref, request);
  if (!response.ok()) return response.status();
  if (!response->ok()) return ErrorFor(ref, "manifest", *response);
  Descriptor d;
  d.digest = response->Header("docker-content-digest");
  std::string ct = absl::AsciiStrToLower(response->Header("content-type"));
  ct = std::string(absl::StripAsciiWhitespace(ct.substr(0, ct.find(';'))));
  int64_t length = -1;
  bool have_length = absl::SimpleAtoi(response->Header("content-length"), &length) && length >= 0;
  if (!ref.digest().empty() && d.digest.empty()) d.digest = ref.digest();
  if (!ref.digest().empty() && d.digest != ref.digest()) {
    return absl::DataLossError(absl::StrCat("manifest ", ref.digest(), " of ", ref.FamiliarName(),
                                            " failed verification: the "
                                            "registry says its digest is ",
                                            d.digest));
  }
  if (ValidateDigest(d.digest).ok() && have_length &&
      (IsIndexMediaType(ct) || IsManifestMediaType(ct) || IsSchema1MediaType(ct))) {
    if (IsSchema1MediaType(ct)) return Schema1Error(ref);
    d.media_type = ct;
    d.size = length;
    return d;
  }
  // The registry did not say enough: fetch the manifest and see for ourselves.
  std::string media;
  absl::StatusOr<std::string> body = FetchManifestBody(ref, nullptr, options, &media);
  if (!body.ok()) return body.status();
  if (IsSchema1MediaType(media)) return Schema1Error(ref);
  Descriptor out;
  out.media_type = media;
  out.digest = ref.digest().empty() ? Sha256Digest(*body) : ref.digest();
  out.size = static_cast<int64_t>(body->size());
  return out;
}

absl::Status RegistryClient::FetchBlob(const Reference& repo, const Descriptor& blob,
                                       const BlobSink& sink, const TransferOptions& options) {
  absl::StatusOr<Digester> digester = Digester::ForDigest(blob.digest);
  if (!digester.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot fetch a blob of ", repo.FamiliarName(),
                                                   ": ", digester.status().message()));
  }
  if (blob.size < 0 || options.offset < 0 || options.offset > blob.size) {
    return absl::InvalidArgumentError(absl::StrCat("cannot fetch blob ", blob.digest, " of ",
                                                   repo.FamiliarName(), ": offset ", options.offset,
                                                   " outside its ", blob.size, " bytes"));
  }
  const std::string what = absl::StrCat("blob ", blob.digest);
  const int64_t offset = options.offset;
  int64_t received = 0;
  absl::Time last_report = absl::InfinitePast();
  int64_t last_reported = -1;
  auto report = [&](bool final) {
    if (!options.progress) return;
    int64_t done = offset + received;
    absl::Time now = absl::Now();
    if (!final && done - last_reported < kProgressBytes && now - last_report < kProgressInterval) {
      return;
    }
    if (final && done == last_reported) return;
    last_report = now;
    last_reported = done;
    options.progress(PullProgress{blob.digest, done, blob.size});
  };
  report(false);  // 0 of N: the transfer starts
  if (offset == blob.size) return absl::OkStatus();

  Request request;
  request.url = absl::StrCat(BaseUrl(repo.domain()), "/v2/", repo.path(), "/blobs/", blob.digest);
  request.peer = absl::StrCat("registry ", repo.domain());
  request.domain = repo.domain();
  request.total_timeout = false;
  request.transfer = &options;
  if (offset > 0) {
    request.headers.push_back(absl::StrCat("Range: bytes=", offset, "-"));
    request.skip_on_200 = offset;
  }
  request.sink = [&](absl::string_view chunk) -> absl::Status {
    if (offset + received + static_cast<int64_t>(chunk.size()) > blob.size) {
      return absl::DataLossError(absl::StrCat(what, " of ", repo.FamiliarName(),
                                              " failed verification: the registry sent more than "
                                              "the ",
                                              blob.size, " bytes its descriptor gives"));
    }
    received += static_cast<int64_t>(chunk.size());
    if (offset == 0) digester->Update(chunk);
    if (absl::Status s = sink(chunk); !s.ok()) return s;
    report(false);
    return absl::OkStatus();
  };
  absl::StatusOr<Response> response = Do(repo, request);
  if (!response.ok()) return response.status();
  if (!response->ok()) return ErrorFor(repo, what, *response);
  if (offset + received != blob.size) {
    return absl::DataLossError(
        absl::StrCat(what, " of ", repo.FamiliarName(), " failed verification: the registry sent ",
                     offset + received, " bytes, its descriptor says ", blob.size));
  }
  if (offset == 0) {
    std::string got = digester->Final();
    if (got != blob.digest) {
      return absl::DataLossError(absl::StrCat(what, " of ", repo.FamiliarName(),
                                              " failed verification: the registry sent content "
                                              "with digest ",
                                              got));
    }
  }
  report(true);
  return absl::OkStatus();
}

absl::StatusOr<std::string> RegistryClient::FetchBlobToString(const Reference& repo,
                                                              const Descriptor& blob,
                                                              int64_t max_size,
                                                              const TransferOptions& options) {
  if (blob.size > max_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("blob ", blob.digest, " of ", repo.FamiliarName(), " has ", blob.size,
                     " bytes, more than the ", max_size, " this read accepts"));
  }
  std::string out;
  out.reserve(blob.size);
  absl::Status s = FetchBlob(
      repo, blob,
      [&](absl::string_view chunk) {
        out.append(chunk.data(), chunk.size());
        return absl::OkStatus();
      },
      options);
  if (!s.ok()) return s;
  return out;
}

std::string HumanSize(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1000 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    v /= 1000;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  if (v < 9.95) return absl::StrFormat("%.1f %s", v, kUnits[unit]);
  return absl::StrFormat("%.0f %s", v, kUnits[unit]);
}

std::string FormatPullProgress(int64_t done, int64_t total) {
  return absl::StrCat(HumanSize(done), " / ", HumanSize(total));
}

}  // namespace shoal::agent::image
