#include "agent/logs/log_publisher.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace shoal::agent::logs {
namespace {

absl::Time TimeOf(const api::LogMessage& m) {
  return absl::FromUnixSeconds(m.timestamp().seconds()) + absl::Nanoseconds(m.timestamp().nanos());
}

}  // namespace

struct LogPublisher::Subscription {
  std::string id;
  api::LogSubscriptionOptions options;
  std::shared_ptr<api::LogBroker::StubInterface> stub;
  exec::Cancellation cancel;
  std::thread thread;
  // Guarded by LogPublisher::mu_.
  std::vector<std::string> tasks;
  // Tasks a later SubscriptionMessage added (they started after the subscription did): all their
  // lines are new, so tail does not apply to them.
  absl::flat_hash_set<std::string> late;
  uint64_t tasks_version = 0;
  bool closed = false;
  grpc::ClientContext* ctx = nullptr;
};

absl::StatusOr<std::unique_ptr<LogPublisher>> LogPublisher::Start(LogPublisherOptions options) {
  if (!options.connection) {
    return absl::InvalidArgumentError("log publisher: no connection function given");
  }
  if (options.source == nullptr) {
    return absl::InvalidArgumentError("log publisher: no task log source given");
  }
  if (options.max_batch_lines == 0 || options.max_batch_bytes == 0) {
    return absl::InvalidArgumentError("log publisher: batch limits must be positive");
  }
  std::unique_ptr<LogPublisher> p(new LogPublisher(std::move(options)));
  p->listener_thread_ = std::thread([raw = p.get()] { raw->RunListener(); });
  p->supervisor_thread_ = std::thread([raw = p.get()] { raw->RunSupervisor(); });
  return p;
}

LogPublisher::LogPublisher(LogPublisherOptions options) : options_(std::move(options)) {}

LogPublisher::~LogPublisher() { Stop(); }

void LogPublisher::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  std::vector<std::shared_ptr<Subscription>> subs;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (listen_ctx_ != nullptr) listen_ctx_->TryCancel();
    for (auto& [id, sub] : subs_) {
      sub->closed = true;
      if (sub->ctx != nullptr) sub->ctx->TryCancel();
      subs.push_back(sub);
    }
  }
  for (auto& sub : subs) sub->cancel.Cancel();
  if (listener_thread_.joinable()) listener_thread_.join();
  if (supervisor_thread_.joinable()) supervisor_thread_.join();
  std::vector<std::shared_ptr<Subscription>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, sub] : subs_) all.push_back(sub);
    all.insert(all.end(), finished_.begin(), finished_.end());
    finished_.clear();
  }
  for (auto& sub : all) {
    if (sub->thread.joinable()) sub->thread.join();
  }
}

void LogPublisher::Kick() {
  absl::MutexLock lock(&mu_);
  ++kicks_;
}

LogPublisherStats LogPublisher::stats() const {
  absl::MutexLock lock(&mu_);
  LogPublisherStats s = stats_;
  s.subscriptions_active = static_cast<int64_t>(subs_.size());
  return s;
}

bool LogPublisher::Pause(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  const uint64_t kicks = kicks_;
  auto woken = [this, kicks]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || kicks_ != kicks; };
  mu_.AwaitWithTimeout(absl::Condition(&woken), d);
  return !stopping_;
}

void LogPublisher::RunListener() {
  absl::Duration backoff = options_.min_backoff;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    LogBrokerConnection connection = options_.connection();
    if (connection.stub == nullptr) {
      if (!Pause(options_.poll_interval)) return;
      continue;
    }
    const bool delivered = ListenOnce(connection);
    backoff = delivered ? options_.min_backoff : std::min(backoff * 2, options_.max_backoff);
    if (!Backoff(backoff, connection.session_id)) return;
  }
}

bool LogPublisher::Backoff(absl::Duration d, const std::string& session_id) {
  uint64_t kicks;
  {
    absl::MutexLock lock(&mu_);
    kicks = kicks_;
  }
  const absl::Time deadline = absl::Now() + d;
  while (true) {
    // A new session (the leader changed): listen on it at once, not after the backoff.
    if (options_.connection().session_id != session_id) return true;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    if (!Pause(std::min(left, options_.poll_interval))) return false;
    absl::MutexLock lock(&mu_);
    if (kicks_ != kicks) return true;
  }
}

bool LogPublisher::ListenOnce(const LogBrokerConnection& connection) {
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    listen_ctx_ = &ctx;
    listen_session_ = connection.session_id;
    ++stats_.listen_streams;
  }
  bool delivered = false;
  std::unique_ptr<grpc::ClientReaderInterface<api::SubscriptionMessage>> reader =
      connection.stub->ListenSubscriptions(&ctx, api::ListenSubscriptionsRequest());
  api::SubscriptionMessage message;
  while (reader->Read(&message)) {
    delivered = true;
    OnSubscriptionMessage(connection, message);
  }
  grpc::Status status = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    listen_ctx_ = nullptr;
    if (!stopping_ && status.error_code() != grpc::StatusCode::CANCELLED) {
      spdlog::debug("log subscriptions stream ended: {}", status.error_message());
    }
  }
  return delivered;
}

void LogPublisher::RunSupervisor() {
  while (Pause(options_.poll_interval)) {
    LogBrokerConnection connection = options_.connection();
    {
      absl::MutexLock lock(&mu_);
      // The session changed under the open stream: drop it, the listener reopens on the new one.
      if (listen_ctx_ != nullptr && connection.session_id != listen_session_) {
        listen_ctx_->TryCancel();
      }
    }
    ReapFinished();
  }
}

void LogPublisher::ReapFinished() {
  std::vector<std::shared_ptr<Subscription>> done;
  {
    absl::MutexLock lock(&mu_);
    done.swap(finished_);
  }
  for (auto& sub : done) {
    if (sub->thread.joinable()) sub->thread.join();
  }
}

void LogPublisher::OnSubscriptionMessage(const LogBrokerConnection& connection,
                                         const api::SubscriptionMessage& message) {
  std::shared_ptr<Subscription> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    auto it = subs_.find(message.id());
    if (message.close()) {
      if (it == subs_.end()) return;
      it->second->closed = true;
      ++it->second->tasks_version;  // wakes a follow wait
      to_cancel = it->second;
    } else if (it != subs_.end()) {
      // The same subscription again (more tasks, or a reconnected stream): read what is new.
      Subscription& sub = *it->second;
      for (const std::string& t : message.selector().task_ids()) {
        if (std::find(sub.tasks.begin(), sub.tasks.end(), t) == sub.tasks.end()) {
          sub.tasks.push_back(t);
          sub.late.insert(t);
          ++sub.tasks_version;
        }
      }
      return;
    } else {
      auto sub = std::make_shared<Subscription>();
      sub->id = message.id();
      sub->options = message.options();
      sub->stub = connection.stub;
      sub->tasks.assign(message.selector().task_ids().begin(), message.selector().task_ids().end());
      subs_.emplace(sub->id, sub);
      ++stats_.subscriptions_started;
      sub->thread = std::thread([this, sub] { RunSubscription(sub); });
      return;
    }
  }
  if (to_cancel != nullptr) to_cancel->cancel.Cancel();
}

void LogPublisher::RunSubscription(const std::shared_ptr<Subscription>& sub) {
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&mu_);
    if (sub->closed || stopping_) ctx.TryCancel();
    sub->ctx = &ctx;
  }
  api::PublishLogsResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<api::PublishLogsMessage>> writer =
      sub->stub->PublishLogs(&ctx, &response);

  api::PublishLogsMessage batch;
  size_t batch_bytes = 0;
  bool broken = false;  // a Write failed: the broker ended the subscription, or we stop
  absl::Time last_write = absl::Now();
  // `keepalive`: write even an empty message (the broker ignores it), to learn whether the
  // stream still stands.
  auto flush = [&](bool close, bool keepalive = false) {
    if (broken) return false;
    if (batch.messages_size() == 0 && !close && !keepalive) return true;
    last_write = absl::Now();
    batch.set_subscription_id(sub->id);
    batch.set_close(close);
    const int64_t lines = batch.messages_size();
    if (!writer->Write(batch)) {
      broken = true;
      return false;
    }
    {
      absl::MutexLock lock(&mu_);
      ++stats_.messages_published;
      stats_.lines_published += lines;
    }
    batch.Clear();
    batch_bytes = 0;
    return true;
  };
  auto add = [&](const api::LogMessage& m) {
    batch_bytes += m.data().size() + 64;
    *batch.add_messages() = m;
    if (static_cast<size_t>(batch.messages_size()) >= options_.max_batch_lines ||
        batch_bytes >= options_.max_batch_bytes) {
      return flush(false);
    }
    return true;
  };

  const LogReadOptions base = FromSubscriptionOptions(sub->options);
  if (!base.follow) {
    std::vector<std::string> tasks;
    {
      absl::MutexLock lock(&mu_);
      tasks = sub->tasks;
    }
    LogReadOptions once = base;
    for (const std::string& task : tasks) {
      if (broken || sub->cancel.cancelled()) break;
      absl::Status s = options_.source->ReadLogs(task, once, add, sub->cancel);
      if (!s.ok()) spdlog::warn("logs of task {}: {}", task, std::string(s.message()));
    }
    if (!sub->cancel.cancelled()) flush(/*close=*/true);
  } else {
    // Per task: the newest line sent and how many carried its time, so that each pass reads
    // from there on and sends nothing twice.
    struct Progress {
      bool started = false;
      std::unique_ptr<TaskLogCursor> cursor;  // when the source has cursors
      bool read_once = false;                 // without a cursor: the first read is done
      absl::Time newest = absl::InfinitePast();
      int64_t at_newest = 0;
    };
    absl::flat_hash_map<std::string, Progress> progress;
    uint64_t seen_version = 0;
    while (!broken && !sub->cancel.cancelled()) {
      std::vector<std::string> tasks;
      absl::flat_hash_set<std::string> late;
      {
        absl::MutexLock lock(&mu_);
        if (sub->closed || stopping_) break;
        tasks = sub->tasks;
        late = sub->late;
        seen_version = sub->tasks_version;
      }
      for (const std::string& task : tasks) {
        if (broken || sub->cancel.cancelled()) break;
        Progress& p = progress[task];
        LogReadOptions pass = base;
        pass.follow = false;
        if (late.contains(task)) pass.tail.reset();
        if (!p.started) {
          p.started = true;
          p.cursor = options_.source->OpenCursor(task, pass);
        }
        auto advance = [&p](absl::Time t) {
          if (t == p.newest) {
            ++p.at_newest;
          } else {
            p.newest = t;
            p.at_newest = 1;
          }
        };
        absl::Status s;
        if (p.cursor != nullptr) {
          s = p.cursor->ReadNew(add);
        } else if (!p.read_once) {
          // The first read: every line since `since`, of which the last `tail` are sent. The
          // tail is applied here, not by the source, so that the newest line of the log — sent
          // or not — is where the next pass starts (else `--tail 0 -f` would get the whole log
          // on the second pass).
          const std::optional<uint64_t> tail = pass.tail;
          pass.tail.reset();
          std::deque<api::LogMessage> kept;
          auto sink = [&](const api::LogMessage& m) {
            advance(TimeOf(m));
            if (!tail.has_value()) return add(m);
            if (*tail == 0) return true;
            kept.push_back(m);
            if (kept.size() > *tail) kept.pop_front();
            return true;
          };
          s = options_.source->ReadLogs(task, pass, sink, sub->cancel);
          for (const api::LogMessage& m : kept) {
            if (!add(m)) break;
          }
          p.read_once = true;
        } else {
          // Only what is new: from the newest line read on, skipping the lines already read
          // with its very time.
          pass.tail.reset();
          pass.since = std::max(base.since, p.newest);
          int64_t skip = p.at_newest;
          auto sink = [&](const api::LogMessage& m) {
            const absl::Time t = TimeOf(m);
            if (t < p.newest) return true;
            if (t == p.newest && skip > 0) {
              --skip;
              return true;
            }
            advance(t);
            return add(m);
          };
          s = options_.source->ReadLogs(task, pass, sink, sub->cancel);
        }
        if (!s.ok()) spdlog::warn("logs of task {}: {}", task, std::string(s.message()));
      }
      if (!flush(false)) break;
      // A stream to a manager that died, or stopped leading, fails only on a write: without
      // one now and then, this thread would outlive its subscription until the tasks write.
      if (absl::Now() - last_write >= options_.keepalive_interval && !flush(false, true)) break;
      absl::MutexLock lock(&mu_);
      auto woken = [this, &sub, seen_version]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || sub->closed || sub->tasks_version != seen_version;
      };
      mu_.AwaitWithTimeout(absl::Condition(&woken), options_.follow_interval);
    }
  }

  if (!broken) writer->WritesDone();
  grpc::Status status = writer->Finish();
  absl::MutexLock lock(&mu_);
  sub->ctx = nullptr;
  if (!status.ok() && !sub->closed && !stopping_) {
    ++stats_.publish_failures;
    spdlog::info("publishing logs for subscription {}: {}", sub->id, status.error_message());
  }
  auto it = subs_.find(sub->id);
  if (it != subs_.end() && it->second == sub) subs_.erase(it);
  finished_.push_back(sub);
}

}  // namespace shoal::agent::logs
