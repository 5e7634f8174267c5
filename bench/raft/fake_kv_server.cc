#include "bench/raft/fake_kv_server.h"

#include "absl/strings/str_cat.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/server_builder.h"

namespace shoal::bench::testing {

class FakeKvServer::Service final : public etcdserverpb::KV::Service,
                                    public etcdserverpb::Maintenance::Service {
 public:
  Service(uint64_t member_id, uint64_t leader_id) : member_id_(member_id), leader_id_(leader_id) {}

  grpc::Status Put(grpc::ServerContext*, const etcdserverpb::PutRequest* request,
                   etcdserverpb::PutResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (fail_next_ > 0) {
      --fail_next_;
      ++failed_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "etcdserver: no leader");
    }
    ++ok_;
    ++keys_[request->key()];
    last_value_size_ = request->value().size();
    response->mutable_header()->set_member_id(member_id_);
    response->mutable_header()->set_revision(ok_);
    return grpc::Status::OK;
  }

  grpc::Status Status(grpc::ServerContext*, const etcdserverpb::StatusRequest*,
                      etcdserverpb::StatusResponse* response) override {
    absl::MutexLock lock(&mu_);
    response->mutable_header()->set_member_id(member_id_);
    response->set_leader(leader_id_);
    response->set_raftindex(raft_index_);
    response->set_raftterm(2);
    return grpc::Status::OK;
  }

  const uint64_t member_id_;
  const uint64_t leader_id_;
  mutable absl::Mutex mu_;
  int64_t fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t ok_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t raft_index_ ABSL_GUARDED_BY(mu_) = 10;
  size_t last_value_size_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int64_t> keys_ ABSL_GUARDED_BY(mu_);
};

FakeKvServer::FakeKvServer(uint64_t member_id, uint64_t leader_id)
    : service_(std::make_unique<Service>(member_id, leader_id)) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(static_cast<etcdserverpb::KV::Service*>(service_.get()));
  builder.RegisterService(static_cast<etcdserverpb::Maintenance::Service*>(service_.get()));
  server_ = builder.BuildAndStart();
  endpoint_ = absl::StrCat("127.0.0.1:", port);
}

FakeKvServer::~FakeKvServer() { server_->Shutdown(); }

void FakeKvServer::FailNextPuts(int64_t n) {
  absl::MutexLock lock(&service_->mu_);
  service_->fail_next_ = n;
}

void FakeKvServer::SetRaftIndex(uint64_t index) {
  absl::MutexLock lock(&service_->mu_);
  service_->raft_index_ = index;
}

int64_t FakeKvServer::puts_ok() const {
  absl::MutexLock lock(&service_->mu_);
  return service_->ok_;
}

int64_t FakeKvServer::puts_failed() const {
  absl::MutexLock lock(&service_->mu_);
  return service_->failed_;
}

std::map<std::string, int64_t> FakeKvServer::keys() const {
  absl::MutexLock lock(&service_->mu_);
  return service_->keys_;
}

size_t FakeKvServer::last_value_size() const {
  absl::MutexLock lock(&service_->mu_);
  return service_->last_value_size_;
}

}  // namespace shoal::bench::testing
