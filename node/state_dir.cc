#include "node/state_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace shoal::node {
namespace {

absl::Status ErrnoError(const std::string& what, int err) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

std::string ReadSmallFile(int fd) {
  char buf[64];
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  return n > 0 ? std::string(buf, n) : std::string();
}

}  // namespace

absl::Status MakeDirs(const std::string& path, unsigned mode) {
  if (path.empty()) return absl::InvalidArgumentError("empty directory path");
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    const std::string parent = path.substr(0, pos);
    if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError(absl::StrCat("cannot create directory ", parent), errno);
    }
  }
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return ErrnoError(absl::StrCat("cannot create directory ", path), errno);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(absl::StrCat("cannot stat ", path), errno);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<StateDir> StateDir::Open(const std::string& path) {
  std::string dir(absl::StripSuffix(path, "/"));
  if (dir.empty()) dir = "/";
  if (absl::Status s = MakeDirs(dir, 0700); !s.ok()) return s;
  if (::chmod(dir.c_str(), 0700) != 0) {
    return ErrnoError(absl::StrCat("cannot set mode 0700 on state dir ", dir), errno);
  }

  const std::string lock_path = dir + "/shoald.lock";
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError(absl::StrCat("cannot open lock file ", lock_path), errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return ErrnoError(absl::StrCat("cannot lock ", lock_path), errno);
    std::string holder(absl::StripAsciiWhitespace(ReadSmallFile(fd.get())));
    return absl::FailedPreconditionError(
        absl::StrCat("state dir ", dir, " is in use by another shoald",
                     holder.empty() ? "" : absl::StrCat(" (pid ", holder, ")"),
                     "; stop that daemon or start this one with a different --state-dir"));
  }
  const std::string pid = absl::StrCat(::getpid(), "\n");
  if (::ftruncate(fd.get(), 0) != 0 || ::pwrite(fd.get(), pid.data(), pid.size(), 0) < 0) {
    return ErrnoError(absl::StrCat("cannot write ", lock_path), errno);
  }
  return StateDir(std::move(dir), std::move(fd));
}

}  // namespace shoal::node
