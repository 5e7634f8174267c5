#include "agent/exec/containerd/log_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/files.h"

namespace shoal::agent::exec::containerd {
namespace {

constexpr absl::Duration kFollowPoll = absl::Milliseconds(100);
constexpr int kMaxRotations = 1000;

std::string ErrnoText(int err) { return std::strerror(err); }

// Percent-encodes a query component (RFC 3986 unreserved characters and '/' stay).
std::string QueryEscape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

std::string FormatLogTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

const char* StreamName(api::LogStream stream) {
  return stream == api::LOG_STREAM_STDERR ? "stderr" : "stdout";
}

std::string LogPath(const std::string& dir, int index) {
  return index == 0 ? absl::StrCat(dir, "/", kLogFileName)
                    : absl::StrCat(dir, "/", kLogFileName, ".", index);
}

// --- The driver process -----------------------------------------------------------------------

int g_signal_pipe[2] = {-1, -1};

void OnSigterm(int) {
  const char c = 't';
  [[maybe_unused]] ssize_t n = write(g_signal_pipe[1], &c, 1);
}

// One stream's pending bytes: complete lines go out as soon as they are read.
struct StreamState {
  int fd;
  api::LogStream stream;
  std::string pending;
  bool eof = false;
};

absl::Status EmitLines(JsonLogWriter& writer, StreamState& s, bool flush_partial) {
  const absl::Time now = absl::Now();
  size_t start = 0;
  while (start < s.pending.size()) {
    const size_t nl = s.pending.find('\n', start);
    size_t end;
    if (nl != std::string::npos && nl - start < kMaxLogLineBytes) {
      end = nl + 1;
    } else if (s.pending.size() - start >= kMaxLogLineBytes) {
      end = start + kMaxLogLineBytes;
    } else if (flush_partial) {
      end = s.pending.size();
    } else {
      break;
    }
    if (absl::Status st = writer.Write(s.stream, s.pending.substr(start, end - start), now);
        !st.ok()) {
      return st;
    }
    start = end;
  }
  s.pending.erase(0, start);
  return absl::OkStatus();
}

// Reads what `s.fd` has; sets eof at EOF or on an error. Non-blocking fds return on EAGAIN.
absl::Status ReadStream(JsonLogWriter& writer, StreamState& s) {
  char buf[64 << 10];
  for (;;) {
    const ssize_t n = read(s.fd, buf, sizeof(buf));
    if (n > 0) {
      s.pending.append(buf, n);
      if (absl::Status st = EmitLines(writer, s, false); !st.ok()) return st;
      if (static_cast<size_t>(n) < sizeof(buf)) return absl::OkStatus();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return absl::OkStatus();
    s.eof = true;
    return EmitLines(writer, s, true);
  }
}

}  // namespace

std::string LogDriverUri(const std::string& binary, const LogDriverConfig& config) {
  return absl::StrCat("binary://", QueryEscape(binary), "?", kLogDriverKey, "=",
                      QueryEscape(config.dir), "&max-size=", config.max_bytes,
                      "&max-files=", config.max_files);
}

bool IsLogDriverInvocation(int argc, char** argv) {
  if (argc < 3 || (argc - 1) % 2 != 0) return false;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], kLogDriverKey) == 0) return true;
  }
  return false;
}

JsonLogWriter::JsonLogWriter(LogDriverConfig config) : config_(std::move(config)) {
  if (config_.max_files < 1) config_.max_files = 1;
  if (config_.max_bytes <= 0) config_.max_bytes = kDefaultLogMaxBytes;
}

JsonLogWriter::~JsonLogWriter() {
  if (fd_ >= 0) close(fd_);
}

absl::Status JsonLogWriter::Open() {
  if (absl::Status s = MakeDirectories(config_.dir, 0700); !s.ok()) return s;
  const std::string path = LogPath(config_.dir, 0);
  fd_ = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open the log file ", path, ": ", ErrnoText(errno)));
  }
  struct stat st;
  size_ = fstat(fd_, &st) == 0 ? st.st_size : 0;
  return absl::OkStatus();
}

absl::Status JsonLogWriter::Rotate() {
  close(fd_);
  fd_ = -1;
  const std::string current = LogPath(config_.dir, 0);
  if (config_.max_files <= 1) {
    unlink(current.c_str());
  } else {
    unlink(LogPath(config_.dir, config_.max_files - 1).c_str());
    for (int i = config_.max_files - 2; i >= 1; --i) {
      rename(LogPath(config_.dir, i).c_str(), LogPath(config_.dir, i + 1).c_str());
    }
    if (rename(current.c_str(), LogPath(config_.dir, 1).c_str()) != 0) {
      return absl::InternalError(
          absl::StrCat("cannot rotate the log file ", current, ": ", ErrnoText(errno)));
    }
  }
  return Open();
}

absl::Status JsonLogWriter::Write(api::LogStream stream, const std::string& line, absl::Time when) {
  if (fd_ < 0) {
    if (absl::Status s = Open(); !s.ok()) return s;
  }
  nlohmann::json record = {
      {"log", line}, {"stream", StreamName(stream)}, {"time", FormatLogTime(when)}};
  std::string data = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  data += '\n';
  if (size_ > 0 && size_ + static_cast<int64_t>(data.size()) > config_.max_bytes) {
    if (absl::Status s = Rotate(); !s.ok()) return s;
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(absl::StrCat("cannot write the log file ", LogPath(config_.dir, 0),
                                              ": ", ErrnoText(errno)));
    }
    done += n;
  }
  size_ += data.size();
  return absl::OkStatus();
}

int RunLogDriver(int argc, char** argv) {
  LogDriverConfig config;
  if ((argc - 1) % 2 != 0) {
    std::fprintf(stderr, "shoal log driver: arguments must be key/value pairs\n");
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const std::string value = argv[i + 1];
    if (key == kLogDriverKey) {
      config.dir = value;
    } else if (key == "max-size") {
      if (!absl::SimpleAtoi(value, &config.max_bytes) || config.max_bytes <= 0) {
        std::fprintf(stderr, "shoal log driver: bad max-size %s\n", value.c_str());
        return 2;
      }
    } else if (key == "max-files") {
      if (!absl::SimpleAtoi(value, &config.max_files) || config.max_files <= 0) {
        std::fprintf(stderr, "shoal log driver: bad max-files %s\n", value.c_str());
        return 2;
      }
    }  // Unknown keys are ignored (a newer shoald may add some).
  }
  if (config.dir.empty() || config.dir[0] != '/') {
    std::fprintf(stderr, "shoal log driver: usage: %s log-driver DIR [max-size N] [max-files N]\n",
                 argv[0]);
    return 2;
  }
  JsonLogWriter writer(config);
  absl::Status opened = writer.Open();
  close(5);  // Ready (or failed): the shim waits for this either way.
  if (!opened.ok()) {
    std::fprintf(stderr, "shoal log driver: %s\n", std::string(opened.message()).c_str());
    return 1;
  }
  if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  struct sigaction sa {};
  sa.sa_handler = OnSigterm;
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  StreamState streams[2] = {{3, api::LOG_STREAM_STDOUT, {}, false},
                            {4, api::LOG_STREAM_STDERR, {}, false}};
  for (auto& s : streams) {
    if (fcntl(s.fd, F_GETFD) < 0) {
      s.eof = true;  // Not given.
    } else {
      fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK);
    }
  }
  bool terminating = false;
  while (!(streams[0].eof && streams[1].eof)) {
    if (terminating) {
      // Drain what the pipes hold without waiting for writers that may never close.
      for (auto& s : streams) {
        if (s.eof) continue;
        if (absl::Status st = ReadStream(writer, s); !st.ok()) {
          std::fprintf(stderr, "shoal log driver: %s\n", std::string(st.message()).c_str());
          return 1;
        }
        if (!s.eof) {
          s.eof = true;
          if (absl::Status st = EmitLines(writer, s, true); !st.ok()) return 1;
        }
      }
      break;
    }
    pollfd fds[3];
    int n = 0;
    int index[3];
    for (int i = 0; i < 2; ++i) {
      if (streams[i].eof) continue;
      fds[n] = {streams[i].fd, POLLIN, 0};
      index[n++] = i;
    }
    fds[n] = {g_signal_pipe[0], POLLIN, 0};
    index[n++] = -1;
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    for (int k = 0; k < n; ++k) {
      if (fds[k].revents == 0) continue;
      if (index[k] < 0) {
        terminating = true;
        continue;
      }
      if (absl::Status st = ReadStream(writer, streams[index[k]]); !st.ok()) {
        std::fprintf(stderr, "shoal log driver: %s\n", std::string(st.message()).c_str());
        return 1;
      }
    }
  }
  return 0;
}

// --- Reading ---------------------------------------------------------------------------------

namespace {

struct FollowState {
  absl::Mutex mu;
  bool cancelled ABSL_GUARDED_BY(mu) = false;
};

// Parses one JSON line into `msg`; false for a line that is not a record.
bool ParseRecord(const std::string& line, const std::string& task_id, api::LogMessage* msg) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return false;
  auto log = j.find("log");
  auto stream = j.find("stream");
  auto time = j.find("time");
  if (log == j.end() || !log->is_string() || time == j.end() || !time->is_string()) return false;
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, time->get<std::string>(), &t, &err)) return false;
  msg->Clear();
  msg->mutable_context()->set_task_id(task_id);
  const int64_t nanos = absl::ToUnixNanos(t);
  msg->mutable_timestamp()->set_seconds(nanos / 1000000000);
  msg->mutable_timestamp()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  msg->set_stream(stream != j.end() && stream->is_string() && *stream == "stderr"
                      ? api::LOG_STREAM_STDERR
                      : api::LOG_STREAM_STDOUT);
  msg->set_data(log->get<std::string>());
  return true;
}

bool Selected(const api::LogMessage& msg, const logs::LogReadOptions& options) {
  if (msg.stream() == api::LOG_STREAM_STDERR ? !options.want_stderr : !options.want_stdout) {
    return false;
  }
  if (options.since != absl::InfinitePast()) {
    const absl::Time t = absl::FromUnixSeconds(msg.timestamp().seconds()) +
                         absl::Nanoseconds(msg.timestamp().nanos());
    if (t < options.since) return false;
  }
  return true;
}

// Reads what `fd` has from its current offset; complete lines go to `on_line`, the rest stays
// in `partial`.
absl::Status ReadLines(int fd, const std::string& path, std::string& partial,
                       const std::function<void(const std::string&)>& on_line) {
  char buf[64 << 10];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(
          absl::StrCat("cannot read the log file ", path, ": ", ErrnoText(errno)));
    }
    if (n == 0) return absl::OkStatus();
    partial.append(buf, n);
    size_t start = 0;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
      on_line(partial.substr(start, nl - start));
    }
    partial.erase(0, start);
  }
}

}  // namespace

absl::Status ReadTaskLogs(const std::string& dir, const logs::LogReadOptions& options,
                          const logs::LogSink& sink, Cancellation& cancel,
                          const std::string& task_id) {
  // The existing files, oldest first.
  std::vector<std::string> files;
  for (int i = kMaxRotations; i >= 1; --i) {
    const std::string path = LogPath(dir, i);
    if (access(path.c_str(), F_OK) == 0) files.push_back(path);
  }
  const std::string current = LogPath(dir, 0);

  std::deque<api::LogMessage> backlog;  // Selected lines, bounded by tail.
  bool stop = false;
  const auto collect = [&](const std::string& line) {
    api::LogMessage msg;
    if (!ParseRecord(line, task_id, &msg) || !Selected(msg, options)) return;
    if (options.tail.has_value()) {
      if (*options.tail == 0) return;
      backlog.push_back(std::move(msg));
      if (backlog.size() > *options.tail) backlog.pop_front();
    } else if (!stop) {
      stop = !sink(msg);
    }
  };
  for (const std::string& path : files) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // Rotated away meanwhile.
      return absl::InternalError(
          absl::StrCat("cannot open the log file ", path, ": ", ErrnoText(errno)));
    }
    std::string partial;
    absl::Status s = ReadLines(fd, path, partial, collect);
    close(fd);
    if (!s.ok()) return s;
    if (stop) return absl::OkStatus();
  }
  int fd = open(current.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) {
    return absl::InternalError(
        absl::StrCat("cannot open the log file ", current, ": ", ErrnoText(errno)));
  }
  std::string partial;
  if (fd >= 0) {
    if (absl::Status s = ReadLines(fd, current, partial, collect); !s.ok()) {
      close(fd);
      return s;
    }
  }
  for (auto& msg : backlog) {
    if (stop) break;
    stop = !sink(msg);
  }
  backlog.clear();
  const auto deliver = [&](const std::string& line) {
    api::LogMessage msg;
    if (stop || !ParseRecord(line, task_id, &msg) || !Selected(msg, options)) return;
    stop = !sink(msg);
  };
  if (!options.follow || stop) {
    if (fd >= 0) close(fd);
    return absl::OkStatus();
  }

  auto state = std::make_shared<FollowState>();
  cancel.OnCancel([state] {
    absl::MutexLock lock(&state->mu);
    state->cancelled = true;
  });
  absl::Status result;
  for (;;) {
    {
      absl::MutexLock lock(&state->mu);
      auto cancelled = [&state]()
                           ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) { return state->cancelled; };
      state->mu.AwaitWithTimeout(absl::Condition(&cancelled), kFollowPoll);
      if (state->cancelled) break;
    }
    if (fd >= 0) {
      result = ReadLines(fd, current, partial, deliver);
      if (!result.ok() || stop) break;
    }
    // Rotated (or created)? Finish the old file (done above), then switch to the new one.
    struct stat now_st, fd_st;
    if (stat(current.c_str(), &now_st) != 0) continue;
    if (fd >= 0 && fstat(fd, &fd_st) == 0 && fd_st.st_ino == now_st.st_ino &&
        fd_st.st_dev == now_st.st_dev) {
      continue;
    }
    if (fd >= 0) close(fd);
    partial.clear();
    fd = open(current.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      result = ReadLines(fd, current, partial, deliver);
      if (!result.ok() || stop) break;
    }
  }
  if (fd >= 0) close(fd);
  return result;
}

absl::Status ContainerdLogSource::ReadLogs(const std::string& task_id,
                                           const logs::LogReadOptions& options,
                                           const logs::LogSink& sink, Cancellation& cancel) {
  if (task_id.empty() || task_id.find('/') != std::string::npos || task_id[0] == '.') {
    return absl::OkStatus();  // Not a task this node can have.
  }
  return ReadTaskLogs(absl::StrCat(state_dir_, "/containers/", task_id), options, sink, cancel,
                      task_id);
}

}  // namespace shoal::agent::exec::containerd
