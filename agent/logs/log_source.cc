#include "agent/logs/log_source.h"

#include "absl/time/time.h"

namespace shoal::agent::logs {

LogReadOptions FromSubscriptionOptions(const api::LogSubscriptionOptions& options) {
  LogReadOptions out;
  if (options.streams_size() > 0) {
    out.want_stdout = false;
    out.want_stderr = false;
    for (int s : options.streams()) {
      if (s == api::LOG_STREAM_STDOUT) out.want_stdout = true;
      if (s == api::LOG_STREAM_STDERR) out.want_stderr = true;
    }
  }
  if (options.has_since()) {
    out.since = absl::FromUnixSeconds(options.since().seconds()) +
                absl::Nanoseconds(options.since().nanos());
  }
  if (options.has_tail()) out.tail = options.tail();
  out.follow = options.follow();
  return out;
}

}  // namespace shoal::agent::logs
