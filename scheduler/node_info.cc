#include "scheduler/node_info.h"

#include <algorithm>

namespace shoal::scheduler {

std::shared_ptr<const TaskDemand> TaskDemand::FromTask(const api::Task& task) {
  auto d = std::make_shared<TaskDemand>();
  d->service_id = task.service_id();
  const api::Resources& r = task.spec().resources().reservations();
  d->nano_cpus = r.nano_cpus();
  d->memory_bytes = r.memory_bytes();
  for (const api::GenericResource& g : r.generic()) {
    // Reservations are amounts; a named unit in a reservation asks for one unit of its kind.
    const std::string& kind = g.has_discrete() ? g.discrete().kind() : g.named().kind();
    const int64_t amount = g.has_discrete() ? g.discrete().value() : 1;
    if (kind.empty() || amount <= 0) continue;
    auto it = std::find_if(d->generic.begin(), d->generic.end(),
                           [&](const auto& e) { return e.first == kind; });
    if (it == d->generic.end()) {
      d->generic.emplace_back(kind, amount);
    } else {
      it->second += amount;
    }
  }
  std::sort(d->generic.begin(), d->generic.end());
  for (const api::PortConfig& p : task.endpoint().ports()) {
    if (p.publish_mode() == api::PortConfig::HOST && p.published_port() != 0) {
      d->host_ports.push_back(HostPort{p.protocol(), p.published_port()});
    }
  }
  return d;
}

bool IsActive(const api::Task& task) { return task.desired_state() <= api::TASK_STATE_COMPLETE; }

NodeInfo::NodeInfo(api::Node node) : node_(std::move(node)) { ResetAvailable(); }

void NodeInfo::SetNode(api::Node node) {
  node_ = std::move(node);
  ResetAvailable();
  for (const auto& [id, entry] : tasks_) Take(entry);
}

void NodeInfo::ResetAvailable() {
  const api::Resources& total = node_.description().resources();
  available_nano_cpus_ = total.nano_cpus();
  available_memory_bytes_ = total.memory_bytes();
  available_discrete_.clear();
  free_named_.clear();
  for (const api::GenericResource& g : total.generic()) {
    if (g.has_discrete()) {
      available_discrete_[g.discrete().kind()] += g.discrete().value();
    } else if (g.has_named()) {
      free_named_[g.named().kind()].insert(g.named().value());
    }
  }
  used_host_ports_.clear();
}

void NodeInfo::Take(const TaskEntry& entry) {
  const TaskDemand& d = *entry.demand;
  available_nano_cpus_ -= d.nano_cpus;
  available_memory_bytes_ -= d.memory_bytes;
  for (const api::GenericResource& g : entry.assigned) {
    if (g.has_discrete()) {
      // A kind the node no longer offers has nothing to take from.
      auto it = available_discrete_.find(g.discrete().kind());
      if (it != available_discrete_.end()) it->second -= g.discrete().value();
    } else if (g.has_named()) {
      auto it = free_named_.find(g.named().kind());
      if (it != free_named_.end()) it->second.erase(g.named().value());
    }
  }
  for (const HostPort& p : d.host_ports) ++used_host_ports_[p];
}

void NodeInfo::GiveBack(const TaskEntry& entry) {
  const TaskDemand& d = *entry.demand;
  available_nano_cpus_ += d.nano_cpus;
  available_memory_bytes_ += d.memory_bytes;
  // Only units the node still offers come back: its reported resources may have changed since.
  const api::Resources& total = node_.description().resources();
  for (const api::GenericResource& g : entry.assigned) {
    if (g.has_discrete()) {
      auto it = available_discrete_.find(g.discrete().kind());
      if (it != available_discrete_.end()) it->second += g.discrete().value();
    } else if (g.has_named()) {
      for (const api::GenericResource& t : total.generic()) {
        if (t.has_named() && t.named().kind() == g.named().kind() &&
            t.named().value() == g.named().value()) {
          free_named_[g.named().kind()].insert(g.named().value());
          break;
        }
      }
    }
  }
  for (const HostPort& p : d.host_ports) {
    auto it = used_host_ports_.find(p);
    if (it != used_host_ports_.end() && --it->second == 0) used_host_ports_.erase(it);
  }
}

std::vector<api::GenericResource> NodeInfo::ClaimGeneric(const TaskDemand& demand) {
  std::vector<api::GenericResource> claimed;
  for (const auto& [kind, amount] : demand.generic) {
    if (available_discrete_.contains(kind)) {
      api::GenericResource g;
      g.mutable_discrete()->set_kind(kind);
      g.mutable_discrete()->set_value(amount);
      claimed.push_back(std::move(g));
      continue;
    }
    auto it = free_named_.find(kind);
    if (it == free_named_.end()) continue;
    // The lowest-named free units, so that the same state always yields the same claim.
    int64_t taken = 0;
    for (auto unit = it->second.begin(); unit != it->second.end() && taken < amount;
         ++unit, ++taken) {
      api::GenericResource g;
      g.mutable_named()->set_kind(kind);
      g.mutable_named()->set_value(*unit);
      claimed.push_back(std::move(g));
    }
  }
  return claimed;
}

void NodeInfo::CountActive(const std::string& service_id, int delta) {
  active_tasks_ += delta;
  auto it = active_by_service_.find(service_id);
  if (it == active_by_service_.end()) {
    if (delta > 0) active_by_service_.emplace(service_id, delta);
    return;
  }
  it->second += delta;
  if (it->second <= 0) active_by_service_.erase(it);
}

bool NodeInfo::AddTask(const api::Task& task) {
  auto it = tasks_.find(task.id());
  const bool active = IsActive(task);
  if (it != tasks_.end()) {
    if (it->second.active == active) return false;
    it->second.active = active;
    CountActive(it->second.demand->service_id, active ? 1 : -1);
    return true;
  }
  TaskEntry entry;
  entry.demand = TaskDemand::FromTask(task);
  entry.active = active;
  if (!task.assigned_generic_resources().empty()) {
    entry.assigned.assign(task.assigned_generic_resources().begin(),
                          task.assigned_generic_resources().end());
  } else {
    entry.assigned = ClaimGeneric(*entry.demand);
  }
  Take(entry);
  if (active) CountActive(entry.demand->service_id, 1);
  tasks_.emplace(task.id(), std::move(entry));
  return true;
}

std::vector<api::GenericResource> NodeInfo::Place(const std::string& task_id,
                                                  std::shared_ptr<const TaskDemand> demand,
                                                  bool active) {
  TaskEntry entry;
  entry.demand = std::move(demand);
  entry.active = active;
  if (!entry.demand->generic.empty()) entry.assigned = ClaimGeneric(*entry.demand);
  Take(entry);
  if (active) CountActive(entry.demand->service_id, 1);
  std::vector<api::GenericResource> claimed = entry.assigned;
  tasks_.emplace(task_id, std::move(entry));
  return claimed;
}

bool NodeInfo::RemoveTask(absl::string_view task_id) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return false;
  GiveBack(it->second);
  if (it->second.active) CountActive(it->second.demand->service_id, -1);
  tasks_.erase(it);
  return true;
}

int NodeInfo::ActiveTasksOfService(absl::string_view service_id) const {
  auto it = active_by_service_.find(service_id);
  return it == active_by_service_.end() ? 0 : it->second;
}

int64_t NodeInfo::AvailableGeneric(absl::string_view kind) const {
  int64_t n = 0;
  if (auto it = available_discrete_.find(kind); it != available_discrete_.end()) n += it->second;
  if (auto it = free_named_.find(kind); it != free_named_.end()) {
    n += static_cast<int64_t>(it->second.size());
  }
  return n;
}

}  // namespace shoal::scheduler
