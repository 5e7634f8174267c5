#include "agent/exec/containerd/oci_spec.h"

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace shoal::agent::exec::containerd {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxId = std::numeric_limits<int32_t>::max();
constexpr uint64_t kRlimInfinity = std::numeric_limits<uint64_t>::max();

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// ----- image config ---------------------------------------------------------------------------

absl::Status FieldError(absl::string_view field, absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("image config: field ", field, " must be ", want, "; the image is malformed"));
}

absl::Status GetString(const json& obj, const char* key, absl::string_view path, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return FieldError(absl::StrCat(path, key), "a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetStringArray(const json& obj, const char* key, absl::string_view path,
                            std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return FieldError(absl::StrCat(path, key), "an array of strings");
  for (const json& v : *it) {
    if (!v.is_string()) return FieldError(absl::StrCat(path, key), "an array of strings");
    out->push_back(v.get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status GetStringMap(const json& obj, const char* key, absl::string_view path,
                          std::map<std::string, std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return FieldError(absl::StrCat(path, key), "an object of strings");
  for (auto& [k, v] : it->items()) {
    if (!v.is_string()) return FieldError(absl::StrCat(path, key, ".", k), "a string");
    (*out)[k] = v.get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status GetKeys(const json& obj, const char* key, absl::string_view path,
                     std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return FieldError(absl::StrCat(path, key), "an object");
  for (auto& [k, v] : it->items()) out->push_back(k);
  std::sort(out->begin(), out->end());
  return absl::OkStatus();
}

absl::Status GetInt(const json& obj, const char* key, absl::string_view path, int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) return FieldError(absl::StrCat(path, key), "an integer");
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

// ----- paths ---------------------------------------------------------------------------------

bool IsAbsolute(absl::string_view p) { return !p.empty() && p[0] == '/'; }

int PathDepth(const std::string& clean) {
  if (clean == "/") return 1;
  return static_cast<int>(std::count(clean.begin(), clean.end(), '/')) + 1;
}

// A mount target: absolute, not "/", cleaned.
absl::StatusOr<std::string> MountTarget(const std::string& target, absl::string_view what) {
  if (target.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no target path"));
  }
  if (!IsAbsolute(target)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " target \"", target, "\" must be an absolute path"));
  }
  std::string clean = CleanPath(target);
  if (clean == "/") {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " target \"", target, "\" is the root: mount somewhere below /"));
  }
  return clean;
}

// ----- signals -------------------------------------------------------------------------------

const std::map<std::string, int>& SignalNames() {
  static const auto* names = new std::map<std::string, int>{
      {"ABRT", SIGABRT}, {"ALRM", SIGALRM}, {"BUS", SIGBUS},       {"CHLD", SIGCHLD},
      {"CLD", SIGCHLD},  {"CONT", SIGCONT}, {"FPE", SIGFPE},       {"HUP", SIGHUP},
      {"ILL", SIGILL},   {"INT", SIGINT},   {"IO", SIGIO},         {"IOT", SIGIOT},
      {"KILL", SIGKILL}, {"PIPE", SIGPIPE}, {"POLL", SIGPOLL},     {"PROF", SIGPROF},
      {"PWR", SIGPWR},   {"QUIT", SIGQUIT}, {"SEGV", SIGSEGV},     {"STKFLT", SIGSTKFLT},
      {"STOP", SIGSTOP}, {"SYS", SIGSYS},   {"TERM", SIGTERM},     {"TRAP", SIGTRAP},
      {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"VTALRM", SIGVTALRM}, {"WINCH", SIGWINCH},
      {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
  };
  return *names;
}

// The kernel's real-time signal range (glibc reserves the first two, but Docker names them from
// the kernel's 34 as well).
constexpr int kRtMin = 34;
constexpr int kRtMax = 64;

// ----- users ---------------------------------------------------------------------------------

struct PasswdEntry {
  std::string name;
  int64_t uid;
  int64_t gid;
  std::string home;
};

struct GroupEntry {
  std::string name;
  int64_t gid;
  std::vector<std::string> members;
};

std::vector<std::vector<std::string>> ColonLines(const std::string& text) {
  std::vector<std::vector<std::string>> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#' || line[0] == '+' || line[0] == '-') continue;
    out.push_back(absl::StrSplit(line, ':'));
  }
  return out;
}

std::vector<PasswdEntry> ParsePasswd(const std::string& text) {
  std::vector<PasswdEntry> out;
  for (const auto& f : ColonLines(text)) {
    PasswdEntry e;
    if (f.size() < 4 || !absl::SimpleAtoi(f[2], &e.uid) || !absl::SimpleAtoi(f[3], &e.gid)) {
      continue;  // Malformed lines match nothing.
    }
    e.name = f[0];
    e.home = f.size() > 5 && !f[5].empty() ? f[5] : "/";
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<GroupEntry> ParseGroup(const std::string& text) {
  std::vector<GroupEntry> out;
  for (const auto& f : ColonLines(text)) {
    GroupEntry e;
    if (f.size() < 3 || !absl::SimpleAtoi(f[2], &e.gid)) continue;
    e.name = f[0];
    if (f.size() > 3 && !f[3].empty()) {
      for (absl::string_view m : absl::StrSplit(f[3], ',', absl::SkipWhitespace())) {
        e.members.emplace_back(absl::StripAsciiWhitespace(m));
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status IdRange(int64_t id, absl::string_view what, absl::string_view spec) {
  if (id < 0 || id > kMaxId) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", spec, " is out of range (0-", kMaxId,
                                                   "): use a valid numeric ID or a name"));
  }
  return absl::OkStatus();
}

// ----- capabilities --------------------------------------------------------------------------

absl::StatusOr<std::vector<std::string>> NormalizeCaps(const std::vector<std::string>& caps,
                                                       absl::string_view field) {
  std::vector<std::string> out;
  for (const std::string& raw : caps) {
    std::string c = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(raw));
    if (c.empty()) continue;
    if (c != "ALL") {
      if (!absl::StartsWith(c, "CAP_")) c = absl::StrCat("CAP_", c);
      const auto& all = AllCapabilities();
      if (std::find(all.begin(), all.end(), c) == all.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown capability \"", raw, "\" in ", field,
                         ": use a name such as CAP_NET_ADMIN (or NET_ADMIN), or ALL"));
      }
    }
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, absl::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// ----- templates -----------------------------------------------------------------------------

constexpr char kPlaceholders[] =
    ".Service.ID, .Service.Name, .Service.Labels.<key>, index .Service.Labels \"<key>\", "
    ".Node.ID, .Node.Hostname, .Node.Platform.OS, .Node.Platform.Architecture, .Task.ID, "
    ".Task.Name, .Task.Slot";

bool IsIdentifier(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::string TaskSlot(const api::Task& task) {
  return task.slot() != 0 ? absl::StrCat(task.slot()) : task.node_id();
}

std::optional<std::string> Placeholder(absl::string_view inner, const api::Task& task,
                                       const api::Node& node) {
  const auto& labels = task.service_annotations().labels();
  auto label = [&labels](const std::string& key) {
    auto it = labels.find(key);
    return it == labels.end() ? std::string() : it->second;
  };
  if (inner == ".Service.ID") return task.service_id();
  if (inner == ".Service.Name") return task.service_annotations().name();
  if (absl::ConsumePrefix(&inner, ".Service.Labels.")) {
    if (!IsIdentifier(inner)) return std::nullopt;
    return label(std::string(inner));
  }
  if (absl::ConsumePrefix(&inner, "index ")) {
    inner = absl::StripLeadingAsciiWhitespace(inner);
    if (!absl::ConsumePrefix(&inner, ".Service.Labels")) return std::nullopt;
    inner = absl::StripAsciiWhitespace(inner);
    if (inner.size() < 2 || inner.front() != '"' || inner.back() != '"') return std::nullopt;
    inner = inner.substr(1, inner.size() - 2);
    if (absl::StrContains(inner, '"') || absl::StrContains(inner, '\\')) return std::nullopt;
    return label(std::string(inner));
  }
  if (inner == ".Node.ID") return node.id();
  if (inner == ".Node.Hostname") return node.description().hostname();
  if (inner == ".Node.Platform.OS") return node.description().platform().os();
  if (inner == ".Node.Platform.Architecture") {
    return node.description().platform().architecture();
  }
  if (inner == ".Task.ID") return task.id();
  if (inner == ".Task.Name") return TaskName(task);
  if (inner == ".Task.Slot") return TaskSlot(task);
  return std::nullopt;
}

// ----- mounts --------------------------------------------------------------------------------

json MountJson(const std::string& destination, const std::string& type, const std::string& source,
               std::vector<std::string> options) {
  return json{{"destination", destination},
              {"type", type},
              {"source", source},
              {"options", std::move(options)}};
}

std::vector<json> DefaultMounts(int64_t shm_bytes) {
  if (shm_bytes <= 0) shm_bytes = kDefaultShmBytes;
  const std::string shm_size = absl::StrCat("size=", shm_bytes / 1024, "k");
  return {
      MountJson("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      MountJson("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      MountJson("/dev/pts", "devpts", "devpts",
                {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      MountJson("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      MountJson("/sys/fs/cgroup", "cgroup", "cgroup",
                {"nosuid", "noexec", "nodev", "relatime", "ro"}),
      MountJson("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      MountJson("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", shm_size}),
  };
}

const char* PropagationName(api::Mount::BindOptions::Propagation p) {
  switch (p) {
    case api::Mount::BindOptions::PRIVATE:
      return "private";
    case api::Mount::BindOptions::RSHARED:
      return "rshared";
    case api::Mount::BindOptions::SHARED:
      return "shared";
    case api::Mount::BindOptions::RSLAVE:
      return "rslave";
    case api::Mount::BindOptions::SLAVE:
      return "slave";
    default:
      return "rprivate";
  }
}

bool ValidVolumeName(const std::string& name) {
  if (name.size() < 2 || !absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

absl::StatusOr<std::string> FileTargetPath(const std::string& name, absl::string_view base,
                                           absl::string_view what) {
  std::string path = IsAbsolute(name) ? name : absl::StrCat(base, "/", name);
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " target \"", name, "\" must not contain \"..\": name a file inside ", base));
    }
  }
  std::string clean = CleanPath(path);
  if (clean == "/" || clean == CleanPath(base)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " target \"", name, "\" must name a file, not a directory"));
  }
  return clean;
}

// ----- sysctls, ulimits ----------------------------------------------------------------------

bool NamespacedSysctl(const std::string& key) {
  static const std::set<std::string> kIpc = {
      "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
      "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
  return kIpc.count(key) > 0 || absl::StartsWith(key, "fs.mqueue.") ||
         absl::StartsWith(key, "net.");
}

const std::map<std::string, std::string>& RlimitNames() {
  static const auto* names = new std::map<std::string, std::string>{
      {"core", "RLIMIT_CORE"},         {"cpu", "RLIMIT_CPU"},
      {"data", "RLIMIT_DATA"},         {"fsize", "RLIMIT_FSIZE"},
      {"locks", "RLIMIT_LOCKS"},       {"memlock", "RLIMIT_MEMLOCK"},
      {"msgqueue", "RLIMIT_MSGQUEUE"}, {"nice", "RLIMIT_NICE"},
      {"nofile", "RLIMIT_NOFILE"},     {"nproc", "RLIMIT_NPROC"},
      {"rss", "RLIMIT_RSS"},           {"rtprio", "RLIMIT_RTPRIO"},
      {"rttime", "RLIMIT_RTTIME"},     {"sigpending", "RLIMIT_SIGPENDING"},
      {"stack", "RLIMIT_STACK"},
  };
  return *names;
}

uint64_t RlimitValue(int64_t v) { return v < 0 ? kRlimInfinity : static_cast<uint64_t>(v); }

absl::StatusOr<json> Rlimits(const api::ContainerSpec& spec, uint64_t default_nofile) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> limits;  // type → soft, hard
  if (default_nofile > 0) limits["RLIMIT_NOFILE"] = {default_nofile, default_nofile};
  for (const auto& u : spec.ulimits()) {
    const std::string name = absl::AsciiStrToLower(u.name());
    auto it = RlimitNames().find(name);
    if (it == RlimitNames().end()) {
      std::vector<std::string> known;
      for (const auto& [k, v] : RlimitNames()) known.push_back(k);
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown ulimit \"", u.name(), "\": use one of ", absl::StrJoin(known, ", ")));
    }
    const uint64_t soft = RlimitValue(u.soft());
    const uint64_t hard = RlimitValue(u.hard());
    if (soft > hard) {
      return absl::InvalidArgumentError(absl::StrCat("ulimit ", name, ": soft limit ", u.soft(),
                                                     " is above the hard limit ", u.hard(),
                                                     " (-1 = unlimited): lower it"));
    }
    limits[it->second] = {soft, hard};
  }
  json out = json::array();
  for (const auto& [type, sh] : limits) {
    out.push_back(json{{"type", type}, {"soft", sh.first}, {"hard", sh.second}});
  }
  return out;
}

json DeviceRule(const char* type, int64_t major, int64_t minor, const char* access) {
  json rule = {{"allow", true}, {"type", type}, {"access", access}};
  if (major >= 0) rule["major"] = major;
  if (minor >= 0) rule["minor"] = minor;
  return rule;
}

json DeviceRules() {
  return json::array({
      json{{"allow", false}, {"access", "rwm"}},
      DeviceRule("c", -1, -1, "m"),     // mknod of any character device
      DeviceRule("b", -1, -1, "m"),     // and of any block device
      DeviceRule("c", 1, 3, "rwm"),     // /dev/null
      DeviceRule("c", 1, 5, "rwm"),     // /dev/zero
      DeviceRule("c", 1, 7, "rwm"),     // /dev/full
      DeviceRule("c", 1, 8, "rwm"),     // /dev/random
      DeviceRule("c", 1, 9, "rwm"),     // /dev/urandom
      DeviceRule("c", 5, 0, "rwm"),     // /dev/tty
      DeviceRule("c", 5, 1, "rwm"),     // /dev/console
      DeviceRule("c", 5, 2, "rwm"),     // /dev/ptmx
      DeviceRule("c", 136, -1, "rwm"),  // /dev/pts/*
      DeviceRule("c", 10, 200, "rwm"),  // /dev/net/tun
  });
}

absl::StatusOr<json> Resources(const api::TaskSpec& ts) {
  json res = {{"devices", DeviceRules()}};
  if (!ts.has_resources()) return res;
  const api::ResourceRequirements& r = ts.resources();
  const int64_t mem = r.limits().memory_bytes();
  const int64_t reservation = r.reservations().memory_bytes();
  json memory = json::object();
  if (mem < 0 || reservation < 0 || r.limits().nano_cpus() < 0) {
    return absl::InvalidArgumentError("resource limits and reservations must not be negative");
  }
  if (mem > 0) {
    if (mem < kMinMemoryBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "memory limit ", mem, " bytes is below the minimum of 6 MiB: raise --limit-memory"));
    }
    memory["limit"] = mem;
  }
  if (reservation > 0) {
    if (mem > 0 && reservation > mem) {
      return absl::InvalidArgumentError(
          absl::StrCat("memory reservation ", reservation, " is above the memory limit ", mem,
                       ": lower --reserve-memory or raise --limit-memory"));
    }
    memory["reservation"] = reservation;
  }
  if (!memory.empty()) res["memory"] = memory;
  if (r.limits().nano_cpus() > 0) {
    const int64_t quota = r.limits().nano_cpus() * kCpuPeriodUs / 1000000000;
    if (quota < 1000) {
      return absl::InvalidArgumentError(
          absl::StrCat("CPU limit ", r.limits().nano_cpus(),
                       " nano-CPUs is below the minimum of 0.01 CPU: raise --limit-cpu"));
    }
    res["cpu"] = json{{"quota", quota}, {"period", kCpuPeriodUs}};
  }
  if (r.pids_limit() > 0) res["pids"] = json{{"limit", r.pids_limit()}};
  return res;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string CleanPath(absl::string_view path) {
  const bool absolute = IsAbsolute(path);
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (p == ".") continue;
    if (p == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!absolute) {
        parts.emplace_back("..");
      }
      continue;
    }
    parts.emplace_back(p);
  }
  std::string out = absl::StrJoin(parts, "/");
  if (absolute) return absl::StrCat("/", out);
  return out.empty() ? "." : out;
}

absl::StatusOr<ImageConfig> ParseImageConfig(const std::string& text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return absl::InvalidArgumentError("image config is not valid JSON; the image is malformed");
  }
  if (!doc.is_object()) return FieldError("(top level)", "an object");
  ImageConfig out;
  if (absl::Status s = GetString(doc, "os", "", &out.os); !s.ok()) return s;
  if (absl::Status s = GetString(doc, "architecture", "", &out.architecture); !s.ok()) return s;
  auto it = doc.find("config");
  if (it == doc.end() || it->is_null()) return out;
  if (!it->is_object()) return FieldError("config", "an object");
  const json& c = *it;
  const std::string p = "config.";
  absl::Status s;
  if (!(s = GetStringArray(c, "Entrypoint", p, &out.entrypoint)).ok()) return s;
  if (!(s = GetStringArray(c, "Cmd", p, &out.cmd)).ok()) return s;
  if (!(s = GetStringArray(c, "Env", p, &out.env)).ok()) return s;
  if (!(s = GetString(c, "User", p, &out.user)).ok()) return s;
  if (!(s = GetString(c, "WorkingDir", p, &out.working_dir)).ok()) return s;
  if (!(s = GetStringMap(c, "Labels", p, &out.labels)).ok()) return s;
  if (!(s = GetString(c, "StopSignal", p, &out.stop_signal)).ok()) return s;
  if (!(s = GetStringArray(c, "Shell", p, &out.shell)).ok()) return s;
  if (!(s = GetKeys(c, "ExposedPorts", p, &out.exposed_ports)).ok()) return s;
  if (!(s = GetKeys(c, "Volumes", p, &out.volumes)).ok()) return s;
  auto hc = c.find("Healthcheck");
  if (hc != c.end() && !hc->is_null()) {
    if (!hc->is_object()) return FieldError("config.Healthcheck", "an object");
    const std::string hp = "config.Healthcheck.";
    ImageHealthcheck h;
    int64_t interval = 0, timeout = 0, start_period = 0, start_interval = 0, retries = 0;
    if (!(s = GetStringArray(*hc, "Test", hp, &h.test)).ok()) return s;
    if (!(s = GetInt(*hc, "Interval", hp, &interval)).ok()) return s;
    if (!(s = GetInt(*hc, "Timeout", hp, &timeout)).ok()) return s;
    if (!(s = GetInt(*hc, "StartPeriod", hp, &start_period)).ok()) return s;
    if (!(s = GetInt(*hc, "StartInterval", hp, &start_interval)).ok()) return s;
    if (!(s = GetInt(*hc, "Retries", hp, &retries)).ok()) return s;
    h.interval = absl::Nanoseconds(interval);
    h.timeout = absl::Nanoseconds(timeout);
    h.start_period = absl::Nanoseconds(start_period);
    h.start_interval = absl::Nanoseconds(start_interval);
    h.retries = static_cast<int>(std::clamp<int64_t>(retries, 0, 1 << 30));
    out.healthcheck = std::move(h);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ProcessArgs(const api::ContainerSpec& spec,
                                                     const ImageConfig& image) {
  std::vector<std::string> args;
  if (spec.command_size() > 0) {
    args.assign(spec.command().begin(), spec.command().end());
    // Docker drops the image's CMD when the entrypoint is overridden.
    args.insert(args.end(), spec.args().begin(), spec.args().end());
  } else {
    args = image.entrypoint;
    if (spec.args_size() > 0) {
      args.insert(args.end(), spec.args().begin(), spec.args().end());
    } else {
      args.insert(args.end(), image.cmd.begin(), image.cmd.end());
    }
  }
  if (args.empty()) {
    return absl::InvalidArgumentError(
        "no command: the image has no ENTRYPOINT or CMD and the service sets none; give the "
        "service a command (shoal service create IMAGE COMMAND...)");
  }
  return args;
}

void MergeEnv(std::vector<std::string>& env, const std::vector<std::string>& overrides) {
  for (const std::string& e : overrides) {
    const size_t eq = e.find('=');
    const std::string key = e.substr(0, eq);
    if (key.empty()) continue;
    auto same_key = [&key](const std::string& existing) {
      return existing.compare(0, key.size(), key) == 0 &&
             (existing.size() == key.size() || existing[key.size()] == '=');
    };
    auto it = std::find_if(env.begin(), env.end(), same_key);
    if (eq == std::string::npos) {
      env.erase(std::remove_if(env.begin(), env.end(), same_key), env.end());
    } else if (it != env.end()) {
      *it = e;
    } else {
      env.push_back(e);
    }
  }
}

std::vector<std::string> ProcessEnv(const api::Task& task, const ImageConfig& image,
                                    const std::string& hostname,
                                    const std::vector<std::string>& extra_env) {
  const api::ContainerSpec& spec = task.spec().container_spec();
  std::vector<std::string> env = {absl::StrCat("PATH=", kDefaultPathEnv),
                                  absl::StrCat("HOSTNAME=", hostname)};
  if (spec.tty()) env.push_back("TERM=xterm");
  MergeEnv(env, image.env);
  MergeEnv(env, std::vector<std::string>(spec.env().begin(), spec.env().end()));
  // SwarmKit's DOCKER_RESOURCE_<KIND>=v1,v2 for the generic resources the scheduler assigned.
  std::map<std::string, std::vector<std::string>> generic;
  for (const auto& g : task.assigned_generic_resources()) {
    if (g.has_named()) {
      generic[absl::AsciiStrToUpper(g.named().kind())].push_back(g.named().value());
    } else if (g.has_discrete()) {
      generic[absl::AsciiStrToUpper(g.discrete().kind())].push_back(
          absl::StrCat(g.discrete().value()));
    }
  }
  std::vector<std::string> generic_env;
  for (const auto& [kind, values] : generic) {
    generic_env.push_back(absl::StrCat("DOCKER_RESOURCE_", kind, "=", absl::StrJoin(values, ",")));
  }
  MergeEnv(env, generic_env);
  MergeEnv(env, extra_env);
  return env;
}

absl::StatusOr<ResolvedUser> ResolveUser(const std::string& user_spec,
                                         const std::vector<std::string>& groups,
                                         const std::string& etc_passwd,
                                         const std::string& etc_group) {
  ResolvedUser user;
  std::vector<std::string> parts = absl::StrSplit(user_spec, ':');
  const std::string user_arg = parts.empty() ? "" : parts[0];
  const std::string group_arg = parts.size() > 1 ? parts[1] : "";
  int64_t uid_num = 0, gid_num = 0;
  const bool uid_numeric = absl::SimpleAtoi(user_arg, &uid_num);
  const bool gid_numeric = absl::SimpleAtoi(group_arg, &gid_num);

  const std::vector<PasswdEntry> passwd = ParsePasswd(etc_passwd);
  const PasswdEntry* match = nullptr;
  for (const PasswdEntry& e : passwd) {
    const bool hit = user_arg.empty() ? e.uid == 0
                     : uid_numeric    ? e.uid == uid_num
                                      : e.name == user_arg;
    if (hit) {
      match = &e;
      break;
    }
  }
  if (match != nullptr) {
    if (absl::Status s = IdRange(match->uid, "uid of user", match->name); !s.ok()) return s;
    if (absl::Status s = IdRange(match->gid, "gid of user", match->name); !s.ok()) return s;
    user.uid = static_cast<uint32_t>(match->uid);
    user.gid = static_cast<uint32_t>(match->gid);
    user.home = match->home;
  } else if (!user_arg.empty()) {
    if (!uid_numeric) {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to find user ", user_arg,
                       ": no matching entries in passwd file; use a user the image's "
                       "/etc/passwd defines, or a numeric uid[:gid]"));
    }
    if (absl::Status s = IdRange(uid_num, "uid", user_arg); !s.ok()) return s;
    user.uid = static_cast<uint32_t>(uid_num);
  }

  const std::vector<GroupEntry> group_file = ParseGroup(etc_group);
  if (!group_arg.empty()) {
    const GroupEntry* g = nullptr;
    for (const GroupEntry& e : group_file) {
      if (gid_numeric ? e.gid == gid_num : e.name == group_arg) {
        g = &e;
        break;
      }
    }
    if (g != nullptr) {
      if (absl::Status s = IdRange(g->gid, "gid of group", g->name); !s.ok()) return s;
      user.gid = static_cast<uint32_t>(g->gid);
    } else {
      if (!gid_numeric) {
        return absl::InvalidArgumentError(
            absl::StrCat("unable to find group ", group_arg,
                         ": no matching entries in group file; use a group the image's "
                         "/etc/group defines, or a numeric gid"));
      }
      if (absl::Status s = IdRange(gid_num, "gid", group_arg); !s.ok()) return s;
      user.gid = static_cast<uint32_t>(gid_num);
    }
  } else if (match != nullptr) {
    // Supplementary groups only in the implicit form, as runc.
    for (const GroupEntry& e : group_file) {
      if (Contains(e.members, match->name) && e.gid >= 0 && e.gid <= kMaxId) {
        user.additional_gids.push_back(static_cast<uint32_t>(e.gid));
      }
    }
  }

  for (const std::string& name : groups) {
    int64_t gid = 0;
    const bool numeric = absl::SimpleAtoi(name, &gid);
    const GroupEntry* g = nullptr;
    for (const GroupEntry& e : group_file) {
      if (e.name == name || (numeric && e.gid == gid)) {
        g = &e;
        break;
      }
    }
    if (g != nullptr) {
      gid = g->gid;
    } else if (!numeric) {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to find group ", name,
                       ": no matching entries in group file (from the service's groups); use a "
                       "group the image's /etc/group defines, or a numeric gid"));
    }
    if (absl::Status s = IdRange(gid, "supplementary group", name); !s.ok()) return s;
    user.additional_gids.push_back(static_cast<uint32_t>(gid));
  }
  return user;
}

const std::vector<std::string>& AllCapabilities() {
  static const auto* caps = new std::vector<std::string>{
      "CAP_CHOWN",
      "CAP_DAC_OVERRIDE",
      "CAP_DAC_READ_SEARCH",
      "CAP_FOWNER",
      "CAP_FSETID",
      "CAP_KILL",
      "CAP_SETGID",
      "CAP_SETUID",
      "CAP_SETPCAP",
      "CAP_LINUX_IMMUTABLE",
      "CAP_NET_BIND_SERVICE",
      "CAP_NET_BROADCAST",
      "CAP_NET_ADMIN",
      "CAP_NET_RAW",
      "CAP_IPC_LOCK",
      "CAP_IPC_OWNER",
      "CAP_SYS_MODULE",
      "CAP_SYS_RAWIO",
      "CAP_SYS_CHROOT",
      "CAP_SYS_PTRACE",
      "CAP_SYS_PACCT",
      "CAP_SYS_ADMIN",
      "CAP_SYS_BOOT",
      "CAP_SYS_NICE",
      "CAP_SYS_RESOURCE",
      "CAP_SYS_TIME",
      "CAP_SYS_TTY_CONFIG",
      "CAP_MKNOD",
      "CAP_LEASE",
      "CAP_AUDIT_WRITE",
      "CAP_AUDIT_CONTROL",
      "CAP_SETFCAP",
      "CAP_MAC_OVERRIDE",
      "CAP_MAC_ADMIN",
      "CAP_SYSLOG",
      "CAP_WAKE_ALARM",
      "CAP_BLOCK_SUSPEND",
      "CAP_AUDIT_READ",
      "CAP_PERFMON",
      "CAP_BPF",
      "CAP_CHECKPOINT_RESTORE",
  };
  return *caps;
}

const std::vector<std::string>& DefaultCapabilities() {
  static const auto* caps = new std::vector<std::string>{
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE",
  };
  return *caps;
}

absl::StatusOr<std::vector<std::string>> EffectiveCapabilities(
    const std::vector<std::string>& add, const std::vector<std::string>& drop) {
  auto adds = NormalizeCaps(add, "capability_add");
  if (!adds.ok()) return adds.status();
  auto drops = NormalizeCaps(drop, "capability_drop");
  if (!drops.ok()) return drops.status();
  std::vector<std::string> caps;
  if (Contains(*adds, "ALL")) {
    for (const std::string& c : AllCapabilities()) {
      if (!Contains(*drops, c)) caps.push_back(c);
    }
  } else if (Contains(*drops, "ALL")) {
    caps = *adds;
  } else {
    for (const std::string& c : DefaultCapabilities()) {
      if (!Contains(*drops, c)) caps.push_back(c);
    }
    for (const std::string& c : *adds) {
      if (!Contains(caps, c)) caps.push_back(c);
    }
  }
  return caps;
}

absl::StatusOr<int> ParseSignal(const std::string& raw) {
  const std::string name = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(raw));
  auto invalid = [&raw]() {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid signal \"", raw,
                     "\": use a name such as SIGTERM, TERM or SIGRTMIN+3, or a number 1-64"));
  };
  int num = 0;
  if (absl::SimpleAtoi(name, &num)) {
    if (num < 1 || num > kRtMax) return invalid();
    return num;
  }
  absl::string_view n = name;
  absl::ConsumePrefix(&n, "SIG");
  auto it = SignalNames().find(std::string(n));
  if (it != SignalNames().end()) return it->second;
  int offset = 0;
  if (n == "RTMIN") return kRtMin;
  if (n == "RTMAX") return kRtMax;
  if (absl::ConsumePrefix(&n, "RTMIN+") && absl::SimpleAtoi(n, &offset) && offset >= 0 &&
      kRtMin + offset <= kRtMax) {
    return kRtMin + offset;
  }
  if (absl::ConsumePrefix(&n, "RTMAX-") && absl::SimpleAtoi(n, &offset) && offset >= 0 &&
      kRtMax - offset >= kRtMin) {
    return kRtMax - offset;
  }
  return invalid();
}

absl::StatusOr<int> StopSignalFor(const api::ContainerSpec& spec, const ImageConfig& image) {
  if (!spec.stop_signal().empty()) return ParseSignal(spec.stop_signal());
  if (!image.stop_signal.empty()) return ParseSignal(image.stop_signal);
  return SIGTERM;
}

absl::Duration StopGrace(const api::ContainerSpec& spec) {
  if (!spec.has_stop_grace_period()) return kDefaultStopGrace;
  return std::max(FromProto(spec.stop_grace_period()), absl::ZeroDuration());
}

absl::StatusOr<std::optional<Healthcheck>> EffectiveHealthcheck(const api::ContainerSpec& spec,
                                                                const ImageConfig& image) {
  const ImageHealthcheck img = image.healthcheck.value_or(ImageHealthcheck{});
  const api::HealthConfig& hc = spec.healthcheck();
  std::vector<std::string> test(hc.test().begin(), hc.test().end());
  if (test.empty()) test = img.test;
  if (test.empty() || test[0] == "NONE") return std::optional<Healthcheck>();

  auto pick = [](const google::protobuf::Duration& mine, bool has, absl::Duration theirs,
                 absl::Duration fallback) {
    if (has && FromProto(mine) > absl::ZeroDuration()) return FromProto(mine);
    if (theirs > absl::ZeroDuration()) return theirs;
    return fallback;
  };
  Healthcheck out;
  out.interval = pick(hc.interval(), hc.has_interval(), img.interval, absl::Seconds(30));
  out.timeout = pick(hc.timeout(), hc.has_timeout(), img.timeout, absl::Seconds(30));
  out.start_period =
      pick(hc.start_period(), hc.has_start_period(), img.start_period, absl::ZeroDuration());
  out.start_interval =
      pick(hc.start_interval(), hc.has_start_interval(), img.start_interval, absl::Seconds(5));
  out.retries = hc.retries() > 0 ? hc.retries() : img.retries > 0 ? img.retries : 3;

  if (test[0] == "CMD") {
    out.args.assign(test.begin() + 1, test.end());
  } else if (test[0] == "CMD-SHELL") {
    out.args = image.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : image.shell;
    out.args.insert(out.args.end(), test.begin() + 1, test.end());
    if (test.size() == 1) out.args.clear();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown health check type \"", test[0],
                     "\": the test must start with NONE, CMD or CMD-SHELL"));
  }
  if (out.args.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("health check ", test[0], " has no command: give it one, or use NONE"));
  }
  return std::optional<Healthcheck>(std::move(out));
}

std::string TaskName(const api::Task& task) {
  if (!task.annotations().name().empty()) return task.annotations().name();
  return absl::StrCat(task.service_annotations().name(), ".", TaskSlot(task), ".", task.id());
}

absl::StatusOr<std::string> ExpandTemplate(absl::string_view tmpl, const api::Task& task,
                                           const api::Node& node) {
  std::string out;
  absl::string_view rest = tmpl;
  while (true) {
    const size_t open = rest.find("{{");
    if (open == absl::string_view::npos) {
      absl::StrAppend(&out, rest);
      return out;
    }
    absl::StrAppend(&out, rest.substr(0, open));
    const size_t close = rest.find("}}", open + 2);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("unclosed \"{{\" in template \"", tmpl, "\": close it with \"}}\""));
    }
    const absl::string_view inner =
        absl::StripAsciiWhitespace(rest.substr(open + 2, close - open - 2));
    std::optional<std::string> value = Placeholder(inner, task, node);
    if (!value.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown template placeholder {{", inner,
                                                     "}} in \"", tmpl, "\": use one of ",
                                                     kPlaceholders));
    }
    absl::StrAppend(&out, *value);
    rest = rest.substr(close + 2);
  }
}

absl::StatusOr<api::ContainerSpec> ExpandContainerSpec(const api::Task& task,
                                                       const api::Node& node) {
  api::ContainerSpec spec = task.spec().container_spec();
  auto expand = [&](std::string* field) -> absl::Status {
    auto v = ExpandTemplate(*field, task, node);
    if (!v.ok()) return v.status();
    *field = *std::move(v);
    return absl::OkStatus();
  };
  if (absl::Status s = expand(spec.mutable_hostname()); !s.ok()) return s;
  for (std::string& e : *spec.mutable_env()) {
    if (absl::Status s = expand(&e); !s.ok()) return s;
  }
  for (api::Mount& m : *spec.mutable_mounts()) {
    if (absl::Status s = expand(m.mutable_source()); !s.ok()) return s;
    if (absl::Status s = expand(m.mutable_target()); !s.ok()) return s;
  }
  return spec;
}

absl::StatusOr<std::vector<VolumeUse>> PlanVolumes(const api::Task& task,
                                                   const std::string& state_dir_volumes) {
  std::vector<VolumeUse> out;
  const auto& mounts = task.spec().container_spec().mounts();
  for (int i = 0; i < mounts.size(); ++i) {
    const api::Mount& m = mounts[i];
    if (m.type() != api::Mount::VOLUME) continue;
    auto target = MountTarget(m.target(), "volume mount");
    if (!target.ok()) return target.status();
    const api::Mount::VolumeOptions& vo = m.volume_options();
    const std::string& driver = vo.driver_config().name();
    if (!driver.empty() && driver != "local") {
      return absl::InvalidArgumentError(
          absl::StrCat("volume driver \"", driver, "\" (mount at ", *target,
                       ") is not supported: only local volumes are; drop the driver option"));
    }
    if (!vo.driver_config().options().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "local volume driver options (mount at ", *target,
          ") are not supported: local volumes are plain directories; drop the options"));
    }
    if (state_dir_volumes.empty()) {
      return absl::FailedPreconditionError(
          "this node has no volume directory configured; the task's volume mounts cannot be "
          "placed");
    }
    VolumeUse v;
    v.anonymous = m.source().empty();
    v.name = v.anonymous ? absl::StrCat(task.id(), "-anon-", i) : m.source();
    if (!ValidVolumeName(v.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid volume name \"", v.name,
                       "\": use at least two of [a-zA-Z0-9_.-], starting with a letter or digit "
                       "(a path makes it a bind mount: type=bind)"));
    }
    v.host_path = absl::StrCat(CleanPath(state_dir_volumes), "/", v.name, "/_data");
    v.target = *target;
    v.readonly = m.readonly();
    v.nocopy = vo.nocopy();
    v.labels.insert(vo.labels().begin(), vo.labels().end());
    out.push_back(std::move(v));
  }
  return out;
}

std::string SecretHostPath(const std::string& secrets_dir, const api::SecretReference& ref) {
  return absl::StrCat(CleanPath(secrets_dir), "/secret-", ref.secret_id());
}

std::string ConfigHostPath(const std::string& secrets_dir, const api::ConfigReference& ref) {
  return absl::StrCat(CleanPath(secrets_dir), "/config-", ref.config_id());
}

absl::StatusOr<std::string> SecretTarget(const api::SecretReference& ref) {
  const std::string& name = ref.file().name().empty() ? ref.secret_name() : ref.file().name();
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("secret ", ref.secret_id(), " has neither a name nor a target file"));
  }
  return FileTargetPath(name, kSecretsContainerDir, "secret");
}

absl::StatusOr<std::string> ConfigTarget(const api::ConfigReference& ref) {
  const std::string& name = ref.file().name().empty() ? ref.config_name() : ref.file().name();
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", ref.config_id(), " has neither a name nor a target file"));
  }
  return FileTargetPath(name, "/", "config");
}

std::map<std::string, std::string> ContainerLabels(const api::Task& task,
                                                   const ImageConfig& image) {
  std::map<std::string, std::string> labels = image.labels;
  for (const auto& [k, v] : task.spec().container_spec().labels()) labels[k] = v;
  labels["com.docker.swarm.node.id"] = task.node_id();
  labels["com.docker.swarm.service.id"] = task.service_id();
  labels["com.docker.swarm.service.name"] = task.service_annotations().name();
  labels["com.docker.swarm.task"] = "";
  labels["com.docker.swarm.task.id"] = task.id();
  labels["com.docker.swarm.task.name"] = TaskName(task);
  return labels;
}

absl::StatusOr<nlohmann::json> BuildOciSpecJson(const OciSpecInputs& in) {
  const api::Task& task = in.task;
  if (task.id().empty()) return absl::InvalidArgumentError("the task has no ID");
  if (!task.spec().has_container_spec()) {
    return absl::InvalidArgumentError(
        absl::StrCat("task ", task.id(), " has no container spec: nothing to run"));
  }
  const api::ContainerSpec& spec = task.spec().container_spec();
  const ImageConfig& image = in.image;

  // process
  auto args = ProcessArgs(spec, image);
  if (!args.ok()) return args.status();
  const bool init = spec.has_init() ? spec.init().value() : in.default_init;
  if (init) {
    if (in.init_path.empty() || !IsAbsolute(in.init_path)) {
      return absl::FailedPreconditionError(
          "the task asks for an init (--init) but this node has no init binary configured: "
          "install a static init such as Debian's tini (/usr/bin/tini-static) and point the "
          "executor at it, or run the service without --init");
    }
    args->insert(args->begin(), {kInitContainerPath, "--"});
  }
  const std::string hostname = !in.hostname.empty()
                                   ? in.hostname
                                   : task.id().substr(0, std::min<size_t>(12, task.id().size()));
  const std::string& user_spec = spec.user().empty() ? image.user : spec.user();
  auto user = ResolveUser(user_spec, {spec.groups().begin(), spec.groups().end()}, in.etc_passwd,
                          in.etc_group);
  if (!user.ok()) return user.status();
  std::string cwd = !spec.dir().empty() ? spec.dir() : image.working_dir;
  if (cwd.empty()) cwd = "/";
  if (!IsAbsolute(cwd)) {
    return absl::InvalidArgumentError(
        absl::StrCat("working directory \"", cwd, "\" must be an absolute path"));
  }
  cwd = CleanPath(cwd);
  auto caps = EffectiveCapabilities({spec.capability_add().begin(), spec.capability_add().end()},
                                    {spec.capability_drop().begin(), spec.capability_drop().end()});
  if (!caps.ok()) return caps.status();
  auto rlimits = Rlimits(spec, in.default_nofile);
  if (!rlimits.ok()) return rlimits.status();

  json process = {
      {"terminal", spec.tty()},
      {"user", {{"uid", user->uid}, {"gid", user->gid}}},
      {"args", *args},
      {"env", ProcessEnv(task, image, hostname, in.extra_env)},
      {"cwd", cwd},
      {"capabilities", {{"bounding", *caps}, {"effective", *caps}, {"permitted", *caps}}},
      {"rlimits", *rlimits},
      {"noNewPrivileges", true},
  };
  if (!user->additional_gids.empty()) {
    process["user"]["additionalGids"] = user->additional_gids;
  }

  // mounts: the task's own, sorted by depth after the defaults they do not replace.
  std::vector<json> user_mounts;
  std::set<std::string> targets;
  auto add_mount = [&](json m) -> absl::Status {
    const std::string dest = m["destination"].get<std::string>();
    if (!targets.insert(dest).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate mount point ", dest,
                       ": two mounts, secrets or configs of the task use it; give each its own"));
    }
    user_mounts.push_back(std::move(m));
    return absl::OkStatus();
  };
  std::string rootfs_propagation;
  auto volumes = PlanVolumes(task, in.state_dir_volumes);
  if (!volumes.ok()) return volumes.status();
  size_t next_volume = 0;
  for (const api::Mount& m : spec.mounts()) {
    switch (m.type()) {
      case api::Mount::BIND: {
        auto target = MountTarget(m.target(), "bind mount");
        if (!target.ok()) return target.status();
        if (m.source().empty() || !IsAbsolute(m.source())) {
          return absl::InvalidArgumentError(absl::StrCat("invalid mount: bind source path \"",
                                                         m.source(), "\" (for ", *target,
                                                         ") must be an absolute path on the node"));
        }
        const auto prop = m.bind_options().propagation();
        std::vector<std::string> options = {m.bind_options().non_recursive() ? "bind" : "rbind",
                                            PropagationName(prop)};
        if (m.readonly()) options.push_back("ro");
        if (prop == api::Mount::BindOptions::SHARED || prop == api::Mount::BindOptions::RSHARED) {
          rootfs_propagation = "shared";
        } else if ((prop == api::Mount::BindOptions::SLAVE ||
                    prop == api::Mount::BindOptions::RSLAVE) &&
                   rootfs_propagation != "shared") {
          rootfs_propagation = "rslave";
        }
        absl::Status s =
            add_mount(MountJson(*target, "bind", CleanPath(m.source()), std::move(options)));
        if (!s.ok()) return s;
        break;
      }
      case api::Mount::VOLUME: {
        const VolumeUse& v = (*volumes)[next_volume++];
        std::vector<std::string> options = {"rbind", "rprivate"};
        if (v.readonly) options.push_back("ro");
        absl::Status s = add_mount(MountJson(v.target, "bind", v.host_path, std::move(options)));
        if (!s.ok()) return s;
        break;
      }
      case api::Mount::TMPFS: {
        auto target = MountTarget(m.target(), "tmpfs mount");
        if (!target.ok()) return target.status();
        const auto& to = m.tmpfs_options();
        if (to.size_bytes() < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("tmpfs mount at ", *target, ": size must not be negative"));
        }
        if (to.mode() > 07777) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "tmpfs mount at %s: mode %o has more than permission bits (max 07777)", *target,
              to.mode()));
        }
        std::vector<std::string> options = {"noexec", "nosuid", "nodev", "rprivate"};
        if (to.size_bytes() > 0) options.push_back(absl::StrCat("size=", to.size_bytes()));
        if (to.mode() != 0) options.push_back(absl::StrFormat("mode=%o", to.mode()));
        if (m.readonly()) options.push_back("ro");
        absl::Status s = add_mount(MountJson(*target, "tmpfs", "tmpfs", std::move(options)));
        if (!s.ok()) return s;
        break;
      }
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("mount at ", m.target(), " has an unknown type ",
                         static_cast<int>(m.type()), ": use bind, volume or tmpfs"));
    }
  }
  if ((spec.secrets_size() > 0 || spec.configs_size() > 0) &&
      (in.secrets_dir.empty() || !IsAbsolute(in.secrets_dir))) {
    return absl::FailedPreconditionError(
        "the task has secrets or configs but the executor gave no absolute secrets directory");
  }
  for (const api::SecretReference& ref : spec.secrets()) {
    auto target = SecretTarget(ref);
    if (!target.ok()) return target.status();
    absl::Status s = add_mount(MountJson(*target, "bind", SecretHostPath(in.secrets_dir, ref),
                                         {"rbind", "rprivate", "ro"}));
    if (!s.ok()) return s;
  }
  for (const api::ConfigReference& ref : spec.configs()) {
    auto target = ConfigTarget(ref);
    if (!target.ok()) return target.status();
    absl::Status s = add_mount(MountJson(*target, "bind", ConfigHostPath(in.secrets_dir, ref),
                                         {"rbind", "rprivate", "ro"}));
    if (!s.ok()) return s;
  }
  // The executor's files, unless the task mounts something there itself.
  const char* rw = spec.read_only() ? "ro" : "rw";
  for (const auto& [dest, source] :
       std::vector<std::pair<std::string, std::string>>{{"/etc/hosts", in.hosts_path},
                                                        {"/etc/resolv.conf", in.resolv_conf_path},
                                                        {"/etc/hostname", in.hostname_path}}) {
    if (source.empty() || targets.count(dest) > 0) continue;
    if (!IsAbsolute(source)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the executor's file for ", dest, " (", source, ") is not absolute"));
    }
    targets.insert(dest);
    user_mounts.push_back(MountJson(dest, "bind", CleanPath(source), {"rbind", "rprivate", rw}));
  }
  if (init) {
    if (!targets.insert(kInitContainerPath).second) {
      return absl::InvalidArgumentError(absl::StrCat("the task mounts something at ",
                                                     kInitContainerPath, ", where its init goes"));
    }
    user_mounts.push_back(
        MountJson(kInitContainerPath, "bind", CleanPath(in.init_path), {"bind", "ro", "rprivate"}));
  }
  std::stable_sort(user_mounts.begin(), user_mounts.end(), [](const json& a, const json& b) {
    return PathDepth(a["destination"].get<std::string>()) <
           PathDepth(b["destination"].get<std::string>());
  });
  const bool mounts_dev = targets.count("/dev") > 0;
  json mounts = json::array();
  for (json& m : DefaultMounts(in.shm_size_bytes)) {
    const std::string dest = m["destination"].get<std::string>();
    if (targets.count(dest) > 0) continue;
    if (mounts_dev && absl::StartsWith(dest, "/dev/")) continue;
    mounts.push_back(std::move(m));
  }
  for (json& m : user_mounts) mounts.push_back(std::move(m));

  // linux
  json namespaces = json::array();
  for (const char* ns : {"pid", "ipc", "uts", "mount", "cgroup"}) {
    namespaces.push_back(json{{"type", ns}});
  }
  json net = {{"type", "network"}};
  if (!in.netns_path.empty()) {
    if (!IsAbsolute(in.netns_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("network namespace path \"", in.netns_path, "\" must be absolute"));
    }
    net["path"] = in.netns_path;
  }
  namespaces.push_back(std::move(net));

  json sysctl = json::object();
  for (const auto& [key, value] : spec.sysctls()) {
    if (!NamespacedSysctl(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sysctl ", key,
                       " is not allowed: only namespaced sysctls can be set in a container "
                       "(net.*, fs.mqueue.*, kernel.msg*, kernel.sem, kernel.shm*)"));
    }
    sysctl[key] = value;
  }
  auto resources = Resources(task.spec());
  if (!resources.ok()) return resources.status();
  std::string cgroup_parent = CleanPath(in.cgroup_parent.empty() ? "/" : in.cgroup_parent);
  if (!IsAbsolute(cgroup_parent)) cgroup_parent = absl::StrCat("/", cgroup_parent);

  json linux = {
      {"namespaces", std::move(namespaces)},
      {"resources", *std::move(resources)},
      {"cgroupsPath", cgroup_parent == "/" ? absl::StrCat("/", task.id())
                                           : absl::StrCat(cgroup_parent, "/", task.id())},
      {"maskedPaths",
       {"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        "/sys/devices/virtual/powercap"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
  if (!sysctl.empty()) linux["sysctl"] = std::move(sysctl);
  if (!rootfs_propagation.empty()) linux["rootfsPropagation"] = rootfs_propagation;

  json annotations = json::object();
  for (const auto& [k, v] : ContainerLabels(task, image)) annotations[k] = v;
  if (!in.shim_group.empty()) annotations[kShimGroupAnnotation] = in.shim_group;

  return json{
      {"ociVersion", kOciVersion},
      {"process", std::move(process)},
      {"root",
       {{"path", in.rootfs_path.empty() ? "rootfs" : in.rootfs_path},
        {"readonly", spec.read_only()}}},
      {"hostname", hostname},
      {"mounts", std::move(mounts)},
      {"linux", std::move(linux)},
      {"annotations", std::move(annotations)},
  };
}

std::string ShimGroup(const api::Task& task, int group_size) {
  if (group_size < 2 || task.slot() == 0 || task.service_id().empty()) return "";
  return absl::StrCat("shoal-", task.service_id(), "-", (task.slot() - 1) / group_size + 1);
}

absl::StatusOr<std::string> BuildOciSpec(const OciSpecInputs& in) {
  auto spec = BuildOciSpecJson(in);
  if (!spec.ok()) return spec.status();
  return spec->dump();
}

}  // namespace shoal::agent::exec::containerd
