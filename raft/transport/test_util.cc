#include "raft/transport/test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shoal::raft::testing {
namespace {

// A TCP socket bound to 127.0.0.1 on a port of the kernel's choice; aborts on failure (tests).
UniqueFd BoundLoopbackSocket(int* port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) std::abort();
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) std::abort();
  socklen_t len = sizeof(sa);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) std::abort();
  *port = ntohs(sa.sin_port);
  return fd;
}

}  // namespace

void RecordingHandler::Receive(raftpb::Message m) {
  absl::MutexLock lock(&mu_);
  record_.received_count++;
  if (keep_messages_) record_.received.push_back(std::move(m));
}

void RecordingHandler::ReceiveBatch(std::vector<raftpb::Message> msgs) {
  absl::MutexLock lock(&mu_);
  record_.batch_calls++;
  record_.received_count += msgs.size();
  if (!keep_messages_) return;
  for (raftpb::Message& m : msgs) record_.received.push_back(std::move(m));
}

void RecordingHandler::ReportUnreachable(uint64_t peer) {
  absl::MutexLock lock(&mu_);
  record_.unreachable.push_back(peer);
}

void RecordingHandler::ReportSnapshot(uint64_t peer, bool failed) {
  absl::MutexLock lock(&mu_);
  record_.snapshots.emplace_back(peer, failed);
}

bool RecordingHandler::WaitUntil(const std::function<bool(const Record&)>& pred,
                                 absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return pred(record_); };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
}

Member::Member(uint64_t id, Transport::Options options, bool keep_messages)
    : id_(id), handler_(keep_messages) {
  options.local_id = id;
  if (options.channel_credentials == nullptr) {
    options.channel_credentials = grpc::InsecureChannelCredentials();
  }
  transport_ = std::make_unique<Transport>(std::move(options), &handler_);
  service_ = std::make_unique<TransportService>(id, &handler_, transport_.get());
  StartServer();
}

Member::~Member() {
  transport_->Stop();
  StopServer();
}

void Member::StartServer() {
  grpc::ServerBuilder builder;
  TransportService::ConfigureServerBuilder(&builder);
  int selected = 0;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", port_), grpc::InsecureServerCredentials(),
                           &selected);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || selected == 0) std::abort();
  port_ = selected;
}

void Member::StopServer() {
  if (server_ == nullptr) return;
  // Send streams never end on their own: cancel them now rather than wait.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

std::string Member::addr() const { return absl::StrCat("127.0.0.1:", port_); }

std::string ClosedPortAddress() {
  int port = 0;
  BoundLoopbackSocket(&port);  // Closed again as the temporary goes away.
  return absl::StrCat("127.0.0.1:", port);
}

HungListener::HungListener() {
  int port = 0;
  fd_ = BoundLoopbackSocket(&port);
  if (listen(fd_.get(), 16) != 0) std::abort();
  addr_ = absl::StrCat("127.0.0.1:", port);
}

raftpb::Message App(uint64_t from, uint64_t to, uint64_t index, size_t payload_bytes) {
  raftpb::Message m;
  m.set_type(raftpb::MESSAGE_TYPE_APP);
  m.set_from(from);
  m.set_to(to);
  m.set_term(1);
  m.set_index(index);
  raftpb::Entry* e = m.add_entries();
  e->set_term(1);
  e->set_index(index + 1);
  e->set_data(std::string(payload_bytes, static_cast<char>('a' + index % 26)));
  return m;
}

}  // namespace shoal::raft::testing
