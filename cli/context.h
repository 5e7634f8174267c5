// Context: what every shoal subcommand needs — where the daemon is, and where output goes.
#ifndef SHOAL_CLI_CONTEXT_H_
#define SHOAL_CLI_CONTEXT_H_

#include <chrono>
#include <functional>
#include <istream>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "control.grpc.pb.h"

namespace shoal::cli {

// Thrown by commands to end with a message and an exit status; caught in Run().
struct CommandError {
  std::string message;
  int exit_code = 1;
};

class Context {
 public:
  // `in_is_terminal`: `in` is the process's stdin and a terminal (prompts are shown then, and
  // secrets are read without echo). `out_is_terminal`: `out` is a terminal (progress displays
  // redraw their lines in place then, instead of printing a line per change).
  Context(std::istream& in, std::ostream& out, std::ostream& err, bool in_is_terminal = false,
          bool out_is_terminal = false)
      : in_(in),
        out_(out),
        err_(err),
        in_is_terminal_(in_is_terminal),
        out_is_terminal_(out_is_terminal) {}

  std::string& host_flag() { return host_flag_; }
  // The daemon address actually used (flag, then $SHOAL_HOST, then the default).
  std::string host() const;

  // A Control stub on the daemon. Throws CommandError for a malformed host.
  api::Control::Stub& control();
  // Throws CommandError with a user-facing message if `status` is not OK.
  void Check(const grpc::Status& status) const;

  std::istream& in() { return in_; }
  bool in_is_terminal() const { return in_is_terminal_; }
  std::ostream& out() { return out_; }
  bool out_is_terminal() const { return out_is_terminal_; }
  std::ostream& err() { return err_; }

  // The clock commands wait with (convergence polling) and show times against.
  Clock& clock() { return *clock_; }
  void set_clock(Clock* clock) { clock_ = clock; }

 private:
  std::istream& in_;
  std::ostream& out_;
  std::ostream& err_;
  const bool in_is_terminal_;
  const bool out_is_terminal_;
  Clock* clock_ = &RealClock();
  std::string host_flag_;
  std::unique_ptr<api::Control::Stub> control_;
};

// A client context with the deadline CLI calls use unless they stream (30 s), or another one
// for calls that may take long (joining a swarm).
std::unique_ptr<grpc::ClientContext> CallContext();
std::unique_ptr<grpc::ClientContext> CallContext(std::chrono::seconds timeout);

// Runs a read-modify-write `attempt` (read the object and its version, change it, write it back
// with that version) again while it fails with ABORTED, i.e. while someone else changed the
// object in between; at most `max_attempts` times in all. Returns the last attempt's status.
inline constexpr int kUpdateAttempts = 5;
grpc::Status RetryOnAborted(const std::function<grpc::Status()>& attempt,
                            int max_attempts = kUpdateAttempts);

// Reads one line from ctx.in() (a key, a token) without its line ending and surrounding blanks.
// On a terminal, `prompt` is shown on stderr and the typed text is not echoed.
std::string ReadSecretLine(Context& ctx, const std::string& prompt);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_CONTEXT_H_
