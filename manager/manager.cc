#include "manager/manager.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/unique_fd.h"
#include "manager/allocator/allocator.h"
#include "manager/ca/ca_server.h"
#include "manager/ca/rotation.h"
#include "manager/cluster_object.h"
#include "manager/controlapi/control_api.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/encryption/data_key.h"
#include "manager/encryption/dek_file.h"
#include "manager/encryption/key_ring_encrypter.h"
#include "manager/logbroker/log_broker.h"
#include "manager/metrics.h"
#include "manager/orchestrator/orchestrators.h"
#include "manager/rolemanager/role_manager.h"
#include "manager/scheduling/scheduling_loop.h"
#include "proto/raft_transport.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace shoal::manager {
namespace {

constexpr absl::Duration kRpcTimeout = absl::Seconds(10);
constexpr absl::Duration kLeadershipPoll = absl::Milliseconds(100);
constexpr absl::Duration kReachabilityPeriod = absl::Seconds(1);

std::string RaftDir(const std::string& state_dir) { return state_dir + "/raft"; }
std::string MemberFile(const std::string& state_dir) { return RaftDir(state_dir) + "/member.pb"; }
std::string LogDir(const std::string& state_dir) { return RaftDir(state_dir) + "/log"; }

uint64_t NewRaftId(const std::vector<api::RaftMember>& taken) {
  std::random_device rd;
  std::mt19937_64 gen((uint64_t{rd()} << 32) ^ rd());
  for (;;) {
    const uint64_t id = gen();
    if (id == 0) continue;
    if (std::none_of(taken.begin(), taken.end(),
                     [id](const api::RaftMember& m) { return m.raft_id() == id; })) {
      return id;
    }
  }
}

grpc::Status ToGrpc(const absl::Status& s) { return pki::ToGrpcStatus(s); }

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

std::chrono::system_clock::time_point GrpcDeadline(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// Whether `addr` (host:port) can be bound for listening now, as gRPC will bind it.
absl::Status CheckCanListen(const std::string& addr) {
  const size_t colon = addr.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(addr.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid listen address ", addr));
  }
  std::string host = addr.substr(0, colon);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  const bool v6 = host.find(':') != std::string::npos;
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return absl::InternalError("cannot create a socket");
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("invalid listen address ", addr));
    }
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("invalid listen address ", addr));
    }
    len = sizeof(*a);
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", addr, " for the manager port: ", std::strerror(errno),
        " (is it in use, or not an address of this host?); choose another with --listen-addr"));
  }
  return absl::OkStatus();
}

}  // namespace

// --- The store's proposer: Raft ----------------------------------------------------------------

class Manager::Proposer : public store::Proposer {
 public:
  void Set(raft::RaftNode* node) {
    absl::MutexLock lock(&mu_);
    node_ = node;
  }
  void SetMetrics(ManagerMetrics* metrics) { metrics_.store(metrics); }
  absl::StatusOr<std::string> Propose(std::string data, absl::Time deadline) override {
    raft::RaftNode* node;
    {
      absl::MutexLock lock(&mu_);
      node = node_;
    }
    if (node == nullptr) return absl::UnavailableError("this manager's Raft member is not running");
    const absl::Time start = absl::Now();
    absl::StatusOr<std::string> result = node->Propose(std::move(data), deadline);
    if (ManagerMetrics* m = metrics_.load(); m != nullptr) {
      m->ObserveProposal(absl::Now() - start, result.ok());
    }
    return result;
  }

 private:
  absl::Mutex mu_;
  raft::RaftNode* node_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::atomic<ManagerMetrics*> metrics_{nullptr};
};

// The store as Raft's state machine, timing each Apply for the metrics.
class Manager::TimedStateMachine : public raft::StateMachine {
 public:
  explicit TimedStateMachine(store::MemoryStore* store) : store_(store) {}
  void SetMetrics(ManagerMetrics* metrics) { metrics_.store(metrics); }
  std::string Apply(uint64_t index, const std::string& data) override {
    const absl::Time start = absl::Now();
    std::string result = store_->Apply(index, data);
    if (ManagerMetrics* m = metrics_.load(); m != nullptr) m->ObserveApply(absl::Now() - start);
    return result;
  }
  std::string Snapshot() override { return store_->Snapshot(); }
  std::function<std::string()> CaptureSnapshot() override { return store_->CaptureSnapshot(); }
  absl::Status Restore(const std::string& data) override { return store_->Restore(data); }

 private:
  store::MemoryStore* const store_;
  std::atomic<ManagerMetrics*> metrics_{nullptr};
};

// --- RaftTransport, for managers only ----------------------------------------------------------

class Manager::TransportAuthService final : public api::RaftTransport::Service {
 public:
  TransportAuthService(Manager* m, raft::TransportService* inner) : m_(m), inner_(inner) {}

  grpc::Status Send(grpc::ServerContext* context, grpc::ServerReader<api::MessageBatch>* reader,
                    api::SendResponse* response) override {
    if (grpc::Status s = Check(*context); !s.ok()) return s;
    return inner_->Send(context, reader, response);
  }
  grpc::Status StreamSnapshot(grpc::ServerContext* context,
                              grpc::ServerReader<api::SnapshotChunk>* reader,
                              api::SnapshotChunkAck* ack) override {
    if (grpc::Status s = Check(*context); !s.ok()) return s;
    return inner_->StreamSnapshot(context, reader, ack);
  }
  grpc::Status ResolveAddress(grpc::ServerContext* context,
                              const api::ResolveAddressRequest* request,
                              api::ResolveAddressResponse* response) override {
    if (grpc::Status s = Check(*context); !s.ok()) return s;
    return inner_->ResolveAddress(context, request, response);
  }

 private:
  grpc::Status Check(const grpc::ServerContext& context) {
    return AuthorizeNodeOfCluster(context, {pki::Role::kManager}, m_->options_.cluster_id,
                                  *m_->store_);
  }
  Manager* const m_;
  raft::TransportService* const inner_;
};

// --- RaftMembership: Join and Leave, carried out by the leader ---------------------------------

class Manager::MembershipService final : public api::RaftMembership::Service {
 public:
  explicit MembershipService(Manager* m) : m_(m) {}

  grpc::Status Join(grpc::ServerContext* context, const api::JoinRequest* request,
                    api::JoinResponse* response) override {
    pki::NodeIdentity caller;
    if (grpc::Status s = AuthorizeNode(*context, {pki::Role::kManager}, *m_->store_, &caller);
        !s.ok()) {
      return s;
    }
    api::JoinRequest req = *request;
    // Only a manager forwarding on a joiner's behalf names another node.
    if (req.forwarded_node_id().empty()) req.set_forwarded_node_id(caller.node_id);
    if (req.addr().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "join request without an address");
    }
    if (!m_->IsLeader()) return Forward(req, response);
    return ToGrpc(m_->AdmitMember(req.forwarded_node_id(), req.addr(), response));
  }

  grpc::Status Leave(grpc::ServerContext* context, const api::LeaveRequest* request,
                     api::LeaveResponse*) override {
    pki::NodeIdentity caller;
    if (grpc::Status s = AuthorizeNode(*context, {pki::Role::kManager}, *m_->store_, &caller);
        !s.ok()) {
      return s;
    }
    // A demoted manager keeps its certificate until it renews: the store's role decides.
    if (!m_->IsManagerInStore(caller.node_id)) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          absl::StrCat("node ", caller.node_id, " is no longer a manager"));
    }
    return ToGrpc(m_->RemoveMember(request->raft_id(), absl::Now() + kRpcTimeout));
  }

 private:
  grpc::Status Forward(const api::JoinRequest& req, api::JoinResponse* response) {
    const std::string leader = m_->LeaderAddr();
    if (leader.empty()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the swarm has no Raft leader at the moment; retry shortly");
    }
    auto stub = api::RaftMembership::NewStub(m_->DialManager(leader));
    grpc::ClientContext ctx;
    ctx.set_deadline(GrpcDeadline(kRpcTimeout));
    return stub->Join(&ctx, req, response);
  }
  Manager* const m_;
};

// --- Manager -----------------------------------------------------------------------------------

Manager::Manager(ManagerOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock()) {
  kek_ = options_.kek;
}

Manager::~Manager() { Stop(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<Manager>> Manager::Start(ManagerOptions options) {
  std::unique_ptr<Manager> m(new Manager(std::move(options)));
  if (absl::Status s = m->Init(); !s.ok()) {
    m->Stop(absl::ZeroDuration());
    if (m->joined_now_) {
      // Give back the Raft seat taken for a manager that will not run, so it does not count
      // against the quorum.
      for (const std::string& addr : m->options_.join_addrs) {
        auto stub = api::RaftMembership::NewStub(m->DialManager(addr));
        grpc::ClientContext ctx;
        ctx.set_deadline(GrpcDeadline(absl::Seconds(10)));
        api::LeaveRequest req;
        req.set_raft_id(m->raft_id_);
        api::LeaveResponse resp;
        if (stub->Leave(&ctx, req, &resp).ok()) break;
      }
    }
    return s;
  }
  return m;
}

absl::Status Manager::LoadOrCreateKeys() {
  if (absl::Status s = MakeDirectories(RaftDir(options_.state_dir), 0700); !s.ok()) return s;
  absl::StatusOr<encryption::DekState> dek =
      encryption::DekFile::Load(options_.state_dir, options_.kek);
  if (absl::IsNotFound(dek.status())) {
    if (options_.mode == ManagerOptions::Mode::kRestart ||
        options_.mode == ManagerOptions::Mode::kForceNewCluster) {
      return absl::DataLossError(absl::StrCat(
          "this manager's data key (", RaftDir(options_.state_dir),
          "/dek.pem) is missing, so its Raft log cannot be read; restore the state directory "
          "from a backup, or leave the swarm (`shoal swarm leave --force`) and join again"));
    }
    dek = encryption::NewDekState();
    if (absl::Status s = encryption::DekFile::Save(options_.state_dir, *dek, options_.kek); !s.ok())
      return s;
  }
  if (!dek.ok()) return dek.status();
  absl::StatusOr<std::unique_ptr<encryption::KeyRingEncrypter>> enc =
      encryption::KeyRingEncrypter::Create(dek->keys, dek->current_id);
  if (!enc.ok()) return enc.status();
  encrypter_ = std::move(*enc);
  return absl::OkStatus();
}

absl::Status Manager::Init() {
  if (absl::Status s = LoadOrCreateKeys(); !s.ok()) return s;

  std::vector<api::RaftMember> join_members;
  std::vector<api::RaftMember> bootstrap;
  switch (options_.mode) {
    case ManagerOptions::Mode::kInit: {
      raft_id_ = NewRaftId({});
      api::RaftMember self;
      self.set_raft_id(raft_id_);
      self.set_node_id(options_.node_id);
      self.set_addr(options_.advertise_addr);
      bootstrap.push_back(self);
      break;
    }
    case ManagerOptions::Mode::kJoin:
      // Fail before taking a Raft seat if the manager port cannot be served.
      if (absl::Status s = CheckCanListen(options_.listen_addr); !s.ok()) return s;
      if (absl::Status s = JoinRaft(&join_members); !s.ok()) return s;
      joined_now_ = true;
      break;
    case ManagerOptions::Mode::kRestart:
    case ManagerOptions::Mode::kForceNewCluster: {
      absl::StatusOr<std::string> data = ReadFile(MemberFile(options_.state_dir));
      api::LocalRaftMember member;
      if (!data.ok() || !member.ParseFromString(*data) || member.raft_id() == 0) {
        return absl::DataLossError(absl::StrCat(
            "cannot read this manager's Raft identity from ", MemberFile(options_.state_dir),
            data.ok() ? "" : absl::StrCat(": ", data.status().message())));
      }
      raft_id_ = member.raft_id();
      break;
    }
  }
  if (options_.mode != ManagerOptions::Mode::kRestart &&
      options_.mode != ManagerOptions::Mode::kForceNewCluster) {
    api::LocalRaftMember member;
    member.set_raft_id(raft_id_);
    member.set_cluster_id(options_.cluster_id);
    if (absl::Status s =
            WriteFileAtomic(MemberFile(options_.state_dir), member.SerializeAsString(), 0600);
        !s.ok()) {
      return s;
    }
  }

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      pki::ChannelCredentials(pki::TlsIdentity{options_.certs.cert_pem, options_.certs.key_pem},
                              options_.certs.root_ca_pem);
  if (!creds.ok()) return creds.status();
  handler_ = std::make_unique<raft::DeferredHandler>();
  raft::Transport::Options topts;
  topts.local_id = raft_id_;
  topts.channel_credentials = *creds;
  topts.tls_server_name = pki::kManagerTlsName;
  transport_ = std::make_unique<raft::Transport>(topts, handler_.get());
  transport_service_ =
      std::make_unique<raft::TransportService>(raft_id_, handler_.get(), transport_.get());

  proposer_ = std::make_unique<Proposer>();
  store::StoreOptions sopts;
  sopts.clock = clock_;
  store_ = std::make_unique<store::MemoryStore>(proposer_.get(), sopts);

  ControlApiOptions copts;
  copts.clock = clock_;
  copts.manager_addr = options_.advertise_addr;
  control_ = std::make_unique<ControlApi>(store_.get(), this, copts);
  CaOptions caopts;
  caopts.clock = clock_;
  node_ca_ = std::make_unique<NodeCaService>(store_.get(), this, caopts);
  manager_ca_ = std::make_unique<ManagerCaService>(store_.get(), this, caopts);
  DispatcherOptions dopts;
  dopts.clock = clock_;
  dispatcher_ = std::make_unique<Dispatcher>(store_.get(), this, dopts);
  LogBrokerOptions lopts;
  log_broker_ = std::make_unique<LogBroker>(store_.get(), this, lopts);
  transport_auth_ = std::make_unique<TransportAuthService>(this, transport_service_.get());
  membership_ = std::make_unique<MembershipService>(this);
  if (absl::Status s = StartServer(); !s.ok()) return s;

  raft::RaftNodeOptions ropts;
  ropts.id = raft_id_;
  ropts.addr = options_.advertise_addr;
  ropts.dir = LogDir(options_.state_dir);
  ropts.encrypter = encrypter_.get();
  ropts.clock = clock_;
  ropts.bootstrap_members = bootstrap;
  ropts.join_members = join_members;
  ropts.force_new_cluster = options_.mode == ManagerOptions::Mode::kForceNewCluster;
  // Elections after 1–2 s without a leader (etcd's default), not 0.5–1 s: a manager applying
  // large batches on a busy machine must not be taken for dead. Failover stays within ~2 s.
  ropts.tick_interval = absl::Milliseconds(100);
  ropts.election_tick = 10;
  state_machine_ = std::make_unique<TimedStateMachine>(store_.get());
  absl::StatusOr<std::unique_ptr<raft::RaftNode>> node =
      raft::RaftNode::Start(ropts, state_machine_.get(), transport_.get());
  if (!node.ok()) return node.status();
  raft_ = std::move(*node);
  raft_ptr_.store(raft_.get());
  handler_->Set(raft_.get());
  proposer_->Set(raft_.get());

  if (options_.mode == ManagerOptions::Mode::kInit) {
    if (absl::Status s = CreateInitialObjects(); !s.ok()) return s;
  }
  if (options_.metrics != nullptr) {
    metrics_ = std::make_unique<ManagerMetrics>(options_.metrics, store_.get(),
                                                [this] { return raft_->GetInfo(); });
    proposer_->SetMetrics(metrics_.get());
    state_machine_->SetMetrics(metrics_.get());
  }
  leadership_thread_ = std::thread([this] { LeadershipLoop(); });
  unlock_key_thread_ = std::thread([this] { WatchUnlockKey(); });
  spdlog::info("manager {} started: raft id {:x}, listening on {}, advertised as {}",
               options_.node_id, raft_id_, options_.listen_addr, options_.advertise_addr);
  return absl::OkStatus();
}

absl::Status Manager::JoinRaft(std::vector<api::RaftMember>* members) {
  // Retried while the swarm is busy (an election, another membership change): UNAVAILABLE.
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    absl::Status s = JoinRaftOnce(members);
    if (s.ok() || !absl::IsUnavailable(s) || absl::Now() + backoff >= give_up) return s;
    spdlog::info("joining Raft: {}; retrying", s.ToString());
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::Status Manager::JoinRaftOnce(std::vector<api::RaftMember>* members) {
  std::string errors;
  bool all_unavailable = true;
  for (const std::string& addr : options_.join_addrs) {
    auto stub = api::RaftMembership::NewStub(DialManager(addr));
    api::JoinRequest req;
    req.set_addr(options_.advertise_addr);
    api::JoinResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(GrpcDeadline(absl::Seconds(30)));
    grpc::Status s = stub->Join(&ctx, req, &resp);
    if (s.ok()) {
      raft_id_ = resp.raft_id();
      members->assign(resp.members().begin(), resp.members().end());
      return absl::OkStatus();
    }
    absl::StrAppend(&errors, errors.empty() ? "" : "; ", addr, ": ", s.error_message());
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      all_unavailable = false;
    }
  }
  const std::string msg = absl::StrCat("could not join the managers' Raft group (", errors, ")");
  return all_unavailable ? absl::UnavailableError(msg) : absl::FailedPreconditionError(msg);
}

absl::Status Manager::StartServer() {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      pki::ServerCredentials(pki::TlsIdentity{options_.certs.cert_pem, options_.certs.key_pem},
                             options_.certs.root_ca_pem, pki::ClientCertPolicy::kVerifyIfPresent);
  if (!creds.ok()) return creds.status();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second node on this host and port would then bind too,
  // and the kernel would split connections between the two managers.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  raft::TransportService::ConfigureServerBuilder(&builder);
  builder.AddListeningPort(options_.listen_addr, *creds, &listen_port_);
  builder.RegisterService(transport_auth_.get());
  builder.RegisterService(membership_.get());
  builder.RegisterService(node_ca_.get());
  builder.RegisterService(manager_ca_.get());
  builder.RegisterService(dispatcher_.get());
  builder.RegisterService(log_broker_->logs_service());
  builder.RegisterService(log_broker_->broker_service());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || listen_port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", options_.listen_addr,
        " for the manager port (is it in use, or not an address of this host?); choose another "
        "with --listen-addr"));
  }
  return absl::OkStatus();
}

absl::Status Manager::CreateInitialObjects() {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  if (raft_->WaitForLeader(deadline) != raft_id_) {
    return absl::UnavailableError("the new one-member Raft group elected no leader");
  }
  return store_->Update([&](store::WriteTx& tx) -> absl::Status {
    if (absl::Status s = tx.Create(options_.initial_cluster); !s.ok()) return s;
    return tx.Create(options_.initial_node);
  });
}

void Manager::Stop(absl::Duration handover) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (raft_ != nullptr && handover > absl::ZeroDuration() && IsLeader()) {
    // Hand leadership to the most up-to-date reachable voter so the swarm does not wait for an
    // election timeout.
    const raft::RaftNode::Info info = raft_->GetInfo();
    uint64_t best = 0;
    uint64_t best_match = 0;
    for (const auto& [id, pr] : info.progress) {
      if (pr.learner || !pr.recent_active) continue;
      if (best == 0 || pr.match > best_match) {
        best = id;
        best_match = pr.match;
      }
    }
    if (best != 0) {
      absl::Status s = raft_->TransferLeadership(best, absl::Now() + handover);
      spdlog::info("manager stopping: leadership handed to {:x}: {}", best, s.ToString());
    }
  }
  if (leadership_thread_.joinable()) leadership_thread_.join();
  if (unlock_key_thread_.joinable()) unlock_key_thread_.join();
  OnLeadershipChange(false);
  if (proposer_ != nullptr) proposer_->SetMetrics(nullptr);
  if (state_machine_ != nullptr) state_machine_->SetMetrics(nullptr);
  metrics_.reset();
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  if (handler_ != nullptr) handler_->Set(nullptr);
  if (proposer_ != nullptr) proposer_->Set(nullptr);
  if (raft_ != nullptr) raft_->Stop();
  if (transport_ != nullptr) transport_->Stop();
  if (server_ != nullptr) server_->Wait();
}

raft::RaftNode::Info Manager::raft_info() const { return raft_->GetInfo(); }

// --- Leadership and the leader-only loops ------------------------------------------------------

void Manager::LeadershipLoop() {
  bool leading = false;
  absl::Time next_probe = absl::InfinitePast();
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), kLeadershipPoll)) break;
    }
    const raft::RaftNode::Info info = raft_->GetInfo();
    const bool now_leading = info.state == raft::StateType::kLeader;
    if (now_leading != leading) {
      leading = now_leading;
      spdlog::info("manager {}: {} the Raft leader (term {})", options_.node_id,
                   leading ? "became" : "is no longer", info.term);
      OnLeadershipChange(leading);
    }
    if (leading) PromoteCaughtUpLearners(info);
    if (absl::Now() >= next_probe) {
      ProbeReachability();
      next_probe = absl::Now() + kReachabilityPeriod;
    }
  }
}

void Manager::OnLeadershipChange(bool leading) {
  if (leading) {
    dispatcher_->Start();
    log_broker_->Start();
    RoleManagerOptions ropts;
    ropts.clock = clock_;
    role_manager_ = std::make_unique<RoleManager>(store_.get(), this, ropts);
    role_manager_->Start();
    CaOptions caopts;
    caopts.clock = clock_;
    ca_rotation_ = std::make_unique<CaRotationReconciler>(store_.get(), caopts);
    ca_rotation_->Start();
    StartOrchestration();
    return;
  }
  StopOrchestration();
  // The dispatcher first: it must not judge liveness while the others wind down.
  if (dispatcher_ != nullptr) dispatcher_->Stop();
  if (log_broker_ != nullptr) log_broker_->Stop();
  if (ca_rotation_ != nullptr) ca_rotation_->Stop();
  ca_rotation_.reset();
  if (role_manager_ != nullptr) role_manager_->Stop();
  role_manager_.reset();
}

void Manager::StartOrchestration() {
  orchestrator::OrchestratorOptions oopts;
  oopts.clock = clock_;
  orchestrators_ = std::make_unique<orchestrator::Orchestrators>(store_.get(), oopts);
  orchestrators_->Start();
  AllocatorOptions aopts;
  aopts.clock = clock_;
  allocator_ = std::make_unique<Allocator>(store_.get(), aopts);
  allocator_->Start();
  SchedulingOptions sopts;
  sopts.clock = clock_;
  scheduling_ = std::make_unique<SchedulingLoop>(store_.get(), sopts);
  scheduling_->Start();
}

void Manager::StopOrchestration() {
  if (scheduling_ != nullptr) scheduling_->Stop();
  scheduling_.reset();
  if (allocator_ != nullptr) allocator_->Stop();
  allocator_.reset();
  if (orchestrators_ != nullptr) orchestrators_->Stop();
  orchestrators_.reset();
}

void Manager::PromoteCaughtUpLearners(const raft::RaftNode::Info& info) {
  for (const auto& [id, pr] : info.progress) {
    // Caught up: it holds everything committed so far, so as a voter it cannot slow commits.
    if (!pr.learner || !pr.recent_active || pr.match < info.commit) continue;
    auto it = std::find_if(info.members.begin(), info.members.end(),
                           [id = id](const api::RaftMember& m) { return m.raft_id() == id; });
    if (it == info.members.end()) continue;
    absl::Status s = raft_->AddMember(*it, /*as_learner=*/false, absl::Now() + kRpcTimeout);
    spdlog::info("manager {:x} ({}) caught up; promoting it to a Raft voter: {}", id, it->node_id(),
                 s.ToString());
  }
}

void Manager::ProbeReachability() {
  const raft::RaftNode::Info info = raft_->GetInfo();
  absl::flat_hash_map<uint64_t, bool> reachable;
  for (const api::RaftMember& m : info.members) {
    if (m.raft_id() == raft_id_) {
      reachable[m.raft_id()] = true;
      continue;
    }
    auto stub = api::RaftTransport::NewStub(DialManager(m.addr()));
    grpc::ClientContext ctx;
    ctx.set_deadline(GrpcDeadline(absl::Milliseconds(800)));
    api::ResolveAddressRequest req;
    req.set_raft_id(raft_id_);
    api::ResolveAddressResponse resp;
    const grpc::Status s = stub->ResolveAddress(&ctx, req, &resp);
    // Any answer (even NOT_FOUND) proves the manager is up and accepts our certificate.
    reachable[m.raft_id()] = s.error_code() != grpc::StatusCode::UNAVAILABLE &&
                             s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
                             s.error_code() != grpc::StatusCode::UNAUTHENTICATED;
  }
  absl::MutexLock lock(&mu_);
  reachable_ = std::move(reachable);
}

// --- Autolock: follow the cluster's unlock key -------------------------------------------------

void Manager::WatchUnlockKey() {
  auto newest_key = [](const store::ReadTx& tx, bool* have_cluster) -> std::string {
    const api::Cluster* c = FindCluster(tx);
    *have_cluster = c != nullptr;
    if (c == nullptr) return "";
    const api::EncryptionKey* newest = nullptr;
    for (const api::EncryptionKey& k : c->unlock_keys()) {
      if (newest == nullptr || k.lamport_time() > newest->lamport_time()) newest = &k;
    }
    return newest == nullptr ? "" : newest->key();
  };
  std::unique_ptr<store::Watcher> watcher;
  absl::Time next_attempt = absl::InfinitePast();
  absl::Time next_reseal = absl::InfinitePast();
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    if (watcher == nullptr) {
      watcher = store_->ViewAndWatch([](const store::ReadTx&) {},
                                     store::WatchFilter::Kind(api::OBJECT_KIND_CLUSTER));
    }
    // Compare on every wake-up (a change, or the poll): a failed re-wrap is retried.
    bool have_cluster = false;
    std::string key;
    store_->View([&](const store::ReadTx& tx) { key = newest_key(tx, &have_cluster); });
    std::string current;
    {
      absl::MutexLock lock(&mu_);
      current = kek_;
    }
    if (have_cluster && key != current && absl::Now() >= next_attempt) {
      absl::Status s =
          options_.on_kek_change ? options_.on_kek_change(*this, key) : ChangeKeysOwnFilesOnly(key);
      if (s.ok()) {
        spdlog::info("manager keys re-wrapped under the {} (autolock {})",
                     key.empty() ? "clear" : "new unlock key", key.empty() ? "off" : "on");
      } else {
        spdlog::error("cannot re-wrap this manager's keys after an unlock key change: {}",
                      s.ToString());
        next_attempt = absl::Now() + absl::Seconds(1);
      }
    }
    if (absl::Now() >= next_reseal) {
      if (absl::Status s = FinishDataKeyRotation(); !s.ok()) {
        spdlog::warn("data key rotation: {}; retrying", s.ToString());
        next_reseal = absl::Now() + absl::Seconds(5);
      }
    }
    absl::StatusOr<store::StoreChange> change = watcher->Next(absl::Now() + kLeadershipPoll);
    if (!change.ok() && !absl::IsDeadlineExceeded(change.status())) {
      watcher.reset();  // closed (e.g. a snapshot was restored): watch again
    }
  }
}

absl::Status Manager::StageKeys(const std::string& new_kek) {
  // A new unlock key also brings a new data key: whoever could read the old DEK file (in the
  // clear before autolock, or under a leaked unlock key) must not read what is written next.
  encryption::DekState state = Ring()->State();
  uint32_t next_id = 0;
  for (const encryption::DataKey& k : state.keys) next_id = std::max(next_id, k.id);
  staged_key_ = encryption::NewDataKey(next_id + 1);
  state.keys.push_back(staged_key_);
  state.current_id = staged_key_.id;
  absl::Status s = encryption::DekFile::SaveStaged(options_.state_dir, state, new_kek);
  encryption::WipeDekState(&state);
  return s;
}

absl::Status Manager::CommitKeys(const std::string& new_kek) {
  if (absl::Status s = encryption::DekFile::CommitStaged(options_.state_dir); !s.ok()) return s;
  if (absl::Status s = Ring()->AddKeyAndMakeCurrent(staged_key_); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  kek_ = new_kek;
  return absl::OkStatus();
}

encryption::KeyRingEncrypter* Manager::Ring() const {
  return static_cast<encryption::KeyRingEncrypter*>(encrypter_.get());
}

absl::Status Manager::FinishDataKeyRotation() {
  encryption::KeyRingEncrypter* ring = Ring();
  if (ring->key_ids().size() <= 1) return absl::OkStatus();
  const uint32_t current = ring->current_id();
  const absl::Time start = absl::Now();
  // Every record on disk is sealed again under the current key; then the older keys can go.
  if (absl::Status s = raft_->Reseal(absl::Now() + absl::Seconds(60)); !s.ok()) return s;
  for (uint32_t id : ring->key_ids()) {
    if (id == current) continue;
    if (absl::Status s = ring->DropKey(id); !s.ok()) return s;
  }
  std::string kek;
  {
    absl::MutexLock lock(&mu_);
    kek = kek_;
  }
  encryption::DekState state = ring->State();
  absl::Status s = encryption::DekFile::Save(options_.state_dir, state, kek);
  encryption::WipeDekState(&state);
  if (s.ok()) {
    spdlog::info("data key rotated: the Raft log was re-sealed under key {} in {}", current,
                 absl::FormatDuration(absl::Now() - start));
  }
  return s;
}

void Manager::AbortKeys() { encryption::DekFile::DiscardStaged(options_.state_dir); }

absl::Status Manager::ChangeKeysOwnFilesOnly(const std::string& new_kek) {
  if (absl::Status s = StageKeys(new_kek); !s.ok()) return s;
  return CommitKeys(new_kek);
}

// --- RaftControl -------------------------------------------------------------------------------

std::vector<ManagerMember> Manager::Members() const {
  raft::RaftNode* raft = raft_ptr_.load();
  if (raft == nullptr) return {};
  const raft::RaftNode::Info info = raft->GetInfo();
  absl::flat_hash_map<uint64_t, bool> reachable;
  {
    absl::MutexLock lock(&mu_);
    reachable = reachable_;
  }
  std::vector<ManagerMember> out;
  for (const api::RaftMember& m : info.members) {
    ManagerMember mm;
    mm.raft_id = m.raft_id();
    mm.node_id = m.node_id();
    mm.addr = m.addr();
    mm.leader = m.raft_id() == info.leader;
    auto it = reachable.find(m.raft_id());
    mm.reachable = m.raft_id() == raft_id_ || (it != reachable.end() && it->second);
    mm.learner = std::find(info.conf_state.learners().begin(), info.conf_state.learners().end(),
                           m.raft_id()) != info.conf_state.learners().end();
    out.push_back(std::move(mm));
  }
  return out;
}

bool Manager::IsLeader() const {
  raft::RaftNode* raft = raft_ptr_.load();
  return raft != nullptr && raft->GetInfo().state == raft::StateType::kLeader;
}

std::string Manager::LeaderAddr() const {
  raft::RaftNode* raft = raft_ptr_.load();
  if (raft == nullptr) return "";
  const raft::RaftNode::Info info = raft->GetInfo();
  for (const api::RaftMember& m : info.members) {
    if (m.raft_id() == info.leader) return m.addr();
  }
  return "";
}

absl::Status Manager::ReadBarrier(absl::Time deadline) {
  raft::RaftNode* raft = raft_ptr_.load();
  if (raft == nullptr) return absl::UnavailableError("this manager is still starting; retry");
  return raft->LinearizableRead(deadline);
}

absl::Status Manager::RemoveMember(uint64_t raft_id, absl::Time deadline) {
  if (raft_ptr_.load() == nullptr) {
    return absl::UnavailableError("this manager is still starting; retry");
  }
  if (raft_id != raft_id_) {
    if (IsLeader()) return raft_->RemoveMember(raft_id, deadline);
    return LeaveThroughLeader(raft_id, deadline, "removing the Raft member");
  }
  // Removing ourselves: a leader cannot safely commit its own removal and keep leading, so it
  // hands leadership to the most up-to-date voter, which then removes it.
  if (IsLeader()) {
    const raft::RaftNode::Info info = raft_->GetInfo();
    uint64_t best = 0;
    uint64_t best_match = 0;
    for (const auto& [id, pr] : info.progress) {
      if (pr.learner || !pr.recent_active) continue;
      if (best == 0 || pr.match > best_match) {
        best = id;
        best_match = pr.match;
      }
    }
    if (best == 0) {
      return absl::FailedPreconditionError(
          "this is the only manager: removing it would destroy the swarm's state");
    }
    if (absl::Status s = raft_->TransferLeadership(best, deadline); !s.ok()) return s;
  }
  return LeaveThroughLeader(raft_id, deadline, "leaving the Raft group");
}

absl::Status Manager::LeaveThroughLeader(uint64_t raft_id, absl::Time deadline,
                                         const std::string& what) {
  const std::string leader = LeaderAddr();
  if (leader.empty()) return absl::UnavailableError("the swarm has no Raft leader");
  auto stub = api::RaftMembership::NewStub(DialManager(leader));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  api::LeaveRequest req;
  req.set_raft_id(raft_id);
  api::LeaveResponse resp;
  return FromGrpc(stub->Leave(&ctx, req, &resp), what);
}

absl::Status Manager::AdmitMember(const std::string& node_id, const std::string& addr,
                                  api::JoinResponse* response) {
  if (raft_ptr_.load() == nullptr) {
    return absl::UnavailableError("this manager is still starting; retry");
  }
  // Only nodes the swarm made managers (by token or promotion) may take part in Raft.
  if (!IsManagerInStore(node_id)) {
    return absl::PermissionDeniedError(
        absl::StrCat("node ", node_id, " is not a manager of this swarm; it cannot join Raft"));
  }
  raft::RaftNode::Info info = raft_->GetInfo();
  for (const api::RaftMember& m : info.members) {
    if (m.node_id() == node_id && m.addr() == addr) {
      // A retried join whose answer was lost: the same member again.
      response->set_raft_id(m.raft_id());
      response->mutable_members()->Assign(info.members.begin(), info.members.end());
      return absl::OkStatus();
    }
  }
  api::RaftMember member;
  member.set_raft_id(NewRaftId(info.members));
  member.set_node_id(node_id);
  member.set_addr(addr);
  // Raft takes one membership change at a time: while another is in flight (a learner being
  // promoted, another join) the proposal is dropped with UNAVAILABLE. Retry until the deadline.
  const absl::Time deadline = absl::Now() + kRpcTimeout;
  for (absl::Duration backoff = absl::Milliseconds(50);;
       backoff = std::min(backoff * 2, absl::Seconds(1))) {
    absl::Status s = raft_->AddMember(member, /*as_learner=*/true, deadline);
    if (s.ok()) break;
    if (!absl::IsUnavailable(s) || absl::Now() + backoff >= deadline) return s;
    absl::SleepFor(backoff);
  }
  spdlog::info("manager {} joined Raft as learner {:x} at {}", node_id, member.raft_id(), addr);
  info = raft_->GetInfo();
  response->set_raft_id(member.raft_id());
  response->mutable_members()->Assign(info.members.begin(), info.members.end());
  return absl::OkStatus();
}

bool Manager::IsManagerInStore(const std::string& node_id) const {
  bool is_manager = false;
  store_->View([&](const store::ReadTx& tx) {
    const api::Node* n = tx.Get<api::Node>(node_id);
    is_manager = n != nullptr && n->role() == api::NODE_ROLE_MANAGER;
  });
  return is_manager;
}

std::shared_ptr<grpc::Channel> Manager::DialManager(const std::string& addr) const {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      pki::ChannelCredentials(pki::TlsIdentity{options_.certs.cert_pem, options_.certs.key_pem},
                              options_.certs.root_ca_pem);
  return grpc::CreateCustomChannel(addr, creds.ok() ? *creds : grpc::InsecureChannelCredentials(),
                                   pki::ManagerChannelArguments());
}

}  // namespace shoal::manager
