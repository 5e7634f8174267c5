#include "node/swarm_node.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/logs/log_publisher.h"
#include "agent/renewer.h"
#include "agent/session.h"
#include "agent/worker.h"
#include "common/files.h"
#include "common/ids.h"
#include "common/version.h"
#include "google/protobuf/util/time_util.h"
#include "manager/ca/ca_common.h"
#include "manager/cluster_object.h"
#include "manager/controlapi/control_api.h"
#include "nlohmann/json.hpp"
#include "openssl/x509.h"
#include "pki/grpc_tls.h"
#include "pki/join_bootstrap.h"
#include "pki/join_token.h"
#include "pki/keys.h"
#include "pki/ossl.h"
#include "pki/root_ca.h"
#include "pki/unlock_key.h"
#include "prometheus/registry.h"
#include "prometheus/summary.h"
#include "proto/ca.grpc.pb.h"
#include "proto/logs.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace shoal::node {
namespace {

// Task threads of a worker on the containerd executor (the sim executor keeps the default).
constexpr int kContainerdTaskThreads = 16;

constexpr char kNodeStateFile[] = "node-state.json";
constexpr int kDefaultPort = 2377;
constexpr absl::Duration kJoinTimeout = absl::Seconds(30);

grpc::Status Error(grpc::StatusCode code, const std::string& message) {
  return grpc::Status(code, message);
}

grpc::Status ToGrpc(const absl::Status& s) { return pki::ToGrpcStatus(s); }

absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// "host:port" split; the port may be missing (then 0).
bool SplitHostPort(const std::string& addr, std::string* host, int* port) {
  *port = 0;
  if (addr.empty()) return false;
  if (addr[0] == '[') {
    const size_t close = addr.find(']');
    if (close == std::string::npos) return false;
    *host = addr.substr(1, close - 1);
    if (close + 1 == addr.size()) return true;
    if (addr[close + 1] != ':') return false;
    return absl::SimpleAtoi(addr.substr(close + 2), port) && *port > 0 && *port < 65536;
  }
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos || addr.find(':') != colon) {
    *host = addr;
    return true;
  }
  *host = addr.substr(0, colon);
  return absl::SimpleAtoi(addr.substr(colon + 1), port) && *port > 0 && *port < 65536;
}

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

// The IPv4 address of the only non-loopback interface that has one, as Docker infers the
// advertise address.
absl::StatusOr<std::string> InferAdvertiseIp() {
  struct ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return absl::InternalError("cannot list network interfaces");
  std::vector<std::string> found;
  for (struct ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    if ((i->ifa_flags & IFF_LOOPBACK) != 0 || (i->ifa_flags & IFF_UP) == 0) continue;
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<struct sockaddr_in*>(i->ifa_addr);
    ::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
    found.push_back(absl::StrCat(buf, " on ", i->ifa_name));
  }
  ::freeifaddrs(ifs);
  if (found.size() == 1) return found[0].substr(0, found[0].find(' '));
  if (found.empty()) {
    return absl::InvalidArgumentError(
        "could not find an address to advertise: this host has no non-loopback IPv4 address; "
        "specify one with --advertise-addr");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "could not choose an IP address to advertise since this system has multiple addresses (",
      absl::StrJoin(found, ", "), "); specify one with --advertise-addr"));
}

// Fills in the defaults Docker uses: listen 0.0.0.0:2377; advertise = the listen address's host
// if it is specific, else the inferred IP; the advertise port defaults to the listen port.
absl::Status ResolveAddresses(const std::string& listen_in, const std::string& advertise_in,
                              std::string* listen_out, std::string* advertise_out) {
  std::string lhost = "0.0.0.0";
  int lport = kDefaultPort;
  if (!listen_in.empty()) {
    if (!SplitHostPort(listen_in, &lhost, &lport)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid --listen-addr \"", listen_in,
                                                     "\": use HOST:PORT, e.g. 0.0.0.0:2377"));
    }
    if (lhost.empty()) lhost = "0.0.0.0";
    if (lport == 0) lport = kDefaultPort;
  }
  *listen_out = JoinHostPort(lhost, lport);
  std::string ahost;
  int aport = 0;
  if (!advertise_in.empty()) {
    if (!SplitHostPort(advertise_in, &ahost, &aport) || ahost.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid --advertise-addr \"", advertise_in,
                                                     "\": use IP[:PORT], e.g. 192.0.2.10:2377"));
    }
  } else if (lhost != "0.0.0.0" && lhost != "::") {
    ahost = lhost;
  } else {
    absl::StatusOr<std::string> ip = InferAdvertiseIp();
    if (!ip.ok()) return ip.status();
    ahost = *ip;
  }
  if (aport == 0) aport = lport;
  *advertise_out = JoinHostPort(ahost, aport);
  return absl::OkStatus();
}

std::string Arch() {
  struct utsname u;
  if (::uname(&u) != 0) return "";
  const std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  return m;
}

void SetDuration(google::protobuf::Duration* d, absl::Duration v) {
  *d = google::protobuf::util::TimeUtil::NanosecondsToDuration(absl::ToInt64Nanoseconds(v));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

std::string NameDer(X509_NAME* name) {
  unsigned char* buf = nullptr;
  const int len = i2d_X509_NAME(name, &buf);
  if (len <= 0) return "";
  std::string out(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
  OPENSSL_free(buf);
  return out;
}

// What the managers track of a node's TLS state (root rotation progress): the roots it trusts
// and who issued its certificate (subject and public key of the certificate that signed it,
// found among its chain and its roots).
api::NodeTLSInfo TlsInfoOf(const pki::NodeCertificates& certs) {
  api::NodeTLSInfo info;
  info.set_trust_root(certs.root_ca_pem);
  absl::StatusOr<std::vector<pki::X509Ptr>> chain =
      pki::ParseCertificates(certs.cert_pem, "node certificate");
  if (!chain.ok() || chain->empty()) return info;
  X509* leaf = (*chain)[0].get();
  info.set_cert_issuer_subject(NameDer(X509_get_issuer_name(leaf)));
  std::vector<X509*> candidates;
  for (size_t i = 1; i < chain->size(); ++i) candidates.push_back((*chain)[i].get());
  absl::StatusOr<std::vector<pki::X509Ptr>> roots =
      pki::ParseCertificates(certs.root_ca_pem, "root CA certificate");
  if (roots.ok()) {
    for (const pki::X509Ptr& r : *roots) candidates.push_back(r.get());
  }
  for (X509* c : candidates) {
    if (X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(leaf)) != 0) continue;
    if (X509_verify(leaf, X509_get0_pubkey(c)) != 1) continue;
    unsigned char* buf = nullptr;
    const int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c), &buf);
    if (len > 0) {
      info.set_cert_issuer_public_key(std::string(reinterpret_cast<char*>(buf), len));
      OPENSSL_free(buf);
    }
    break;
  }
  return info;
}

absl::StatusOr<pki::NodeIdentity> IdentityOf(const std::string& cert_pem) {
  absl::StatusOr<pki::X509Ptr> cert =
      pki::ParseCertificate(cert_pem, "node certificate", /*allow_more=*/true);
  if (!cert.ok()) return cert.status();
  return pki::ParseIdentity(cert->get());
}

}  // namespace

SwarmNode::SwarmNode(SwarmNodeOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock()),
      cert_store_(options_.state_dir) {
  if (options_.metrics != nullptr) {
    task_start_seconds_ =
        &prometheus::BuildSummary()
             .Name("shoal_agent_task_start_seconds")
             .Help("Time from a task's assignment to RUNNING on this node (pull, prepare, start)")
             .Register(*options_.metrics)
             .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}});
  }
}

absl::StatusOr<std::unique_ptr<SwarmNode>> SwarmNode::Open(SwarmNodeOptions options) {
  std::unique_ptr<SwarmNode> node(new SwarmNode(std::move(options)));
  TaskRuntimeOptions ro;
  ro.executor = node->options_.executor;
  ro.state_dir = node->options_.state_dir;
  ro.clock = node->clock_;
  ro.containerd_address = node->options_.containerd_address;
  ro.containerd_namespace = node->options_.containerd_namespace;
  ro.insecure_registries = node->options_.insecure_registries;
  ro.shim_group_size = node->options_.shim_group_size;
  ro.log_driver_path = node->options_.log_driver_path;
  if (ro.executor == "containerd" && ro.log_driver_path.empty()) {
    absl::StatusOr<std::string> driver = DefaultLogDriver();
    if (!driver.ok()) return driver.status();
    ro.log_driver_path = *driver;
  }
  SwarmNode* n = node.get();
  // The worker holds what the managers assigned; the executor asks while it prepares a task.
  ro.deps.secret = [n](const std::string& id) -> absl::StatusOr<api::Secret> {
    absl::MutexLock lock(&n->mu_);
    if (n->worker_ == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("secret ", id, ": this node's worker is not running (retrying)"));
    }
    return n->worker_->secret(id);
  };
  ro.deps.config = [n](const std::string& id) -> absl::StatusOr<api::Config> {
    absl::MutexLock lock(&n->mu_);
    if (n->worker_ == nullptr) {
      return absl::UnavailableError(
          absl::StrCat("config ", id, ": this node's worker is not running (retrying)"));
    }
    return n->worker_->config(id);
  };
  ro.deps.node = [n] {
    api::Node self;
    absl::MutexLock lock(&n->mu_);
    self.set_id(n->identity_.node_id);
    self.mutable_description()->set_hostname(n->options_.node_name);
    return self;
  };
  absl::StatusOr<std::unique_ptr<TaskRuntime>> runtime = TaskRuntime::Open(std::move(ro));
  if (!runtime.ok()) return runtime.status();
  node->runtime_ = std::move(*runtime);
  node->Resume();
  node->background_ = std::thread([n = node.get()] { n->BackgroundLoop(); });
  return node;
}

SwarmNode::~SwarmNode() { Shutdown(); }

void SwarmNode::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  if (background_.joinable()) background_.join();
  absl::MutexLock op(&op_mu_);
  StopRoles();
}

// --- Restart -----------------------------------------------------------------------------------

void SwarmNode::Resume() {
  absl::MutexLock op(&op_mu_);
  absl::StatusOr<bool> exists = cert_store_.Exists();
  if (!exists.ok() || !*exists) return;  // never joined: INACTIVE
  absl::StatusOr<std::string> state_json =
      ReadFile(absl::StrCat(options_.state_dir, "/", kNodeStateFile));
  {
    absl::MutexLock lock(&mu_);
    if (state_json.ok()) {
      nlohmann::json j = nlohmann::json::parse(*state_json, nullptr, /*allow_exceptions=*/false);
      if (j.is_object()) {
        node_state_.listen_addr = j.value("listen_addr", "");
        node_state_.advertise_addr = j.value("advertise_addr", "");
        node_state_.managers = j.value("managers", std::vector<std::string>{});
      }
    }
  }
  absl::StatusOr<bool> wrapped = cert_store_.KeyIsWrapped();
  if (wrapped.ok() && *wrapped) {
    absl::MutexLock lock(&mu_);
    state_ = State::kLocked;
    spdlog::warn("this node's swarm keys are locked (autolock): run `shoal swarm unlock`");
    return;
  }
  absl::StatusOr<pki::NodeCertificates> certs = cert_store_.Load();
  absl::Status s = certs.status();
  if (s.ok()) {
    std::vector<std::string> managers;
    {
      absl::MutexLock lock(&mu_);
      managers = node_state_.managers;
    }
    s = StartRoles(*certs, "", ResumeMode(), managers, nullptr, nullptr);
  }
  if (!s.ok()) Fail("cannot resume swarm membership", s);
}

// --- Roles -------------------------------------------------------------------------------------

absl::Status SwarmNode::StartRoles(const pki::NodeCertificates& certs, const std::string& kek,
                                   manager::ManagerOptions::Mode mode,
                                   const std::vector<std::string>& join_addrs,
                                   const api::Cluster* initial_cluster,
                                   const api::Node* initial_node) {
  absl::StatusOr<pki::NodeIdentity> id = IdentityOf(certs.cert_pem);
  if (!id.ok()) return id.status();
  {
    absl::MutexLock lock(&mu_);
    certs_ = certs;
    identity_ = *id;
    kek_ = kek;
    state_ = State::kPending;
    renew_at_ = agent::RenewalScheduler::NextRenewal(*id, bitgen_);
  }
  if (id->role == pki::Role::kManager) {
    if (absl::Status s = StartManager(certs, kek, mode, join_addrs, initial_cluster, initial_node);
        !s.ok()) {
      return s;
    }
  }
  StartAgent();
  absl::MutexLock lock(&mu_);
  state_ = State::kActive;
  error_.clear();
  return absl::OkStatus();
}

absl::Status SwarmNode::StartManager(const pki::NodeCertificates& certs, const std::string& kek,
                                     manager::ManagerOptions::Mode mode,
                                     const std::vector<std::string>& join_addrs,
                                     const api::Cluster* initial_cluster,
                                     const api::Node* initial_node) {
  manager::ManagerOptions mo;
  mo.mode = mode;
  mo.state_dir = options_.state_dir;
  {
    absl::MutexLock lock(&mu_);
    mo.node_id = identity_.node_id;
    mo.cluster_id = identity_.cluster_id;
    mo.listen_addr = node_state_.listen_addr;
    mo.advertise_addr = node_state_.advertise_addr;
  }
  if (mo.listen_addr.empty() || mo.advertise_addr.empty()) {
    return absl::FailedPreconditionError(
        "this node is a manager but its addresses are not recorded (node-state.json is "
        "missing); leave the swarm with `shoal swarm leave --force` and join again");
  }
  mo.certs = certs;
  mo.kek = kek;
  mo.join_addrs = join_addrs;
  if (initial_cluster != nullptr) mo.initial_cluster = *initial_cluster;
  if (initial_node != nullptr) mo.initial_node = *initial_node;
  mo.clock = clock_;
  mo.metrics = options_.metrics;
  mo.on_kek_change = [this](manager::Manager& self, const std::string& k) {
    return OnKekChange(self, k);
  };
  absl::StatusOr<std::unique_ptr<manager::Manager>> m = manager::Manager::Start(std::move(mo));
  if (!m.ok()) return m.status();
  absl::MutexLock lock(&mu_);
  manager_ = std::shared_ptr<manager::Manager>(std::move(*m));
  return absl::OkStatus();
}

void SwarmNode::StartAgent() {
  agent::SessionOptions so;
  {
    absl::MutexLock lock(&mu_);
    // A manager talks to its own dispatcher port first (it is the leader's, or it redirects).
    if (manager_ != nullptr) so.managers.push_back(node_state_.advertise_addr);
    for (const std::string& m : node_state_.managers) {
      if (std::find(so.managers.begin(), so.managers.end(), m) == so.managers.end()) {
        so.managers.push_back(m);
      }
    }
  }
  so.credentials = [this]() -> std::shared_ptr<grpc::ChannelCredentials> {
    pki::NodeCertificates certs;
    {
      absl::MutexLock lock(&mu_);
      certs = certs_;
    }
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c =
        pki::ChannelCredentials(pki::TlsIdentity{certs.cert_pem, certs.key_pem}, certs.root_ca_pem);
    return c.ok() ? *c : nullptr;
  };
  so.description = Describe();
  so.clock = clock_;
  std::unique_ptr<agent::Session> session = agent::Session::Start(
      std::move(so), [this](const api::SessionMessage& m) { OnSessionMessage(m); });
  std::unique_ptr<agent::Worker> worker;
  std::unique_ptr<agent::logs::LogPublisher> publisher;
  if (session != nullptr && runtime_->logs() != nullptr) {
    agent::logs::LogPublisherOptions po;
    po.source = runtime_->logs();
    po.connection = [s = session.get()] {
      agent::DispatcherConnection c = s->connection();
      if (c.channel == nullptr) return agent::logs::LogBrokerConnection{};
      return agent::logs::LogBrokerConnection{c.session_id, api::LogBroker::NewStub(c.channel)};
    };
    absl::StatusOr<std::unique_ptr<agent::logs::LogPublisher>> p =
        agent::logs::LogPublisher::Start(std::move(po));
    if (p.ok()) {
      publisher = std::move(*p);
    } else {
      spdlog::error("cannot start the log publisher: {}", p.status().ToString());
    }
  }
  if (session != nullptr) {
    agent::WorkerOptions wo;
    wo.state_dir = options_.state_dir;
    wo.executor = runtime_->executor();
    // Real containers spend their ops waiting on containerd and the shims: more of them in
    // flight keeps both cores busy (bench/README.md, containers).
    if (options_.executor == "containerd") wo.threads = kContainerdTaskThreads;
    wo.clock = clock_;
    wo.connection = [s = session.get()] { return s->connection(); };
    if (task_start_seconds_ != nullptr) {
      wo.on_task_started = [summary = task_start_seconds_](absl::Duration d) {
        summary->Observe(absl::ToDoubleSeconds(d));
      };
    }
    absl::StatusOr<std::unique_ptr<agent::Worker>> w = agent::Worker::Start(std::move(wo));
    if (w.ok()) {
      worker = std::move(*w);
    } else {
      spdlog::error("cannot start the task worker: {}", w.status().ToString());
    }
  }
  absl::MutexLock lock(&mu_);
  session_ = std::move(session);
  worker_ = std::move(worker);
  log_publisher_ = std::move(publisher);
}

void SwarmNode::StopRoles() {
  std::unique_ptr<agent::logs::LogPublisher> publisher;
  std::unique_ptr<agent::Worker> worker;
  std::unique_ptr<agent::Session> session;
  std::shared_ptr<manager::Manager> manager;
  {
    absl::MutexLock lock(&mu_);
    publisher = std::move(log_publisher_);
    worker = std::move(worker_);
    session = std::move(session_);
    manager = std::move(manager_);
  }
  // The worker and the publisher first: they reach the managers through the session. Its tasks
  // keep running.
  publisher.reset();
  worker.reset();
  session.reset();
  if (manager != nullptr) manager->Stop();
}

api::NodeDescription SwarmNode::Describe() const {
  api::NodeDescription d;
  d.set_hostname(options_.node_name);
  d.mutable_platform()->set_os("linux");
  d.mutable_platform()->set_architecture(Arch());
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  d.mutable_resources()->set_nano_cpus(static_cast<int64_t>(cpus > 0 ? cpus : 1) * 1000000000);
  struct sysinfo si;
  if (::sysinfo(&si) == 0) {
    d.mutable_resources()->set_memory_bytes(static_cast<int64_t>(si.totalram) * si.mem_unit);
  }
  if (runtime_ != nullptr) *d.mutable_engine() = runtime_->executor()->Describe();
  if (d.engine().engine_version().empty())
    d.mutable_engine()->set_engine_version(
        absl::StrCat("shoald ", kVersion, " (", options_.executor, ")"));
  absl::MutexLock lock(&mu_);
  *d.mutable_tls_info() = TlsInfoOf(certs_);
  return d;
}

absl::Status SwarmNode::SaveNodeState() {
  nlohmann::json j;
  {
    absl::MutexLock lock(&mu_);
    j["listen_addr"] = node_state_.listen_addr;
    j["advertise_addr"] = node_state_.advertise_addr;
    j["managers"] = node_state_.managers;
  }
  return WriteFileAtomic(absl::StrCat(options_.state_dir, "/", kNodeStateFile), j.dump(2) + "\n",
                         0600);
}

absl::Status SwarmNode::WipeSwarmState() {
  std::error_code ec;
  for (const char* name : {"certificates", "raft", "worker"}) {
    std::filesystem::remove_all(absl::StrCat(options_.state_dir, "/", name), ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot remove ", options_.state_dir, "/", name, ": ", ec.message()));
    }
  }
  std::filesystem::remove(absl::StrCat(options_.state_dir, "/", kNodeStateFile), ec);
  absl::MutexLock lock(&mu_);
  node_state_ = NodeState{};
  certs_ = pki::NodeCertificates{};
  identity_ = pki::NodeIdentity{};
  kek_.clear();
  session_managers_.clear();
  return absl::OkStatus();
}

// --- Info --------------------------------------------------------------------------------------

grpc::Status SwarmNode::GetInfo(api::GetInfoResponse* r) {
  std::shared_ptr<manager::Manager> manager;
  {
    absl::MutexLock lock(&mu_);
    switch (state_) {
      case State::kInactive:
        r->set_local_node_state(api::GetInfoResponse::INACTIVE);
        break;
      case State::kPending:
        r->set_local_node_state(api::GetInfoResponse::PENDING);
        break;
      case State::kActive:
        r->set_local_node_state(api::GetInfoResponse::ACTIVE);
        break;
      case State::kLocked:
        r->set_local_node_state(api::GetInfoResponse::LOCKED);
        break;
      case State::kError:
        r->set_local_node_state(api::GetInfoResponse::ERROR);
        r->set_error(error_);
        break;
    }
    r->set_node_id(identity_.node_id);
    r->set_cluster_id(identity_.cluster_id);
    std::string host;
    int port = 0;
    if (SplitHostPort(node_state_.advertise_addr, &host, &port)) r->set_node_addr(host);
    const std::vector<std::string>& known =
        session_managers_.empty() ? node_state_.managers : session_managers_;
    for (const std::string& addr : known) r->add_remote_managers()->set_addr(addr);
    manager = manager_;
  }
  if (manager != nullptr && r->local_node_state() == api::GetInfoResponse::ACTIVE) {
    r->set_control_available(true);
    r->clear_remote_managers();
    for (const manager::ManagerMember& m : manager->Members()) {
      api::Peer* p = r->add_remote_managers();
      p->set_node_id(m.node_id);
      p->set_addr(m.addr);
    }
    manager->store().View([&](const manager::store::ReadTx& tx) {
      r->set_nodes(static_cast<uint32_t>(tx.Count<api::Node>()));
      uint32_t managers = 0;
      for (const api::Node* n : tx.List<api::Node>()) {
        if (n->role() == api::NODE_ROLE_MANAGER) ++managers;
      }
      r->set_managers(managers);
      if (const api::Cluster* c = manager::FindCluster(tx); c != nullptr) {
        r->set_autolock(c->spec().encryption_config().auto_lock_managers());
        *r->mutable_cluster() = manager::RedactCluster(*c);
      }
    });
  }
  return grpc::Status::OK;
}

// --- Init --------------------------------------------------------------------------------------

grpc::Status SwarmNode::Init(const api::InitSwarmRequest& req, api::InitSwarmResponse* resp) {
  absl::MutexLock op(&op_mu_);
  State state;
  {
    absl::MutexLock lock(&mu_);
    state = state_;
  }
  if (req.force_new_cluster()) {
    if (state == State::kLocked) {
      return Error(grpc::StatusCode::FAILED_PRECONDITION,
                   "this node is locked: unlock it with `shoal swarm unlock` first");
    }
    absl::StatusOr<pki::NodeCertificates> certs = cert_store_.Load();
    if (!certs.ok() || !FileExists(absl::StrCat(options_.state_dir, "/raft/member.pb"))) {
      return Error(grpc::StatusCode::FAILED_PRECONDITION,
                   "--force-new-cluster needs this node's manager state (it restarts the swarm "
                   "from it), but this node was never a manager; use `shoal swarm init` without "
                   "--force-new-cluster");
    }
    std::string kek;
    {
      absl::MutexLock lock(&mu_);
      kek = kek_;
    }
    StopRoles();
    absl::Status s = StartRoles(*certs, kek, manager::ManagerOptions::Mode::kForceNewCluster, {},
                                nullptr, nullptr);
    if (!s.ok()) return ToGrpc(s);
    absl::MutexLock lock(&mu_);
    resp->set_node_id(identity_.node_id);
    resp->set_cluster_id(identity_.cluster_id);
    resp->set_manager_addr(node_state_.advertise_addr);
    return grpc::Status::OK;
  }
  if (state != State::kInactive) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION,
                 "this node is already part of a swarm; use `shoal swarm leave` to leave it "
                 "before creating or joining another one");
  }

  NodeState ns;
  if (absl::Status s = ResolveAddresses(req.listen_addr(), req.advertise_addr(), &ns.listen_addr,
                                        &ns.advertise_addr);
      !s.ok()) {
    return ToGrpc(s);
  }
  const api::ClusterSpec& in = req.spec();
  absl::Duration cert_expiry = pki::RootCA::kDefaultNodeValidity;
  if (in.ca_config().has_node_cert_expiry()) {
    cert_expiry = FromProto(in.ca_config().node_cert_expiry());
    if (cert_expiry < pki::RootCA::kMinNodeValidity) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   "--cert-expiry must be at least 1h (node certificates shorter than an hour "
                   "would expire before they renew)");
    }
  }
  const absl::Time now = clock_->Now();
  const std::string cluster_id = NewId();
  const std::string node_id = NewId();
  absl::StatusOr<pki::RootCA> root = pki::RootCA::Create(now);
  if (!root.ok()) return ToGrpc(root.status());
  absl::StatusOr<pki::KeyAndCsr> kc = pki::GenerateKeyAndCsr();
  if (!kc.ok()) return ToGrpc(kc.status());
  absl::StatusOr<std::string> cert = root->IssueNodeCertificate(
      kc->csr_pem, node_id, pki::Role::kManager, cluster_id, cert_expiry, now);
  if (!cert.ok()) return ToGrpc(cert.status());

  const bool autolock = in.encryption_config().auto_lock_managers();
  const std::string kek = autolock ? pki::GenerateUnlockKeyBytes() : "";

  api::Cluster cluster;
  cluster.set_id(cluster_id);
  api::ClusterSpec* spec = cluster.mutable_spec();
  *spec = in;
  spec->mutable_annotations()->set_name(manager::kDefaultClusterName);
  if (!in.has_orchestration()) spec->mutable_orchestration()->set_task_history_retention_limit(5);
  if (spec->raft().snapshot_interval() == 0) spec->mutable_raft()->set_snapshot_interval(10000);
  if (spec->raft().log_entries_for_slow_followers() == 0) {
    spec->mutable_raft()->set_log_entries_for_slow_followers(500);
  }
  if (spec->raft().heartbeat_tick() == 0) spec->mutable_raft()->set_heartbeat_tick(1);
  if (spec->raft().election_tick() == 0) spec->mutable_raft()->set_election_tick(5);
  if (!spec->dispatcher().has_heartbeat_period()) {
    SetDuration(spec->mutable_dispatcher()->mutable_heartbeat_period(), absl::Seconds(5));
  }
  SetDuration(spec->mutable_ca_config()->mutable_node_cert_expiry(), cert_expiry);
  api::RootCA* rca = cluster.mutable_root_ca();
  rca->set_ca_cert(root->cert_pem());
  rca->set_ca_key(root->key_pem());
  const std::string digest = root->Digest();
  rca->set_ca_cert_hash(manager::CaCertHash(digest));
  rca->mutable_join_tokens()->set_worker(pki::GenerateJoinToken(digest));
  rca->mutable_join_tokens()->set_manager(pki::GenerateJoinToken(digest));
  if (autolock) {
    api::EncryptionKey* k = cluster.add_unlock_keys();
    k->set_subsystem("manager:unlock");
    k->set_key(kek);
    k->set_lamport_time(1);
    cluster.set_encryption_key_lamport_clock(2);
  } else {
    cluster.set_encryption_key_lamport_clock(1);
  }
  for (const std::string& pool : req.default_addr_pool()) cluster.add_default_address_pool(pool);
  if (cluster.default_address_pool().empty()) cluster.add_default_address_pool("10.0.0.0/8");
  cluster.set_subnet_size(req.subnet_size() != 0 ? req.subnet_size() : 24);
  cluster.set_vxlan_udp_port(req.data_path_port() != 0 ? req.data_path_port() : 4789);

  api::Node node;
  node.set_id(node_id);
  node.mutable_spec()->set_membership(api::NodeSpec::ACCEPTED);
  node.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
  node.mutable_spec()->set_availability(req.availability());
  node.set_role(api::NODE_ROLE_MANAGER);
  *node.mutable_description() = Describe();
  api::Certificate* c = node.mutable_certificate();
  c->set_role(api::NODE_ROLE_MANAGER);
  c->set_csr(kc->csr_pem);
  c->set_cn(node_id);
  c->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
  c->set_certificate(*cert);

  pki::NodeCertificates certs{root->cert_pem(), *cert, kc->key_pem};
  if (absl::Status s = cert_store_.Save(certs, kek); !s.ok()) return ToGrpc(s);
  {
    absl::MutexLock lock(&mu_);
    node_state_ = ns;
  }
  if (absl::Status s = SaveNodeState(); !s.ok()) return ToGrpc(s);
  absl::Status s =
      StartRoles(certs, kek, manager::ManagerOptions::Mode::kInit, {}, &cluster, &node);
  if (!s.ok()) {
    StopRoles();
    (void)WipeSwarmState();
    absl::MutexLock lock(&mu_);
    state_ = State::kInactive;
    return ToGrpc(s);
  }
  resp->set_node_id(node_id);
  resp->set_cluster_id(cluster_id);
  *resp->mutable_join_tokens() = rca->join_tokens();
  resp->set_manager_addr(ns.advertise_addr);
  if (autolock) resp->set_unlock_key(pki::FormatUnlockKey(kek));
  spdlog::info("swarm {} initialised; this node {} is its first manager at {}", cluster_id, node_id,
               ns.advertise_addr);
  return grpc::Status::OK;
}

// --- Join --------------------------------------------------------------------------------------

grpc::Status SwarmNode::Join(const api::JoinSwarmRequest& req, api::JoinSwarmResponse* resp) {
  absl::MutexLock op(&op_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kInactive) {
      return Error(grpc::StatusCode::FAILED_PRECONDITION,
                   "this node is already part of a swarm; use `shoal swarm leave` to leave it "
                   "before joining another one");
    }
  }
  if (req.remote_addrs().empty()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 "no manager address given: `shoal swarm join --token TOKEN HOST:PORT`");
  }
  absl::StatusOr<pki::JoinToken> token = pki::ParseJoinToken(req.join_token());
  if (!token.ok()) return ToGrpc(token.status());

  std::string remote;
  std::string errors;
  absl::StatusOr<pki::PinnedManager> pinned = absl::UnavailableError("no manager tried");
  for (std::string addr : req.remote_addrs()) {
    std::string host;
    int port = 0;
    if (!SplitHostPort(addr, &host, &port) || host.empty()) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("invalid manager address \"", addr, "\": use HOST:PORT"));
    }
    if (port == 0) addr = JoinHostPort(host, kDefaultPort);
    pinned = pki::DialManagerPinned(addr, req.join_token(), absl::Seconds(10));
    if (pinned.ok()) {
      remote = addr;
      break;
    }
    if (pinned.status().code() == absl::StatusCode::kUnauthenticated)
      return ToGrpc(pinned.status());
    absl::StrAppend(&errors, errors.empty() ? "" : "; ", pinned.status().message());
  }
  if (!pinned.ok()) {
    return Error(grpc::StatusCode::UNAVAILABLE,
                 absl::StrCat("cannot reach a manager to join: ", errors));
  }

  absl::StatusOr<pki::KeyAndCsr> kc = pki::GenerateKeyAndCsr();
  if (!kc.ok()) return ToGrpc(kc.status());
  auto ca = api::NodeCA::NewStub(pinned->channel);
  api::IssueNodeCertificateRequest ireq;
  ireq.set_csr(kc->csr_pem);
  ireq.set_token(req.join_token());
  ireq.set_availability(req.availability());
  api::IssueNodeCertificateResponse iresp;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(kJoinTimeout));
    grpc::Status s = ca->IssueNodeCertificate(&ctx, ireq, &iresp);
    if (!s.ok()) return s;
  }
  api::NodeCertificateStatusResponse sresp;
  const absl::Time give_up = absl::Now() + kJoinTimeout;
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(10)));
    api::NodeCertificateStatusRequest sreq;
    sreq.set_node_id(iresp.node_id());
    grpc::Status s = ca->NodeCertificateStatus(&ctx, sreq, &sresp);
    if (!s.ok()) return s;
    if (sresp.status().state() == api::IssuanceStatus::ISSUED) break;
    if (sresp.status().state() == api::IssuanceStatus::FAILED) {
      return Error(
          grpc::StatusCode::INTERNAL,
          absl::StrCat("the swarm's CA refused this node's certificate: ", sresp.status().err()));
    }
    if (absl::Now() >= give_up) {
      return Error(grpc::StatusCode::DEADLINE_EXCEEDED,
                   "timed out waiting for the swarm's CA to issue this node's certificate");
    }
  }
  pki::NodeCertificates certs{pinned->root_ca_pem, sresp.certificate().certificate(), kc->key_pem};
  absl::StatusOr<pki::NodeIdentity> id = IdentityOf(certs.cert_pem);
  if (!id.ok()) return ToGrpc(id.status());

  NodeState ns;
  ns.managers.push_back(remote);
  std::string kek;
  if (id->role == pki::Role::kManager) {
    if (absl::Status s = ResolveAddresses(req.listen_addr(), req.advertise_addr(), &ns.listen_addr,
                                          &ns.advertise_addr);
        !s.ok()) {
      return ToGrpc(s);
    }
    // An autolocked swarm keeps every manager's keys wrapped: learn the unlock key now.
    absl::StatusOr<std::string> key = FetchUnlockKey(certs, {remote});
    if (!key.ok()) return ToGrpc(key.status());
    kek = *key;
  } else if (!req.advertise_addr().empty() || !req.listen_addr().empty()) {
    // Kept for a later promotion; a worker does not listen.
    (void)ResolveAddresses(req.listen_addr(), req.advertise_addr(), &ns.listen_addr,
                           &ns.advertise_addr);
  }
  if (absl::Status s = cert_store_.Save(certs, kek); !s.ok()) return ToGrpc(s);
  {
    absl::MutexLock lock(&mu_);
    node_state_ = ns;
  }
  if (absl::Status s = SaveNodeState(); !s.ok()) return ToGrpc(s);
  absl::Status s =
      StartRoles(certs, kek, manager::ManagerOptions::Mode::kJoin, {remote}, nullptr, nullptr);
  if (!s.ok()) {
    StopRoles();
    (void)WipeSwarmState();
    absl::MutexLock lock(&mu_);
    state_ = State::kInactive;
    return ToGrpc(s);
  }
  resp->set_node_id(id->node_id);
  resp->set_cluster_id(id->cluster_id);
  resp->set_role(id->role == pki::Role::kManager ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER);
  spdlog::info("joined swarm {} as {} {} through {}", id->cluster_id, pki::RoleName(id->role),
               id->node_id, remote);
  return grpc::Status::OK;
}

// --- Leave and unlock --------------------------------------------------------------------------

grpc::Status SwarmNode::Leave(const api::LeaveSwarmRequest& req) {
  absl::MutexLock op(&op_mu_);
  State state;
  std::shared_ptr<manager::Manager> manager;
  {
    absl::MutexLock lock(&mu_);
    state = state_;
    manager = manager_;
  }
  if (state == State::kInactive) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION, "this node is not part of a swarm");
  }
  if (state == State::kLocked && !req.force()) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION,
                 "this node is locked; unlock it with `shoal swarm unlock` first, or use "
                 "--force to leave anyway (its manager state is then lost)");
  }
  if (manager != nullptr && !req.force()) {
    const std::vector<manager::ManagerMember> members = manager->Members();
    const std::string detail =
        members.size() <= 1 ? "it is the last manager: leaving erases the swarm's whole state"
                            : absl::StrCat("removing it leaves ", members.size() - 1,
                                           " managers out of ", members.size());
    return Error(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("this node is a swarm manager (", detail,
                     "); demote it first with `shoal node demote ", manager->local_node_id(),
                     "` on a manager and then leave, or use `--force` to leave anyway"));
  }
  if (manager != nullptr && manager->Members().size() > 1) {
    // Best effort: take this manager out of Raft so the others keep their quorum arithmetic.
    absl::Status s =
        manager->RemoveMember(manager->local_raft_id(), absl::Now() + absl::Seconds(10));
    if (!s.ok()) spdlog::warn("leaving: could not remove this manager from Raft: {}", s.ToString());
  }
  StopRoles();
  if (absl::Status s = WipeSwarmState(); !s.ok()) return ToGrpc(s);
  absl::MutexLock lock(&mu_);
  state_ = State::kInactive;
  error_.clear();
  spdlog::info("left the swarm");
  return grpc::Status::OK;
}

grpc::Status SwarmNode::Unlock(const api::UnlockSwarmRequest& req) {
  absl::MutexLock op(&op_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kLocked) {
      return Error(grpc::StatusCode::FAILED_PRECONDITION, "this node is not locked");
    }
  }
  absl::StatusOr<std::string> kek = pki::ParseUnlockKey(req.unlock_key());
  if (!kek.ok()) return ToGrpc(kek.status());
  absl::StatusOr<pki::NodeCertificates> certs = cert_store_.Load(*kek);
  if (!certs.ok()) {
    if (certs.status().code() == absl::StatusCode::kInvalidArgument) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   "invalid unlock key: it does not decrypt this node's keys; use the key "
                   "printed by `shoal swarm init --autolock` or the latest `shoal swarm "
                   "unlock-key` on an unlocked manager");
    }
    return ToGrpc(certs.status());
  }
  absl::Status s =
      StartRoles(*certs, *kek, manager::ManagerOptions::Mode::kRestart, {}, nullptr, nullptr);
  if (!s.ok()) {
    StopRoles();
    absl::MutexLock lock(&mu_);
    state_ = State::kLocked;
    return ToGrpc(s);
  }
  spdlog::info("swarm unlocked");
  return grpc::Status::OK;
}

absl::StatusOr<std::shared_ptr<manager::Manager>> SwarmNode::ManagerForControl() {
  absl::MutexLock lock(&mu_);
  switch (state_) {
    case State::kInactive:
      return absl::FailedPreconditionError(
          "this node is not a swarm manager: it is not part of a swarm; create one with `shoal "
          "swarm init` or join one with `shoal swarm join`");
    case State::kLocked:
      return absl::FailedPreconditionError(
          "this swarm manager is locked; unlock it with `shoal swarm unlock`");
    case State::kPending:
      return absl::UnavailableError(
          "this node is starting its swarm roles (joining, or reloading its certificates); "
          "retry shortly");
    case State::kError:
      return absl::FailedPreconditionError(absl::StrCat("this node is in error: ", error_));
    case State::kActive:
      break;
  }
  if (manager_ == nullptr) {
    return absl::FailedPreconditionError(
        "this node is not a swarm manager. Worker nodes can't be used to view or modify cluster "
        "state. Run this command on a manager node or promote this node to a manager");
  }
  return manager_;
}

// --- Session, renewal and role changes ---------------------------------------------------------

void SwarmNode::OnSessionMessage(const api::SessionMessage& message) {
  std::vector<std::string> managers;
  for (const api::WeightedPeer& p : message.managers()) managers.push_back(p.peer().addr());
  bool changed = false;
  {
    absl::MutexLock lock(&mu_);
    if (!managers.empty() && managers != node_state_.managers) {
      node_state_.managers = managers;
      changed = true;
    }
    session_managers_ = managers;
    pending_node_ = message.node();
    if (!message.root_ca().empty() && message.root_ca() != certs_.root_ca_pem) {
      pending_root_ = message.root_ca();
    }
  }
  if (changed) (void)SaveNodeState();
}

void SwarmNode::BackgroundLoop() {
  for (;;) {
    std::optional<api::Node> node;
    std::optional<std::string> roots;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutting_down_ || pending_node_.has_value() || pending_root_.has_value();
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready),
                           state_ == State::kError ? absl::Seconds(5) : absl::Seconds(30));
      if (shutting_down_) return;
      node.swap(pending_node_);
      roots.swap(pending_root_);
    }
    RetryRolesAfterError();
    if (roots.has_value()) AdoptRoots(*roots);
    if (!node.has_value()) {
      // Periodic: time-based renewal is checked against the certificate's dates.
      api::Node none;
      absl::MutexLock lock(&mu_);
      if (state_ != State::kActive) continue;
      none.set_role(identity_.role == pki::Role::kManager ? api::NODE_ROLE_MANAGER
                                                          : api::NODE_ROLE_WORKER);
      node = none;
    }
    MaybeRenew(*node);
  }
}

void SwarmNode::MaybeRenew(const api::Node& node) {
  absl::MutexLock op(&op_mu_);
  pki::NodeIdentity id;
  pki::NodeCertificates certs;
  std::string kek;
  std::vector<std::string> managers;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kActive || shutting_down_) return;
    id = identity_;
    certs = certs_;
    kek = kek_;
    managers = session_managers_.empty() ? node_state_.managers : session_managers_;
  }
  const bool by_session = agent::RenewalScheduler::NeedsRenewal(node, id);
  absl::Time renew_at;
  {
    absl::MutexLock lock(&mu_);
    renew_at = renew_at_;
  }
  const bool by_time = clock_->Now() >= renew_at;
  if (!by_session && !by_time) return;
  absl::StatusOr<pki::NodeCertificates> renewed = absl::UnavailableError("no manager known");
  for (const std::string& addr : managers) {
    renewed = agent::RenewCertificate(addr, pki::TlsIdentity{certs.cert_pem, certs.key_pem},
                                      certs.root_ca_pem, absl::Seconds(20));
    if (renewed.ok()) break;
  }
  if (!renewed.ok()) {
    spdlog::warn("certificate renewal failed: {}", renewed.status().ToString());
    return;
  }
  absl::StatusOr<pki::NodeIdentity> new_id = IdentityOf(renewed->cert_pem);
  if (!new_id.ok()) {
    spdlog::warn("renewed certificate unusable: {}", new_id.status().ToString());
    return;
  }
  if (new_id->role == pki::Role::kManager && id.role != pki::Role::kManager) {
    // Promoted: an autolocked swarm keeps every manager's keys wrapped; learn the unlock key.
    absl::StatusOr<std::string> key = FetchUnlockKey(*renewed, managers);
    if (!key.ok()) {
      spdlog::warn("promotion: cannot fetch the unlock key yet: {}", key.status().ToString());
      return;  // retried: the session still says the role differs
    }
    absl::MutexLock lock(&mu_);
    kek_ = *key;
  }
  {
    absl::MutexLock lock(&mu_);
    // A session message from before this renewal would ask for another one.
    pending_node_.reset();
  }
  absl::Status saved;
  {
    absl::MutexLock keys(&key_mu_);
    {
      absl::MutexLock lock(&mu_);
      kek = kek_;  // re-read: an unlock key change may have happened during the renewal
    }
    saved = cert_store_.Save(*renewed, new_id->role == pki::Role::kManager ? kek : "");
  }
  if (absl::Status s = saved; !s.ok()) {
    spdlog::error("cannot store the renewed certificate: {}", s.ToString());
    return;
  }
  spdlog::info("certificate renewed: {} {} valid until {}", pki::RoleName(new_id->role),
               new_id->node_id, absl::FormatTime(new_id->not_after));
  if (new_id->role == id.role) {
    {
      absl::MutexLock lock(&mu_);
      certs_ = *renewed;
      identity_ = *new_id;
      renew_at_ = agent::RenewalScheduler::NextRenewal(*new_id, bitgen_);
    }
    ReloadCredentials();
    return;
  }
  // The role changed: restart the roles under the new certificate.
  spdlog::info("this node's role changed to {}", pki::RoleName(new_id->role));
  StopRoles();
  if (new_id->role == pki::Role::kWorker) {
    std::error_code ec;
    std::filesystem::remove_all(absl::StrCat(options_.state_dir, "/raft"), ec);
  } else {
    absl::MutexLock lock(&mu_);
    if (node_state_.listen_addr.empty()) {
      std::string listen;
      std::string advertise;
      if (ResolveAddresses("", node_state_.advertise_addr, &listen, &advertise).ok()) {
        node_state_.listen_addr = listen;
        node_state_.advertise_addr = advertise;
      }
    }
  }
  (void)SaveNodeState();
  if (new_id->role == pki::Role::kWorker) {
    absl::MutexLock lock(&mu_);
    kek_.clear();
  }
  absl::Status s = StartRoles(*renewed, new_id->role == pki::Role::kManager ? kek : "",
                              manager::ManagerOptions::Mode::kJoin, managers, nullptr, nullptr);
  if (!s.ok()) Fail("cannot start the node's new role", s);
}

manager::ManagerOptions::Mode SwarmNode::ResumeMode() const {
  // A manager that never finished joining Raft (no member.pb) joins again.
  return FileExists(absl::StrCat(options_.state_dir, "/raft/member.pb"))
             ? manager::ManagerOptions::Mode::kRestart
             : manager::ManagerOptions::Mode::kJoin;
}

void SwarmNode::RetryRolesAfterError() {
  absl::MutexLock op(&op_mu_);
  std::string kek;
  std::vector<std::string> managers;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kError || shutting_down_) return;
    kek = kek_;
    managers = node_state_.managers;
  }
  absl::StatusOr<pki::NodeCertificates> certs = cert_store_.Load(kek);
  if (!certs.ok()) return;
  StopRoles();
  absl::Status s = StartRoles(*certs, kek, ResumeMode(), managers, nullptr, nullptr);
  if (!s.ok()) {
    Fail("retrying the node's roles", s);
  } else {
    spdlog::info("the node's roles are running again");
  }
}

absl::StatusOr<std::string> SwarmNode::FetchUnlockKey(const pki::NodeCertificates& certs,
                                                      const std::vector<std::string>& managers) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      pki::ChannelCredentials(pki::TlsIdentity{certs.cert_pem, certs.key_pem}, certs.root_ca_pem);
  if (!creds.ok()) return creds.status();
  absl::Status last = absl::UnavailableError("no manager known");
  for (const std::string& addr : managers) {
    auto stub =
        api::CA::NewStub(grpc::CreateCustomChannel(addr, *creds, pki::ManagerChannelArguments()));
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(10)));
    api::GetManagerUnlockKeyResponse resp;
    grpc::Status s = stub->GetManagerUnlockKey(&ctx, api::GetManagerUnlockKeyRequest{}, &resp);
    if (s.ok()) return resp.unlock_key();
    last = ToAbsl(s);
  }
  return last;
}

void SwarmNode::AdoptRoots(const std::string& roots) {
  absl::MutexLock op(&op_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kActive || shutting_down_ || roots == certs_.root_ca_pem) return;
  }
  absl::Status saved;
  {
    absl::MutexLock keys(&key_mu_);
    saved = cert_store_.SaveRootCA(roots);
  }
  if (absl::Status s = saved; !s.ok()) {
    spdlog::error("cannot store the swarm's new trust roots: {}", s.ToString());
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    certs_.root_ca_pem = roots;
  }
  spdlog::info("trust roots updated by the managers (root CA rotation)");
  ReloadCredentials();
}

void SwarmNode::ReloadCredentials() {
  // REQUIRES: op_mu_ held.
  std::shared_ptr<manager::Manager> manager;
  pki::NodeCertificates certs;
  std::string kek;
  {
    absl::MutexLock lock(&mu_);
    manager = manager_;
    certs = certs_;
    kek = kek_;
  }
  if (manager == nullptr) {
    // A new session, so the managers also learn the node's new TLS state (its description).
    std::unique_ptr<agent::logs::LogPublisher> old_publisher;
    std::unique_ptr<agent::Worker> old_worker;
    std::unique_ptr<agent::Session> old;
    {
      absl::MutexLock lock(&mu_);
      old_publisher = std::move(log_publisher_);
      old_worker = std::move(worker_);
      old = std::move(session_);
    }
    old_publisher.reset();
    old_worker.reset();
    old.reset();
    StartAgent();
    return;
  }
  // The manager's server and Raft transport hold credentials built at start: restart the role
  // (leadership is handed over first, so the swarm barely notices).
  manager.reset();
  {
    absl::MutexLock lock(&mu_);
    state_ = State::kPending;
  }
  StopRoles();
  absl::Status s =
      StartRoles(certs, kek, manager::ManagerOptions::Mode::kRestart, {}, nullptr, nullptr);
  if (!s.ok()) Fail("cannot restart the manager role with the new certificates", s);
}

void SwarmNode::Fail(const std::string& what, const absl::Status& status) {
  spdlog::error("{}: {}", what, status.ToString());
  absl::MutexLock lock(&mu_);
  state_ = State::kError;
  error_ = absl::StrCat(what, ": ", status.message());
}

absl::Status SwarmNode::OnKekChange(manager::Manager& manager, const std::string& new_kek) {
  // Runs on the manager's thread: never take op_mu_ here (StopRoles, under op_mu_, joins it).
  absl::MutexLock keys(&key_mu_);
  std::string old;
  {
    absl::MutexLock lock(&mu_);
    old = kek_;
  }
  if (absl::Status s = manager.StageKeys(new_kek); !s.ok()) return s;
  if (old != new_kek) {
    if (absl::Status s = cert_store_.ChangeKek(old, new_kek); !s.ok()) {
      manager.AbortKeys();
      return s;
    }
  }
  // The node key is the commit point: from here the new key opens both files.
  {
    absl::MutexLock lock(&mu_);
    kek_ = new_kek;
  }
  return manager.CommitKeys(new_kek);
}

}  // namespace shoal::node
