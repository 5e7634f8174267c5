#include "bench/raft/process.h"

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
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/unique_fd.h"

namespace shoal::bench {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Forks and execs argv with stdout+stderr on `out_fd`. The child dies with this process and runs
// in its own process group, so a Ctrl-C on the terminal reaches the runner only, which then
// stops the children in order.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int out_fd) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  std::vector<char*> args = CStrings(argv);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return Errno("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull < 0) ::_exit(127);
    ::dup2(devnull, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// waitpid with a deadline; returns the wait status.
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

}  // namespace

absl::StatusOr<Process> Process::Start(const std::vector<std::string>& argv,
                                       const std::string& log_path) {
  UniqueFd log(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return Errno("open " + log_path);
  absl::StatusOr<pid_t> pid = Spawn(argv, log.get());
  if (!pid.ok()) return pid.status();
  Process p;
  p.pid_ = *pid;
  return p;
}

Process::Process(Process&& other) noexcept : pid_(std::exchange(other.pid_, -1)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (running()) {
      (void)SendSignal(SIGKILL);
      (void)Reap(absl::Seconds(10));
    }
    pid_ = std::exchange(other.pid_, -1);
  }
  return *this;
}

Process::~Process() {
  if (running()) {
    (void)SendSignal(SIGKILL);
    (void)Reap(absl::Seconds(10));
  }
}

absl::Status Process::SendSignal(int signal) {
  if (!running()) return absl::FailedPreconditionError("process is not running");
  if (::kill(pid_, signal) != 0) return Errno(absl::StrCat("kill ", pid_));
  return absl::OkStatus();
}

absl::Status Process::Reap(absl::Duration timeout) {
  if (!running()) return absl::OkStatus();
  absl::StatusOr<int> status = WaitPid(pid_, timeout);
  if (!status.ok()) {
    ::kill(pid_, SIGKILL);
    (void)WaitPid(pid_, absl::Seconds(10));
  }
  pid_ = -1;
  return status.status();
}

absl::Status Process::Stop(absl::Duration grace) {
  if (!running()) return absl::OkStatus();
  (void)SendSignal(SIGTERM);
  return Reap(grace);
}

double Process::CpuSeconds() const { return running() ? ProcessCpuSeconds(pid_) : 0; }

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces; fields are counted after its closing ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(paren + 2), ' ', absl::SkipEmpty());
  // After ')': field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
  if (fields.size() < 13) return 0;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return (std::strtod(fields[11].c_str(), nullptr) + std::strtod(fields[12].c_str(), nullptr)) /
         ticks;
}

absl::StatusOr<std::string> RunAndCapture(const std::vector<std::string>& argv,
                                          absl::Duration timeout) {
  char path[] = "/tmp/shoal-bench-out-XXXXXX";
  UniqueFd out(::mkstemp(path));
  if (!out) return Errno("mkstemp");
  ::unlink(path);
  absl::StatusOr<pid_t> pid = Spawn(argv, out.get());
  if (!pid.ok()) return pid.status();
  absl::StatusOr<int> status = WaitPid(*pid, timeout);
  if (!status.ok()) {
    ::kill(*pid, SIGKILL);
    (void)WaitPid(*pid, absl::Seconds(10));
    return status.status();
  }
  std::string text;
  ::lseek(out.get(), 0, SEEK_SET);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out.get(), buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(
        absl::StrCat(absl::StrJoin(argv, " "), " failed (wait status ", *status, "): ", text));
  }
  return text;
}

absl::StatusOr<TempDir> TempDir::Make(const std::string& parent, const std::string& prefix) {
  std::string tmpl = absl::StrCat(parent, "/", prefix, "-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) return Errno("mkdtemp " + tmpl);
  TempDir d;
  d.path_ = tmpl;
  return d;
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, "")) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::exchange(other.path_, "");
  }
  return *this;
}

TempDir::~TempDir() { Remove(); }

void TempDir::Remove() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  path_.clear();
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

}  // namespace shoal::bench
