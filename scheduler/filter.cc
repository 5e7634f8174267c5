#include "scheduler/filter.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shoal::scheduler {

std::string CountNodes(int n) { return absl::StrCat(n, n == 1 ? " node" : " nodes"); }

// ---- ReadyFilter ----------------------------------------------------------------------------

Refusal ReadyFilter::Check(const NodeInfo& node) const {
  return node.node().status().state() == api::NodeStatus::READY ? Refusal::kNone
                                                                : Refusal::kUnavailable;
}

std::string ReadyFilter::Explain(Refusal, int nodes) const {
  return absl::StrCat(CountNodes(nodes), " not available for new tasks");
}

// ---- AvailabilityFilter ---------------------------------------------------------------------

Refusal AvailabilityFilter::Check(const NodeInfo& node) const {
  return node.node().spec().availability() == api::NODE_AVAILABILITY_ACTIVE ? Refusal::kNone
                                                                            : Refusal::kUnavailable;
}

std::string AvailabilityFilter::Explain(Refusal, int nodes) const {
  return absl::StrCat(CountNodes(nodes), " not available for new tasks");
}

// ---- ResourceFilter -------------------------------------------------------------------------

bool ResourceFilter::Enabled(const api::Task& task) {
  demand_ = TaskDemand::FromTask(task);
  return demand_->nano_cpus > 0 || demand_->memory_bytes > 0 || !demand_->generic.empty();
}

Refusal ResourceFilter::Check(const NodeInfo& node) const {
  if (demand_->memory_bytes > node.available_memory_bytes()) return Refusal::kMemory;
  if (demand_->nano_cpus > node.available_nano_cpus()) return Refusal::kCpu;
  for (const auto& [kind, amount] : demand_->generic) {
    if (node.AvailableGeneric(kind) < amount) return Refusal::kGenericResources;
  }
  return Refusal::kNone;
}

std::string ResourceFilter::Explain(Refusal refusal, int nodes) const {
  switch (refusal) {
    case Refusal::kCpu:
      return absl::StrCat(CountNodes(nodes), " with insufficient CPU");
    case Refusal::kMemory:
      return absl::StrCat(CountNodes(nodes), " with insufficient memory");
    default: {
      std::vector<absl::string_view> kinds;
      if (demand_ != nullptr) {
        for (const auto& g : demand_->generic) kinds.push_back(g.first);
      }
      return absl::StrCat(CountNodes(nodes), " with insufficient generic resources (",
                          absl::StrJoin(kinds, ", "), ")");
    }
  }
}

// ---- ConstraintFilter -----------------------------------------------------------------------

bool ConstraintFilter::Enabled(const api::Task& task) {
  const auto& exprs = task.spec().placement().constraints();
  if (exprs.empty()) return false;
  absl::StatusOr<std::vector<Constraint>> parsed = ParseConstraints(exprs);
  valid_ = parsed.ok();
  constraints_ = valid_ ? *std::move(parsed) : std::vector<Constraint>();
  return true;
}

Refusal ConstraintFilter::Check(const NodeInfo& node) const {
  return valid_ && NodeMatches(constraints_, node.node()) ? Refusal::kNone : Refusal::kConstraints;
}

std::string ConstraintFilter::Explain(Refusal, int nodes) const {
  return absl::StrCat(CountNodes(nodes), " did not satisfy constraints");
}

// ---- PlatformFilter -------------------------------------------------------------------------

namespace {

std::string NormaliseArch(const std::string& arch) {
  if (arch == "x86_64") return "amd64";
  if (arch == "aarch64") return "arm64";
  return arch;
}

}  // namespace

bool PlatformFilter::Enabled(const api::Task& task) {
  platforms_.clear();
  for (const api::Platform& p : task.spec().placement().platforms()) {
    api::Platform n = p;
    n.set_architecture(NormaliseArch(p.architecture()));
    platforms_.push_back(std::move(n));
  }
  return !platforms_.empty();
}

Refusal PlatformFilter::Check(const NodeInfo& node) const {
  const api::Platform& np = node.node().description().platform();
  const std::string arch = NormaliseArch(np.architecture());
  for (const api::Platform& p : platforms_) {
    if ((p.architecture().empty() || p.architecture() == arch) &&
        (p.os().empty() || p.os() == np.os())) {
      return Refusal::kNone;
    }
  }
  return Refusal::kPlatform;
}

std::string PlatformFilter::Explain(Refusal, int nodes) const {
  return absl::StrCat("unsupported platform on ", CountNodes(nodes));
}

// ---- HostPortFilter -------------------------------------------------------------------------

bool HostPortFilter::Enabled(const api::Task& task) {
  ports_ = TaskDemand::FromTask(task)->host_ports;
  return !ports_.empty();
}

Refusal HostPortFilter::Check(const NodeInfo& node) const {
  for (const HostPort& p : ports_) {
    if (node.HostPortInUse(p)) return Refusal::kHostPort;
  }
  return Refusal::kNone;
}

std::string HostPortFilter::Explain(Refusal, int nodes) const {
  return absl::StrCat("host-mode port already in use on ", CountNodes(nodes));
}

// ---- MaxReplicasFilter ----------------------------------------------------------------------

bool MaxReplicasFilter::Enabled(const api::Task& task) {
  service_id_ = task.service_id();
  max_replicas_ = task.spec().placement().max_replicas();
  return max_replicas_ > 0;
}

Refusal MaxReplicasFilter::Check(const NodeInfo& node) const {
  return static_cast<uint64_t>(node.ActiveTasksOfService(service_id_)) < max_replicas_
             ? Refusal::kNone
             : Refusal::kMaxReplicas;
}

std::string MaxReplicasFilter::Explain(Refusal, int nodes) const {
  return absl::StrCat("max replicas per node limit exceeded on ", CountNodes(nodes));
}

std::vector<std::unique_ptr<Filter>> DefaultFilters() {
  std::vector<std::unique_ptr<Filter>> f;
  f.push_back(std::make_unique<ReadyFilter>());
  f.push_back(std::make_unique<AvailabilityFilter>());
  f.push_back(std::make_unique<ConstraintFilter>());
  f.push_back(std::make_unique<PlatformFilter>());
  f.push_back(std::make_unique<ResourceFilter>());
  f.push_back(std::make_unique<HostPortFilter>());
  f.push_back(std::make_unique<MaxReplicasFilter>());
  return f;
}

}  // namespace shoal::scheduler
