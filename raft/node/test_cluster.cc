#include "raft/node/test_cluster.h"

#include <stdlib.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "raft/transport/transport_service.h"

namespace shoal::raft::testing {

std::string KvStateMachine::Apply(uint64_t, const std::string& data) {
  const size_t eq = data.find('=');
  absl::MutexLock lock(&mu_);
  ++applies_;
  if (eq == std::string::npos) return "";
  std::string& slot = data_[data.substr(0, eq)];
  std::string previous = slot;
  slot = data.substr(eq + 1);
  return previous;
}

namespace {
std::string EncodeKv(const std::map<std::string, std::string>& data) {
  std::string out;
  for (const auto& [k, v] : data) absl::StrAppend(&out, k.size(), ":", k, v.size(), ":", v);
  return out;
}
}  // namespace

std::string KvStateMachine::Snapshot() {
  absl::MutexLock lock(&mu_);
  return EncodeKv(data_);
}

std::function<std::string()> KvStateMachine::CaptureSnapshot() {
  absl::MutexLock lock(&mu_);
  ++captures_;
  auto copy = std::make_shared<std::map<std::string, std::string>>(data_);
  return [this, copy] {
    {
      absl::MutexLock lock(&mu_);
      ++waiting_;
      mu_.Await(absl::Condition(
          +[](bool* hold) { return !*hold; }, &hold_));
      --waiting_;
    }
    return EncodeKv(*copy);
  };
}

void KvStateMachine::HoldSnapshots(bool hold) {
  absl::MutexLock lock(&mu_);
  hold_ = hold;
}

int KvStateMachine::captures() const {
  absl::MutexLock lock(&mu_);
  return captures_;
}

int KvStateMachine::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

absl::Status KvStateMachine::Restore(const std::string& data) {
  std::map<std::string, std::string> restored;
  size_t pos = 0;
  auto next = [&](std::string* out) {
    const size_t colon = data.find(':', pos);
    if (colon == std::string::npos) return false;
    size_t len = std::stoul(data.substr(pos, colon - pos));
    *out = data.substr(colon + 1, len);
    pos = colon + 1 + len;
    return true;
  };
  while (pos < data.size()) {
    std::string k, v;
    if (!next(&k) || !next(&v)) return absl::DataLossError("bad kv snapshot");
    restored[k] = v;
  }
  absl::MutexLock lock(&mu_);
  data_ = std::move(restored);
  return absl::OkStatus();
}

std::optional<std::string> KvStateMachine::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

size_t KvStateMachine::size() const {
  absl::MutexLock lock(&mu_);
  return data_.size();
}

uint64_t KvStateMachine::applies() const {
  absl::MutexLock lock(&mu_);
  return applies_;
}

TestCluster::TestCluster(RaftNodeOptions base) : base_(std::move(base)) {
  std::string tmpl = "/tmp/raft-node-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  root_ = tmpl;
}

TestCluster::~TestCluster() {
  for (auto& [id, m] : members_) {
    if (m->running()) StopMember(id);
  }
  std::error_code ec;
  std::filesystem::remove_all(root_, ec);
}

void TestCluster::StartMember(Member& m, bool force_new_cluster) {
  if (absl::Status s = TryStartMember(m, force_new_cluster); !s.ok()) {
    fprintf(stderr, "raft node %lu failed to start: %s\n", static_cast<unsigned long>(m.id),
            std::string(s.message()).c_str());
    std::abort();
  }
}

absl::Status TestCluster::TryStartMember(Member& m, bool force_new_cluster) {
  m.service = std::make_unique<TransportService>(m.id, &m.handler);
  grpc::ServerBuilder builder;
  TransportService::ConfigureServerBuilder(&builder);
  builder.AddListeningPort(m.port == 0 ? "127.0.0.1:0" : absl::StrCat("127.0.0.1:", m.port),
                           grpc::InsecureServerCredentials(), &m.port);
  builder.RegisterService(m.service.get());
  m.server = builder.BuildAndStart();
  if (m.server == nullptr) {
    m.service.reset();
    return absl::InternalError(absl::StrCat("cannot listen on 127.0.0.1:", m.port));
  }
  m.addr = absl::StrCat("127.0.0.1:", m.port);

  Transport::Options topts;
  topts.local_id = m.id;
  topts.channel_credentials = grpc::InsecureChannelCredentials();
  m.transport = std::make_unique<Transport>(topts, &m.handler);
  m.kv = std::make_unique<KvStateMachine>();

  RaftNodeOptions opts = base_;
  opts.id = m.id;
  opts.addr = m.addr;
  opts.dir = m.dir;
  opts.bootstrap_members = founders_;
  opts.force_new_cluster = force_new_cluster;
  if (auto it = encrypters_.find(m.id); it != encrypters_.end()) opts.encrypter = it->second;
  bool founder = false;
  for (const auto& f : founders_) founder = founder || f.raft_id() == m.id;
  if (!founder) {
    opts.bootstrap_members.clear();
    for (const auto& [id, other] : members_) {
      if (id != m.id && other->running()) opts.join_members.push_back(Identity(id));
    }
  }
  absl::StatusOr<std::unique_ptr<RaftNode>> node =
      RaftNode::Start(opts, m.kv.get(), m.transport.get());
  if (!node.ok()) {
    // Leave the member stopped, as before the attempt.
    m.transport->Stop();
    m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    m.transport.reset();
    m.server.reset();
    m.service.reset();
    return node.status();
  }
  m.node = std::move(*node);
  m.handler.Set(m.node.get());
  return absl::OkStatus();
}

void TestCluster::Bootstrap(int n) {
  std::vector<Member*> created;
  for (int i = 0; i < n; ++i) {
    auto m = std::make_unique<Member>();
    m->id = next_id_++;
    m->dir = absl::StrCat(root_, "/member-", m->id);
    // Reserve the port first so founders know each other's addresses.
    m->service = std::make_unique<TransportService>(m->id, &m->handler);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &m->port);
    builder.RegisterService(m->service.get());
    auto probe = builder.BuildAndStart();
    probe->Shutdown();
    m->addr = absl::StrCat("127.0.0.1:", m->port);
    api::RaftMember f;
    f.set_raft_id(m->id);
    f.set_addr(m->addr);
    founders_.push_back(f);
    created.push_back(m.get());
    members_[m->id] = std::move(m);
  }
  for (Member* m : created) StartMember(*m);
}

uint64_t TestCluster::AddEmptyMember() {
  auto m = std::make_unique<Member>();
  m->id = next_id_++;
  m->dir = absl::StrCat(root_, "/member-", m->id);
  Member& ref = *m;
  members_[m->id] = std::move(m);
  StartMember(ref);
  return ref.id;
}

void TestCluster::StopMember(uint64_t id) {
  Member& m = *members_.at(id);
  m.handler.Set(nullptr);
  m.node->Stop();
  m.transport->Stop();
  m.server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  m.node.reset();
  m.transport.reset();
  m.server.reset();
  m.service.reset();
}

void TestCluster::RestartMember(uint64_t id) { StartMember(*members_.at(id)); }

absl::Status TestCluster::TryRestartMember(uint64_t id) {
  return TryStartMember(*members_.at(id), /*force_new_cluster=*/false);
}

void TestCluster::RestartMemberAsNewCluster(uint64_t id) {
  StartMember(*members_.at(id), /*force_new_cluster=*/true);
}

api::RaftMember TestCluster::Identity(uint64_t id) const {
  api::RaftMember r;
  r.set_raft_id(id);
  r.set_addr(members_.at(id)->addr);
  return r;
}

std::vector<uint64_t> TestCluster::ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, m] : members_) out.push_back(id);
  return out;
}

std::string TestCluster::Describe() const {
  std::string out;
  for (const auto& [id, m] : members_) {
    if (!m->running()) {
      absl::StrAppend(&out, "member ", id, ": stopped\n");
      continue;
    }
    const RaftNode::Info i = m->node->GetInfo();
    absl::StrAppend(&out, "member ", id, ": ", StateTypeName(i.state), " term ", i.term, " leader ",
                    i.leader, " commit ", i.commit, " applied ", i.applied, " snapshot ",
                    i.snapshot_index, " voters ", i.conf_state.voters_size(), "\n");
  }
  return out;
}

uint64_t TestCluster::WaitForLeader(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    uint64_t agreed = 0;
    bool all = true;
    for (const auto& [id, m] : members_) {
      if (!m->running()) continue;
      const uint64_t lead = m->node->GetInfo().leader;
      if (lead == 0 || (agreed != 0 && lead != agreed)) all = false;
      agreed = lead;
    }
    if (all && agreed != 0 && members_.at(agreed)->running() &&
        members_.at(agreed)->node->GetInfo().state == StateType::kLeader) {
      return agreed;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return 0;
}

bool TestCluster::WaitForApplied(uint64_t index, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    bool all = true;
    for (const auto& [id, m] : members_) {
      if (m->running() && m->node->GetInfo().applied < index) all = false;
    }
    if (all) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

absl::Status TestCluster::Put(const std::string& key, const std::string& value,
                              absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::UnavailableError("no attempt");
  while (absl::Now() < deadline) {
    uint64_t lead = WaitForLeader(deadline - absl::Now());
    if (lead == 0) break;
    absl::StatusOr<std::string> r =
        members_.at(lead)->node->Propose(absl::StrCat(key, "=", value), deadline);
    if (r.ok()) return absl::OkStatus();
    last = r.status();
    if (!absl::IsUnavailable(last) && !absl::IsAborted(last)) return last;
  }
  return last;
}

}  // namespace shoal::raft::testing
