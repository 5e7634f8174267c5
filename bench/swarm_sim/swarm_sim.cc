// swarm_sim: joins N SIMULATED nodes to a real swarm from one process (the way kubemark and
// SwarmKit's swarm-bench do), for scale benchmarks of the managers.
//
//   swarm_sim --manager HOST:PORT --token SWMTKN-... --nodes N --name-prefix P [--state-dir DIR]
//             [--join-parallelism 8] [--join-timeout 120s]
//
// Each simulated node is a real node to the managers: its own key and certificate (joined with
// the worker token as SwarmNode::Join does: pki::DialManagerPinned, NodeCA.IssueNodeCertificate,
// NodeCA.NodeCertificateStatus), its own dispatcher session (agent::Session, its own TLS
// connection) and its own agent::Worker (1 task thread) with a SimExecutor: tasks "run" as
// in-memory records (or a per-node state file under --state-dir/<name>/worker/) and the worker
// reports their real status. Nothing runs: these are simulated nodes, named P-0000, P-0001, ...
//
// Prints "swarm_sim: all N simulated nodes joined" on stdout once every session is open, then
// runs until SIGTERM or SIGINT, and then stops every worker and session and exits 0.
// Threads: about 7 per node (session 2, worker 4, sim executor 1); 250 nodes per process is fine.
#include <signal.h>
#include <sys/sysinfo.h>
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
#include "agent/exec/sim/sim_executor.h"
#include "agent/session.h"
#include "agent/worker.h"
#include "common/files.h"
#include "pki/certificate_store.h"
#include "pki/grpc_tls.h"
#include "pki/join_bootstrap.h"
#include "pki/join_token.h"
#include "pki/keys.h"
#include "proto/ca.grpc.pb.h"
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
};

void Usage() {
  std::fprintf(stderr,
               "usage: swarm_sim --manager HOST:PORT --token SWMTKN-... --nodes N "
               "--name-prefix P [--state-dir DIR] [--join-parallelism 8] "
               "[--join-timeout 120s]\n"
               "Joins N simulated nodes (sim executor, no containers) to a real swarm.\n");
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
    } else if (a == "--join-timeout") {
      if (!value(&v) || !absl::ParseDuration(v, &f->join_timeout)) {
        std::fprintf(stderr, "swarm_sim: --join-timeout needs a duration such as 120s\n");
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

// One simulated node: certificate, executor, session, worker.
struct SimNode {
  std::string name;
  std::string node_id;
  pki::NodeCertificates certs;
  std::unique_ptr<agent::exec::SimExecutor> executor;
  std::unique_ptr<agent::Session> session;
  std::unique_ptr<agent::Worker> worker;
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

absl::Status StartNode(const Flags& f, SimNode* n) {
  agent::exec::SimExecutorOptions so;
  // Timers wake the executor themselves; a slow poll keeps 250 idle executors cheap.
  so.poll_interval = absl::Milliseconds(500);
  std::string state_dir;
  if (!f.state_dir.empty()) {
    state_dir = absl::StrCat(f.state_dir, "/", n->name);
    if (absl::Status s = MakeDirectories(absl::StrCat(state_dir, "/worker"), 0700); !s.ok()) {
      return s;
    }
    so.state_file = absl::StrCat(state_dir, "/worker/sim.json");
  }
  absl::StatusOr<std::unique_ptr<agent::exec::SimExecutor>> e =
      agent::exec::SimExecutor::Create(so);
  if (!e.ok()) return e.status();
  n->executor = std::move(*e);

  agent::SessionOptions sess;
  sess.managers.push_back(f.manager);
  const pki::NodeCertificates certs = n->certs;
  sess.credentials = [certs]() -> std::shared_ptr<grpc::ChannelCredentials> {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> c =
        pki::ChannelCredentials(pki::TlsIdentity{certs.cert_pem, certs.key_pem}, certs.root_ca_pem);
    return c.ok() ? *c : nullptr;
  };
  api::NodeDescription d;
  d.set_hostname(n->name);
  d.mutable_platform()->set_os("linux");
  d.mutable_platform()->set_architecture("amd64");
  // A simulated node claims a fixed, ordinary size (not the host's).
  d.mutable_resources()->set_nano_cpus(int64_t{4} * 1000000000);
  d.mutable_resources()->set_memory_bytes(int64_t{16} << 30);
  *d.mutable_engine() = n->executor->Describe();
  d.mutable_engine()->set_engine_version(
      absl::StrCat("swarm_sim (simulated node) ", d.engine().engine_version()));
  sess.description = d;
  n->session = agent::Session::Start(std::move(sess), [](const api::SessionMessage&) {});
  if (n->session == nullptr) return absl::InternalError("cannot start the dispatcher session");

  agent::WorkerOptions wo;
  wo.state_dir = state_dir;
  wo.executor = n->executor.get();
  wo.threads = 1;
  wo.poll_interval = absl::Milliseconds(200);
  wo.connection = [s = n->session.get()] { return s->connection(); };
  absl::StatusOr<std::unique_ptr<agent::Worker>> w = agent::Worker::Start(std::move(wo));
  if (!w.ok()) return w.status();
  n->worker = std::move(*w);
  return absl::OkStatus();
}

int Run(const Flags& f) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  // Blocked in every thread started from here on; sigwait below receives them.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  if (absl::StatusOr<pki::JoinToken> t = pki::ParseJoinToken(f.token); !t.ok()) {
    std::fprintf(stderr, "swarm_sim: %s\n", std::string(t.status().message()).c_str());
    return 2;
  }
  std::vector<SimNode> nodes(f.nodes);
  for (int i = 0; i < f.nodes; ++i) nodes[i].name = absl::StrFormat("%s-%04d", f.name_prefix, i);

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
        if (s.ok()) s = StartNode(f, &nodes[i]);
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
    while (absl::Now() < join_deadline) {
      int connected = 0;
      for (const SimNode& n : nodes) connected += n.session->connected() ? 1 : 0;
      if (connected == f.nodes) {
        all = true;
        break;
      }
      struct timespec ts = {0, 100 * 1000 * 1000};
      if (sigtimedwait(&set, nullptr, &ts) > 0) break;  // asked to stop meanwhile
    }
    if (all) {
      std::printf("swarm_sim: all %d simulated nodes joined in %.2fs\n", f.nodes,
                  absl::ToDoubleSeconds(absl::Now() - start));
      std::fflush(stdout);
      int sig = 0;
      sigwait(&set, &sig);
      std::fprintf(stderr, "swarm_sim: signal %d: stopping %d simulated nodes\n", sig, f.nodes);
    } else {
      std::fprintf(stderr, "swarm_sim: not every session opened within %s\n",
                   absl::FormatDuration(f.join_timeout).c_str());
      rc = 1;
    }
  }
  // Workers first (they use the sessions), then sessions, then executors.
  for (SimNode& n : nodes) {
    if (n.worker != nullptr) n.worker->Stop();
  }
  for (SimNode& n : nodes) {
    if (n.session != nullptr) n.session->Stop();
  }
  for (SimNode& n : nodes) {
    n.worker.reset();
    n.session.reset();
    n.executor.reset();
  }
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
  spdlog::set_level(spdlog::level::warn);
  return shoal::bench::Run(f);
}
