#include "manager/manager.h"

#include <algorithm>
#include <atomic>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "manager/ca/ca_server.h"
#include "manager/ca/rotation.h"
#include "manager/cluster_object.h"
#include "manager/controlapi/control_api.h"
#include "manager/dispatcher/dispatcher.h"
#include "manager/encryption/data_key.h"
#include "manager/encryption/dek_file.h"
#include "manager/encryption/key_ring_encrypter.h"
#include "manager/metrics.h"
#include "manager/rolemanager/role_manager.h"
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
    if (grpc::Status s = AuthorizeNode(*context, {pki::Role::kManager}, *m_->store_); !s.ok()) {
      return s;
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
      if (absl::Status s = JoinRaft(&join_members); !s.ok()) return s;
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
  state_machine_ = std::make_unique<TimedStateMachine>(store_.get());
  absl::StatusOr<std::unique_ptr<raft::RaftNode>> node =
      raft::RaftNode::Start(ropts, state_machine_.get(), transport_.get());
  if (!node.ok()) return node.status();
  raft_ = std::move(*node);
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
  std::string errors;
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
  }
  return absl::UnavailableError(
      absl::StrCat("could not join the managers' Raft group (", errors, ")"));
}

absl::Status Manager::StartServer() {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      pki::ServerCredentials(pki::TlsIdentity{options_.certs.cert_pem, options_.certs.key_pem},
                             options_.certs.root_ca_pem, pki::ClientCertPolicy::kVerifyIfPresent);
  if (!creds.ok()) return creds.status();
  grpc::ServerBuilder builder;
  raft::TransportService::ConfigureServerBuilder(&builder);
  builder.AddListeningPort(options_.listen_addr, *creds, &listen_port_);
  builder.RegisterService(transport_auth_.get());
  builder.RegisterService(membership_.get());
  builder.RegisterService(node_ca_.get());
  builder.RegisterService(manager_ca_.get());
  builder.RegisterService(dispatcher_.get());
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
    RoleManagerOptions ropts;
    ropts.clock = clock_;
    role_manager_ = std::make_unique<RoleManager>(store_.get(), this, ropts);
    role_manager_->Start();
    CaOptions caopts;
    caopts.clock = clock_;
    ca_rotation_ = std::make_unique<CaRotationReconciler>(store_.get(), caopts);
    ca_rotation_->Start();
    return;
  }
  if (ca_rotation_ != nullptr) ca_rotation_->Stop();
  ca_rotation_.reset();
  if (role_manager_ != nullptr) role_manager_->Stop();
  role_manager_.reset();
  if (dispatcher_ != nullptr) dispatcher_->Stop();
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
  auto newest_key = [](const store::ReadTx& tx) -> std::string {
    const api::Cluster* c = FindCluster(tx);
    if (c == nullptr) return "";
    const api::EncryptionKey* newest = nullptr;
    for (const api::EncryptionKey& k : c->unlock_keys()) {
      if (newest == nullptr || k.lamport_time() > newest->lamport_time()) newest = &k;
    }
    return newest == nullptr ? "" : newest->key();
  };
  std::string current;
  std::unique_ptr<store::Watcher> watcher = store_->ViewAndWatch(
      [&](const store::ReadTx& tx) {
        if (FindCluster(tx) != nullptr) current = newest_key(tx);
      },
      store::WatchFilter::Kind(api::OBJECT_KIND_CLUSTER));
  auto apply = [&](const std::string& key) {
    std::string old;
    {
      absl::MutexLock lock(&mu_);
      if (key == kek_) return;
      old = kek_;
    }
    if (absl::Status s = RewrapKeys(key); !s.ok()) {
      spdlog::error("cannot re-encrypt this manager's keys after an unlock key change: {}",
                    s.ToString());
      return;
    }
    if (options_.on_kek_change) options_.on_kek_change(key);
  };
  // A cluster already loaded (restart) tells the key at once.
  bool have_cluster = false;
  store_->View([&](const store::ReadTx& tx) { have_cluster = FindCluster(tx) != nullptr; });
  if (have_cluster) apply(current);
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
    }
    absl::StatusOr<store::StoreChange> change = watcher->Next(absl::Now() + kLeadershipPoll);
    if (!change.ok()) {
      if (absl::IsDeadlineExceeded(change.status())) continue;
      // Closed (e.g. a snapshot was restored): watch again from a fresh view.
      watcher = store_->ViewAndWatch(
          [&](const store::ReadTx& tx) {
            if (FindCluster(tx) != nullptr) apply(newest_key(tx));
          },
          store::WatchFilter::Kind(api::OBJECT_KIND_CLUSTER));
      continue;
    }
    std::string key;
    store_->View([&](const store::ReadTx& tx) { key = newest_key(tx); });
    apply(key);
  }
}

absl::Status Manager::RewrapKeys(const std::string& kek) {
  std::string old;
  {
    absl::MutexLock lock(&mu_);
    old = kek_;
  }
  absl::StatusOr<encryption::DekState> dek = encryption::DekFile::Load(options_.state_dir, old);
  if (!dek.ok()) return dek.status();
  if (absl::Status s = encryption::DekFile::Save(options_.state_dir, *dek, kek); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  kek_ = kek;
  return absl::OkStatus();
}

// --- RaftControl -------------------------------------------------------------------------------

std::vector<ManagerMember> Manager::Members() const {
  const raft::RaftNode::Info info = raft_->GetInfo();
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
  return raft_ != nullptr && raft_->GetInfo().state == raft::StateType::kLeader;
}

std::string Manager::LeaderAddr() const {
  const raft::RaftNode::Info info = raft_->GetInfo();
  for (const api::RaftMember& m : info.members) {
    if (m.raft_id() == info.leader) return m.addr();
  }
  return "";
}

absl::Status Manager::ReadBarrier(absl::Time deadline) { return raft_->LinearizableRead(deadline); }

absl::Status Manager::RemoveMember(uint64_t raft_id, absl::Time deadline) {
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
      if (pr.learner) continue;
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
  // Only nodes the swarm made managers (by token or promotion) may take part in Raft.
  bool is_manager = false;
  store_->View([&](const store::ReadTx& tx) {
    const api::Node* n = tx.Get<api::Node>(node_id);
    is_manager = n != nullptr && n->role() == api::NODE_ROLE_MANAGER;
  });
  if (!is_manager) {
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
  if (absl::Status s = raft_->AddMember(member, /*as_learner=*/true, absl::Now() + kRpcTimeout);
      !s.ok()) {
    return s;
  }
  spdlog::info("manager {} joined Raft as learner {:x} at {}", node_id, member.raft_id(), addr);
  info = raft_->GetInfo();
  response->set_raft_id(member.raft_id());
  response->mutable_members()->Assign(info.members.begin(), info.members.end());
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> Manager::DialManager(const std::string& addr) const {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      pki::ChannelCredentials(pki::TlsIdentity{options_.certs.cert_pem, options_.certs.key_pem},
                              options_.certs.root_ca_pem);
  return grpc::CreateCustomChannel(addr, creds.ok() ? *creds : grpc::InsecureChannelCredentials(),
                                   pki::ManagerChannelArguments());
}

}  // namespace shoal::manager
