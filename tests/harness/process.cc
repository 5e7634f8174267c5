#include "tests/harness/process.h"

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
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace shoal::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// In the child after fork(): die with the parent, and start a new process group so that a
// terminal's Ctrl-C on the test does not reach daemons out of order.
void PrepareChild() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

absl::StatusOr<int> WaitPid(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return absl::InternalError(std::strerror(errno));
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("pid ", pid, " still running"));
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string RunfilePath(const std::string& relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return absl::StrCat(srcdir, "/", workspace, "/", relative);
  }
  return std::filesystem::absolute(relative).string();
}

CommandResult RunCommand(const std::vector<std::string>& argv, const CommandOptions& options) {
  CommandResult result;
  TempDir io("shoal-cmd");
  const std::string in_path = io.path() + "/stdin";
  const std::string out_path = io.path() + "/stdout";
  const std::string err_path = io.path() + "/stderr";
  std::ofstream(in_path, std::ios::binary) << options.stdin_data;

  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    bool drop = options.env.count(key) > 0;
    for (const std::string& u : options.unset_env) drop = drop || u == key;
    if (!drop) env.push_back(entry);
  }
  for (const auto& [k, v] : options.env) env.push_back(k + "=" + v);

  pid_t pid = ::fork();
  if (pid == 0) {
    PrepareChild();
    int in = ::open(in_path.c_str(), O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) ::_exit(127);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> args = CStrings(argv);
    std::vector<char*> envp = CStrings(env);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  if (pid < 0) {
    result.err = std::strerror(errno);
    return result;
  }
  absl::StatusOr<int> status = WaitPid(pid, options.timeout);
  if (!status.ok()) {
    ::kill(pid, SIGKILL);
    status = WaitPid(pid, absl::Seconds(10));
    result.timed_out = true;
  }
  if (status.ok() && WIFEXITED(*status) && !result.timed_out) {
    result.exit_code = WEXITSTATUS(*status);
  }
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

absl::StatusOr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv,
                                                 const std::string& log_path) {
  pid_t pid = ::fork();
  if (pid == 0) {
    PrepareChild();
    int devnull = ::open("/dev/null", O_RDONLY);
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (devnull < 0 || log < 0) ::_exit(127);
    ::dup2(devnull, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    std::vector<char*> args = CStrings(argv);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  ChildProcess child;
  child.pid_ = pid;
  return child;
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (running()) (void)Signal(SIGKILL, absl::Seconds(10));
    pid_ = other.pid_;
    other.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (running()) (void)Signal(SIGKILL, absl::Seconds(10));
}

absl::StatusOr<int> ChildProcess::Signal(int signal, absl::Duration timeout) {
  if (!running()) return absl::FailedPreconditionError("process is not running");
  ::kill(pid_, signal);
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

int PickFreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::abort();
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace shoal::testing
