#include "agent/session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "pki/grpc_tls.h"

namespace shoal::agent {
namespace {

// Waits on the injected clock are also bounded by this much real time, so that a manual clock's
// progress is noticed.
constexpr absl::Duration kClockPoll = absl::Milliseconds(50);
constexpr char kLeaderIsAt[] = "the leader is at ";

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// An UNAVAILABLE answer from a manager that is not the leader (as opposed to a transport
// failure, which never mentions a leader): another manager may do better at once.
bool IsNonLeaderAnswer(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         absl::StrContains(absl::AsciiStrToLower(status.error_message()), "leader");
}

}  // namespace

std::string Session::ParseLeaderAddress(absl::string_view message) {
  const size_t pos = message.find(kLeaderIsAt);
  if (pos == absl::string_view::npos) return "";
  absl::string_view rest = message.substr(pos + sizeof(kLeaderIsAt) - 1);
  const size_t end = rest.find_first_of(" \t\r\n");
  if (end != absl::string_view::npos) rest = rest.substr(0, end);
  while (!rest.empty() &&
         absl::string_view(".,;)\"'").find(rest.back()) != absl::string_view::npos) {
    rest.remove_suffix(1);
  }
  // host:port; an IPv6 literal is bracketed, so the last colon always precedes the port.
  const size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos || colon == 0 || colon + 1 == rest.size()) return "";
  return std::string(rest);
}

std::unique_ptr<Session> Session::Start(SessionOptions options, MessageCallback on_message) {
  if (options.managers.empty() || !options.credentials || options.clock == nullptr) {
    spdlog::error("dispatcher session: no managers, credentials or clock given");
    return nullptr;
  }
  std::unique_ptr<Session> session(new Session(std::move(options), std::move(on_message)));
  session->session_thread_ = std::thread([s = session.get()] { s->RunSession(); });
  session->heartbeat_thread_ = std::thread([s = session.get()] { s->RunHeartbeats(); });
  return session;
}

Session::Session(SessionOptions options, MessageCallback on_message)
    : options_(std::move(options)), on_message_(std::move(on_message)), clock_(options_.clock) {
  absl::MutexLock lock(&mu_);
  managers_ = options_.managers;
}

Session::~Session() { Stop(); }

void Session::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
    if (heartbeat_ctx_ != nullptr) heartbeat_ctx_->TryCancel();
  }
  if (session_thread_.joinable()) session_thread_.join();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

void Session::Reconnect() {
  absl::MutexLock lock(&mu_);
  reconnect_requested_ = true;
  if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
}

std::vector<std::string> Session::managers() const {
  absl::MutexLock lock(&mu_);
  return managers_;
}

bool Session::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

std::string Session::session_id() const {
  absl::MutexLock lock(&mu_);
  return session_id_;
}

std::string Session::current_manager() const {
  absl::MutexLock lock(&mu_);
  return current_addr_;
}

DispatcherConnection Session::connection() const {
  absl::MutexLock lock(&mu_);
  if (!connected_ || stub_ == nullptr || session_id_.empty()) return {};
  return DispatcherConnection{session_id_, stub_, channel_};
}

int64_t Session::heartbeats_sent() const {
  absl::MutexLock lock(&mu_);
  return heartbeats_sent_;
}

int64_t Session::stream_failures() const {
  absl::MutexLock lock(&mu_);
  return stream_failures_;
}

bool Session::WaitUntil(absl::Time deadline) {
  auto interrupted = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || reconnect_requested_;
  };
  while (!interrupted()) {
    const absl::Duration left = deadline - clock_->Now();
    if (left <= absl::ZeroDuration()) break;
    mu_.AwaitWithTimeout(absl::Condition(&interrupted), std::min(left, kClockPoll));
  }
  return !stopping_;
}

std::string Session::NextManagerLocked(const std::string& addr) const {
  auto it = std::find(managers_.begin(), managers_.end(), addr);
  if (it == managers_.end() || ++it == managers_.end()) return managers_.front();
  return *it;
}

void Session::RunSession() {
  absl::Duration backoff = options_.min_backoff;
  int immediate_in_a_row = 0;
  std::string addr;
  {
    absl::MutexLock lock(&mu_);
    addr = managers_.front();
  }
  for (;;) {
    bool established = false;
    const grpc::Status stream_status = RunStream(addr, &established);

    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    ++stream_failures_;
    if (established) {
      backoff = options_.min_backoff;
      immediate_in_a_row = 0;
    }
    if (reconnect_requested_) continue;  // Same manager, fresh credentials, at once.

    // The heartbeat thread's reason wins over the CANCELLED it caused.
    const grpc::Status status = heartbeat_failure_.ok() ? stream_status : heartbeat_failure_;
    const std::string leader = status.error_code() == grpc::StatusCode::UNAVAILABLE
                                   ? ParseLeaderAddress(status.error_message())
                                   : "";
    bool immediate = false;
    std::string next;
    if (!leader.empty()) {
      next = leader;
      immediate = true;
    } else if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      // The session expired; the manager itself is fine: open a new session there.
      session_id_.clear();
      next = addr;
      immediate = true;
    } else {
      next = NextManagerLocked(addr);
      immediate = IsNonLeaderAnswer(status);
    }
    if (status.ok()) {
      spdlog::info("dispatcher session with {} ended; reconnecting to {}", addr, next);
    } else {
      spdlog::warn("dispatcher session with {} failed: {} ({}); trying {}", addr,
                   status.error_message(), static_cast<int>(status.error_code()), next);
    }
    addr = next;
    // A redirect loop (managers disagreeing on the leader during an election) falls back to the
    // backoff after one pass over the known managers.
    const int limit = static_cast<int>(managers_.size()) + 1;
    if (immediate && immediate_in_a_row < limit) {
      ++immediate_in_a_row;
      continue;
    }
    immediate_in_a_row = 0;
    if (!WaitUntil(clock_->Now() + backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

grpc::Status Session::RunStream(const std::string& addr, bool* established) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::CANCELLED, "session stopped");
    // Credentials are read below: a Reconnect() from here on applies to a newer certificate.
    reconnect_requested_ = false;
    current_addr_ = addr;
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = options_.credentials();
  if (creds == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "no TLS credentials for the dispatcher session (the node has no usable "
                        "certificate)");
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(addr, creds, pki::ManagerChannelArguments());
  std::shared_ptr<api::Dispatcher::Stub> stub = api::Dispatcher::NewStub(channel);
  grpc::ClientContext ctx;
  api::SessionRequest request;
  *request.mutable_description() = options_.description;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::CANCELLED, "session stopped");
    request.set_session_id(session_id_);
    stream_ctx_ = &ctx;
    stub_ = stub;
    channel_ = channel;
    ++stream_generation_;
    connected_ = false;
    heartbeat_failure_ = grpc::Status::OK;
    open_deadline_ = clock_->Now() + options_.session_open_timeout;
    next_heartbeat_ = absl::InfiniteFuture();
    ++state_version_;
    if (reconnect_requested_) ctx.TryCancel();
  }

  std::unique_ptr<grpc::ClientReader<api::SessionMessage>> reader = stub->Session(&ctx, request);
  api::SessionMessage message;
  while (reader->Read(&message)) {
    {
      absl::MutexLock lock(&mu_);
      if (!message.session_id().empty()) session_id_ = message.session_id();
      std::vector<std::string> managers;
      for (const api::WeightedPeer& peer : message.managers()) {
        if (!peer.peer().addr().empty()) managers.push_back(peer.peer().addr());
      }
      if (!managers.empty()) managers_ = std::move(managers);
      if (!connected_) {
        connected_ = true;
        open_deadline_ = absl::InfiniteFuture();
        next_heartbeat_ = clock_->Now();  // First heartbeat at once.
        ++state_version_;
        spdlog::info("dispatcher session {} open with {}", session_id_, addr);
      }
    }
    *established = true;
    on_message_(message);
  }
  grpc::Status status = reader->Finish();

  absl::MutexLock lock(&mu_);
  stream_ctx_ = nullptr;
  stub_.reset();
  channel_.reset();
  connected_ = false;
  open_deadline_ = absl::InfiniteFuture();
  next_heartbeat_ = absl::InfiniteFuture();
  ++state_version_;
  // A heartbeat still in flight belongs to the stream that just ended.
  if (heartbeat_ctx_ != nullptr) heartbeat_ctx_->TryCancel();
  return status;
}

void Session::RunHeartbeats() {
  mu_.Lock();
  while (!stopping_) {
    const uint64_t seen = state_version_;
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || state_version_ != seen;
    };
    const absl::Time due = stream_ctx_ == nullptr ? absl::InfiniteFuture()
                           : connected_           ? next_heartbeat_
                                                  : open_deadline_;
    if (due == absl::InfiniteFuture()) {
      mu_.Await(absl::Condition(&changed));
      continue;
    }
    const absl::Duration left = due - clock_->Now();
    if (left > absl::ZeroDuration()) {
      mu_.AwaitWithTimeout(absl::Condition(&changed), std::min(left, kClockPoll));
      continue;
    }

    if (!connected_) {
      heartbeat_failure_ =
          grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                       absl::StrCat("no SessionMessage from ", current_addr_, " within ",
                                    absl::FormatDuration(options_.session_open_timeout)));
      open_deadline_ = absl::InfiniteFuture();
      stream_ctx_->TryCancel();
      continue;
    }

    // Heartbeat for the current stream.
    const std::shared_ptr<api::Dispatcher::Stub> stub = stub_;
    const uint64_t generation = stream_generation_;
    api::HeartbeatRequest request;
    request.set_session_id(session_id_);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.heartbeat_timeout));
    heartbeat_ctx_ = &ctx;
    next_heartbeat_ = absl::InfiniteFuture();
    const absl::Time sent_at = clock_->Now();
    mu_.Unlock();
    api::HeartbeatResponse response;
    const grpc::Status status = stub->Heartbeat(&ctx, request, &response);
    mu_.Lock();
    heartbeat_ctx_ = nullptr;
    if (stopping_) break;
    if (generation != stream_generation_ || stream_ctx_ == nullptr) continue;  // Stream gone.
    if (status.ok()) {
      ++heartbeats_sent_;
      absl::Duration period = FromProto(response.period());
      if (period <= absl::ZeroDuration()) period = options_.default_heartbeat_period;
      next_heartbeat_ = sent_at + period / 2;
      ++state_version_;
    } else {
      spdlog::warn("dispatcher heartbeat to {} failed: {}; reconnecting", current_addr_,
                   status.error_message());
      heartbeat_failure_ = status;
      stream_ctx_->TryCancel();
    }
  }
  mu_.Unlock();
}

}  // namespace shoal::agent
