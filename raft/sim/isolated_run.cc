#include "raft/sim/isolated_run.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace shoal::raft::sim {

namespace {

// What the child sends back: fixed-size, trivially copyable.
struct Verdict {
  char ok = 0;
  SimStats stats;
  char failure[128] = {};
};

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

SimResult RunSimulationInChild(const SimOptions& o) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    close(fds[0]);
    const SimResult r = RunSimulation(o);
    Verdict v;
    v.ok = r.ok ? 1 : 0;
    v.stats = r.stats;
    std::snprintf(v.failure, sizeof(v.failure), "%s", r.failure.c_str());
    if (!r.ok) std::printf("%s\n", r.report.c_str());
    std::fflush(stdout);
    _exit(WriteAll(fds[1], reinterpret_cast<const char*>(&v), sizeof(v)) ? 0 : 3);
  }
  close(fds[1]);
  SimResult r;
  r.seed = o.seed;
  r.scenario = ScenarioForSeed(o.seed);
  if (o.adjust) o.adjust(r.scenario);
  Verdict v;
  const bool got = ReadAll(fds[0], reinterpret_cast<char*>(&v), sizeof(v));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!got) {
    r.ok = false;
    r.failure = WIFSIGNALED(status) ? "core abort (RAFT_CHECK or crash)" : "child failed";
    r.report = ReplayHint(o.seed);
    return r;
  }
  r.ok = v.ok == 1;
  r.stats = v.stats;
  r.failure = v.failure;
  if (!r.ok) r.report = ReplayHint(o.seed);
  return r;
}

}  // namespace shoal::raft::sim
