#include "agent/image/reference.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/image/digest.h"

namespace shoal::agent::image {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsWord(char c) { return IsAlnum(c) || c == '_'; }

absl::Status Invalid(absl::string_view problem, absl::string_view input) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid reference format: ", problem, ": \"", std::string(input), "\""));
}

// A path component: [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
bool IsPathComponent(absl::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    // A separator run between two alphanumerics: ".", "_", "__", or one or more '-'.
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    absl::string_view sep = c.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == absl::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// A domain component: [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool IsDomainComponent(absl::string_view c) {
  if (c.empty() || !IsAlnum(c.front()) || !IsAlnum(c.back())) return false;
  for (char ch : c) {
    if (!IsAlnum(ch) && ch != '-') return false;
  }
  return true;
}

// host[:port], where host is dot-separated domain components or a bracketed IPv6 address.
bool IsDomain(absl::string_view d) {
  absl::string_view host = d;
  if (!d.empty() && d.front() == '[') {
    size_t close = d.find(']');
    if (close == absl::string_view::npos || close == 1) return false;
    for (char c : d.substr(1, close - 1)) {
      if (!(absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':')) return false;
    }
    host = absl::string_view();
    d = d.substr(close + 1);
    if (d.empty()) return true;
    if (d.front() != ':') return false;
  } else {
    size_t colon = d.find(':');
    host = d.substr(0, colon);
    d = colon == absl::string_view::npos ? absl::string_view() : d.substr(colon);
    for (absl::string_view c : absl::StrSplit(host, '.')) {
      if (!IsDomainComponent(c)) return false;
    }
  }
  if (d.empty()) return true;
  absl::string_view port = d.substr(1);  // after ':'
  if (port.empty()) return false;
  for (char c : port) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

bool IsTag(absl::string_view t) {
  if (t.empty() || t.size() > 128 || !IsWord(t.front())) return false;
  for (char c : t) {
    if (!IsWord(c) && c != '.' && c != '-') return false;
  }
  return true;
}

bool IsImageId(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<Reference> Reference::ParseNormalizedNamed(absl::string_view s) {
  if (s.empty()) {
    return absl::InvalidArgumentError(
        "invalid reference format: repository name must have at least one component (the "
        "reference is empty)");
  }
  if (IsImageId(s)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid repository name (", std::string(s),
                     "), cannot specify 64-byte hexadecimal strings"));
  }

  Reference ref;
  absl::string_view name_tag = s;
  if (size_t at = s.find('@'); at != absl::string_view::npos) {
    name_tag = s.substr(0, at);
    absl::string_view digest = s.substr(at + 1);
    if (absl::Status st = ValidateDigest(digest); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid reference format: ", st.message(),
                                                     " (in \"", std::string(s), "\")"));
    }
    ref.digest_ = std::string(digest);
  }

  // Docker's splitDockerDomain: the first component is a registry host when it looks like one.
  absl::string_view domain = kDefaultDomain;
  absl::string_view remainder = name_tag;
  if (size_t slash = name_tag.find('/'); slash != absl::string_view::npos) {
    absl::string_view first = name_tag.substr(0, slash);
    if (first.find_first_of(".:") != absl::string_view::npos || first == "localhost") {
      domain = first;
      remainder = name_tag.substr(slash + 1);
    }
  }
  if (domain == "index.docker.io") domain = kDefaultDomain;
  if (!IsDomain(domain)) {
    return Invalid(absl::StrCat("invalid registry host \"", std::string(domain),
                                "\" (want HOST[:PORT], e.g. registry.example.com:5000)"),
                   s);
  }

  absl::string_view path = remainder;
  if (size_t colon = remainder.find(':'); colon != absl::string_view::npos) {
    path = remainder.substr(0, colon);
    absl::string_view tag = remainder.substr(colon + 1);
    if (!IsTag(tag)) {
      return Invalid(absl::StrCat("invalid tag \"", std::string(tag),
                                  "\" (up to 128 letters, digits, '_', '.' and '-', not starting "
                                  "with '.' or '-')"),
                     s);
    }
    ref.tag_ = std::string(tag);
  }
  if (absl::AsciiStrToLower(path) != path) {
    return Invalid("repository name must be lowercase", s);
  }
  if (path.empty()) {
    return Invalid("repository name must have at least one component", s);
  }
  for (absl::string_view component : absl::StrSplit(path, '/')) {
    if (!IsPathComponent(component)) {
      return Invalid(absl::StrCat("invalid repository name component \"", std::string(component),
                                  "\" (lowercase letters and digits, separated by '.', '_', '__' "
                                  "or '-')"),
                     s);
    }
  }
  ref.domain_ = std::string(domain);
  ref.path_ = std::string(path);
  if (ref.domain_ == kDefaultDomain && ref.path_.find('/') == std::string::npos) {
    ref.path_ = absl::StrCat(kOfficialRepoPrefix, ref.path_);
  }
  if (ref.Name().size() > kMaxNameLength) {
    return Invalid(absl::StrCat("repository name must not be more than ", kMaxNameLength,
                                " characters (", ref.Name().size(), " with its registry host)"),
                   s);
  }
  return ref;
}

absl::StatusOr<Reference> Reference::Parse(absl::string_view s) {
  absl::StatusOr<Reference> ref = ParseNormalizedNamed(s);
  if (ref.ok() && ref->tag_.empty() && ref->digest_.empty()) ref->tag_ = kDefaultTag;
  return ref;
}

std::string Reference::Name() const { return absl::StrCat(domain_, "/", path_); }

std::string Reference::FamiliarName() const {
  if (domain_ != kDefaultDomain) return Name();
  // Official images lose "library/", but only for a two-component path (as in Docker).
  if (absl::StartsWith(path_, kOfficialRepoPrefix) &&
      path_.find('/', sizeof(kOfficialRepoPrefix) - 1) == std::string::npos) {
    return path_.substr(sizeof(kOfficialRepoPrefix) - 1);
  }
  return path_;
}

namespace {
std::string WithTagAndDigest(std::string name, const std::string& tag, const std::string& digest) {
  if (!tag.empty()) absl::StrAppend(&name, ":", tag);
  if (!digest.empty()) absl::StrAppend(&name, "@", digest);
  return name;
}
}  // namespace

std::string Reference::String() const { return WithTagAndDigest(Name(), tag_, digest_); }

std::string Reference::FamiliarString() const {
  return WithTagAndDigest(FamiliarName(), tag_, digest_);
}

std::string Reference::ManifestReference() const {
  if (!digest_.empty()) return digest_;
  if (!tag_.empty()) return tag_;
  return kDefaultTag;
}

Reference Reference::WithDigest(std::string digest) const {
  Reference r = *this;
  r.digest_ = std::move(digest);
  return r;
}

Reference Reference::WithTag(std::string tag) const {
  Reference r = *this;
  r.tag_ = std::move(tag);
  return r;
}

}  // namespace shoal::agent::image
