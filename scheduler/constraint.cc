#include "scheduler/constraint.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace shoal::scheduler {
namespace {

constexpr absl::string_view kNodeLabelPrefix = "node.labels.";
constexpr absl::string_view kEngineLabelPrefix = "engine.labels.";

absl::Status Invalid(absl::string_view expr, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("invalid constraint \"", expr, "\": ", why));
}

// Docker accepts keys matching [a-zA-Z_][a-zA-Z0-9-_.]+ ; the same set keeps expressions that
// work there working here.
bool ValidKey(absl::string_view key) {
  if (key.size() < 2) return false;
  if (!absl::ascii_isalpha(key[0]) && key[0] != '_') return false;
  for (char c : key) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// Docker's value alphabet: letters, digits, whitespace and : - _ . * ( ) ? + [ ] \ ^ $ | /.
// Everything that could become a future operator (< > ~ = !) stays out.
bool ValidValue(absl::string_view value) {
  if (value.empty()) return false;
  for (char c : value) {
    if (absl::ascii_isalnum(c) || absl::ascii_isspace(c)) continue;
    if (std::strchr(":-_.*()?+[]\\^$|/", c) == nullptr || c == '\0') return false;
  }
  return true;
}

// Parses an IPv4 or IPv6 address into 16 bytes (IPv4 as ::ffff:a.b.c.d).
bool ParseIp(absl::string_view text, std::array<uint8_t, 16>* out) {
  std::string s(text);
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    out->fill(0);
    (*out)[10] = 0xff;
    (*out)[11] = 0xff;
    std::memcpy(out->data() + 12, &v4, 4);
    return true;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    std::memcpy(out->data(), &v6, 16);
    return true;
  }
  return false;
}

// "10.0.0.0/8" or "2001:db8::/32" or a single address.
bool ParseIpOrCidr(absl::string_view text, std::array<uint8_t, 16>* ip, int* prefix_bits) {
  std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(text, '/');
  const bool has_prefix = text.find('/') != absl::string_view::npos;
  if (!ParseIp(parts.first, ip)) return false;
  const bool v4 = parts.first.find(':') == absl::string_view::npos;
  if (!has_prefix) {
    *prefix_bits = 128;
    return true;
  }
  int bits;
  if (!absl::SimpleAtoi(parts.second, &bits) || bits < 0 || bits > (v4 ? 32 : 128)) return false;
  *prefix_bits = v4 ? bits + 96 : bits;
  return true;
}

bool PrefixEqual(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int bits) {
  int i = 0;
  for (; bits >= 8; bits -= 8, ++i) {
    if (a[i] != b[i]) return false;
  }
  if (bits == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a[i] & mask) == (b[i] & mask);
}

// The field's value on `node`, "" when absent.
std::string FieldValue(const Constraint& c, const api::Node& node) {
  switch (c.field) {
    case Constraint::Field::kNodeId:
      return node.id();
    case Constraint::Field::kNodeHostname:
      return node.description().hostname();
    case Constraint::Field::kNodeRole:
      return node.role() == api::NODE_ROLE_MANAGER ? "manager" : "worker";
    case Constraint::Field::kNodePlatformOs:
      return node.description().platform().os();
    case Constraint::Field::kNodePlatformArch:
      return node.description().platform().architecture();
    case Constraint::Field::kNodeLabel: {
      const auto& labels = node.spec().annotations().labels();
      auto it = labels.find(c.label);
      return it == labels.end() ? std::string() : it->second;
    }
    case Constraint::Field::kEngineLabel: {
      const auto& labels = node.description().engine().labels();
      auto it = labels.find(c.label);
      return it == labels.end() ? std::string() : it->second;
    }
    case Constraint::Field::kNodeIp:
      return node.status().addr();
  }
  return std::string();
}

}  // namespace

bool Constraint::Matches(const api::Node& node) const {
  bool equal;
  if (field == Field::kNodeIp) {
    // An address the node did not report, or cannot be parsed, equals nothing.
    std::array<uint8_t, 16> addr;
    equal = ParseIp(node.status().addr(), &addr) && PrefixEqual(addr, ip, prefix_bits);
  } else if (field == Field::kNodeLabel || field == Field::kEngineLabel) {
    // Avoid copying the label value: this runs for every node of every task group.
    const auto& labels = field == Field::kNodeLabel ? node.spec().annotations().labels()
                                                    : node.description().engine().labels();
    auto it = labels.find(label);
    equal = absl::EqualsIgnoreCase(it == labels.end() ? absl::string_view() : it->second, value);
  } else {
    equal = absl::EqualsIgnoreCase(FieldValue(*this, node), value);
  }
  return op == Op::kEq ? equal : !equal;
}

std::string Constraint::ToString() const {
  absl::string_view key;
  switch (field) {
    case Field::kNodeId:
      key = "node.id";
      break;
    case Field::kNodeHostname:
      key = "node.hostname";
      break;
    case Field::kNodeRole:
      key = "node.role";
      break;
    case Field::kNodePlatformOs:
      key = "node.platform.os";
      break;
    case Field::kNodePlatformArch:
      key = "node.platform.arch";
      break;
    case Field::kNodeIp:
      key = "node.ip";
      break;
    case Field::kNodeLabel:
      return absl::StrCat(kNodeLabelPrefix, label, op == Op::kEq ? "==" : "!=", value);
    case Field::kEngineLabel:
      return absl::StrCat(kEngineLabelPrefix, label, op == Op::kEq ? "==" : "!=", value);
  }
  return absl::StrCat(key, op == Op::kEq ? "==" : "!=", value);
}

absl::StatusOr<Constraint> ParseConstraint(absl::string_view expr) {
  Constraint c;
  // As Docker: "==" is looked for first, so "a!=b==c" is the (invalid) key "a!=b".
  size_t pos = expr.find("==");
  c.op = Constraint::Op::kEq;
  if (pos == absl::string_view::npos) {
    pos = expr.find("!=");
    c.op = Constraint::Op::kNe;
  }
  if (pos == absl::string_view::npos) {
    return Invalid(expr, "expected KEY==VALUE or KEY!=VALUE");
  }
  const absl::string_view key = absl::StripAsciiWhitespace(expr.substr(0, pos));
  const absl::string_view value = absl::StripAsciiWhitespace(expr.substr(pos + 2));
  if (key.empty()) return Invalid(expr, "expected KEY==VALUE or KEY!=VALUE (the key is empty)");
  if (!ValidKey(key)) {
    return Invalid(
        expr, absl::StrCat("key \"", key, "\" may contain only letters, digits, '-', '_' and '.'"));
  }
  if (value.empty()) {
    return Invalid(expr, "expected KEY==VALUE or KEY!=VALUE (the value is empty)");
  }
  if (!ValidValue(value)) {
    return Invalid(expr, absl::StrCat("value \"", value,
                                      "\" may contain only letters, digits, spaces and "
                                      ":-_.*()?+[]\\^$|/"));
  }
  c.value = std::string(value);

  auto has_label_prefix = [&](absl::string_view prefix) {
    return key.size() > prefix.size() && absl::StartsWithIgnoreCase(key, prefix);
  };
  if (absl::EqualsIgnoreCase(key, "node.id")) {
    c.field = Constraint::Field::kNodeId;
  } else if (absl::EqualsIgnoreCase(key, "node.hostname")) {
    c.field = Constraint::Field::kNodeHostname;
  } else if (absl::EqualsIgnoreCase(key, "node.role")) {
    c.field = Constraint::Field::kNodeRole;
    if (!absl::EqualsIgnoreCase(value, "manager") && !absl::EqualsIgnoreCase(value, "worker")) {
      return Invalid(expr, "node.role is either manager or worker");
    }
  } else if (absl::EqualsIgnoreCase(key, "node.platform.os")) {
    c.field = Constraint::Field::kNodePlatformOs;
  } else if (absl::EqualsIgnoreCase(key, "node.platform.arch")) {
    c.field = Constraint::Field::kNodePlatformArch;
  } else if (absl::EqualsIgnoreCase(key, "node.ip")) {
    c.field = Constraint::Field::kNodeIp;
    if (!ParseIpOrCidr(value, &c.ip, &c.prefix_bits)) {
      return Invalid(expr, "node.ip expects an IP address or a CIDR (e.g. 10.0.0.0/8)");
    }
  } else if (has_label_prefix(kNodeLabelPrefix)) {
    c.field = Constraint::Field::kNodeLabel;
    c.label = std::string(key.substr(kNodeLabelPrefix.size()));
  } else if (has_label_prefix(kEngineLabelPrefix)) {
    c.field = Constraint::Field::kEngineLabel;
    c.label = std::string(key.substr(kEngineLabelPrefix.size()));
  } else {
    return Invalid(expr, absl::StrCat("unknown key \"", key,
                                      "\" (expected node.id, node.hostname, node.role, "
                                      "node.platform.os, node.platform.arch, node.ip, "
                                      "node.labels.<name> or engine.labels.<name>)"));
  }
  return c;
}

absl::StatusOr<std::vector<Constraint>> ParseConstraints(absl::Span<const std::string> exprs) {
  std::vector<Constraint> out;
  out.reserve(exprs.size());
  for (const std::string& e : exprs) {
    absl::StatusOr<Constraint> c = ParseConstraint(e);
    if (!c.ok()) return c.status();
    out.push_back(*std::move(c));
  }
  return out;
}

absl::StatusOr<std::vector<Constraint>> ParseConstraints(
    const google::protobuf::RepeatedPtrField<std::string>& exprs) {
  std::vector<std::string> copy(exprs.begin(), exprs.end());
  return ParseConstraints(absl::MakeConstSpan(copy));
}

bool NodeMatches(absl::Span<const Constraint> constraints, const api::Node& node) {
  for (const Constraint& c : constraints) {
    if (!c.Matches(node)) return false;
  }
  return true;
}

}  // namespace shoal::scheduler
