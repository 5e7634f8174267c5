// Placement constraints: the `--constraint` expressions of `service create`, parsed once and
// matched against nodes by the scheduler's ConstraintFilter (and by the Control API to validate a
// spec before it is stored).
//
// An expression is KEY==VALUE or KEY!=VALUE, with surrounding spaces ignored. Keys, compared
// without regard to case:
//   node.id, node.hostname, node.role (worker|manager), node.platform.os, node.platform.arch,
//   node.ip (an address or a CIDR, matched against NodeStatus.addr),
//   node.labels.<name> (NodeSpec labels), engine.labels.<name> (EngineDescription labels).
// As in Docker, label *names* are case-sensitive, and every VALUE comparison ignores ASCII case
// ("node.labels.zone==East" matches the label zone=east). A node lacking the field or label
// compares as the empty string, so `node.labels.gpu!=yes` matches nodes without that label.
// Unlike Docker, an unknown key is a parse error rather than a constraint no node satisfies.
//
// Pure functions of their arguments; safe from any thread.
#ifndef SHOAL_SCHEDULER_CONSTRAINT_H_
#define SHOAL_SCHEDULER_CONSTRAINT_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "objects.pb.h"

namespace shoal::scheduler {

struct Constraint {
  enum class Field {
    kNodeId,
    kNodeHostname,
    kNodeRole,
    kNodePlatformOs,
    kNodePlatformArch,
    kNodeIp,
    kNodeLabel,    // `label` names it.
    kEngineLabel,  // `label` names it.
  };
  enum class Op { kEq, kNe };

  Field field = Field::kNodeId;
  std::string label;  // Only for kNodeLabel and kEngineLabel; case-sensitive.
  Op op = Op::kEq;
  std::string value;  // As written (trimmed); compared ignoring ASCII case.
  // For kNodeIp: `value` parsed, IPv4 as IPv4-mapped IPv6, and the prefix length in bits (128
  // for a single address).
  std::array<uint8_t, 16> ip{};
  int prefix_bits = 128;

  // Whether `node` satisfies this constraint.
  bool Matches(const api::Node& node) const;
  // The canonical expression, e.g. "node.labels.zone==east".
  std::string ToString() const;
};

// Parses one expression. Errors are InvalidArgument and quote the expression, e.g.
//   invalid constraint "zone=east": expected KEY==VALUE or KEY!=VALUE
absl::StatusOr<Constraint> ParseConstraint(absl::string_view expr);

// Parses every expression; the first error wins.
absl::StatusOr<std::vector<Constraint>> ParseConstraints(absl::Span<const std::string> exprs);
absl::StatusOr<std::vector<Constraint>> ParseConstraints(
    const google::protobuf::RepeatedPtrField<std::string>& exprs);

// Whether `node` satisfies all of `constraints` (true for none).
bool NodeMatches(absl::Span<const Constraint> constraints, const api::Node& node);

}  // namespace shoal::scheduler

#endif  // SHOAL_SCHEDULER_CONSTRAINT_H_
