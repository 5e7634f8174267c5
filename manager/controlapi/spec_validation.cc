#include "manager/controlapi/spec_validation.h"

#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "scheduler/constraint.h"
#include "scheduler/spread.h"

namespace shoal::manager {
namespace {

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

// [a-zA-Z0-9] first and last, `middle` characters in between.
bool NameShapeOk(absl::string_view name, size_t max_len, absl::string_view middle) {
  if (name.empty() || name.size() > max_len) return false;
  if (!IsAlnum(name.front()) || !IsAlnum(name.back())) return false;
  for (char c : name) {
    if (!IsAlnum(c) && middle.find(c) == absl::string_view::npos) return false;
  }
  return true;
}

// A duration that must not be negative; `what` names it ("--update-delay").
absl::Status NonNegative(const google::protobuf::Duration& d, absl::string_view what) {
  const absl::Duration v = FromProto(d);
  if (v < absl::ZeroDuration()) {
    return Invalid(absl::StrCat(what, " must not be negative; got ", absl::FormatDuration(v)));
  }
  return absl::OkStatus();
}

absl::Status CheckLabels(const google::protobuf::Map<std::string, std::string>& labels,
                         absl::string_view what, absl::string_view flag) {
  for (const auto& [key, value] : labels) {
    if (key.empty()) {
      return Invalid(absl::StrCat(what, " need a non-empty key (", flag, " key=value)"));
    }
  }
  return absl::OkStatus();
}

// Signal names as Docker's signal.ParseSignal takes them: a number, or a name with or without
// "SIG", in any case; RTMIN+n and RTMAX-n.
bool IsSignal(absl::string_view sig) {
  int num = 0;
  if (absl::SimpleAtoi(sig, &num)) return num >= 1 && num <= 64;
  std::string name = absl::AsciiStrToUpper(sig);
  if (absl::StartsWith(name, "SIG")) name = name.substr(3);
  static const std::set<std::string>* const kNames = new std::set<std::string>{
      "ABRT", "ALRM",   "BUS",  "CHLD",   "CLD",   "CONT", "FPE",  "HUP",   "ILL",
      "INT",  "IO",     "IOT",  "KILL",   "PIPE",  "POLL", "PROF", "PWR",   "QUIT",
      "SEGV", "STKFLT", "STOP", "SYS",    "TERM",  "TRAP", "TSTP", "TTIN",  "TTOU",
      "URG",  "USR1",   "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX"};
  if (kNames->count(name) > 0) return true;
  for (const char* rt : {"RTMIN+", "RTMAX-"}) {
    if (absl::StartsWith(name, rt) && absl::SimpleAtoi(name.substr(6), &num)) {
      return num >= 0 && num <= 30;
    }
  }
  return false;
}

bool IsNumericId(absl::string_view s) {
  uint32_t v = 0;
  return absl::SimpleAtoi(s, &v) && !s.empty() && absl::ascii_isdigit(s.front());
}

absl::Status CheckFileTarget(const api::FileTarget& f, absl::string_view kind,
                             absl::string_view ref) {
  for (absl::string_view part : absl::StrSplit(f.name(), '/')) {
    if (part == "..") {
      return Invalid(
          absl::StrCat(kind, " ", ref, ": target \"", f.name(), "\" must not contain \"..\""));
    }
  }
  if (!f.uid().empty() && !IsNumericId(f.uid())) {
    return Invalid(absl::StrCat(kind, " ", ref, ": uid \"", f.uid(), "\" must be a number"));
  }
  if (!f.gid().empty() && !IsNumericId(f.gid())) {
    return Invalid(absl::StrCat(kind, " ", ref, ": gid \"", f.gid(), "\" must be a number"));
  }
  if (f.mode() > 07777) {
    return Invalid(absl::StrFormat("%s %s: file mode %#o is not a permission mode (at most 07777)",
                                   std::string(kind), std::string(ref), f.mode()));
  }
  return absl::OkStatus();
}

absl::Status ValidateMounts(const google::protobuf::RepeatedPtrField<api::Mount>& mounts) {
  std::set<std::string> targets;
  for (const api::Mount& m : mounts) {
    if (!api::Mount::Type_IsValid(m.type())) {
      return Invalid(absl::StrCat("unknown mount type ", m.type(), "; use volume, bind or tmpfs"));
    }
    if (m.target().empty()) {
      return Invalid(
          "every mount needs a target path inside the container (--mount ...,target=/path)");
    }
    if (m.target().front() != '/') {
      return Invalid(absl::StrCat("mount target \"", m.target(), "\" must be an absolute path"));
    }
    if (!targets.insert(m.target()).second) {
      return Invalid(absl::StrCat("mount target \"", m.target(),
                                  "\" is used by more than one mount; give each its own target"));
    }
    const std::string at = absl::StrCat("mount at \"", m.target(), "\"");
    switch (m.type()) {
      case api::Mount::BIND:
        if (m.source().empty() || m.source().front() != '/') {
          return Invalid(
              absl::StrCat("bind ", at, ": the source must be an absolute path on the node (got \"",
                           m.source(), "\"; --mount type=bind,source=/path,target=/path)"));
        }
        break;
      case api::Mount::TMPFS:
        if (!m.source().empty()) {
          return Invalid(absl::StrCat("tmpfs ", at, " takes no source (got \"", m.source(), "\")"));
        }
        break;
      default:
        break;
    }
    if (m.has_bind_options() && m.type() != api::Mount::BIND) {
      return Invalid(absl::StrCat(at, ": bind options are only valid with type=bind"));
    }
    if (m.has_volume_options() && m.type() != api::Mount::VOLUME) {
      return Invalid(absl::StrCat(at, ": volume options are only valid with type=volume"));
    }
    if (m.has_tmpfs_options() && m.type() != api::Mount::TMPFS) {
      return Invalid(absl::StrCat(at, ": tmpfs options are only valid with type=tmpfs"));
    }
    if (!api::Mount::BindOptions::Propagation_IsValid(m.bind_options().propagation())) {
      return Invalid(
          absl::StrCat(at, ": unknown bind propagation ", m.bind_options().propagation()));
    }
    if (m.tmpfs_options().size_bytes() < 0) {
      return Invalid(absl::StrCat("tmpfs ", at, ": the size must not be negative; got ",
                                  m.tmpfs_options().size_bytes()));
    }
    if (m.tmpfs_options().mode() > 07777) {
      return Invalid(absl::StrFormat("tmpfs %s: mode %#o is not a permission mode (at most 07777)",
                                     at, m.tmpfs_options().mode()));
    }
    if (absl::Status s = CheckLabels(m.volume_options().labels(),
                                     absl::StrCat(at, ": volume labels"), "--mount volume-label=");
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateHealthcheck(const api::HealthConfig& h) {
  if (h.test_size() > 0) {
    const std::string& kind = h.test(0);
    if (kind == "NONE") {
      if (h.test_size() != 1) return Invalid("a health check test [\"NONE\"] takes no arguments");
    } else if (kind == "CMD") {
      if (h.test_size() < 2) {
        return Invalid(
            "a health check test [\"CMD\", ...] needs the command to run (--health-cmd)");
      }
    } else if (kind == "CMD-SHELL") {
      if (h.test_size() != 2) {
        return Invalid(
            "a health check test [\"CMD-SHELL\", \"command\"] needs exactly one shell command "
            "(--health-cmd)");
      }
    } else {
      return Invalid(absl::StrCat("unknown health check test type \"", kind,
                                  "\"; the test must start with NONE, CMD or CMD-SHELL"));
    }
  }
  const struct {
    const google::protobuf::Duration& d;
    bool has;
    const char* flag;
    bool min_ms;  // non-zero values must be at least 1 ms (Docker's rule)
  } durations[] = {
      {h.interval(), h.has_interval(), "--health-interval", true},
      {h.timeout(), h.has_timeout(), "--health-timeout", true},
      {h.start_period(), h.has_start_period(), "--health-start-period", false},
      {h.start_interval(), h.has_start_interval(), "--health-start-interval", true},
  };
  for (const auto& d : durations) {
    if (!d.has) continue;
    if (absl::Status s = NonNegative(d.d, d.flag); !s.ok()) return s;
    const absl::Duration v = FromProto(d.d);
    if (d.min_ms && v != absl::ZeroDuration() && v < absl::Milliseconds(1)) {
      return Invalid(absl::StrCat(d.flag, " must be 0 (the default) or at least 1ms; got ",
                                  absl::FormatDuration(v)));
    }
  }
  if (h.retries() < 0) {
    return Invalid(absl::StrCat("--health-retries must not be negative; got ", h.retries()));
  }
  return absl::OkStatus();
}

absl::Status ValidateContainerSpec(const api::TaskSpec& task) {
  if (!task.has_container_spec() || task.container_spec().image().empty()) {
    return Invalid("an image is required (shoal service create [OPTIONS] IMAGE)");
  }
  const api::ContainerSpec& c = task.container_spec();
  for (char ch : c.image()) {
    if (absl::ascii_isspace(static_cast<unsigned char>(ch)) || ch == '\0') {
      return Invalid(absl::StrCat("invalid image reference \"", c.image(),
                                  "\": it must not contain whitespace"));
    }
  }
  if (absl::Status s = CheckLabels(c.labels(), "container labels", "--container-label"); !s.ok())
    return s;
  for (const std::string& e : c.env()) {
    if (e.empty() || e.front() == '=') {
      return Invalid(
          absl::StrCat("invalid environment variable \"", e, "\": use KEY=value (--env)"));
    }
  }
  if (absl::Status s = ValidateMounts(c.mounts()); !s.ok()) return s;
  if (c.has_stop_grace_period()) {
    if (absl::Status s = NonNegative(c.stop_grace_period(), "--stop-grace-period"); !s.ok())
      return s;
  }
  if (!c.stop_signal().empty() && !IsSignal(c.stop_signal())) {
    return Invalid(absl::StrCat("invalid --stop-signal \"", c.stop_signal(),
                                "\": use a signal name such as SIGTERM or SIGINT, or a number"));
  }
  if (c.has_healthcheck()) {
    if (absl::Status s = ValidateHealthcheck(c.healthcheck()); !s.ok()) return s;
  }
  for (const std::string& h : c.hosts()) {
    std::vector<absl::string_view> fields =
        absl::StrSplit(h, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() < 2) {
      return Invalid(absl::StrCat("invalid extra hosts entry \"", h,
                                  "\": use \"IP_address hostname [aliases...]\" (--host "
                                  "hostname:IP)"));
    }
  }
  for (const api::SecretReference& ref : c.secrets()) {
    if (ref.secret_id().empty() && ref.secret_name().empty()) {
      return Invalid("a secret reference needs the secret's name or ID (--secret NAME)");
    }
    const std::string name = ref.secret_name().empty() ? ref.secret_id() : ref.secret_name();
    if (absl::Status s = CheckFileTarget(ref.file(), "secret", absl::StrCat("\"", name, "\""));
        !s.ok()) {
      return s;
    }
  }
  for (const api::ConfigReference& ref : c.configs()) {
    if (ref.config_id().empty() && ref.config_name().empty()) {
      return Invalid("a config reference needs the config's name or ID (--config NAME)");
    }
    const std::string name = ref.config_name().empty() ? ref.config_id() : ref.config_name();
    if (absl::Status s = CheckFileTarget(ref.file(), "config", absl::StrCat("\"", name, "\""));
        !s.ok()) {
      return s;
    }
  }
  for (const auto& [key, value] : c.sysctls()) {
    if (key.empty()) return Invalid("sysctls need a non-empty name (--sysctl name=value)");
  }
  std::set<std::string> ulimits;
  for (const api::ContainerSpec::Ulimit& u : c.ulimits()) {
    if (u.name().empty()) return Invalid("ulimits need a name (--ulimit nofile=1024:2048)");
    if (!ulimits.insert(u.name()).second) {
      return Invalid(absl::StrCat("ulimit \"", u.name(), "\" is given more than once"));
    }
    if (u.soft() < -1 || u.hard() < -1) {
      return Invalid(absl::StrCat("ulimit \"", u.name(),
                                  "\": limits must be -1 (unlimited) or more; got soft ", u.soft(),
                                  ", hard ", u.hard()));
    }
    const bool soft_unlimited = u.soft() == -1;
    const bool hard_unlimited = u.hard() == -1;
    if (!hard_unlimited && (soft_unlimited || u.soft() > u.hard())) {
      return Invalid(absl::StrCat("ulimit \"", u.name(), "\": the soft limit (", u.soft(),
                                  ") must not exceed the hard limit (", u.hard(), ")"));
    }
  }
  return absl::OkStatus();
}

std::string Cpus(int64_t nano) { return absl::StrFormat("%g", static_cast<double>(nano) / 1e9); }

absl::Status ValidateResourceAmounts(const api::Resources& r, bool limits) {
  const char* cpu_flag = limits ? "--limit-cpu" : "--reserve-cpu";
  const char* mem_flag = limits ? "--limit-memory" : "--reserve-memory";
  if (r.nano_cpus() < 0) {
    return Invalid(absl::StrCat(cpu_flag, " must not be negative; got ", Cpus(r.nano_cpus())));
  }
  if (r.nano_cpus() != 0 && r.nano_cpus() < kMinNanoCpus) {
    return Invalid(
        absl::StrCat(cpu_flag, " ", Cpus(r.nano_cpus()), " is below the minimum of 0.001 CPU"));
  }
  if (r.memory_bytes() < 0) {
    return Invalid(absl::StrCat(mem_flag, " must not be negative; got ", r.memory_bytes()));
  }
  if (r.memory_bytes() != 0 && r.memory_bytes() < kMinMemoryBytes) {
    return Invalid(
        absl::StrCat(mem_flag, " ", r.memory_bytes(), " bytes is below the minimum of 4 MiB"));
  }
  if (limits && r.generic_size() > 0) {
    return Invalid(
        "generic resources can only be reserved (--generic-resource), not limited; move them to "
        "the reservations");
  }
  for (const api::GenericResource& g : r.generic()) {
    switch (g.resource_case()) {
      case api::GenericResource::kNamed:
        if (g.named().kind().empty() || g.named().value().empty()) {
          return Invalid(
              absl::StrCat("named generic resource \"", g.named().kind(), "=", g.named().value(),
                           "\" needs a kind and a value (--generic-resource KIND=VALUE)"));
        }
        break;
      case api::GenericResource::kDiscrete:
        if (g.discrete().kind().empty()) {
          return Invalid("generic resources need a kind (--generic-resource KIND=COUNT)");
        }
        if (g.discrete().value() <= 0) {
          return Invalid(absl::StrCat("generic resource \"", g.discrete().kind(),
                                      "\": the amount must be positive; got ",
                                      g.discrete().value()));
        }
        break;
      default:
        return Invalid("a generic resource must be named (KIND=VALUE) or discrete (KIND=COUNT)");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateResources(const api::ResourceRequirements& r) {
  if (absl::Status s = ValidateResourceAmounts(r.limits(), /*limits=*/true); !s.ok()) return s;
  if (absl::Status s = ValidateResourceAmounts(r.reservations(), /*limits=*/false); !s.ok())
    return s;
  if (r.limits().nano_cpus() > 0 && r.reservations().nano_cpus() > r.limits().nano_cpus()) {
    return Invalid(absl::StrCat("--reserve-cpu (", Cpus(r.reservations().nano_cpus()),
                                ") must not exceed --limit-cpu (", Cpus(r.limits().nano_cpus()),
                                ")"));
  }
  if (r.limits().memory_bytes() > 0 &&
      r.reservations().memory_bytes() > r.limits().memory_bytes()) {
    return Invalid(absl::StrCat("--reserve-memory (", r.reservations().memory_bytes(),
                                " bytes) must not exceed --limit-memory (",
                                r.limits().memory_bytes(), " bytes)"));
  }
  if (r.pids_limit() < 0) {
    return Invalid(absl::StrCat("--limit-pids must not be negative; got ", r.pids_limit()));
  }
  return absl::OkStatus();
}

// Jobs may carry any condition: for them ANY (also what an unset condition reads as) means
// ON_FAILURE, since a completed job task is never restarted.
absl::Status ValidateRestartPolicy(const api::RestartPolicy& p) {
  if (!api::RestartPolicy::Condition_IsValid(p.condition())) {
    return Invalid(absl::StrCat("unknown restart condition ", p.condition(),
                                "; use none, on-failure or any (--restart-condition)"));
  }
  if (absl::Status s = NonNegative(p.delay(), "--restart-delay"); !s.ok()) return s;
  if (absl::Status s = NonNegative(p.window(), "--restart-window"); !s.ok()) return s;
  return absl::OkStatus();
}

absl::Status ValidatePlacement(const api::Placement& p, const api::ServiceSpec& spec) {
  absl::StatusOr<std::vector<scheduler::Constraint>> parsed =
      scheduler::ParseConstraints(p.constraints());
  if (!parsed.ok()) {
    return Invalid(
        absl::StrCat(parsed.status().message(), " (--constraint, e.g. node.labels.zone==east)"));
  }
  for (const api::PlacementPreference& pref : p.preferences()) {
    if (pref.preference_case() != api::PlacementPreference::kSpread) {
      return Invalid(
          "a placement preference must say what to spread over (--placement-pref "
          "spread=node.labels.<name>)");
    }
    if (!scheduler::SpreadKey::Parse(pref.spread().spread_descriptor()).has_value()) {
      return Invalid(
          absl::StrCat("invalid placement preference \"spread=", pref.spread().spread_descriptor(),
                       "\": spread over node.labels.<name> or engine.labels.<name>"));
    }
  }
  if (p.max_replicas() > 0 && (spec.has_global() || spec.has_global_job())) {
    return Invalid(
        absl::StrCat("--replicas-max-per-node only applies to replicated services and "
                     "jobs, not to mode ",
                     ServiceModeName(spec)));
  }
  return absl::OkStatus();
}

absl::Status CheckCount(uint64_t n, absl::string_view flag) {
  if (n > kMaxReplicas) {
    return Invalid(absl::StrCat(flag, " ", n, " is above the limit of ", kMaxReplicas,
                                " (was a negative number given?)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateMode(const api::ServiceSpec& spec) {
  switch (spec.mode_case()) {
    case api::ServiceSpec::kReplicated:
      return CheckCount(spec.replicated().replicas(), "--replicas");
    case api::ServiceSpec::kReplicatedJob:
      if (absl::Status s = CheckCount(spec.replicated_job().max_concurrent(), "--max-concurrent");
          !s.ok()) {
        return s;
      }
      return CheckCount(spec.replicated_job().total_completions(), "--replicas");
    case api::ServiceSpec::kGlobal:
    case api::ServiceSpec::kGlobalJob:
      return absl::OkStatus();
    default:
      return Invalid(
          "the service needs a mode: replicated, global, replicated-job or global-job (--mode)");
  }
}

absl::Status ValidateUpdateConfig(const api::UpdateConfig& u, bool rollback) {
  const std::string flag = rollback ? "--rollback-" : "--update-";
  if (absl::Status s = NonNegative(u.delay(), flag + "delay"); !s.ok()) return s;
  if (absl::Status s = NonNegative(u.monitor(), flag + "monitor"); !s.ok()) return s;
  if (!api::UpdateConfig::FailureAction_IsValid(u.failure_action())) {
    return Invalid(
        absl::StrCat("unknown ", flag, "failure-action ", u.failure_action(),
                     rollback ? "; use pause or continue" : "; use pause, continue or rollback"));
  }
  if (rollback && u.failure_action() == api::UpdateConfig::ROLLBACK) {
    return Invalid(
        "--rollback-failure-action cannot be rollback (a failed rollback has nothing to roll back "
        "to); use pause or continue");
  }
  const float ratio = u.max_failure_ratio();
  if (std::isnan(ratio) || ratio < 0 || ratio > 1) {
    return Invalid(absl::StrFormat("%smax-failure-ratio must be between 0 and 1; got %g", flag,
                                   static_cast<double>(ratio)));
  }
  if (!api::UpdateConfig::Order_IsValid(u.order())) {
    return Invalid(
        absl::StrCat("unknown ", flag, "order ", u.order(), "; use stop-first or start-first"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEndpoint(const api::EndpointSpec& e) {
  if (!api::EndpointSpec::Mode_IsValid(e.mode())) {
    return Invalid(
        absl::StrCat("unknown endpoint mode ", e.mode(), "; use vip or dnsrr (--endpoint-mode)"));
  }
  std::set<std::pair<uint32_t, int>> published;
  for (const api::PortConfig& p : e.ports()) {
    if (!api::PortConfig::Protocol_IsValid(p.protocol())) {
      return Invalid(
          absl::StrCat("unknown port protocol ", p.protocol(), "; use tcp, udp or sctp"));
    }
    if (!api::PortConfig::PublishMode_IsValid(p.publish_mode())) {
      return Invalid(
          absl::StrCat("unknown publish mode ", p.publish_mode(), "; use ingress or host"));
    }
    const char* proto = ProtocolName(p.protocol());
    if (p.target_port() < 1 || p.target_port() > 65535) {
      return Invalid(absl::StrCat("target (container) port ", p.target_port(), "/", proto,
                                  " is out of range: use 1-65535 (--publish published:target)"));
    }
    if (p.published_port() > 65535) {
      return Invalid(absl::StrCat("published port ", p.published_port(), "/", proto,
                                  " is out of range: use 1-65535, or leave it out to have one "
                                  "picked"));
    }
    if (p.published_port() == 0) continue;
    if (!published.insert({p.published_port(), p.protocol()}).second) {
      return Invalid(absl::StrCat("published port ", p.published_port(), "/", proto,
                                  " is given more than once; each published port and protocol "
                                  "can appear once"));
    }
  }
  if (e.mode() == api::EndpointSpec::DNSRR) {
    for (const api::PortConfig& p : e.ports()) {
      if (p.publish_mode() == api::PortConfig::INGRESS) {
        return Invalid(absl::StrCat(
            "port ", p.target_port(), "/", ProtocolName(p.protocol()),
            " is published in ingress mode, which --endpoint-mode dnsrr cannot use; publish it "
            "with mode=host, or use --endpoint-mode vip"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSecretLike(const api::Annotations& a, const std::string& data,
                                const char* kind, size_t max_bytes, const char* max_text) {
  const std::string& name = a.name();
  if (name.empty()) {
    return Invalid(
        absl::StrCat("a ", kind, " name is required (shoal ", kind, " create NAME FILE)"));
  }
  if (!NameShapeOk(name, kMaxSecretNameLength, "-_.")) {
    return Invalid(absl::StrCat("invalid ", kind, " name \"", name, "\": use 1 to ",
                                kMaxSecretNameLength,
                                " letters, digits, '-', '_' or '.', starting and ending with a "
                                "letter or digit"));
  }
  if (absl::Status s = CheckLabels(a.labels(), absl::StrCat(kind, " labels"), "--label"); !s.ok())
    return s;
  if (data.empty()) {
    return Invalid(absl::StrCat(kind, " \"", name, "\" has no data; give a non-empty file"));
  }
  if (data.size() > max_bytes) {
    return Invalid(absl::StrCat(kind, " \"", name, "\" holds ", data.size(), " bytes; ", kind,
                                "s are limited to ", max_text, " (", max_bytes, " bytes)"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* ServiceModeName(const api::ServiceSpec& spec) {
  switch (spec.mode_case()) {
    case api::ServiceSpec::kReplicated:
      return "replicated";
    case api::ServiceSpec::kGlobal:
      return "global";
    case api::ServiceSpec::kReplicatedJob:
      return "replicated-job";
    case api::ServiceSpec::kGlobalJob:
      return "global-job";
    default:
      return "none";
  }
}

bool IsJob(const api::ServiceSpec& spec) {
  return spec.has_replicated_job() || spec.has_global_job();
}

const char* ProtocolName(api::PortConfig::Protocol protocol) {
  switch (protocol) {
    case api::PortConfig::TCP:
      return "tcp";
    case api::PortConfig::UDP:
      return "udp";
    case api::PortConfig::SCTP:
      return "sctp";
    default:
      return "unknown";
  }
}

absl::Status ValidateServiceName(absl::string_view name) {
  if (name.empty()) return Invalid("a service name is required (--name NAME)");
  if (!NameShapeOk(name, kMaxServiceNameLength, "-_")) {
    return Invalid(absl::StrCat("invalid service name \"", name, "\": use 1 to ",
                                kMaxServiceNameLength,
                                " letters, digits, '-' or '_', starting and ending with a letter "
                                "or digit (the name is the service's DNS name)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateServiceSpec(const api::ServiceSpec& spec) {
  if (absl::Status s = ValidateServiceName(spec.annotations().name()); !s.ok()) return s;
  if (absl::Status s = CheckLabels(spec.annotations().labels(), "service labels", "--label");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateMode(spec); !s.ok()) return s;
  const api::TaskSpec& task = spec.task_template();
  if (absl::Status s = ValidateContainerSpec(task); !s.ok()) return s;
  if (absl::Status s = ValidateResources(task.resources()); !s.ok()) return s;
  if (task.has_restart_policy()) {
    if (absl::Status s = ValidateRestartPolicy(task.restart_policy()); !s.ok()) return s;
  }
  if (absl::Status s = ValidatePlacement(task.placement(), spec); !s.ok()) return s;
  if (task.has_log_driver() && task.log_driver().name().empty() &&
      !task.log_driver().options().empty()) {
    return Invalid("log driver options need a log driver name (--log-driver NAME)");
  }
  for (const api::NetworkAttachmentConfig& n : task.networks()) {
    if (n.target().empty()) {
      return Invalid("a network attachment needs the network's name or ID (--network NAME)");
    }
  }
  if (absl::Status s = ValidateUpdateConfig(spec.update_config(), /*rollback=*/false); !s.ok())
    return s;
  if (absl::Status s = ValidateUpdateConfig(spec.rollback_config(), /*rollback=*/true); !s.ok())
    return s;
  return ValidateEndpoint(spec.endpoint_spec());
}

absl::Status ValidateSecretSpec(const api::SecretSpec& spec) {
  return ValidateSecretLike(spec.annotations(), spec.data(), "secret", kMaxSecretDataBytes,
                            "500 KiB");
}

absl::Status ValidateConfigSpec(const api::ConfigSpec& spec) {
  return ValidateSecretLike(spec.annotations(), spec.data(), "config", kMaxConfigDataBytes,
                            "1000 KiB");
}

}  // namespace shoal::manager
