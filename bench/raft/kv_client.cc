#include "bench/raft/kv_client.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace shoal::bench {
namespace {

std::chrono::system_clock::time_point GrpcDeadline(absl::Duration timeout) {
  return absl::ToChronoTime(absl::Now() + timeout);
}

}  // namespace

std::string GrpcTarget(const std::string& endpoint) {
  for (const char* scheme : {"http://", "https://"}) {
    if (absl::StartsWith(endpoint, scheme)) return endpoint.substr(std::string(scheme).size());
  }
  return endpoint;
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& endpoint, int connection_id) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Distinct arguments also keep channels apart should a global pool be used after all.
  args.SetInt("shoal.bench.connection_id", connection_id);
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(GrpcTarget(endpoint), grpc::InsecureChannelCredentials(), args);
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

MemberStatus QueryStatus(const std::string& endpoint, absl::Duration timeout) {
  MemberStatus out;
  out.endpoint = endpoint;
  auto stub = etcdserverpb::Maintenance::NewStub(NewChannel(endpoint));
  grpc::ClientContext ctx;
  ctx.set_deadline(GrpcDeadline(timeout));
  etcdserverpb::StatusRequest request;
  etcdserverpb::StatusResponse response;
  out.status = FromGrpc(stub->Status(&ctx, request, &response));
  if (out.status.ok()) {
    out.member_id = response.header().member_id();
    out.leader = response.leader();
    out.raft_index = response.raftindex();
    out.raft_term = response.raftterm();
  }
  return out;
}

std::vector<MemberStatus> QueryStatuses(const std::vector<std::string>& endpoints,
                                        absl::Duration timeout) {
  std::vector<MemberStatus> out;
  out.reserve(endpoints.size());
  for (const std::string& e : endpoints) out.push_back(QueryStatus(e, timeout));
  return out;
}

std::optional<size_t> AgreedLeader(const std::vector<MemberStatus>& statuses) {
  uint64_t leader = 0;
  for (const MemberStatus& s : statuses) {
    if (!s.status.ok()) continue;
    if (s.leader == 0) return std::nullopt;
    if (leader != 0 && s.leader != leader) return std::nullopt;
    leader = s.leader;
  }
  for (size_t i = 0; i < statuses.size(); ++i) {
    if (statuses[i].status.ok() && statuses[i].member_id == leader && leader != 0) return i;
  }
  return std::nullopt;
}

bool AllHealthy(const std::vector<MemberStatus>& statuses, uint64_t max_lag) {
  for (const MemberStatus& s : statuses) {
    if (!s.status.ok()) return false;
  }
  std::optional<size_t> leader = AgreedLeader(statuses);
  if (!leader.has_value()) return false;
  const uint64_t leader_index = statuses[*leader].raft_index;
  for (const MemberStatus& s : statuses) {
    if (s.raft_index + max_lag < leader_index) return false;
  }
  return true;
}

absl::StatusOr<std::vector<MemberStatus>> WaitHealthy(const std::vector<std::string>& endpoints,
                                                      absl::Duration timeout, uint64_t max_lag) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<MemberStatus> statuses;
  while (true) {
    statuses = QueryStatuses(endpoints, absl::Milliseconds(500));
    if (AllHealthy(statuses, max_lag)) return statuses;
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  std::vector<std::string> parts;
  for (const MemberStatus& s : statuses) {
    if (!s.status.ok()) {
      parts.push_back(absl::StrCat(s.endpoint, ": ", s.status.ToString()));
    } else {
      parts.push_back(absl::StrCat(s.endpoint, ": member ", absl::Hex(s.member_id), " leader ",
                                   absl::Hex(s.leader), " index ", s.raft_index));
    }
  }
  return absl::DeadlineExceededError(absl::StrCat("cluster not healthy after ",
                                                  absl::FormatDuration(timeout), ": ",
                                                  absl::StrJoin(parts, "; ")));
}

absl::Status PutOnce(const std::string& endpoint, const std::string& key, const std::string& value,
                     absl::Duration timeout) {
  auto stub = etcdserverpb::KV::NewStub(NewChannel(endpoint));
  grpc::ClientContext ctx;
  ctx.set_deadline(GrpcDeadline(timeout));
  etcdserverpb::PutRequest request;
  request.set_key(key);
  request.set_value(value);
  etcdserverpb::PutResponse response;
  return FromGrpc(stub->Put(&ctx, request, &response));
}

}  // namespace shoal::bench
