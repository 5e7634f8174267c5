// ControlClient: the Control API of a test daemon, on its control socket (as the CLI reaches it),
// for observations the CLI does not print (slots, spec versions, full task IDs, task errors).
#ifndef SHOAL_TESTS_HARNESS_CONTROL_H_
#define SHOAL_TESTS_HARNESS_CONTROL_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proto/control.grpc.pb.h"
#include "tests/harness/daemon.h"

namespace shoal::testing {

class ControlClient {
 public:
  explicit ControlClient(const ShoaldProcess& d);

  // The service named `name`; nullopt if it cannot be read now (no leader yet, not found).
  std::optional<api::Service> Service(const std::string& name);
  // Every task of the service (history included); nullopt if they cannot be read now.
  std::optional<std::vector<api::Task>> Tasks(const std::string& service_id);
  // Every task of the service named `name`; nullopt if the service or its tasks cannot be read.
  std::optional<std::vector<api::Task>> TasksOf(const std::string& name);

 private:
  std::unique_ptr<api::Control::Stub> stub_;
};

// The task's image.
const std::string& ImageOf(const api::Task& t);
// Wanted and running: what serves.
bool Serving(const api::Task& t);
// One line per task (slot, ID, image, node, desired and observed state, error), for failure
// messages.
std::string Dump(const std::vector<api::Task>& tasks);

}  // namespace shoal::testing

#endif  // SHOAL_TESTS_HARNESS_CONTROL_H_
