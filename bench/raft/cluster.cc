#include "bench/raft/cluster.h"

#include <signal.h>
#include <unistd.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shoal::bench {
namespace {

std::string Url(int port) { return absl::StrCat("http://127.0.0.1:", port); }

std::vector<std::string> EtcdCommand(const ClusterOptions& options,
                                     const std::vector<MemberLayout>& members, size_t index) {
  std::vector<std::string> initial;
  for (const MemberLayout& m : members) {
    initial.push_back(absl::StrCat("m", m.id, "=", Url(m.peer_port)));
  }
  const MemberLayout& m = members[index];
  return {
      options.binary,
      "--name=" + absl::StrCat("m", m.id),
      "--data-dir=" + m.data_dir,
      "--listen-peer-urls=" + Url(m.peer_port),
      "--initial-advertise-peer-urls=" + Url(m.peer_port),
      "--listen-client-urls=" + Url(m.client_port),
      "--advertise-client-urls=" + Url(m.client_port),
      "--initial-cluster=" + absl::StrJoin(initial, ","),
      "--initial-cluster-token=shoal-bench",
      "--initial-cluster-state=new",  // ignored on restart: the data dir has the membership
      absl::StrCat("--heartbeat-interval=", options.heartbeat_ms),
      absl::StrCat("--election-timeout=", options.election_ms),
  };
}

std::vector<std::string> ShoalKvCommand(const ClusterOptions& options,
                                        const std::vector<MemberLayout>& members, size_t index) {
  std::vector<std::string> peers;
  for (const MemberLayout& m : members) {
    peers.push_back(absl::StrCat(m.id, "=127.0.0.1:", m.peer_port));
  }
  const MemberLayout& m = members[index];
  return {
      options.binary,
      "--id",
      absl::StrCat(m.id),
      "--peers",
      absl::StrJoin(peers, ","),
      "--client-addr",
      m.client_endpoint(),
      "--data-dir",
      m.data_dir,
  };
}

}  // namespace

std::string MemberLayout::client_endpoint() const {
  return absl::StrCat("127.0.0.1:", client_port);
}

absl::StatusOr<std::vector<MemberLayout>> PlanMembers(const ClusterOptions& options) {
  if (options.members < 1) return absl::InvalidArgumentError("need at least one member");
  std::set<int> used;
  auto pick = [&used]() -> absl::StatusOr<int> {
    for (int tries = 0; tries < 100; ++tries) {
      absl::StatusOr<int> port = PickFreeLoopbackPort();
      if (!port.ok()) return port.status();
      if (used.insert(*port).second) return *port;
    }
    return absl::ResourceExhaustedError("no distinct free loopback ports");
  };
  std::vector<MemberLayout> members;
  for (int i = 0; i < options.members; ++i) {
    MemberLayout m;
    m.id = i + 1;
    absl::StatusOr<int> peer = pick();
    if (!peer.ok()) return peer.status();
    absl::StatusOr<int> client = pick();
    if (!client.ok()) return client.status();
    m.peer_port = *peer;
    m.client_port = *client;
    m.data_dir = absl::StrCat(options.dir, "/member", m.id);
    m.log_path = absl::StrCat(options.dir, "/member", m.id, ".log");
    members.push_back(m);
  }
  return members;
}

std::vector<std::string> MemberCommand(const ClusterOptions& options,
                                       const std::vector<MemberLayout>& members, size_t index) {
  return options.kind == ServerKind::kEtcd ? EtcdCommand(options, members, index)
                                           : ShoalKvCommand(options, members, index);
}

Cluster::Cluster(ClusterOptions options, std::vector<MemberLayout> members)
    : options_(std::move(options)), members_(std::move(members)), processes_(members_.size()) {}

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(const ClusterOptions& options) {
  if (::access(options.binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("no executable at ", options.binary));
  }
  absl::StatusOr<std::vector<MemberLayout>> members = PlanMembers(options);
  if (!members.ok()) return members.status();
  std::unique_ptr<Cluster> cluster(new Cluster(options, *std::move(members)));
  for (size_t i = 0; i < cluster->size(); ++i) {
    absl::Status started = cluster->StartMember(i);
    if (!started.ok()) return started;  // the destructor stops those already started
  }
  return cluster;
}

Cluster::~Cluster() { Stop(); }

absl::Status Cluster::StartMember(size_t index) {
  absl::StatusOr<Process> p =
      Process::Start(MemberCommand(options_, members_, index), members_[index].log_path);
  if (!p.ok()) return p.status();
  processes_[index] = *std::move(p);
  return absl::OkStatus();
}

std::vector<std::string> Cluster::ClientEndpoints() const {
  std::vector<std::string> out;
  for (const MemberLayout& m : members_) out.push_back(m.client_endpoint());
  return out;
}

absl::StatusOr<std::vector<MemberStatus>> Cluster::WaitHealthy(absl::Duration timeout,
                                                               uint64_t max_lag) const {
  std::vector<std::string> endpoints;
  for (size_t i = 0; i < size(); ++i) {
    if (running(i)) endpoints.push_back(members_[i].client_endpoint());
  }
  return shoal::bench::WaitHealthy(endpoints, timeout, max_lag);
}

absl::StatusOr<size_t> Cluster::Leader() const {
  std::vector<MemberStatus> statuses = QueryStatuses(ClientEndpoints(), absl::Milliseconds(500));
  std::optional<size_t> leader = AgreedLeader(statuses);
  if (!leader.has_value()) return absl::FailedPreconditionError("members do not agree on a leader");
  return *leader;
}

absl::Status Cluster::Kill(size_t index) { return processes_[index].SendSignal(SIGKILL); }

absl::Status Cluster::Reap(size_t index) { return processes_[index].Reap(absl::Seconds(10)); }

absl::Status Cluster::Restart(size_t index) {
  if (running(index)) return absl::FailedPreconditionError("member is still running");
  return StartMember(index);
}

double Cluster::CpuSeconds() const {
  double total = 0;
  for (const Process& p : processes_) total += p.CpuSeconds();
  return total;
}

void Cluster::Stop(absl::Duration grace) {
  for (Process& p : processes_) {
    if (p.running()) (void)p.SendSignal(SIGTERM);
  }
  for (Process& p : processes_) (void)p.Reap(grace);
}

}  // namespace shoal::bench
