// DeferredHandler: a Handler that forwards to a target set later.
//
// The transport's server must listen before the node that handles its messages exists (the
// node needs the server's address, and a restarted member must answer on its old port at
// once). Messages arriving while no target is set are dropped — Raft retransmits.
//
// Threading: every method may be called from any thread; Set(nullptr) waits for callbacks in
// progress, so after it returns the old target is no longer called.
#ifndef SHOAL_RAFT_TRANSPORT_DEFERRED_HANDLER_H_
#define SHOAL_RAFT_TRANSPORT_DEFERRED_HANDLER_H_

#include "absl/synchronization/mutex.h"
#include "raft/transport/handler.h"

namespace shoal::raft {

class DeferredHandler : public Handler {
 public:
  void Set(Handler* target) {
    absl::WriterMutexLock lock(&mu_);
    target_ = target;
  }
  void Receive(raftpb::Message m) override {
    absl::ReaderMutexLock lock(&mu_);
    if (target_ != nullptr) target_->Receive(std::move(m));
  }
  void ReceiveBatch(std::vector<raftpb::Message> msgs) override {
    absl::ReaderMutexLock lock(&mu_);
    if (target_ != nullptr) target_->ReceiveBatch(std::move(msgs));
  }
  void ReportUnreachable(uint64_t peer) override {
    absl::ReaderMutexLock lock(&mu_);
    if (target_ != nullptr) target_->ReportUnreachable(peer);
  }
  void ReportSnapshot(uint64_t peer, bool failed) override {
    absl::ReaderMutexLock lock(&mu_);
    if (target_ != nullptr) target_->ReportSnapshot(peer, failed);
  }

 private:
  absl::Mutex mu_;
  Handler* target_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_TRANSPORT_DEFERRED_HANDLER_H_
