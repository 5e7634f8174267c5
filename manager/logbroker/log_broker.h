// LogBroker: the leader's end of task log streaming (proto/logs.proto) — `shoal service logs`
// subscribes through Logs.SubscribeLogs; the agents of the nodes that ran the selected tasks
// receive the subscription on LogBroker.ListenSubscriptions and publish the lines back through
// LogBroker.PublishLogs; the broker forwards them to the subscriber.
//
// Both services use gRPC's callback API: an open stream holds no thread, only its state here.
//
//   SubscribeLogs   Manager certificates only (the CLI reaches it through a manager's
//                   LogsForwarder, logs_forwarder.h). The selector is validated (INVALID_ARGUMENT
//                   naming the problem: nothing selected, an empty ID, an unknown stream) and
//                   resolved against the store: its services' tasks, its nodes' tasks and its
//                   tasks, each counted only once it has a node (NOT_FOUND names an ID that does
//                   not exist). Each involved node that listens gets a SubscriptionMessage naming
//                   its own tasks. Lines published for the subscription are forwarded to the
//                   subscriber in order per publishing stream, their context completed by the
//                   broker (node ID from the publisher's certificate, service ID from the store;
//                   lines for tasks the node was not asked for are dropped).
//                   Without follow the stream finishes once every involved node sent close: OK
//                   when all of them were listening, else UNAVAILABLE "incomplete log stream:
//                   node X (host) is not connected …" after the others' lines. With follow it
//                   runs until the subscriber cancels; nodes that connect later, and tasks that
//                   are later assigned to a node and match the selector, are added (the node gets
//                   a SubscriptionMessage with its tasks so far; without the tail when all of
//                   them came later: their lines are all new). Whenever the subscriber goes
//                   away, every involved node gets a close for the subscription.
//   ListenSubscriptions  Worker or manager certificates; the node is the certificate's CN. A
//                   newer stream from the same node replaces the older one (ABORTED). On open the
//                   node gets every active subscription that involves it.
//   PublishLogs     Worker or manager certificates; one stream per subscription and node; each
//                   message may carry lines and, last, close. NOT_FOUND when the subscription is
//                   unknown or over (the agent stops reading), PERMISSION_DENIED when it was not
//                   sent to the calling node.
//
// Slow subscribers: lines wait in a per-subscription buffer of at most
// `subscriber_buffer_lines` lines (plus at most one message per publishing stream). While it is
// full the broker stops reading the publishing streams of that subscription, so gRPC's flow
// control holds the agents back: a slow reader slows its own subscription, never loses lines, and
// never costs the broker more than that bound. Other subscriptions are not affected.
//
// Leader only, like the dispatcher: Start() on gaining leadership, Stop() on losing it. Calls on
// a manager that is not leading (or stopped) fail UNAVAILABLE naming the leader, and Stop() ends
// every open stream UNAVAILABLE, so that subscribers (the CLI) and agents reconnect to the new
// leader. While started, one thread watches the store for tasks that follow-subscriptions gain.
//
// Thread-safety: every public method may be called from any thread; gRPC runs the reactions on
// its own threads.
#ifndef SHOAL_MANAGER_LOGBROKER_LOG_BROKER_H_
#define SHOAL_MANAGER_LOGBROKER_LOG_BROKER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "manager/raft_control.h"
#include "manager/store/memory_store.h"
#include "proto/logs.grpc.pb.h"

namespace shoal::manager {

struct LogBrokerOptions {
  // Lines buffered for one subscriber before its publishers are held back.
  size_t subscriber_buffer_lines = 4096;
  // Lines sent to the subscriber in one SubscribeLogsMessage at most.
  size_t max_lines_per_message = 512;
  // Longest real-time wait of the store watcher before it looks at Stop().
  absl::Duration poll_interval = absl::Milliseconds(200);
  // How often the store watcher re-resolves the follow-subscriptions' selectors in full.
  absl::Duration resync_interval = absl::Seconds(2);
};

// Counters for tests and metrics.
struct LogBrokerStats {
  size_t subscriptions = 0;  // active
  size_t listeners = 0;      // nodes listening
  size_t publishers = 0;     // open PublishLogs streams
  uint64_t lines_forwarded = 0;
  uint64_t lines_dropped = 0;     // published for tasks the node was not asked for
  uint64_t publisher_pauses = 0;  // times a publishing stream waited for a slow subscriber
};

class LogBroker {
 public:
  // `store` and `raft` are not owned and must outlive the broker.
  LogBroker(store::MemoryStore* store, RaftControl* raft, LogBrokerOptions options = {});
  ~LogBroker();  // Stop()s
  LogBroker(const LogBroker&) = delete;
  LogBroker& operator=(const LogBroker&) = delete;

  // The two services, to register on the manager's server.
  grpc::Service* logs_service();
  grpc::Service* broker_service();

  // On gaining leadership: accept calls, watch the store for follow-subscriptions.
  void Start();
  // On losing it (and before the server shuts down): ends every open stream UNAVAILABLE and
  // forgets every subscription. Idempotent.
  void Stop();

  LogBrokerStats stats() const;

  // Implementation types, defined in log_broker.cc.
  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_LOGBROKER_LOG_BROKER_H_
