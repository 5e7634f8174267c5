// LogPublisher: the agent's end of task log streaming (proto/logs.proto). It listens for the
// subscriptions the leader's LogBroker hands this node (LogBroker.ListenSubscriptions), reads the
// selected local tasks' output from a TaskLogSource (log_source.h) and publishes it back
// (LogBroker.PublishLogs), in batches, ending with close.
//
// Threads:
//   - listener: opens ListenSubscriptions whenever the node has a dispatcher session, over that
//     session's connection (`connection`), and reopens it when it ends, with backoff between
//     min_backoff and max_backoff (reset once a stream delivered a message), or at once when
//     the session changes (a new session is noticed within poll_interval, also during a
//     backoff, and the old stream is cancelled — as the worker's assignment stream);
//   - one thread per active subscription, and no more: it opens one PublishLogs stream and reads
//     the subscription's tasks one after another. Without follow it sends every task's selected
//     lines and then close. With follow it sends the existing lines, then looks for new ones every
//     follow_interval — through the source's cursors (TaskLogSource::OpenCursor) when it has
//     them, else by reading each task again from the newest line read (dropping the lines read
//     already; the first read applies the tail itself, so that lines it leaves out are not sent
//     later either), so nothing is sent twice — until the broker sends close for the
//     subscription, the publish stream fails (noticed within keepalive_interval even when
//     nothing is sent: an empty message probes it), or the publisher stops. A
//     SubscriptionMessage for an active subscription adds the tasks it names that the
//     subscription does not read yet; those started after the subscription, so all their lines
//     (since `since`) are sent, whatever the tail.
//
// Batching: lines go out in PublishLogsMessages of at most max_batch_lines lines and about
// max_batch_bytes bytes; a partial batch is sent once the source has nothing more at the moment.
// The broker reads a subscription's stream only as fast as its subscriber takes the lines, so a
// slow subscriber blocks (only) that subscription's thread in Write.
//
// Thread-safety: every public method may be called from any thread.
#ifndef SHOAL_AGENT_LOGS_LOG_PUBLISHER_H_
#define SHOAL_AGENT_LOGS_LOG_PUBLISHER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/logs/log_source.h"
#include "proto/logs.grpc.pb.h"

namespace shoal::agent::logs {

// The node's dispatcher session as the publisher needs it: its ID (to notice a new session) and
// a LogBroker stub on the session's channel. Empty while no session is open.
struct LogBrokerConnection {
  std::string session_id;
  std::shared_ptr<api::LogBroker::StubInterface> stub;
};

struct LogPublisherOptions {
  // The current session, or an empty one. Called from the publisher's threads. REQUIRES: set.
  std::function<LogBrokerConnection()> connection;
  // REQUIRES: set, and outlives the publisher.
  TaskLogSource* source = nullptr;
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // How often the listener looks for a new session while it waits or streams.
  absl::Duration poll_interval = absl::Milliseconds(100);
  // How often a follow subscription looks for new lines.
  absl::Duration follow_interval = absl::Milliseconds(250);
  // A follow subscription that sent nothing for this long writes an empty message, to notice a
  // publish stream that is gone (its manager died or stopped leading) and end.
  absl::Duration keepalive_interval = absl::Seconds(5);
  size_t max_batch_lines = 500;
  size_t max_batch_bytes = 256 * 1024;
};

struct LogPublisherStats {
  int64_t listen_streams = 0;         // ListenSubscriptions streams opened
  int64_t subscriptions_started = 0;  // subscriptions served (threads started)
  int64_t subscriptions_active = 0;
  int64_t messages_published = 0;  // PublishLogsMessages written
  int64_t lines_published = 0;
  int64_t publish_failures = 0;  // publish streams that ended with an error
};

class LogPublisher {
 public:
  // Starts the listener. Errors: INVALID_ARGUMENT for unusable options.
  static absl::StatusOr<std::unique_ptr<LogPublisher>> Start(LogPublisherOptions options);
  ~LogPublisher();  // Stop()
  LogPublisher(const LogPublisher&) = delete;
  LogPublisher& operator=(const LogPublisher&) = delete;

  // Cancels every stream and joins every thread. Idempotent.
  void Stop();
  // Wakes the listener to look at the session now (call it when the session changes).
  void Kick();

  LogPublisherStats stats() const;

 private:
  struct Subscription;

  explicit LogPublisher(LogPublisherOptions options);
  void RunListener();
  void RunSupervisor();
  // One ListenSubscriptions stream; true if it delivered a message.
  bool ListenOnce(const LogBrokerConnection& connection);
  void OnSubscriptionMessage(const LogBrokerConnection& connection,
                             const api::SubscriptionMessage& message);
  void RunSubscription(const std::shared_ptr<Subscription>& sub);
  // Waits up to `d` or until kicked or stopping. False when stopping.
  bool Pause(absl::Duration d);
  // The listener's wait between streams: up to `d`, or until kicked or the session is no longer
  // `session_id`. False when stopping.
  bool Backoff(absl::Duration d, const std::string& session_id);
  // Joins the threads of finished subscriptions.
  void ReapFinished();

  const LogPublisherOptions options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t kicks_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ClientContext* listen_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::string listen_session_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Subscription>> subs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Subscription>> finished_ ABSL_GUARDED_BY(mu_);
  LogPublisherStats stats_ ABSL_GUARDED_BY(mu_);

  absl::Mutex stop_mu_;
  std::thread listener_thread_;
  std::thread supervisor_thread_;
};

}  // namespace shoal::agent::logs

#endif  // SHOAL_AGENT_LOGS_LOG_PUBLISHER_H_
