// Context: what every shoal subcommand needs — where the daemon is, and where output goes.
#ifndef SHOAL_CLI_CONTEXT_H_
#define SHOAL_CLI_CONTEXT_H_

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "control.grpc.pb.h"

namespace shoal::cli {

// Thrown by commands to end with a message and an exit status; caught in Run().
struct CommandError {
  std::string message;
  int exit_code = 1;
};

class Context {
 public:
  Context(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}

  std::string& host_flag() { return host_flag_; }
  // The daemon address actually used (flag, then $SHOAL_HOST, then the default).
  std::string host() const;

  // A Control stub on the daemon. Throws CommandError for a malformed host.
  api::Control::Stub& control();
  // Throws CommandError with a user-facing message if `status` is not OK.
  void Check(const grpc::Status& status) const;

  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

 private:
  std::ostream& out_;
  std::ostream& err_;
  std::string host_flag_;
  std::unique_ptr<api::Control::Stub> control_;
};

// A client context with the deadline CLI calls use unless they stream.
std::unique_ptr<grpc::ClientContext> CallContext();

}  // namespace shoal::cli

#endif  // SHOAL_CLI_CONTEXT_H_
