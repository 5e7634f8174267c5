#include "bench/raft/process.h"

#include <fcntl.h>
#include <signal.h>
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

// Forks and execs argv with stdout+stderr on `out_fd` (see PrepareForkedChild).
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int out_fd) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  std::vector<char*> args = CStrings(argv);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return Errno("fork");
  if (pid == 0) {
    PrepareForkedChild(parent);
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

}  // namespace

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

}  // namespace shoal::bench
