// swarm_sim: joins N SIMULATED nodes to a real swarm from one process (the way kubemark and
// SwarmKit's swarm-bench do), for scale benchmarks of the managers.
//
//   swarm_sim --manager HOST:PORT --token SWMTKN-... --nodes N --name-prefix P [--state-dir DIR]
//             [--join-parallelism 8] [--join-timeout 120s] [--stats-interval 10s]
//
// Each simulated node is a real node to the managers: its own key and certificate (joined with
// the worker token as SwarmNode::Join does: pki::DialManagerPinned, NodeCA.IssueNodeCertificate,
// NodeCA.NodeCertificateStatus), its own TLS connection and dispatcher session, its own tasks.
// The node side is a SimAgent (sim_agent.h): the real dispatcher protocol (Session, Heartbeat,
// Assignments, batched UpdateTaskStatus, leader redirects) and the real worker's task decisions
// (agent/task_lifecycle.h) over simulated processes (the sim executor's image rules: sim/exit:N,
// sim/crash-after:D, anything else runs until stopped). Nothing runs; nodes are named P-0000, ...
//
// Threads: the agents own none. gRPC's callback API runs their calls on its few threads, and one
// timer thread (SimFleet) does their timed work: a process with 1,000 nodes has a few dozen
// threads. The join phase uses --join-parallelism threads, which end once every node has its
// certificate.
//
// Not simulated: certificate renewal (benchmarks are short; a node whose certificate expires
// stops being admitted), root rotation, and state across restarts: tasks live in memory only, so
// --state-dir is accepted for compatibility but nothing is written there (a new swarm_sim process
// is a set of new nodes anyway).
//
// Prints "swarm_sim: all N simulated nodes joined in Xs" on stdout once every session is open,
// then runs until SIGTERM or SIGINT (logging the fleet's totals on stderr every
// --stats-interval), and then stops every agent and exits 0.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/swarm_sim/sim_agent.h"
#include "pki/certificate_store.h"
#include "pki/grpc_tls.h"
#include "pki/join_bootstrap.h"
#include "pki/join_token.h"
#include "pki/keys.h"
#include "proto/ca.grpc.pb.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace shoal::bench {
namespace {

struct Flags {
  std::string manager;
  std::string token;
  int nodes = 0;
  std::string name_prefix = "sim";
  std::string state_dir;
  int join_parallelism = 8;
  absl::Duration join_timeout = absl::Seconds(120);
  absl::Duration stats_interval = absl::Seconds(10);
};

void Usage() {
  std::fprintf(stderr,
               "usage: swarm_sim --manager HOST:PORT --token SWMTKN-... --nodes N "
               "--name-prefix P [--state-dir DIR] [--join-parallelism 8] "
               "[--join-timeout 120s] [--stats-interval 10s]\n"
               "Joins N simulated nodes (sim executor rules, no containers) to a real swarm.\n"
               "--state-dir is accepted but unused: simulated nodes keep their tasks in memory.\n");
}

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "swarm_sim: %s needs a value\n", a.c_str());
        return false;
      }
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--manager") {
      if (!value(&f->manager)) return false;
    } else if (a == "--token") {
      if (!value(&f->token)) return false;
    } else if (a == "--name-prefix") {
      if (!value(&f->name_prefix)) return false;
    } else if (a == "--state-dir") {
      if (!value(&f->state_dir)) return false;
    } else if (a == "--nodes" || a == "--join-parallelism") {
      int n = 0;
      if (!value(&v) || !absl::SimpleAtoi(v, &n) || n <= 0) {
        std::fprintf(stderr, "swarm_sim: %s needs a positive integer\n", a.c_str());
        return false;
      }
      (a == "--nodes" ? f->nodes : f->join_parallelism) = n;
    } else if (a == "--join-timeout" || a == "--stats-interval") {
      absl::Duration* d = a == "--join-timeout" ? &f->join_timeout : &f->stats_interval;
      if (!value(&v) || !absl::ParseDuration(v, d) || *d <= absl::ZeroDuration()) {
        std::fprintf(stderr, "swarm_sim: %s needs a positive duration such as 10s\n", a.c_str());
        return false;
      }
    } else if (a == "-h" || a == "--help") {
      Usage();
      std::exit(0);
    } else {
      std::fprintf(stderr, "swarm_sim: unknown flag %s\n", a.c_str());
      return false;
    }
  }
  if (f->manager.empty() || f->token.empty() || f->nodes <= 0) {
    std::fprintf(stderr, "swarm_sim: --manager, --token and --nodes are required\n");
    return false;
  }
  return true;
}

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

// One simulated node: its certificate, then its agent.
struct SimNode {
  std::string name;
  std::string node_id;
  pki::NodeCertificates certs;
  SimAgent* agent = nullptr;  // Owned by the fleet.
};

// Joins with the worker token, as SwarmNode::Join does.
absl::Status JoinNode(const Flags& f, SimNode* n) {
  absl::StatusOr<pki::PinnedManager> pinned =
      pki::DialManagerPinned(f.manager, f.token, absl::Seconds(10));
  if (!pinned.ok()) return pinned.status();
  absl::StatusOr<pki::KeyAndCsr> kc = pki::GenerateKeyAndCsr();
  if (!kc.ok()) return kc.status();
  auto ca = api::NodeCA::NewStub(pinned->channel);
  api::IssueNodeCertificateRequest ireq;
  ireq.set_csr(kc->csr_pem);
  ireq.set_token(f.token);
  api::IssueNodeCertificateResponse iresp;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(30)));
    grpc::Status s = ca->IssueNodeCertificate(&ctx, ireq, &iresp);
    if (!s.ok()) return FromGrpc(s, "IssueNodeCertificate");
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  api::NodeCertificateStatusResponse sresp;
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(absl::Seconds(10)));
    api::NodeCertificateStatusRequest sreq;
    sreq.set_node_id(iresp.node_id());
    grpc::Status s = ca->NodeCertificateStatus(&ctx, sreq, &sresp);
    if (!s.ok()) return FromGrpc(s, "NodeCertificateStatus");
    if (sresp.status().state() == api::IssuanceStatus::ISSUED) break;
    if (sresp.status().state() == api::IssuanceStatus::FAILED) {
      return absl::InternalError(
          absl::StrCat("the swarm's CA refused the certificate: ", sresp.status().err()));
    }
    if (absl::Now() >= give_up) {
      return absl::DeadlineExceededError("timed out waiting for the CA to issue a certificate");
    }
  }
  n->node_id = iresp.node_id();
  n->certs =
      pki::NodeCertificates{pinned->root_ca_pem, sresp.certificate().certificate(), kc->key_pem};
  return absl::OkStatus();
}

absl::Status StartNode(const Flags& f, SimFleet* fleet, SimNode* n) {
  // Built once: the agent calls it for every (re)connect.
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = pki::ChannelCredentials(
      pki::TlsIdentity{n->certs.cert_pem, n->certs.key_pem}, n->certs.root_ca_pem);
  if (!creds.ok()) return creds.status();
  SimAgentOptions o;
  o.managers.push_back(f.manager);
  o.credentials = [c = *creds] { return c; };
  o.channel_args = pki::ManagerChannelArguments();
  api::NodeDescription& d = o.description;
  d.set_hostname(n->name);
  d.mutable_platform()->set_os("linux");
  d.mutable_platform()->set_architecture("amd64");
  // A simulated node claims a fixed, ordinary size (not the host's).
  d.mutable_resources()->set_nano_cpus(int64_t{4} * 1000000000);
  d.mutable_resources()->set_memory_bytes(int64_t{16} << 30);
  d.mutable_engine()->set_engine_version("swarm_sim (simulated node) sim");
  n->agent = fleet->Add(std::move(o));
  if (n->agent == nullptr) return absl::CancelledError("swarm_sim is stopping");
  return absl::OkStatus();
}

std::string Totals(const SimFleet& fleet) {
  const SimAgentStats s = fleet.stats();
  return absl::StrFormat(
      "%d/%d connected; tasks %d (running %d); sessions opened %d, ended %d; heartbeats %d; "
      "assignment streams %d, messages %d; status calls %d (%d statuses, largest batch %d, "
      "%d failed)",
      fleet.connected(), fleet.size(), s.tasks, s.running, s.sessions_opened, s.stream_failures,
      s.heartbeats, s.assignment_streams, s.assignment_messages, s.status_calls, s.statuses_sent,
      s.largest_batch, s.status_failures);
}

int Run(const Flags& f) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  // Blocked in every thread started from here on (gRPC's included); sigwait below receives them.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  if (absl::StatusOr<pki::JoinToken> t = pki::ParseJoinToken(f.token); !t.ok()) {
    std::fprintf(stderr, "swarm_sim: %s\n", std::string(t.status().message()).c_str());
    return 2;
  }
  std::vector<SimNode> nodes(f.nodes);
  for (int i = 0; i < f.nodes; ++i) nodes[i].name = absl::StrFormat("%s-%04d", f.name_prefix, i);
  SimFleet fleet;

  const absl::Time start = absl::Now();
  const absl::Time join_deadline = start + f.join_timeout;
  std::atomic<int> next{0};
  absl::Mutex err_mu;
  std::string first_error;
  std::vector<std::thread> joiners;
  for (int t = 0; t < std::min(f.join_parallelism, f.nodes); ++t) {
    joiners.emplace_back([&] {
      for (int i = next++; i < f.nodes; i = next++) {
        absl::Status s = absl::UnavailableError("not tried");
        // A busy manager may refuse for a moment: retry until the deadline.
        for (int attempt = 0; absl::Now() < join_deadline; ++attempt) {
          s = JoinNode(f, &nodes[i]);
          if (s.ok() || s.code() == absl::StatusCode::kUnauthenticated ||
              s.code() == absl::StatusCode::kInvalidArgument) {
            break;
          }
          absl::SleepFor(absl::Milliseconds(std::min(100 << std::min(attempt, 4), 2000)));
        }
        if (s.ok()) s = StartNode(f, &fleet, &nodes[i]);
        if (!s.ok()) {
          absl::MutexLock l(&err_mu);
          if (first_error.empty()) {
            first_error = absl::StrCat(nodes[i].name, ": ", s.ToString());
          }
          next = f.nodes;  // stop the others
        }
      }
    });
  }
  for (std::thread& t : joiners) t.join();

  int rc = 0;
  if (!first_error.empty()) {
    std::fprintf(stderr, "swarm_sim: cannot join: %s\n", first_error.c_str());
    rc = 1;
  } else {
    std::fprintf(stderr, "swarm_sim: %d certificates issued in %.2fs; waiting for sessions\n",
                 f.nodes, absl::ToDoubleSeconds(absl::Now() - start));
    // Every session open (a SessionMessage received) = every node is READY to the dispatcher.
    bool all = false;
    bool signalled = false;
    while (absl::Now() < join_deadline) {
      if (fleet.connected() == static_cast<size_t>(f.nodes)) {
        all = true;
        break;
      }
      struct timespec ts = {0, 100 * 1000 * 1000};
      if (sigtimedwait(&set, nullptr, &ts) > 0) {  // asked to stop meanwhile
        signalled = true;
        break;
      }
    }
    if (all) {
      std::printf("swarm_sim: all %d simulated nodes joined in %.2fs\n", f.nodes,
                  absl::ToDoubleSeconds(absl::Now() - start));
      std::fflush(stdout);
      int sig = 0;
      for (;;) {
        const struct timespec ts = absl::ToTimespec(f.stats_interval);
        sig = sigtimedwait(&set, nullptr, &ts);
        if (sig > 0) break;
        std::fprintf(stderr, "swarm_sim: %s\n", Totals(fleet).c_str());
      }
      std::fprintf(stderr, "swarm_sim: signal %d: stopping %d simulated nodes\n", sig, f.nodes);
    } else if (!signalled) {
      std::fprintf(stderr, "swarm_sim: not every session opened within %s (%s)\n",
                   absl::FormatDuration(f.join_timeout).c_str(), Totals(fleet).c_str());
      rc = 1;
    }
  }
  std::fprintf(stderr, "swarm_sim: %s\n", Totals(fleet).c_str());
  if (!fleet.Stop(absl::Seconds(10))) rc = rc == 0 ? 1 : rc;
  std::fprintf(stderr, "swarm_sim: stopped\n");
  return rc;
}

}  // namespace
}  // namespace shoal::bench

int main(int argc, char** argv) {
  shoal::bench::Flags f;
  if (!shoal::bench::ParseFlags(argc, argv, &f)) {
    shoal::bench::Usage();
    return 2;
  }
  // Logs go to stderr: stdout carries the "joined" line only, and a reader that stops reading it
  // after that line must not block the agents' logging (and with it their callbacks).
  spdlog::set_default_logger(spdlog::stderr_color_mt("swarm_sim"));
  // Debian's absl checks every Mutex acquisition for lock-order cycles; with a thousand agents'
  // mutexes that bookkeeping costs more than the agents' own work (shoald turns it off too).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  spdlog::set_level(spdlog::level::warn);
  return shoal::bench::Run(f);
}
