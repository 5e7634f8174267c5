#include "agent/exec/sim/sim_log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "nlohmann/json.hpp"

namespace shoal::agent::exec {
namespace {

const char* StreamName(api::LogStream stream) {
  return stream == api::LOG_STREAM_STDERR ? "stderr" : "stdout";
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

bool FileSize(const std::string& path, off_t* size) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return false;
  *size = st.st_size;
  return true;
}

}  // namespace

std::string FormatJsonLogLine(api::LogStream stream, const std::string& data, absl::Time when) {
  nlohmann::json j;
  j["log"] = data;
  j["stream"] = StreamName(stream);
  j["time"] = absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", when, absl::UTCTimeZone());
  return j.dump();
}

absl::StatusOr<api::LogMessage> ParseJsonLogLine(const std::string& line,
                                                 const std::string& task_id) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("log") || !j["log"].is_string() || !j.contains("time") ||
      !j["time"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a json-file log line (want {\"log\",\"stream\",\"time\"}): ", line.substr(0, 80)));
  }
  absl::Time when;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, j["time"].get<std::string>(), &when, &err)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad time in log line: ", j["time"].get<std::string>(), " (", err, ")"));
  }
  api::LogMessage m;
  m.mutable_context()->set_task_id(task_id);
  ToProto(when, m.mutable_timestamp());
  const std::string stream = j.value("stream", "stdout");
  m.set_stream(stream == "stderr" ? api::LOG_STREAM_STDERR : api::LOG_STREAM_STDOUT);
  m.set_data(j["log"].get<std::string>());
  return m;
}

SimLogStore::SimLogStore(SimLogOptions options) : options_(std::move(options)) {}

std::string SimLogStore::CurrentFile(const std::string& task_id) const {
  return absl::StrCat(options_.dir, "/", task_id, ".log");
}

std::vector<std::string> SimLogStore::Files(const std::string& task_id) const {
  std::vector<std::string> out;
  for (int i = options_.max_files - 1; i >= 1; --i) {
    std::string path = absl::StrCat(CurrentFile(task_id), ".", i);
    if (::access(path.c_str(), F_OK) == 0) out.push_back(std::move(path));
  }
  std::string current = CurrentFile(task_id);
  if (::access(current.c_str(), F_OK) == 0) out.push_back(std::move(current));
  return out;
}

absl::Status SimLogStore::Append(const std::string& task_id, api::LogStream stream,
                                 const std::string& line, absl::Time when) {
  const std::string record = FormatJsonLogLine(stream, absl::StrCat(line, "\n"), when) + "\n";
  absl::MutexLock lock(&mu_);
  if (absl::Status s = MakeDirectories(options_.dir, 0700); !s.ok()) return s;
  const std::string current = CurrentFile(task_id);
  off_t size = 0;
  if (FileSize(current, &size) && size > 0 &&
      static_cast<size_t>(size) + record.size() > options_.max_file_bytes) {
    // Rotate: .log.(n-1) is dropped, .log.i → .log.(i+1), .log → .log.1.
    if (options_.max_files <= 1) {
      ::unlink(current.c_str());
    } else {
      ::unlink(absl::StrCat(current, ".", options_.max_files - 1).c_str());
      for (int i = options_.max_files - 2; i >= 1; --i) {
        ::rename(absl::StrCat(current, ".", i).c_str(), absl::StrCat(current, ".", i + 1).c_str());
      }
      ::rename(current.c_str(), absl::StrCat(current, ".1").c_str());
    }
  }
  std::ofstream out(current, std::ios::app | std::ios::binary);
  out << record;
  out.flush();
  if (!out) {
    return absl::InternalError(
        absl::StrCat("cannot append to the sim task log ", current, ": ", std::strerror(errno)));
  }
  ++generation_;
  return absl::OkStatus();
}

absl::Status SimLogStore::Remove(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  const std::string current = CurrentFile(task_id);
  ::unlink(current.c_str());
  for (int i = 1; i < std::max(options_.max_files, 2); ++i) {
    ::unlink(absl::StrCat(current, ".", i).c_str());
  }
  ++generation_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<api::LogMessage>> SimLogStore::Read(
    const std::string& task_id, const logs::LogReadOptions& options) const {
  std::vector<api::LogMessage> lines;
  absl::MutexLock lock(&mu_);
  for (const std::string& path : Files(task_id)) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;  // rotated away meanwhile
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      absl::StatusOr<api::LogMessage> m = ParseJsonLogLine(line, task_id);
      if (!m.ok()) {
        return absl::DataLossError(
            absl::StrCat("sim task log ", path, " is corrupt: ", m.status().message()));
      }
      if (m->stream() == api::LOG_STREAM_STDOUT && !options.want_stdout) continue;
      if (m->stream() == api::LOG_STREAM_STDERR && !options.want_stderr) continue;
      if (FromProto(m->timestamp()) < options.since) continue;
      lines.push_back(*std::move(m));
    }
  }
  if (options.tail.has_value() && lines.size() > *options.tail) {
    lines.erase(lines.begin(), lines.end() - static_cast<std::ptrdiff_t>(*options.tail));
  }
  return lines;
}

uint64_t SimLogStore::generation() const {
  absl::MutexLock lock(&mu_);
  return generation_;
}

void SimLogStore::WaitForAppend(uint64_t seen, absl::Time deadline, Cancellation& cancel) const {
  // Cancellation has no condition of its own to wait on: it is polled at a short real-time
  // interval, and the store's condition wakes the wait at once on an append.
  absl::MutexLock lock(&mu_);
  while (generation_ == seen && !cancel.cancelled()) {
    const absl::Time now = absl::Now();
    if (now >= deadline) return;
    auto changed = [this, seen]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return generation_ != seen; };
    mu_.AwaitWithDeadline(absl::Condition(&changed),
                          std::min(deadline, now + absl::Milliseconds(20)));
  }
}

absl::Status SimLogSource::ReadLogs(const std::string& task_id, const logs::LogReadOptions& options,
                                    const logs::LogSink& sink, Cancellation& cancel) {
  uint64_t generation = store_->generation();
  absl::StatusOr<std::vector<api::LogMessage>> lines = store_->Read(task_id, options);
  if (!lines.ok()) return lines.status();
  // What was delivered: the newest time and how many lines carried it, so that re-reading the
  // (small, bounded) files after an append delivers only what is new.
  absl::Time newest = absl::InfinitePast();
  int64_t at_newest = 0;
  auto deliver = [&](const std::vector<api::LogMessage>& batch, bool skip_seen) {
    int64_t skip = skip_seen ? at_newest : 0;
    for (const api::LogMessage& m : batch) {
      const absl::Time t = FromProto(m.timestamp());
      if (skip_seen && t < newest) continue;
      if (skip_seen && t == newest && skip > 0) {
        --skip;
        continue;
      }
      if (t == newest) {
        ++at_newest;
      } else {
        newest = t;
        at_newest = 1;
      }
      if (!sink(m)) return false;
    }
    return true;
  };
  if (!deliver(*lines, false)) return absl::OkStatus();
  if (!options.follow) return absl::OkStatus();
  logs::LogReadOptions again = options;
  again.tail.reset();
  off_t last_size = -1;
  std::string current = store_->CurrentFile(task_id);
  FileSize(current, &last_size);
  while (!cancel.cancelled()) {
    store_->WaitForAppend(generation, absl::Now() + store_->options().poll_interval, cancel);
    if (cancel.cancelled()) break;
    const uint64_t now_generation = store_->generation();
    off_t size = -1;
    FileSize(current, &size);
    if (now_generation == generation && size == last_size) continue;
    generation = now_generation;
    last_size = size;
    if (newest != absl::InfinitePast()) again.since = std::max(options.since, newest);
    absl::StatusOr<std::vector<api::LogMessage>> more = store_->Read(task_id, again);
    if (!more.ok()) return more.status();
    if (!deliver(*more, true)) return absl::OkStatus();
  }
  return absl::OkStatus();
}

}  // namespace shoal::agent::exec
