#include "common/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/unique_fd.h"

namespace shoal {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

void PrepareForkedChild(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

absl::StatusOr<int> WaitPid(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return Errno(absl::StrCat("waitpid ", pid));
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("pid ", pid, " still running"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

absl::StatusOr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv,
                                                 const std::string& log_path) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return Errno("open " + log_path);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return Errno("fork");
  if (pid == 0) {
    PrepareForkedChild(parent);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull < 0) ::_exit(127);
    ::dup2(devnull, 0);
    ::dup2(log.get(), 1);
    ::dup2(log.get(), 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ChildProcess child;
  child.pid_ = pid;
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (running()) (void)Signal(SIGKILL, absl::Seconds(10));
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (running()) (void)Signal(SIGKILL, absl::Seconds(10));
}

absl::Status ChildProcess::SendSignal(int signal) {
  if (!running()) return absl::FailedPreconditionError("process is not running");
  if (::kill(pid_, signal) != 0) return Errno(absl::StrCat("kill ", pid_));
  return absl::OkStatus();
}

absl::StatusOr<int> ChildProcess::Signal(int signal, absl::Duration timeout) {
  if (absl::Status s = SendSignal(signal); !s.ok()) return s;
  absl::StatusOr<int> status = WaitPid(pid_, timeout);
  if (!status.ok()) {
    ::kill(pid_, SIGKILL);
    (void)WaitPid(pid_, absl::Seconds(10));
    pid_ = -1;
    return absl::DeadlineExceededError(absl::StrCat("process did not exit within ",
                                                    absl::FormatDuration(timeout), " of signal ",
                                                    signal, "; killed it"));
  }
  pid_ = -1;
  return status;
}

absl::StatusOr<int> ChildProcess::Wait(absl::Duration timeout) {
  if (!running()) return absl::FailedPreconditionError("process is not running");
  absl::StatusOr<int> status = WaitPid(pid_, timeout);
  if (status.ok()) pid_ = -1;
  return status;
}

absl::Status ChildProcess::Reap(absl::Duration timeout) {
  if (!running()) return absl::OkStatus();
  absl::StatusOr<int> status = WaitPid(pid_, timeout);
  if (!status.ok()) {
    ::kill(pid_, SIGKILL);
    (void)WaitPid(pid_, absl::Seconds(10));
  }
  pid_ = -1;
  return status.status();
}

absl::Status ChildProcess::Stop(absl::Duration grace) {
  if (!running()) return absl::OkStatus();
  (void)SendSignal(SIGTERM);
  return Reap(grace);
}

double ChildProcess::CpuSeconds() const { return running() ? ProcessCpuSeconds(pid_) : 0; }

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces; fields are counted after its closing ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 > stat.size()) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
  // After ')': field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
  if (fields.size() < 13) return 0;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::strtod(fields[11].c_str(), nullptr) + std::strtod(fields[12].c_str(), nullptr)) /
         ticks;
}

absl::StatusOr<int> PickFreeLoopbackPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) return Errno("bind");
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Errno("getsockname");
  }
  return ntohs(addr.sin_port);
}

}  // namespace shoal
