#include "cli/context.h"

#include <termios.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/ascii.h"
#include "cli/client.h"

namespace shoal::cli {

std::string Context::host() const { return ResolveHost(host_flag_); }

api::Control::Stub& Context::control() {
  if (control_ == nullptr) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Connect(host());
    if (!channel.ok()) throw CommandError{std::string(channel.status().message())};
    control_ = api::Control::NewStub(*channel);
  }
  return *control_;
}

void Context::Check(const grpc::Status& status) const {
  if (!status.ok()) throw CommandError{DescribeRpcError(status, host())};
}

std::unique_ptr<grpc::ClientContext> CallContext() { return CallContext(std::chrono::seconds(30)); }

std::unique_ptr<grpc::ClientContext> CallContext(std::chrono::seconds timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

grpc::Status RetryOnAborted(const std::function<grpc::Status()>& attempt, int max_attempts) {
  grpc::Status s;
  for (int i = 0; i < max_attempts; ++i) {
    s = attempt();
    if (s.error_code() != grpc::StatusCode::ABORTED) return s;
  }
  return grpc::Status(grpc::StatusCode::ABORTED,
                      s.error_message() + " (gave up after " + std::to_string(max_attempts) +
                          " attempts: the object keeps changing; try again)");
}

std::string ReadSecretLine(Context& ctx, const std::string& prompt) {
  std::string line;
  if (!ctx.in_is_terminal()) {
    std::getline(ctx.in(), line);
    return std::string(absl::StripAsciiWhitespace(line));
  }
  ctx.err() << prompt << std::flush;
  termios saved;
  const bool have_termios = ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (have_termios) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::getline(ctx.in(), line);
  if (have_termios) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  ctx.err() << "\n";
  return std::string(absl::StripAsciiWhitespace(line));
}

}  // namespace shoal::cli
