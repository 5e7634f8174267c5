#include "raft/sim/kv_state_machine.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace shoal::raft::sim {
namespace {

// Commands and snapshots are '\x1f'-separated fields; keys and values come from the simulation's
// own generators and never contain the separator. Optional strings get a '+' prefix, absent '-'.
constexpr char kSep = '\x1f';

std::string EncodeOptional(const std::optional<std::string>& v) {
  return v.has_value() ? absl::StrCat("+", *v) : "-";
}

std::optional<std::string> DecodeOptional(absl::string_view s) {
  if (!s.empty() && s[0] == '+') return std::string(s.substr(1));
  return std::nullopt;
}

}  // namespace

std::string KvCommand::Encode() const {
  const char* k = kind == Kind::kPut ? "P" : kind == Kind::kGet ? "G" : "C";
  return absl::StrCat(k, std::string(1, kSep), client, std::string(1, kSep), seq,
                      std::string(1, kSep), key, std::string(1, kSep), value, std::string(1, kSep),
                      EncodeOptional(expected));
}

std::optional<KvCommand> KvCommand::Decode(absl::string_view data) {
  std::vector<absl::string_view> f = absl::StrSplit(data, kSep);
  if (f.size() != 6 || f[0].size() != 1) return std::nullopt;
  KvCommand c;
  switch (f[0][0]) {
    case 'P':
      c.kind = Kind::kPut;
      break;
    case 'G':
      c.kind = Kind::kGet;
      break;
    case 'C':
      c.kind = Kind::kCas;
      break;
    default:
      return std::nullopt;
  }
  if (!absl::SimpleAtoi(f[1], &c.client) || !absl::SimpleAtoi(f[2], &c.seq)) return std::nullopt;
  c.key = std::string(f[3]);
  c.value = std::string(f[4]);
  c.expected = DecodeOptional(f[5]);
  return c;
}

KvStateMachine::Outcome KvStateMachine::Apply(const KvCommand& cmd, KvResult* result) {
  ClientRecord& rec = clients_[cmd.client];
  if (dedupe_ && cmd.seq < rec.seq) return Outcome::kStale;
  if (dedupe_ && cmd.seq == rec.seq) {
    *result = rec.result;
    return Outcome::kDuplicate;
  }
  KvResult r;
  switch (cmd.kind) {
    case KvCommand::Kind::kPut:
      data_[cmd.key] = cmd.value;
      break;
    case KvCommand::Kind::kGet:
      r.value = Get(cmd.key);
      break;
    case KvCommand::Kind::kCas:
      if (Get(cmd.key) == cmd.expected) {
        data_[cmd.key] = cmd.value;
        r.cas_succeeded = true;
      }
      break;
  }
  rec.seq = cmd.seq;
  rec.result = r;
  *result = r;
  return Outcome::kApplied;
}

std::optional<std::string> KvStateMachine::Get(const std::string& key) const {
  auto it = data_.find(key);
  if (it == data_.end()) return std::nullopt;
  return it->second;
}

std::string KvStateMachine::Serialize() const {
  std::string out = absl::StrCat(data_.size(), std::string(1, kSep), clients_.size());
  for (const auto& [k, v] : data_)
    absl::StrAppend(&out, std::string(1, kSep), k, std::string(1, kSep), v);
  for (const auto& [c, rec] : clients_) {
    absl::StrAppend(&out, std::string(1, kSep), c, std::string(1, kSep), rec.seq,
                    std::string(1, kSep), EncodeOptional(rec.result.value), std::string(1, kSep),
                    rec.result.cas_succeeded ? "1" : "0");
  }
  return out;
}

absl::Status KvStateMachine::Restore(absl::string_view data) {
  if (data.empty()) {  // The state before anything was applied.
    data_.clear();
    clients_.clear();
    return absl::OkStatus();
  }
  std::vector<absl::string_view> f = absl::StrSplit(data, kSep);
  size_t nd = 0, nc = 0;
  if (f.size() < 2 || !absl::SimpleAtoi(f[0], &nd) || !absl::SimpleAtoi(f[1], &nc) ||
      f.size() != 2 + 2 * nd + 4 * nc) {
    return absl::DataLossError("malformed KV snapshot");
  }
  std::map<std::string, std::string> d;
  std::map<uint64_t, ClientRecord> c;
  size_t i = 2;
  for (size_t n = 0; n < nd; ++n, i += 2) d[std::string(f[i])] = std::string(f[i + 1]);
  for (size_t n = 0; n < nc; ++n, i += 4) {
    uint64_t client = 0;
    ClientRecord rec;
    if (!absl::SimpleAtoi(f[i], &client) || !absl::SimpleAtoi(f[i + 1], &rec.seq)) {
      return absl::DataLossError("malformed KV snapshot client record");
    }
    rec.result.value = DecodeOptional(f[i + 2]);
    rec.result.cas_succeeded = f[i + 3] == "1";
    c[client] = rec;
  }
  data_ = std::move(d);
  clients_ = std::move(c);
  return absl::OkStatus();
}

uint64_t StableHash(absl::string_view bytes, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char ch : bytes) {
    h ^= ch;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace shoal::raft::sim
