// shoal_kv: one member of a replicated key-value service built on Shoal's Raft library.
//
//   shoal_kv --id N --peers 1=127.0.0.1:P1,2=127.0.0.1:P2,3=127.0.0.1:P3 \
//            --client-addr 127.0.0.1:Q --data-dir D
//
// Serves etcd's gRPC API subset (KV.Put, KV.Range, Maintenance.Status) on --client-addr and Raft
// on its own --peers address. A Put is answered once committed (fsynced on a majority) and
// applied; a Range is linearizable (ReadIndex) unless `serializable` is set. Followers answer
// Put with UNAVAILABLE naming the leader's client address, so clients go to the leader.
// Raft timing: tick 100 ms, heartbeat every tick, election after 5-10 ticks.
#include <signal.h>

#include <iostream>
#include <map>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bench/shoal_kv/kv_store.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "raft/node/raft_node.h"
#include "raft/transport/deferred_handler.h"
#include "raft/transport/transport.h"
#include "raft/transport/transport_service.h"
#include "spdlog/spdlog.h"

namespace {

using shoal::kv::KvStore;
using shoal::raft::RaftNode;

grpc::Status ToGrpc(const absl::Status& s) {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      code = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    case absl::StatusCode::kCancelled:
      code = grpc::StatusCode::CANCELLED;
      break;
    case absl::StatusCode::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    default:
      break;
  }
  return grpc::Status(code, std::string(s.message()));
}

class KvService final : public etcdserverpb::KV::CallbackService {
 public:
  KvService(uint64_t id, RaftNode* node, KvStore* store) : id_(id), node_(node), store_(store) {}

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::PutRequest* request,
                                etcdserverpb::PutResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    // Leader() and Term() are lock-free: GetInfo() would copy the membership on every Put.
    const uint64_t leader = node_->Leader();
    if (leader != id_) {
      // Fail fast: a forwarded proposal would only add a hop; clients find the leader by Status.
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                   absl::StrCat("not the leader (leader is member ", leader, ")")));
      return reactor;
    }
    const uint64_t term = node_->Term();
    node_->ProposeAsync(request->SerializeAsString(),
                        [this, reactor, response, prev = request->prev_kv(),
                         term](absl::StatusOr<std::string> result) {
                          if (!result.ok()) {
                            reactor->Finish(ToGrpc(result.status()));
                            return;
                          }
                          FillHeader(response->mutable_header(), term);
                          if (prev && !result->empty()) {
                            response->mutable_prev_kv()->ParseFromString(*result);
                          }
                          reactor->Finish(grpc::Status::OK);
                        });
    return reactor;
  }

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::RangeRequest* request,
                                  etcdserverpb::RangeResponse* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!request->range_end().empty()) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "shoal_kv serves single-key Range only"));
      return reactor;
    }
    auto answer = [this, reactor, request, response](absl::StatusOr<std::string> ready) {
      if (!ready.ok()) {
        reactor->Finish(ToGrpc(ready.status()));
        return;
      }
      FillHeader(response->mutable_header(), node_->GetInfo().term);
      if (auto kv = store_->Get(request->key())) {
        *response->add_kvs() = *kv;
        response->set_count(1);
      }
      reactor->Finish(grpc::Status::OK);
    };
    if (request->serializable()) {
      answer(std::string());
    } else {
      node_->LinearizableReadAsync(std::move(answer));
    }
    return reactor;
  }

 private:
  void FillHeader(etcdserverpb::ResponseHeader* h, uint64_t term) const {
    h->set_cluster_id(1);
    h->set_member_id(id_);
    h->set_revision(store_->revision());
    h->set_raft_term(term);
  }

  const uint64_t id_;
  RaftNode* const node_;
  KvStore* const store_;
};

class MaintenanceService final : public etcdserverpb::Maintenance::Service {
 public:
  MaintenanceService(uint64_t id, RaftNode* node) : id_(id), node_(node) {}

  grpc::Status Status(grpc::ServerContext*, const etcdserverpb::StatusRequest*,
                      etcdserverpb::StatusResponse* response) override {
    const RaftNode::Info info = node_->GetInfo();
    response->mutable_header()->set_cluster_id(1);
    response->mutable_header()->set_member_id(id_);
    response->mutable_header()->set_raft_term(info.term);
    response->set_version("shoal_kv");
    response->set_leader(info.leader);
    response->set_raftindex(info.commit);
    response->set_raftterm(info.term);
    response->set_raftappliedindex(info.applied);
    return grpc::Status::OK;
  }

 private:
  const uint64_t id_;
  RaftNode* const node_;
};

// "1=127.0.0.1:7001,2=..." → members.
bool ParsePeers(const std::string& text, std::vector<shoal::api::RaftMember>* out) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    uint64_t id = 0;
    if (!absl::SimpleAtoi(kv.first, &id) || id == 0 || kv.second.empty()) return false;
    shoal::api::RaftMember m;
    m.set_raft_id(id);
    m.set_addr(kv.second);
    out->push_back(std::move(m));
  }
  return !out->empty();
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t id = 0;
  std::string peers_flag, client_addr, data_dir;
  std::string log_level = "info";
  CLI::App app("shoal_kv: a replicated key-value server on Shoal's Raft (etcd's gRPC API)");
  app.add_option("--id", id, "This member's Raft ID (1..n)")->required();
  app.add_option("--peers", peers_flag, "ID=HOST:PORT,... of every member's Raft address")
      ->required();
  app.add_option("--client-addr", client_addr, "HOST:PORT serving etcd's KV/Maintenance API")
      ->required();
  app.add_option("--data-dir", data_dir, "Durable state (Raft log and snapshots)")->required();
  app.add_option("--log-level", log_level, "debug, info, warn or error");
  CLI11_PARSE(app, argc, argv);
  // Debian's abseil checks every Mutex acquisition for lock-order cycles (a debugging aid that
  // cost ~3% of this server's CPU in profiles); our lock order is fixed by design.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  spdlog::set_level(spdlog::level::from_str(log_level));

  std::vector<shoal::api::RaftMember> members;
  if (!ParsePeers(peers_flag, &members)) {
    std::cerr << "shoal_kv: --peers must look like 1=127.0.0.1:7001,2=127.0.0.1:7002\n";
    return 2;
  }
  std::string self_addr;
  for (const auto& m : members) {
    if (m.raft_id() == id) self_addr = m.addr();
  }
  if (self_addr.empty()) {
    std::cerr << "shoal_kv: --id " << id << " is not in --peers\n";
    return 2;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  shoal::raft::DeferredHandler handler;  // the servers listen before the node exists
  shoal::raft::TransportService transport_service(id, &handler);
  grpc::ServerBuilder peer_builder;
  shoal::raft::TransportService::ConfigureServerBuilder(&peer_builder);
  peer_builder.AddListeningPort(self_addr, grpc::InsecureServerCredentials());
  peer_builder.RegisterService(&transport_service);
  std::unique_ptr<grpc::Server> peer_server = peer_builder.BuildAndStart();
  if (!peer_server) {
    std::cerr << "shoal_kv: cannot listen on " << self_addr << "\n";
    return 1;
  }

  shoal::raft::Transport::Options topts;
  topts.local_id = id;
  topts.channel_credentials = grpc::InsecureChannelCredentials();
  shoal::raft::Transport transport(topts, &handler);

  KvStore store;
  shoal::raft::RaftNodeOptions options;
  options.id = id;
  options.addr = self_addr;
  options.dir = data_dir;
  options.bootstrap_members = members;
  options.join_members = members;
  // As etcd 3.4's default --snapshot-count: the benchmark compares like with like.
  options.snapshot_interval = 100000;
  absl::StatusOr<std::unique_ptr<RaftNode>> node = RaftNode::Start(options, &store, &transport);
  if (!node.ok()) {
    std::cerr << "shoal_kv: " << node.status().message() << "\n";
    return 1;
  }
  handler.Set(node->get());

  KvService kv_service(id, node->get(), &store);
  MaintenanceService maintenance_service(id, node->get());
  grpc::ServerBuilder client_builder;
  client_builder.AddListeningPort(client_addr, grpc::InsecureServerCredentials());
  client_builder.RegisterService(&kv_service);
  client_builder.RegisterService(&maintenance_service);
  std::unique_ptr<grpc::Server> client_server = client_builder.BuildAndStart();
  if (!client_server) {
    std::cerr << "shoal_kv: cannot listen on " << client_addr << "\n";
    return 1;
  }
  spdlog::info("shoal_kv member {} serving clients on {}, raft on {}", id, client_addr, self_addr);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("shoal_kv member {}: signal {}, stopping", id, sig);
  const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(500);
  client_server->Shutdown(deadline);
  (*node)->Stop();
  handler.Set(nullptr);
  transport.Stop();
  peer_server->Shutdown(deadline);
  return 0;
}
