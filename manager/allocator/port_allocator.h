// PortAllocator: the cluster-wide table of ports published in INGRESS mode (the routing mesh),
// which binds a published port on every node, so no two services may publish the same
// (protocol, port). A spec's port with published_port 0 gets one from the dynamic range
// 30000-32767; explicit ports may be anywhere (including inside that range).
//
// HOST-mode ports are not cluster-wide (they bind only where a task runs; the scheduler keeps
// two such tasks off one node) and are only copied through.
//
// Pure bookkeeping, no store access: the Allocator rebuilds it from the services' endpoints when
// it starts and keeps it in step as it writes them.
//
// Not thread-safe: one owner.
#ifndef SHOAL_MANAGER_ALLOCATOR_PORT_ALLOCATOR_H_
#define SHOAL_MANAGER_ALLOCATOR_PORT_ALLOCATOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "objects.pb.h"

namespace shoal::manager {

class PortAllocator {
 public:
  static constexpr uint32_t kDynamicFirst = 30000;
  static constexpr uint32_t kDynamicLast = 32767;

  // "8080/tcp".
  static std::string Describe(api::PortConfig::Protocol protocol, uint32_t port);

  // The ports `spec` publishes, as they go into Endpoint.ports: in spec order, INGRESS ports with
  // published_port filled in, HOST ports unchanged. A dynamic port keeps the published port it
  // had in `previous` (the service's current Endpoint.ports) for the same protocol and target
  // port when the service still holds it, so updating a service does not move its ports.
  //
  // On success the service holds exactly the returned INGRESS ports (ports it held before and no
  // longer publishes are released). On error nothing changes — the service keeps what it held —
  // and the message names the problem: FAILED_PRECONDITION for a port another service publishes
  // ("port 8080/tcp is already published by service web (ID …)", the name from `name_of`),
  // INVALID_ARGUMENT for a port published twice by the spec or above 65535, RESOURCE_EXHAUSTED
  // when the dynamic range is full.
  absl::StatusOr<std::vector<api::PortConfig>> Allocate(
      const std::string& service_id, const api::EndpointSpec& spec,
      const google::protobuf::RepeatedPtrField<api::PortConfig>& previous,
      const std::function<std::string(const std::string& service_id)>& name_of);

  // Records that `service_id` holds the INGRESS ports of `ports` with a published port (an
  // endpoint read from the store). Ports another service holds are skipped; returns false if
  // there were any (the caller then reallocates this service).
  bool Restore(const std::string& service_id,
               const google::protobuf::RepeatedPtrField<api::PortConfig>& ports);

  // Frees every port the service holds.
  void Release(const std::string& service_id);

  // The service publishing (protocol, port) in INGRESS mode; empty if none.
  std::string Owner(api::PortConfig::Protocol protocol, uint32_t port) const;
  // Ports held, over all services.
  size_t size() const { return owner_.size(); }

 private:
  using Key = std::pair<int, uint32_t>;  // (protocol, port)

  absl::flat_hash_map<Key, std::string> owner_;
  absl::flat_hash_map<std::string, std::vector<Key>> held_;  // service ID -> its ports
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_ALLOCATOR_PORT_ALLOCATOR_H_
