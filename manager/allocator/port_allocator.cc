#include "manager/allocator/port_allocator.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace shoal::manager {

std::string PortAllocator::Describe(api::PortConfig::Protocol protocol, uint32_t port) {
  return absl::StrCat(port, "/", absl::AsciiStrToLower(api::PortConfig::Protocol_Name(protocol)));
}

absl::StatusOr<std::vector<api::PortConfig>> PortAllocator::Allocate(
    const std::string& service_id, const api::EndpointSpec& spec,
    const google::protobuf::RepeatedPtrField<api::PortConfig>& previous,
    const std::function<std::string(const std::string& service_id)>& name_of) {
  std::vector<api::PortConfig> out(spec.ports().begin(), spec.ports().end());
  absl::flat_hash_set<Key> chosen;

  // Explicit ports first: they are what the user asked for, dynamic ones fit around them.
  for (const api::PortConfig& p : out) {
    if (p.publish_mode() != api::PortConfig::INGRESS || p.published_port() == 0) continue;
    if (p.published_port() > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "published port ", p.published_port(), " is out of range; use a port from 1 to 65535"));
    }
    const Key key(p.protocol(), p.published_port());
    if (!chosen.insert(key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("port ", Describe(p.protocol(), p.published_port()),
                       " is published twice by the service; publish each port once"));
    }
    auto it = owner_.find(key);
    if (it != owner_.end() && it->second != service_id) {
      const std::string name = name_of(it->second);
      return absl::FailedPreconditionError(absl::StrCat(
          "port ", Describe(p.protocol(), p.published_port()), " is already published by service ",
          name.empty() ? it->second : absl::StrCat(name, " (ID ", it->second, ")"),
          "; publish another port or remove it from that service"));
    }
  }

  // Dynamic ports keep what the previous endpoint gave the same (protocol, target port).
  std::vector<bool> taken(previous.size(), false);
  std::vector<size_t> unassigned;
  for (size_t i = 0; i < out.size(); ++i) {
    api::PortConfig& p = out[i];
    if (p.publish_mode() != api::PortConfig::INGRESS || p.published_port() != 0) continue;
    bool reused = false;
    for (int j = 0; j < previous.size() && !reused; ++j) {
      const api::PortConfig& old = previous[j];
      if (taken[j] || old.publish_mode() != api::PortConfig::INGRESS ||
          old.protocol() != p.protocol() || old.target_port() != p.target_port() ||
          old.published_port() < kDynamicFirst || old.published_port() > kDynamicLast) {
        continue;
      }
      const Key key(old.protocol(), old.published_port());
      auto it = owner_.find(key);
      if (it == owner_.end() || it->second != service_id || chosen.contains(key)) continue;
      taken[j] = true;
      chosen.insert(key);
      p.set_published_port(old.published_port());
      reused = true;
    }
    if (!reused) unassigned.push_back(i);
  }
  // Then the lowest free ports of the range. A port this service holds counts as free: whatever
  // it does not keep is released below.
  for (size_t i : unassigned) {
    api::PortConfig& p = out[i];
    uint32_t port = kDynamicFirst;
    for (; port <= kDynamicLast; ++port) {
      const Key key(p.protocol(), port);
      if (chosen.contains(key)) continue;
      auto it = owner_.find(key);
      if (it == owner_.end() || it->second == service_id) break;
    }
    if (port > kDynamicLast) {
      return absl::ResourceExhaustedError(
          absl::StrCat("no free port left in the dynamic range ", kDynamicFirst, "-", kDynamicLast,
                       " to publish target port ", Describe(p.protocol(), p.target_port()),
                       "; remove published ports from other services or publish an explicit port"));
    }
    chosen.insert(Key(p.protocol(), port));
    p.set_published_port(port);
  }

  // Commit: release what the service no longer publishes, claim the rest.
  std::vector<Key>& held = held_[service_id];
  for (const Key& key : held) {
    if (!chosen.contains(key)) owner_.erase(key);
  }
  held.assign(chosen.begin(), chosen.end());
  std::sort(held.begin(), held.end());
  for (const Key& key : held) owner_[key] = service_id;
  if (held.empty()) held_.erase(service_id);
  return out;
}

bool PortAllocator::Restore(const std::string& service_id,
                            const google::protobuf::RepeatedPtrField<api::PortConfig>& ports) {
  bool all = true;
  for (const api::PortConfig& p : ports) {
    if (p.publish_mode() != api::PortConfig::INGRESS || p.published_port() == 0) continue;
    const Key key(p.protocol(), p.published_port());
    auto [it, inserted] = owner_.try_emplace(key, service_id);
    if (inserted) {
      held_[service_id].push_back(key);
    } else if (it->second != service_id) {
      all = false;
    }
  }
  return all;
}

void PortAllocator::Release(const std::string& service_id) {
  auto it = held_.find(service_id);
  if (it == held_.end()) return;
  for (const Key& key : it->second) owner_.erase(key);
  held_.erase(it);
}

std::string PortAllocator::Owner(api::PortConfig::Protocol protocol, uint32_t port) const {
  auto it = owner_.find(Key(protocol, port));
  return it == owner_.end() ? std::string() : it->second;
}

}  // namespace shoal::manager
