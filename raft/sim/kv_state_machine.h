// The replicated key-value store the simulation runs on top of Raft.
//
// KvCommand is what clients propose (the payload of a NORMAL entry). Every command carries the
// issuing client's ID and a per-client sequence number; clients retry a command (same sequence
// number) on another member after a timeout, so the same command may be committed more than
// once. KvStateMachine applies a (client, seq) at most once and remembers each client's last
// result, so a retry that commits after the original returns the original's result — that is
// what keeps retried writes linearizable.
//
// Clients issue one command at a time, so remembering only the last sequence number per client
// is enough: anything older is a stale retry of a command the client already finished or gave up.
//
// Thread-safety: none; owned by one simulated member.
#ifndef SHOAL_RAFT_SIM_KV_STATE_MACHINE_H_
#define SHOAL_RAFT_SIM_KV_STATE_MACHINE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shoal::raft::sim {

struct KvCommand {
  enum class Kind { kPut, kGet, kCas };
  Kind kind = Kind::kPut;
  uint64_t client = 0;
  uint64_t seq = 0;
  std::string key;
  std::string value;                    // kPut, kCas: new value.
  std::optional<std::string> expected;  // kCas: nullopt = key must be absent.

  std::string Encode() const;
  static std::optional<KvCommand> Decode(absl::string_view data);
};

struct KvResult {
  std::optional<std::string> value;  // kGet: the value read.
  bool cas_succeeded = false;        // kCas.
};

class KvStateMachine {
 public:
  enum class Outcome {
    kApplied,    // First time: applied now.
    kDuplicate,  // The client's latest command again: not re-applied; original result returned.
    kStale,      // Older than the client's latest command: ignored, no result.
  };
  Outcome Apply(const KvCommand& cmd, KvResult* result);
  // For the simulation's self-test only: apply every command, retried or not.
  void set_dedupe(bool on) { dedupe_ = on; }

  std::optional<std::string> Get(const std::string& key) const;
  // Deterministic serialization (ordered maps): equal states give equal bytes.
  std::string Serialize() const;
  absl::Status Restore(absl::string_view data);
  size_t size() const { return data_.size(); }

 private:
  struct ClientRecord {
    uint64_t seq = 0;
    KvResult result;
  };
  std::map<std::string, std::string> data_;
  std::map<uint64_t, ClientRecord> clients_;
  bool dedupe_ = true;
};

// FNV-1a: a stable 64-bit hash for entries and snapshots in invariants and traces.
uint64_t StableHash(absl::string_view bytes, uint64_t seed = 0xcbf29ce484222325ULL);

}  // namespace shoal::raft::sim

#endif  // SHOAL_RAFT_SIM_KV_STATE_MACHINE_H_
