#include "tests/harness/daemon.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace shoal::testing {
namespace {

bool SocketAccepts(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::string ShoaldBinary() { return RunfilePath("cmd/shoald/shoald"); }
std::string ShoalBinary() { return RunfilePath("cmd/shoal/shoal"); }

ShoaldProcess::ShoaldProcess(const std::string& root, ShoaldOptions options)
    : options_(std::move(options)),
      state_dir_(absl::StrCat(root, "/", options_.node_name, "/state")),
      socket_path_(absl::StrCat(root, "/", options_.node_name, ".sock")),
      log_path_(absl::StrCat(root, "/", options_.node_name, ".log")),
      swarm_port_(PickFreeLoopbackPort()) {}

ShoaldProcess::~ShoaldProcess() {
  if (running()) (void)Stop(absl::Seconds(10));
}

absl::Status ShoaldProcess::Start(absl::Duration timeout) {
  if (running()) return absl::FailedPreconditionError("already running");
  std::vector<std::string> argv = {ShoaldBinary(),     "--state-dir",     state_dir_,
                                   "--socket",         socket_path_,      "--node-name",
                                   options_.node_name, "--executor",      options_.executor,
                                   "--log-level",      options_.log_level};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  absl::StatusOr<ChildProcess> child = ChildProcess::Start(argv, log_path_);
  if (!child.ok()) return child.status();
  process_ = std::move(*child);

  bool exited = false;
  const bool ready = WaitFor(
      [&] {
        if (process_.Wait(absl::ZeroDuration()).ok()) exited = true;
        return exited || SocketAccepts(socket_path_);
      },
      timeout);
  if (exited) {
    return absl::InternalError(
        absl::StrCat("shoald ", options_.node_name, " exited at start:\n", LogText()));
  }
  if (!ready) {
    return absl::DeadlineExceededError(
        absl::StrCat("shoald ", options_.node_name, " did not open its socket:\n", LogText()));
  }
  return absl::OkStatus();
}

absl::Status ShoaldProcess::Stop(absl::Duration timeout) {
  if (!running()) return absl::OkStatus();
  absl::StatusOr<int> status = process_.Signal(SIGTERM, timeout);
  if (!status.ok()) return status.status();
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat("shoald ", options_.node_name,
                                            " did not exit cleanly (wait status ", *status, "):\n",
                                            LogText()));
  }
  return absl::OkStatus();
}

void ShoaldProcess::Kill() {
  if (running()) (void)process_.Signal(SIGKILL, absl::Seconds(10));
}

CommandResult ShoaldProcess::Cli(const std::vector<std::string>& args,
                                 const CommandOptions& options) const {
  std::vector<std::string> argv = {ShoalBinary(), "-H", host()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, options);
}

std::string ShoaldProcess::LogText() const {
  std::ifstream in(log_path_);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ShoaldProcess& TestCluster::Add(ShoaldOptions options) {
  if (options.node_name.empty()) options.node_name = absl::StrCat("node-", daemons_.size());
  daemons_.push_back(std::make_unique<ShoaldProcess>(root_.path(), std::move(options)));
  ShoaldProcess& d = *daemons_.back();
  absl::Status s = d.Start();
  EXPECT_TRUE(s.ok()) << s;
  return d;
}

}  // namespace shoal::testing
