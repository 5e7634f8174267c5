#include "cli/service_spec.h"

#include <algorithm>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/duration.h"

namespace shoal::cli {
namespace {

#define SHOAL_RETURN_IF_ERROR(expr)           \
  do {                                        \
    if (absl::Status _s = (expr); !_s.ok()) { \
      return _s;                              \
    }                                         \
  } while (0)

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

// "--flag: message".
absl::Status FlagError(const std::string& flag, const std::string& message) {
  return Invalid(absl::StrCat("--", flag, ": ", message));
}

absl::Status FlagError(const std::string& flag, const absl::Status& s) {
  return FlagError(flag, std::string(s.message()));
}

// Docker's defaults for an update or rollback config that a flag brings into being.
constexpr uint64_t kDefaultParallelism = 1;
const absl::Duration kDefaultMonitor = absl::Seconds(5);

// Splits "k=v,k2,k3=a=b" into (key, value, has_value) fields.
struct Field {
  std::string key;
  std::string value;
  bool has_value = false;
};

std::vector<Field> SplitFields(const std::string& text) {
  std::vector<Field> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    Field f;
    const std::string p(absl::StripAsciiWhitespace(part));
    const size_t eq = p.find('=');
    f.key = absl::AsciiStrToLower(p.substr(0, eq));
    if (eq != std::string::npos) {
      f.value = p.substr(eq + 1);
      f.has_value = true;
    }
    out.push_back(std::move(f));
  }
  return out;
}

absl::StatusOr<bool> ParseBoolValue(const std::string& text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "1" || t == "true") return true;
  if (t == "0" || t == "false") return false;
  return Invalid(absl::StrCat("invalid boolean \"", text, "\": use true or false"));
}

absl::StatusOr<uint64_t> ParseCount(const std::string& text) {
  uint64_t v = 0;
  if (text.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(text[0])) ||
      !absl::SimpleAtoi(text, &v)) {
    return Invalid(absl::StrCat("invalid number \"", text, "\": use a whole number, e.g. 3"));
  }
  return v;
}

absl::StatusOr<int64_t> ParseInteger(const std::string& text) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return Invalid(absl::StrCat("invalid number \"", text, "\": use a whole number, e.g. 3"));
  }
  return v;
}

absl::StatusOr<uint32_t> ParsePort(const std::string& text) {
  uint32_t v = 0;
  if (text.empty() || !absl::ascii_isdigit(static_cast<unsigned char>(text[0])) ||
      !absl::SimpleAtoi(text, &v) || v == 0 || v > 65535) {
    return Invalid(absl::StrCat("invalid port number \"", text, "\": use 1 to 65535"));
  }
  return v;
}

// "0400" or "400": permission bits in octal.
absl::StatusOr<uint32_t> ParseFileMode(const std::string& text) {
  uint32_t v = 0;
  bool ok = !text.empty() && text.size() <= 5;
  for (char c : text) {
    if (c < '0' || c > '7') ok = false;
    if (ok) v = v * 8 + static_cast<uint32_t>(c - '0');
  }
  if (!ok || v > 07777) {
    return Invalid(absl::StrCat("invalid file mode \"", text, "\": use octal digits, e.g. 0400"));
  }
  return v;
}

// "KEY=VALUE" or "KEY" (empty value); the key must not be empty.
absl::Status SplitKeyValue(const std::string& text, std::string* key, std::string* value,
                           const std::string& example) {
  const size_t eq = text.find('=');
  *key = text.substr(0, eq);
  *value = eq == std::string::npos ? "" : text.substr(eq + 1);
  if (key->empty()) {
    return Invalid(absl::StrCat("invalid value \"", text, "\": the key is empty; use ", example));
  }
  return absl::OkStatus();
}

absl::StatusOr<api::PortConfig::Protocol> ParseProtocol(const std::string& text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "tcp") return api::PortConfig::TCP;
  if (t == "udp") return api::PortConfig::UDP;
  if (t == "sctp") return api::PortConfig::SCTP;
  return Invalid(absl::StrCat("invalid protocol \"", text, "\": use tcp, udp or sctp"));
}

absl::StatusOr<api::PortConfig::PublishMode> ParsePublishMode(const std::string& text) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "ingress") return api::PortConfig::INGRESS;
  if (t == "host") return api::PortConfig::HOST;
  return Invalid(absl::StrCat("invalid publish mode \"", text, "\": use ingress or host"));
}

// "80" or "8080-8081" → [first, last].
absl::Status ParsePortRange(const std::string& text, uint32_t* first, uint32_t* last) {
  const size_t dash = text.find('-');
  absl::StatusOr<uint32_t> a = ParsePort(text.substr(0, dash));
  if (!a.ok()) return a.status();
  *first = *last = *a;
  if (dash == std::string::npos) return absl::OkStatus();
  absl::StatusOr<uint32_t> b = ParsePort(text.substr(dash + 1));
  if (!b.ok()) return b.status();
  if (*b < *a) {
    return Invalid(absl::StrCat("invalid port range \"", text, "\": the end is before the start"));
  }
  *last = *b;
  return absl::OkStatus();
}

const char kPublishUsage[] =
    "use [PUBLISHED:]TARGET[/PROTOCOL] (e.g. 8080:80/udp) or "
    "published=8080,target=80,protocol=tcp,mode=ingress|host";

absl::StatusOr<std::vector<api::PortConfig>> ParsePublishLong(const std::string& text) {
  api::PortConfig port;
  bool has_target = false;
  for (const Field& f : SplitFields(text)) {
    if (!f.has_value) {
      return Invalid(absl::StrCat("invalid field \"", f.key, "\" in \"", text,
                                  "\": each field is KEY=VALUE; ", kPublishUsage));
    }
    if (f.key == "target") {
      absl::StatusOr<uint32_t> p = ParsePort(f.value);
      if (!p.ok()) return p.status();
      port.set_target_port(*p);
      has_target = true;
    } else if (f.key == "published") {
      absl::StatusOr<uint32_t> p = ParsePort(f.value);
      if (!p.ok()) return p.status();
      port.set_published_port(*p);
    } else if (f.key == "protocol") {
      absl::StatusOr<api::PortConfig::Protocol> p = ParseProtocol(f.value);
      if (!p.ok()) return p.status();
      port.set_protocol(*p);
    } else if (f.key == "mode") {
      absl::StatusOr<api::PortConfig::PublishMode> m = ParsePublishMode(f.value);
      if (!m.ok()) return m.status();
      port.set_publish_mode(*m);
    } else {
      return Invalid(absl::StrCat("unknown field \"", f.key, "\" in \"", text,
                                  "\": use published, target, protocol and mode"));
    }
  }
  if (!has_target) {
    return Invalid(absl::StrCat("missing target port in \"", text, "\": add target=PORT"));
  }
  return std::vector<api::PortConfig>{port};
}

absl::StatusOr<std::vector<api::PortConfig>> ParsePublishShort(const std::string& text) {
  std::string spec = text;
  api::PortConfig::Protocol protocol = api::PortConfig::TCP;
  const size_t slash = spec.find('/');
  if (slash != std::string::npos) {
    absl::StatusOr<api::PortConfig::Protocol> p = ParseProtocol(spec.substr(slash + 1));
    if (!p.ok()) return p.status();
    protocol = *p;
    spec = spec.substr(0, slash);
  }
  const std::vector<std::string> parts = absl::StrSplit(spec, ':');
  if (parts.size() > 2) {
    return Invalid(absl::StrCat("invalid port \"", text,
                                "\": publishing on a given IP address is not supported in swarm "
                                "mode (the port is published on every address); ",
                                kPublishUsage));
  }
  uint32_t t_first = 0, t_last = 0, p_first = 0, p_last = 0;
  absl::Status s = ParsePortRange(parts.back(), &t_first, &t_last);
  if (s.ok() && parts.size() == 2) s = ParsePortRange(parts[0], &p_first, &p_last);
  if (!s.ok()) {
    return Invalid(
        absl::StrCat("invalid port \"", text, "\" (", s.message(), "); ", kPublishUsage));
  }
  if (parts.size() == 2 && p_last - p_first != t_last - t_first) {
    return Invalid(absl::StrCat("invalid port \"", text,
                                "\": the published and target ranges differ in length"));
  }
  std::vector<api::PortConfig> out;
  for (uint32_t i = 0; i <= t_last - t_first; ++i) {
    api::PortConfig port;
    port.set_protocol(protocol);
    port.set_target_port(t_first + i);
    if (parts.size() == 2) port.set_published_port(p_first + i);
    out.push_back(port);
  }
  return out;
}

template <typename Ref>
absl::StatusOr<Ref> ParseFileReference(const std::string& text, const char* kind,
                                       void (*set_name)(Ref*, const std::string&)) {
  Ref ref;
  if (text.empty()) {
    return Invalid(absl::StrCat("empty ", kind, " name; use NAME or source=NAME,target=PATH"));
  }
  if (text.find('=') == std::string::npos) {
    set_name(&ref, text);
    return ref;
  }
  bool has_source = false;
  api::FileTarget* file = ref.mutable_file();
  for (const Field& f : SplitFields(text)) {
    if (!f.has_value) {
      return Invalid(absl::StrCat("invalid field \"", f.key, "\" in \"", text,
                                  "\": each field is KEY=VALUE, e.g. source=NAME,target=PATH"));
    }
    if (f.key == "source" || f.key == "src") {
      set_name(&ref, f.value);
      has_source = !f.value.empty();
    } else if (f.key == "target") {
      file->set_name(f.value);
    } else if (f.key == "uid") {
      file->set_uid(f.value);
    } else if (f.key == "gid") {
      file->set_gid(f.value);
    } else if (f.key == "mode") {
      absl::StatusOr<uint32_t> m = ParseFileMode(f.value);
      if (!m.ok()) return m.status();
      file->set_mode(*m);
    } else {
      return Invalid(absl::StrCat("unknown field \"", f.key, "\" in \"", text,
                                  "\": use source, target, uid, gid and mode"));
    }
  }
  if (!has_source) {
    return Invalid(
        absl::StrCat("missing source in \"", text, "\": add source=NAME (the ", kind, ")"));
  }
  return ref;
}

// Docker's ValidateEnv: "KEY=VALUE" as is; "KEY" takes KEY's value from the CLI's environment
// when it has one.
absl::StatusOr<std::string> ParseEnv(const ServiceFlags& flags, const std::string& text) {
  const size_t eq = text.find('=');
  if (text.empty() || eq == 0) {
    return Invalid(absl::StrCat("invalid environment variable \"", text, "\": use KEY=VALUE"));
  }
  if (eq != std::string::npos) return text;
  std::optional<std::string> value;
  if (flags.lookup_env) {
    value = flags.lookup_env(text);
  } else if (const char* v = std::getenv(text.c_str())) {
    value = v;
  }
  if (!value) return text;
  return absl::StrCat(text, "=", *value);
}

std::string EnvKey(const std::string& entry) { return entry.substr(0, entry.find('=')); }

// Reads the flags and remembers which were looked at, so that a flag no code reads is reported
// instead of silently ignored.
class FlagReader {
 public:
  explicit FlagReader(const ServiceFlags& f) : f_(f) {}

  const std::string* Value(const std::string& name) {
    used_.insert(name);
    auto it = f_.values.find(name);
    return it == f_.values.end() ? nullptr : &it->second;
  }
  bool HasValue(const std::string& name) const { return f_.values.count(name) > 0; }

  const std::vector<std::string>& List(const std::string& name) {
    static const std::vector<std::string> kEmpty;
    used_.insert(name);
    auto it = f_.lists.find(name);
    return it == f_.lists.end() ? kEmpty : it->second;
  }

  std::optional<bool> Bool(const std::string& name) {
    used_.insert(name);
    auto it = f_.bools.find(name);
    if (it == f_.bools.end()) return std::nullopt;
    return it->second;
  }

  // INVALID_ARGUMENT naming the first flag given that the command does not read.
  absl::Status CheckAllRead(const char* command) const {
    auto check = [&](const std::string& name) -> absl::Status {
      if (used_.count(name) > 0) return absl::OkStatus();
      return Invalid(absl::StrCat("--", name, " is not a flag of `shoal service ", command, "`"));
    };
    for (const auto& [name, v] : f_.values) SHOAL_RETURN_IF_ERROR(check(name));
    for (const auto& [name, v] : f_.lists) SHOAL_RETURN_IF_ERROR(check(name));
    for (const auto& [name, v] : f_.bools) SHOAL_RETURN_IF_ERROR(check(name));
    return absl::OkStatus();
  }

  const ServiceFlags& flags() const { return f_; }

 private:
  const ServiceFlags& f_;
  std::set<std::string> used_;
};

// Reads --NAME as a count / duration / ..., when given; `apply` gets the parsed value.
absl::Status WithCount(FlagReader& r, const std::string& name,
                       const std::function<void(uint64_t)>& apply) {
  const std::string* v = r.Value(name);
  if (v == nullptr) return absl::OkStatus();
  absl::StatusOr<uint64_t> n = ParseCount(*v);
  if (!n.ok()) return FlagError(name, n.status());
  apply(*n);
  return absl::OkStatus();
}

absl::Status WithDuration(FlagReader& r, const std::string& name,
                          const std::function<void(const google::protobuf::Duration&)>& apply) {
  const std::string* v = r.Value(name);
  if (v == nullptr) return absl::OkStatus();
  absl::StatusOr<absl::Duration> d = ParseDuration(*v);
  if (!d.ok()) return FlagError(name, d.status());
  apply(ToProto(*d));
  return absl::OkStatus();
}

bool IsReplicatedLike(const api::ServiceSpec& spec) {
  return spec.has_replicated() || spec.has_replicated_job();
}

const char* ModeName(const api::ServiceSpec& spec) {
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
      return "unset";
  }
}

absl::Status ApplyResources(FlagReader& r, api::TaskSpec* task) {
  struct Cpu {
    const char* flag;
    bool limit;
  };
  for (const Cpu& c : {Cpu{"reserve-cpu", false}, Cpu{"limit-cpu", true}}) {
    const std::string* v = r.Value(c.flag);
    if (v == nullptr) continue;
    absl::StatusOr<int64_t> n = ParseNanoCpus(*v);
    if (!n.ok()) return FlagError(c.flag, n.status());
    api::ResourceRequirements* res = task->mutable_resources();
    (c.limit ? res->mutable_limits() : res->mutable_reservations())->set_nano_cpus(*n);
  }
  for (const Cpu& c : {Cpu{"reserve-memory", false}, Cpu{"limit-memory", true}}) {
    const std::string* v = r.Value(c.flag);
    if (v == nullptr) continue;
    absl::StatusOr<int64_t> n = ParseMemoryBytes(*v);
    if (!n.ok()) return FlagError(c.flag, n.status());
    api::ResourceRequirements* res = task->mutable_resources();
    (c.limit ? res->mutable_limits() : res->mutable_reservations())->set_memory_bytes(*n);
  }
  if (const std::string* v = r.Value("limit-pids")) {
    absl::StatusOr<int64_t> n = ParseInteger(*v);
    if (!n.ok()) return FlagError("limit-pids", n.status());
    if (*n < 0) return FlagError("limit-pids", "must not be negative (0 = unlimited)");
    task->mutable_resources()->set_pids_limit(*n);
  }
  return absl::OkStatus();
}

absl::Status ApplyRestartPolicy(FlagReader& r, api::TaskSpec* task) {
  auto policy = [task] { return task->mutable_restart_policy(); };
  if (const std::string* v = r.Value("restart-condition")) {
    const std::string c = absl::AsciiStrToLower(*v);
    if (c == "any") {
      policy()->set_condition(api::RestartPolicy::ANY);
    } else if (c == "on-failure") {
      policy()->set_condition(api::RestartPolicy::ON_FAILURE);
    } else if (c == "none") {
      policy()->set_condition(api::RestartPolicy::NONE);
    } else {
      return FlagError("restart-condition",
                       absl::StrCat("invalid condition \"", *v, "\": use none, on-failure or any"));
    }
  }
  SHOAL_RETURN_IF_ERROR(
      WithDuration(r, "restart-delay", [&](const auto& d) { *policy()->mutable_delay() = d; }));
  SHOAL_RETURN_IF_ERROR(
      WithCount(r, "restart-max-attempts", [&](uint64_t n) { policy()->set_max_attempts(n); }));
  SHOAL_RETURN_IF_ERROR(
      WithDuration(r, "restart-window", [&](const auto& d) { *policy()->mutable_window() = d; }));
  return absl::OkStatus();
}

// --update-* or --rollback-* (`prefix`) into `config` (created from docker's defaults when a
// flag needs it and it is unset).
absl::Status ApplyUpdateConfig(FlagReader& r, const std::string& prefix, bool rollback,
                               api::ServiceSpec* spec) {
  auto config = [&]() {
    const bool had = rollback ? spec->has_rollback_config() : spec->has_update_config();
    api::UpdateConfig* c =
        rollback ? spec->mutable_rollback_config() : spec->mutable_update_config();
    if (!had) {
      c->set_parallelism(kDefaultParallelism);
      *c->mutable_monitor() = ToProto(kDefaultMonitor);
    }
    return c;
  };
  SHOAL_RETURN_IF_ERROR(
      WithCount(r, prefix + "-parallelism", [&](uint64_t n) { config()->set_parallelism(n); }));
  SHOAL_RETURN_IF_ERROR(
      WithDuration(r, prefix + "-delay", [&](const auto& d) { *config()->mutable_delay() = d; }));
  if (const std::string* v = r.Value(prefix + "-failure-action")) {
    const std::string a = absl::AsciiStrToLower(*v);
    if (a == "pause") {
      config()->set_failure_action(api::UpdateConfig::PAUSE);
    } else if (a == "continue") {
      config()->set_failure_action(api::UpdateConfig::CONTINUE);
    } else if (a == "rollback" && !rollback) {
      config()->set_failure_action(api::UpdateConfig::ROLLBACK);
    } else {
      return FlagError(
          prefix + "-failure-action",
          absl::StrCat("invalid action \"", *v, "\": use ",
                       rollback ? "pause or continue" : "pause, continue or rollback"));
    }
  }
  SHOAL_RETURN_IF_ERROR(WithDuration(r, prefix + "-monitor",
                                     [&](const auto& d) { *config()->mutable_monitor() = d; }));
  if (const std::string* v = r.Value(prefix + "-max-failure-ratio")) {
    float ratio = 0;
    if (!absl::SimpleAtof(*v, &ratio) || !(ratio >= 0 && ratio <= 1)) {
      return FlagError(
          prefix + "-max-failure-ratio",
          absl::StrCat("invalid ratio \"", *v, "\": use a number from 0 to 1, e.g. 0.2"));
    }
    config()->set_max_failure_ratio(ratio);
  }
  if (const std::string* v = r.Value(prefix + "-order")) {
    const std::string o = absl::AsciiStrToLower(*v);
    if (o == "stop-first") {
      config()->set_order(api::UpdateConfig::STOP_FIRST);
    } else if (o == "start-first") {
      config()->set_order(api::UpdateConfig::START_FIRST);
    } else {
      return FlagError(prefix + "-order",
                       absl::StrCat("invalid order \"", *v, "\": use start-first or stop-first"));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyHealthcheck(FlagReader& r, api::ContainerSpec* c) {
  const std::optional<bool> none = r.Bool("no-healthcheck");
  std::vector<std::string> given;
  for (const char* name : {"health-cmd", "health-interval", "health-retries", "health-timeout",
                           "health-start-period", "health-start-interval"}) {
    if (r.HasValue(name)) given.push_back(name);
  }
  if (none.value_or(false) && !given.empty()) {
    return Invalid(absl::StrCat("--no-healthcheck conflicts with --", given.front(),
                                ": give one or the other"));
  }
  if (none.has_value()) {
    if (*none) {
      c->mutable_healthcheck()->Clear();
      c->mutable_healthcheck()->add_test("NONE");
    } else if (c->healthcheck().test_size() == 1 && c->healthcheck().test(0) == "NONE") {
      c->mutable_healthcheck()->clear_test();  // back to the image's check
    }
  }
  if (const std::string* v = r.Value("health-cmd")) {
    api::HealthConfig* h = c->mutable_healthcheck();
    h->clear_test();
    if (!v->empty()) {
      h->add_test("CMD-SHELL");
      h->add_test(*v);
    }
  }
  auto health = [c] { return c->mutable_healthcheck(); };
  SHOAL_RETURN_IF_ERROR(WithDuration(r, "health-interval",
                                     [&](const auto& d) { *health()->mutable_interval() = d; }));
  SHOAL_RETURN_IF_ERROR(
      WithDuration(r, "health-timeout", [&](const auto& d) { *health()->mutable_timeout() = d; }));
  SHOAL_RETURN_IF_ERROR(WithDuration(
      r, "health-start-period", [&](const auto& d) { *health()->mutable_start_period() = d; }));
  SHOAL_RETURN_IF_ERROR(WithDuration(
      r, "health-start-interval", [&](const auto& d) { *health()->mutable_start_interval() = d; }));
  if (const std::string* v = r.Value("health-retries")) {
    absl::StatusOr<int64_t> n = ParseInteger(*v);
    if (!n.ok() || *n < 0 || *n > 1000000) {
      return FlagError("health-retries",
                       absl::StrCat("invalid number \"", *v, "\": use a whole number, e.g. 3"));
    }
    health()->set_retries(static_cast<int32_t>(*n));
  }
  return absl::OkStatus();
}

absl::Status ApplyLabel(const std::string& flag, const std::string& text,
                        google::protobuf::Map<std::string, std::string>* labels) {
  std::string key, value;
  absl::Status s = SplitKeyValue(text, &key, &value, "KEY=VALUE or KEY");
  if (!s.ok()) return FlagError(flag, s);
  (*labels)[key] = value;
  return absl::OkStatus();
}

absl::Status ApplySysctl(const std::string& flag, const std::string& text,
                         google::protobuf::Map<std::string, std::string>* sysctls) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return FlagError(flag, absl::StrCat("invalid value \"", text,
                                        "\": use KEY=VALUE, e.g. net.core.somaxconn=1024"));
  }
  (*sysctls)[text.substr(0, eq)] = text.substr(eq + 1);
  return absl::OkStatus();
}

// Capabilities as docker normalises them: upper case with a CAP_ prefix ("ALL" stays).
std::string NormalizeCapability(const std::string& cap) {
  std::string c = absl::AsciiStrToUpper(cap);
  if (c != "ALL" && !absl::StartsWith(c, "CAP_")) c = "CAP_" + c;
  return c;
}

void AddUnique(google::protobuf::RepeatedPtrField<std::string>* list, const std::string& v) {
  if (std::find(list->begin(), list->end(), v) == list->end()) *list->Add() = v;
}

void RemoveValue(google::protobuf::RepeatedPtrField<std::string>* list, const std::string& v) {
  list->erase(std::remove(list->begin(), list->end(), v), list->end());
}

template <typename T, typename Pred>
void RemoveIf(google::protobuf::RepeatedPtrField<T>* list, Pred pred) {
  list->erase(std::remove_if(list->begin(), list->end(), pred), list->end());
}

void ApplyCapabilities(FlagReader& r, api::ContainerSpec* c) {
  for (const std::string& cap : r.List("cap-add")) {
    const std::string n = NormalizeCapability(cap);
    RemoveValue(c->mutable_capability_drop(), n);
    AddUnique(c->mutable_capability_add(), n);
  }
  for (const std::string& cap : r.List("cap-drop")) {
    const std::string n = NormalizeCapability(cap);
    RemoveValue(c->mutable_capability_add(), n);
    AddUnique(c->mutable_capability_drop(), n);
  }
}

absl::Status ApplyLogDriver(FlagReader& r, api::TaskSpec* task) {
  const std::string* driver = r.Value("log-driver");
  const std::vector<std::string>& opts = r.List("log-opt");
  if (driver == nullptr && opts.empty()) return absl::OkStatus();
  if (driver != nullptr) {
    task->mutable_log_driver()->Clear();  // a new driver starts with the options given now
    task->mutable_log_driver()->set_name(*driver);
  }
  for (const std::string& o : opts) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      return FlagError("log-opt",
                       absl::StrCat("invalid value \"", o, "\": use KEY=VALUE, e.g. max-size=10m"));
    }
    (*task->mutable_log_driver()->mutable_options())[o.substr(0, eq)] = o.substr(eq + 1);
  }
  if (task->log_driver().name().empty()) {
    return FlagError("log-opt", "log options need a log driver: add --log-driver NAME");
  }
  return absl::OkStatus();
}

// The flags `create` and `update` share that set one value each.
absl::Status ApplyCommon(FlagReader& r, api::ServiceSpec* spec) {
  api::TaskSpec* task = spec->mutable_task_template();
  api::ContainerSpec* c = task->mutable_container_spec();

  if (const std::string* v = r.Value("replicas-max-per-node")) {
    if (!IsReplicatedLike(*spec)) {
      return FlagError("replicas-max-per-node",
                       absl::StrCat("can only be used with replicated or replicated-job mode "
                                    "(this service is ",
                                    ModeName(*spec), ")"));
    }
    absl::StatusOr<uint64_t> n = ParseCount(*v);
    if (!n.ok()) return FlagError("replicas-max-per-node", n.status());
    task->mutable_placement()->set_max_replicas(*n);
  }
  SHOAL_RETURN_IF_ERROR(ApplyResources(r, task));
  SHOAL_RETURN_IF_ERROR(ApplyRestartPolicy(r, task));
  SHOAL_RETURN_IF_ERROR(ApplyUpdateConfig(r, "update", /*rollback=*/false, spec));
  SHOAL_RETURN_IF_ERROR(ApplyUpdateConfig(r, "rollback", /*rollback=*/true, spec));
  SHOAL_RETURN_IF_ERROR(ApplyHealthcheck(r, c));
  SHOAL_RETURN_IF_ERROR(WithDuration(r, "stop-grace-period",
                                     [&](const auto& d) { *c->mutable_stop_grace_period() = d; }));
  if (const std::string* v = r.Value("stop-signal")) c->set_stop_signal(*v);
  if (const std::string* v = r.Value("user")) c->set_user(*v);
  if (const std::string* v = r.Value("workdir")) c->set_dir(*v);
  if (const std::string* v = r.Value("hostname")) c->set_hostname(*v);
  if (const std::string* v = r.Value("entrypoint")) {
    absl::StatusOr<std::vector<std::string>> words = SplitShellWords(*v);
    if (!words.ok()) return FlagError("entrypoint", words.status());
    c->clear_command();
    for (std::string& w : *words) c->add_command(std::move(w));
  }
  if (const std::string* v = r.Value("endpoint-mode")) {
    const std::string m = absl::AsciiStrToLower(*v);
    if (m == "vip") {
      spec->mutable_endpoint_spec()->set_mode(api::EndpointSpec::VIP);
    } else if (m == "dnsrr") {
      spec->mutable_endpoint_spec()->set_mode(api::EndpointSpec::DNSRR);
    } else {
      return FlagError("endpoint-mode",
                       absl::StrCat("invalid mode \"", *v, "\": use vip or dnsrr"));
    }
  }
  SHOAL_RETURN_IF_ERROR(ApplyLogDriver(r, task));
  if (std::optional<bool> b = r.Bool("tty")) c->set_tty(*b);
  if (std::optional<bool> b = r.Bool("read-only")) c->set_read_only(*b);
  if (std::optional<bool> b = r.Bool("init")) c->mutable_init()->set_value(*b);
  ApplyCapabilities(r, c);
  return absl::OkStatus();
}

// --- create's list flags -----------------------------------------------------------------------

absl::Status ApplyCreateLists(FlagReader& r, api::ServiceSpec* spec) {
  api::TaskSpec* task = spec->mutable_task_template();
  api::ContainerSpec* c = task->mutable_container_spec();
  for (const std::string& e : r.List("env")) {
    absl::StatusOr<std::string> env = ParseEnv(r.flags(), e);
    if (!env.ok()) return FlagError("env", env.status());
    c->add_env(*env);
  }
  for (const std::string& l : r.List("label")) {
    SHOAL_RETURN_IF_ERROR(ApplyLabel("label", l, spec->mutable_annotations()->mutable_labels()));
  }
  for (const std::string& l : r.List("container-label")) {
    SHOAL_RETURN_IF_ERROR(ApplyLabel("container-label", l, c->mutable_labels()));
  }
  for (const std::string& con : r.List("constraint")) {
    if (absl::StripAsciiWhitespace(con).empty()) {
      return FlagError("constraint", "empty constraint; use e.g. node.role==manager");
    }
    task->mutable_placement()->add_constraints(con);
  }
  for (const std::string& p : r.List("placement-pref")) {
    absl::StatusOr<api::PlacementPreference> pref = ParsePlacementPreference(p);
    if (!pref.ok()) return FlagError("placement-pref", pref.status());
    *task->mutable_placement()->add_preferences() = *pref;
  }
  for (const std::string& p : r.List("publish")) {
    absl::StatusOr<std::vector<api::PortConfig>> ports = ParsePublish(p);
    if (!ports.ok()) return FlagError("publish", ports.status());
    for (const api::PortConfig& port : *ports) *spec->mutable_endpoint_spec()->add_ports() = port;
  }
  for (const std::string& n : r.List("network")) {
    absl::StatusOr<api::NetworkAttachmentConfig> net = ParseNetworkAttachment(n);
    if (!net.ok()) return FlagError("network", net.status());
    *task->add_networks() = *net;
  }
  for (const std::string& s : r.List("secret")) {
    absl::StatusOr<api::SecretReference> ref = ParseSecretReference(s);
    if (!ref.ok()) return FlagError("secret", ref.status());
    *c->add_secrets() = *ref;
  }
  for (const std::string& s : r.List("config")) {
    absl::StatusOr<api::ConfigReference> ref = ParseConfigReference(s);
    if (!ref.ok()) return FlagError("config", ref.status());
    *c->add_configs() = *ref;
  }
  for (const std::string& m : r.List("mount")) {
    absl::StatusOr<api::Mount> mount = ParseMount(m);
    if (!mount.ok()) return FlagError("mount", mount.status());
    *c->add_mounts() = *mount;
  }
  for (const std::string& g : r.List("group")) c->add_groups(g);
  for (const std::string& s : r.List("sysctl")) {
    SHOAL_RETURN_IF_ERROR(ApplySysctl("sysctl", s, c->mutable_sysctls()));
  }
  return absl::OkStatus();
}

absl::Status ApplyCreateMode(FlagReader& r, api::ServiceSpec* spec) {
  const std::string* mode_flag = r.Value("mode");
  const std::string mode = mode_flag == nullptr ? "replicated" : *mode_flag;
  std::optional<uint64_t> replicas, max_concurrent;
  SHOAL_RETURN_IF_ERROR(WithCount(r, "replicas", [&](uint64_t n) { replicas = n; }));
  SHOAL_RETURN_IF_ERROR(WithCount(r, "max-concurrent", [&](uint64_t n) { max_concurrent = n; }));
  if (max_concurrent && mode != "replicated-job") {
    return FlagError("max-concurrent", "can only be used with --mode replicated-job");
  }
  if (mode == "replicated") {
    spec->mutable_replicated()->set_replicas(replicas.value_or(1));
  } else if (mode == "replicated-job") {
    const uint64_t total = replicas.value_or(1);
    spec->mutable_replicated_job()->set_total_completions(total);
    spec->mutable_replicated_job()->set_max_concurrent(max_concurrent.value_or(total));
  } else if (mode == "global" || mode == "global-job") {
    if (replicas) {
      return FlagError("replicas", "can only be used with --mode replicated or replicated-job");
    }
    if (mode == "global") {
      spec->mutable_global();
    } else {
      spec->mutable_global_job();
    }
  } else {
    return FlagError("mode", absl::StrCat("invalid mode \"", mode,
                                          "\": use replicated, global, replicated-job or "
                                          "global-job"));
  }
  return absl::OkStatus();
}

// --- update's list flags -----------------------------------------------------------------------

absl::Status ApplyUpdateLists(FlagReader& r, api::ServiceSpec* spec) {
  api::TaskSpec* task = spec->mutable_task_template();
  api::ContainerSpec* c = task->mutable_container_spec();

  // Environment: an added KEY replaces KEY's entry; then removals by key.
  for (const std::string& e : r.List("env-add")) {
    absl::StatusOr<std::string> env = ParseEnv(r.flags(), e);
    if (!env.ok()) return FlagError("env-add", env.status());
    const std::string key = EnvKey(*env);
    auto* list = c->mutable_env();
    auto it = std::find_if(list->begin(), list->end(),
                           [&key](const std::string& x) { return EnvKey(x) == key; });
    if (it != list->end()) {
      *it = *env;
    } else {
      c->add_env(*env);
    }
  }
  for (const std::string& key : r.List("env-rm")) {
    const std::string k = EnvKey(key);
    RemoveIf(c->mutable_env(), [&k](const std::string& x) { return EnvKey(x) == k; });
  }

  for (const std::string& l : r.List("label-add")) {
    SHOAL_RETURN_IF_ERROR(
        ApplyLabel("label-add", l, spec->mutable_annotations()->mutable_labels()));
  }
  for (const std::string& k : r.List("label-rm"))
    spec->mutable_annotations()->mutable_labels()->erase(k);
  for (const std::string& l : r.List("container-label-add")) {
    SHOAL_RETURN_IF_ERROR(ApplyLabel("container-label-add", l, c->mutable_labels()));
  }
  for (const std::string& k : r.List("container-label-rm")) c->mutable_labels()->erase(k);

  for (const std::string& con : r.List("constraint-add")) {
    if (absl::StripAsciiWhitespace(con).empty()) {
      return FlagError("constraint-add", "empty constraint; use e.g. node.role==manager");
    }
    AddUnique(task->mutable_placement()->mutable_constraints(), con);
  }
  for (const std::string& con : r.List("constraint-rm")) {
    if (task->has_placement()) RemoveValue(task->mutable_placement()->mutable_constraints(), con);
  }
  for (const std::string& p : r.List("placement-pref-add")) {
    absl::StatusOr<api::PlacementPreference> pref = ParsePlacementPreference(p);
    if (!pref.ok()) return FlagError("placement-pref-add", pref.status());
    *task->mutable_placement()->add_preferences() = *pref;
  }
  for (const std::string& p : r.List("placement-pref-rm")) {
    absl::StatusOr<api::PlacementPreference> pref = ParsePlacementPreference(p);
    if (!pref.ok()) return FlagError("placement-pref-rm", pref.status());
    if (!task->has_placement()) continue;
    RemoveIf(task->mutable_placement()->mutable_preferences(),
             [&pref](const api::PlacementPreference& x) {
               return x.spread().spread_descriptor() == pref->spread().spread_descriptor();
             });
  }

  // Ports: removals by target port (and protocol; and published port when given), then additions
  // (an added port replaces one publishing the same port number and protocol).
  for (const std::string& p : r.List("publish-rm")) {
    absl::StatusOr<std::vector<api::PortConfig>> rm = ParsePublish(p);
    if (!rm.ok()) return FlagError("publish-rm", rm.status());
    if (!spec->has_endpoint_spec()) continue;
    for (const api::PortConfig& x : *rm) {
      RemoveIf(spec->mutable_endpoint_spec()->mutable_ports(), [&x](const api::PortConfig& port) {
        return port.target_port() == x.target_port() && port.protocol() == x.protocol() &&
               (x.published_port() == 0 || port.published_port() == x.published_port());
      });
    }
  }
  for (const std::string& p : r.List("publish-add")) {
    absl::StatusOr<std::vector<api::PortConfig>> add = ParsePublish(p);
    if (!add.ok()) return FlagError("publish-add", add.status());
    auto* ports = spec->mutable_endpoint_spec()->mutable_ports();
    for (const api::PortConfig& x : *add) {
      RemoveIf(ports, [&x](const api::PortConfig& port) {
        if (port.protocol() != x.protocol()) return false;
        if (x.published_port() != 0) return port.published_port() == x.published_port();
        return port.published_port() == 0 && port.target_port() == x.target_port();
      });
      *ports->Add() = x;
    }
  }

  // Secrets and configs: removals by name or ID, then additions (replacing a reference to the
  // same object with the same target).
  for (const std::string& s : r.List("secret-rm")) {
    RemoveIf(c->mutable_secrets(), [&s](const api::SecretReference& x) {
      return x.secret_name() == s || x.secret_id() == s;
    });
  }
  for (const std::string& s : r.List("secret-add")) {
    absl::StatusOr<api::SecretReference> ref = ParseSecretReference(s);
    if (!ref.ok()) return FlagError("secret-add", ref.status());
    RemoveIf(c->mutable_secrets(), [&ref](const api::SecretReference& x) {
      return x.secret_name() == ref->secret_name() &&
             (ref->file().name().empty() || x.file().name() == ref->file().name());
    });
    *c->add_secrets() = *ref;
  }
  for (const std::string& s : r.List("config-rm")) {
    RemoveIf(c->mutable_configs(), [&s](const api::ConfigReference& x) {
      return x.config_name() == s || x.config_id() == s;
    });
  }
  for (const std::string& s : r.List("config-add")) {
    absl::StatusOr<api::ConfigReference> ref = ParseConfigReference(s);
    if (!ref.ok()) return FlagError("config-add", ref.status());
    RemoveIf(c->mutable_configs(), [&ref](const api::ConfigReference& x) {
      return x.config_name() == ref->config_name() &&
             (ref->file().name().empty() || x.file().name() == ref->file().name());
    });
    *c->add_configs() = *ref;
  }

  // Networks: the spec holds IDs; the command told us the IDs of the names given.
  for (const std::string& n : r.List("network-rm")) {
    auto id = r.flags().network_ids.find(n);
    const std::string resolved = id == r.flags().network_ids.end() ? n : id->second;
    RemoveIf(task->mutable_networks(), [&](const api::NetworkAttachmentConfig& x) {
      return x.target() == n || x.target() == resolved;
    });
  }
  for (const std::string& n : r.List("network-add")) {
    absl::StatusOr<api::NetworkAttachmentConfig> net = ParseNetworkAttachment(n);
    if (!net.ok()) return FlagError("network-add", net.status());
    RemoveIf(task->mutable_networks(),
             [&net](const api::NetworkAttachmentConfig& x) { return x.target() == net->target(); });
    *task->add_networks() = *net;
  }

  // Mounts: an added mount replaces the one at the same target; removals by target.
  for (const std::string& m : r.List("mount-add")) {
    absl::StatusOr<api::Mount> mount = ParseMount(m);
    if (!mount.ok()) return FlagError("mount-add", mount.status());
    RemoveIf(c->mutable_mounts(),
             [&mount](const api::Mount& x) { return x.target() == mount->target(); });
    *c->add_mounts() = *mount;
  }
  for (const std::string& t : r.List("mount-rm")) {
    RemoveIf(c->mutable_mounts(), [&t](const api::Mount& x) { return x.target() == t; });
  }

  for (const std::string& g : r.List("group-add")) AddUnique(c->mutable_groups(), g);
  for (const std::string& g : r.List("group-rm")) RemoveValue(c->mutable_groups(), g);
  for (const std::string& s : r.List("sysctl-add")) {
    SHOAL_RETURN_IF_ERROR(ApplySysctl("sysctl-add", s, c->mutable_sysctls()));
  }
  for (const std::string& k : r.List("sysctl-rm")) c->mutable_sysctls()->erase(EnvKey(k));
  return absl::OkStatus();
}

absl::Status ApplyUpdateMode(FlagReader& r, api::ServiceSpec* spec) {
  std::optional<uint64_t> replicas, max_concurrent;
  SHOAL_RETURN_IF_ERROR(WithCount(r, "replicas", [&](uint64_t n) { replicas = n; }));
  SHOAL_RETURN_IF_ERROR(WithCount(r, "max-concurrent", [&](uint64_t n) { max_concurrent = n; }));
  if (replicas) {
    if (spec->has_replicated()) {
      spec->mutable_replicated()->set_replicas(*replicas);
    } else if (spec->has_replicated_job()) {
      spec->mutable_replicated_job()->set_total_completions(*replicas);
    } else {
      return FlagError("replicas", absl::StrCat("can only be used with replicated or "
                                                "replicated-job services (this service is ",
                                                ModeName(*spec), ")"));
    }
  }
  if (max_concurrent) {
    if (!spec->has_replicated_job()) {
      return FlagError("max-concurrent",
                       absl::StrCat("can only be used with replicated-job services (this service "
                                    "is ",
                                    ModeName(*spec), ")"));
    }
    spec->mutable_replicated_job()->set_max_concurrent(*max_concurrent);
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<ServiceFlagInfo>& ServiceFlagTable() {
  static const std::vector<ServiceFlagInfo>* const kTable = new std::vector<ServiceFlagInfo>{
      // Identity and mode.
      {"name", "", FlagKind::kValue, true, false, "Service name"},
      {"mode", "", FlagKind::kValue, true, false,
       "Service mode (replicated, global, replicated-job, global-job) (default replicated)"},
      {"replicas", "", FlagKind::kValue, true, true, "Number of tasks"},
      {"max-concurrent", "", FlagKind::kValue, true, true,
       "Number of job tasks to run concurrently (default equal to --replicas)"},
      {"image", "", FlagKind::kValue, false, true, "Service image tag"},
      {"args", "", FlagKind::kValue, false, true, "Service command args"},
      {"force", "", FlagKind::kBool, false, true, "Force update even if no changes require it"},
      // Lists: create's flag, then update's -add/-rm pair.
      {"env", "e", FlagKind::kList, true, false, "Set environment variables"},
      {"env-add", "", FlagKind::kList, false, true, "Add or update an environment variable"},
      {"env-rm", "", FlagKind::kList, false, true, "Remove an environment variable"},
      {"label", "l", FlagKind::kList, true, false, "Service labels"},
      {"label-add", "", FlagKind::kList, false, true, "Add or update a service label"},
      {"label-rm", "", FlagKind::kList, false, true, "Remove a label by its key"},
      {"container-label", "", FlagKind::kList, true, false, "Container labels"},
      {"container-label-add", "", FlagKind::kList, false, true, "Add or update a container label"},
      {"container-label-rm", "", FlagKind::kList, false, true,
       "Remove a container label by its key"},
      {"constraint", "", FlagKind::kList, true, false, "Placement constraints"},
      {"constraint-add", "", FlagKind::kList, false, true, "Add or update a placement constraint"},
      {"constraint-rm", "", FlagKind::kList, false, true, "Remove a constraint"},
      {"placement-pref", "", FlagKind::kList, true, false,
       "Add a placement preference (spread=node.labels.KEY)"},
      {"placement-pref-add", "", FlagKind::kList, false, true, "Add a placement preference"},
      {"placement-pref-rm", "", FlagKind::kList, false, true, "Remove a placement preference"},
      {"replicas-max-per-node", "", FlagKind::kValue, true, true,
       "Maximum number of tasks per node (default 0 = unlimited)"},
      {"publish", "p", FlagKind::kList, true, false,
       "Publish a port as a node port ([PUBLISHED:]TARGET[/PROTOCOL] or "
       "published=,target=,protocol=,mode=)"},
      {"publish-add", "", FlagKind::kList, false, true, "Add or update a published port"},
      {"publish-rm", "", FlagKind::kList, false, true,
       "Remove a published port by its target port"},
      {"network", "", FlagKind::kList, true, false, "Network attachments"},
      {"network-add", "", FlagKind::kList, false, true, "Add a network"},
      {"network-rm", "", FlagKind::kList, false, true, "Remove a network"},
      {"secret", "", FlagKind::kList, true, false,
       "Specify secrets to expose to the service (NAME or source=,target=,uid=,gid=,mode=)"},
      {"secret-add", "", FlagKind::kList, false, true, "Add or update a secret on a service"},
      {"secret-rm", "", FlagKind::kList, false, true, "Remove a secret"},
      {"config", "", FlagKind::kList, true, false,
       "Specify configurations to expose to the service (NAME or source=,target=,uid=,gid=,"
       "mode=)"},
      {"config-add", "", FlagKind::kList, false, true, "Add or update a config file on a service"},
      {"config-rm", "", FlagKind::kList, false, true, "Remove a configuration file"},
      {"mount", "", FlagKind::kList, true, false,
       "Attach a filesystem mount to the service (type=bind|volume|tmpfs,source=,target=,"
       "readonly)"},
      {"mount-add", "", FlagKind::kList, false, true, "Add or update a mount on a service"},
      {"mount-rm", "", FlagKind::kList, false, true, "Remove a mount by its target path"},
      {"group", "", FlagKind::kList, true, false,
       "Set one or more supplementary user groups for the container"},
      {"group-add", "", FlagKind::kList, false, true,
       "Add an additional supplementary user group to the container"},
      {"group-rm", "", FlagKind::kList, false, true,
       "Remove a previously added supplementary user group from the container"},
      {"sysctl", "", FlagKind::kList, true, false, "Sysctl options"},
      {"sysctl-add", "", FlagKind::kList, false, true, "Add or update a Sysctl option"},
      {"sysctl-rm", "", FlagKind::kList, false, true, "Remove a Sysctl option"},
      {"cap-add", "", FlagKind::kList, true, true, "Add Linux capabilities"},
      {"cap-drop", "", FlagKind::kList, true, true, "Drop Linux capabilities"},
      // Resources.
      {"reserve-cpu", "", FlagKind::kValue, true, true, "Reserve CPUs (e.g. 0.5)"},
      {"reserve-memory", "", FlagKind::kValue, true, true, "Reserve Memory (e.g. 512M)"},
      {"limit-cpu", "", FlagKind::kValue, true, true, "Limit CPUs (e.g. 0.5)"},
      {"limit-memory", "", FlagKind::kValue, true, true, "Limit Memory (e.g. 1G)"},
      {"limit-pids", "", FlagKind::kValue, true, true,
       "Limit maximum number of processes (default 0 = unlimited)"},
      // Restart policy.
      {"restart-condition", "", FlagKind::kValue, true, true,
       "Restart when condition is met (none, on-failure, any) (default any)"},
      {"restart-delay", "", FlagKind::kValue, true, true,
       "Delay between restart attempts (ns|us|ms|s|m|h) (default 5s)"},
      {"restart-max-attempts", "", FlagKind::kValue, true, true,
       "Maximum number of restarts before giving up"},
      {"restart-window", "", FlagKind::kValue, true, true,
       "Window used to evaluate the restart policy (ns|us|ms|s|m|h)"},
      // Rolling updates.
      {"update-parallelism", "", FlagKind::kValue, true, true,
       "Maximum number of tasks updated simultaneously (0 to update all at once) (default 1)"},
      {"update-delay", "", FlagKind::kValue, true, true,
       "Delay between updates (ns|us|ms|s|m|h) (default 0s)"},
      {"update-failure-action", "", FlagKind::kValue, true, true,
       "Action on update failure (pause, continue, rollback) (default pause)"},
      {"update-monitor", "", FlagKind::kValue, true, true,
       "Duration after each task update to monitor for failure (ns|us|ms|s|m|h) (default 5s)"},
      {"update-max-failure-ratio", "", FlagKind::kValue, true, true,
       "Failure rate to tolerate during an update"},
      {"update-order", "", FlagKind::kValue, true, true,
       "Update order (start-first, stop-first) (default stop-first)"},
      {"rollback-parallelism", "", FlagKind::kValue, true, true,
       "Maximum number of tasks rolled back simultaneously (0 to roll back all at once) "
       "(default 1)"},
      {"rollback-delay", "", FlagKind::kValue, true, true,
       "Delay between task rollbacks (ns|us|ms|s|m|h) (default 0s)"},
      {"rollback-failure-action", "", FlagKind::kValue, true, true,
       "Action on rollback failure (pause, continue) (default pause)"},
      {"rollback-monitor", "", FlagKind::kValue, true, true,
       "Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h) (default 5s)"},
      {"rollback-max-failure-ratio", "", FlagKind::kValue, true, true,
       "Failure rate to tolerate during a rollback"},
      {"rollback-order", "", FlagKind::kValue, true, true,
       "Rollback order (start-first, stop-first) (default stop-first)"},
      // Health check.
      {"health-cmd", "", FlagKind::kValue, true, true, "Command to run to check health"},
      {"health-interval", "", FlagKind::kValue, true, true,
       "Time between running the check (ms|s|m|h)"},
      {"health-retries", "", FlagKind::kValue, true, true,
       "Consecutive failures needed to report unhealthy"},
      {"health-timeout", "", FlagKind::kValue, true, true,
       "Maximum time to allow one check to run (ms|s|m|h)"},
      {"health-start-period", "", FlagKind::kValue, true, true,
       "Start period for the container to initialize before counting retries towards unstable "
       "(ms|s|m|h)"},
      {"health-start-interval", "", FlagKind::kValue, true, true,
       "Time between running the check during the start period (ms|s|m|h)"},
      {"no-healthcheck", "", FlagKind::kBool, true, true,
       "Disable any container-specified HEALTHCHECK"},
      // Container.
      {"stop-grace-period", "", FlagKind::kValue, true, true,
       "Time to wait before force killing a container (ns|us|ms|s|m|h) (default 10s)"},
      {"stop-signal", "", FlagKind::kValue, true, true, "Signal to stop the container"},
      {"user", "u", FlagKind::kValue, true, true,
       "Username or UID (format: <name|uid>[:<group|gid>])"},
      {"workdir", "w", FlagKind::kValue, true, true, "Working directory inside the container"},
      {"entrypoint", "", FlagKind::kValue, true, true,
       "Overwrite the default ENTRYPOINT of the image"},
      {"hostname", "", FlagKind::kValue, true, true, "Container hostname"},
      {"tty", "t", FlagKind::kBool, true, true, "Allocate a pseudo-TTY"},
      {"read-only", "", FlagKind::kBool, true, true,
       "Mount the container's root filesystem as read only"},
      {"init", "", FlagKind::kBool, true, true,
       "Use an init inside each service container to forward signals and reap processes"},
      {"log-driver", "", FlagKind::kValue, true, true, "Logging driver for service"},
      {"log-opt", "", FlagKind::kList, true, true, "Logging driver options"},
      {"endpoint-mode", "", FlagKind::kValue, true, true,
       "Endpoint mode (vip or dnsrr) (default vip)"},
  };
  return *kTable;
}

absl::StatusOr<api::ServiceSpec> BuildServiceSpec(const ServiceFlags& flags) {
  FlagReader r(flags);
  api::ServiceSpec spec;
  if (flags.image.empty()) {
    return Invalid("an image is required: shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]");
  }
  if (const std::string* name = r.Value("name")) spec.mutable_annotations()->set_name(*name);
  api::ContainerSpec* c = spec.mutable_task_template()->mutable_container_spec();
  c->set_image(flags.image);
  for (const std::string& a : flags.args) c->add_args(a);
  SHOAL_RETURN_IF_ERROR(ApplyCreateMode(r, &spec));
  SHOAL_RETURN_IF_ERROR(ApplyCreateLists(r, &spec));
  SHOAL_RETURN_IF_ERROR(ApplyCommon(r, &spec));
  SHOAL_RETURN_IF_ERROR(r.CheckAllRead("create"));
  return spec;
}

absl::Status UpdateServiceSpec(const ServiceFlags& flags, api::ServiceSpec* spec) {
  FlagReader r(flags);
  api::ContainerSpec* c = spec->mutable_task_template()->mutable_container_spec();
  if (const std::string* image = r.Value("image")) {
    if (image->empty()) return FlagError("image", "empty image; give an image reference");
    c->set_image(*image);
  }
  if (const std::string* args = r.Value("args")) {
    absl::StatusOr<std::vector<std::string>> words = SplitShellWords(*args);
    if (!words.ok()) return FlagError("args", words.status());
    c->clear_args();
    for (std::string& w : *words) c->add_args(std::move(w));
  }
  SHOAL_RETURN_IF_ERROR(ApplyUpdateMode(r, spec));
  SHOAL_RETURN_IF_ERROR(ApplyUpdateLists(r, spec));
  SHOAL_RETURN_IF_ERROR(ApplyCommon(r, spec));
  if (r.Bool("force").value_or(false)) {
    api::TaskSpec* task = spec->mutable_task_template();
    task->set_force_update(task->force_update() + 1);
  }
  return r.CheckAllRead("update");
}

absl::StatusOr<std::vector<api::PortConfig>> ParsePublish(const std::string& text) {
  if (text.empty()) return Invalid(absl::StrCat("empty port; ", kPublishUsage));
  if (text.find('=') != std::string::npos) return ParsePublishLong(text);
  return ParsePublishShort(text);
}

absl::StatusOr<api::SecretReference> ParseSecretReference(const std::string& text) {
  return ParseFileReference<api::SecretReference>(
      text, "secret", [](api::SecretReference* r, const std::string& n) { r->set_secret_name(n); });
}

absl::StatusOr<api::ConfigReference> ParseConfigReference(const std::string& text) {
  return ParseFileReference<api::ConfigReference>(
      text, "config", [](api::ConfigReference* r, const std::string& n) { r->set_config_name(n); });
}

absl::StatusOr<api::Mount> ParseMount(const std::string& text) {
  api::Mount m;
  const std::vector<Field> fields = SplitFields(text);
  // The type first: the per-type options depend on it.
  for (const Field& f : fields) {
    if (f.key != "type") continue;
    const std::string t = absl::AsciiStrToLower(f.value);
    if (t == "volume") {
      m.set_type(api::Mount::VOLUME);
    } else if (t == "bind") {
      m.set_type(api::Mount::BIND);
    } else if (t == "tmpfs") {
      m.set_type(api::Mount::TMPFS);
    } else {
      return Invalid(
          absl::StrCat("invalid mount type \"", f.value, "\": use bind, volume or tmpfs"));
    }
  }
  auto only_for = [&](const Field& f, api::Mount::Type type, const char* name) -> absl::Status {
    if (m.type() == type) return absl::OkStatus();
    return Invalid(absl::StrCat("mount option ", f.key, " is only valid with type=", name));
  };
  bool has_target = false;
  for (const Field& f : fields) {
    if (f.key == "type") continue;
    if (f.key == "readonly" || f.key == "ro") {
      bool ro = true;
      if (f.has_value) {
        absl::StatusOr<bool> b = ParseBoolValue(f.value);
        if (!b.ok())
          return Invalid(absl::StrCat("mount option ", f.key, ": ", b.status().message()));
        ro = *b;
      }
      m.set_readonly(ro);
      continue;
    }
    if (f.key == "bind-nonrecursive" || f.key == "volume-nocopy") {
      bool on = true;
      if (f.has_value) {
        absl::StatusOr<bool> b = ParseBoolValue(f.value);
        if (!b.ok())
          return Invalid(absl::StrCat("mount option ", f.key, ": ", b.status().message()));
        on = *b;
      }
      if (f.key == "bind-nonrecursive") {
        SHOAL_RETURN_IF_ERROR(only_for(f, api::Mount::BIND, "bind"));
        m.mutable_bind_options()->set_non_recursive(on);
      } else {
        SHOAL_RETURN_IF_ERROR(only_for(f, api::Mount::VOLUME, "volume"));
        m.mutable_volume_options()->set_nocopy(on);
      }
      continue;
    }
    if (!f.has_value) {
      return Invalid(absl::StrCat("invalid field \"", f.key, "\" in \"", text,
                                  "\": use KEY=VALUE, e.g. type=bind,source=/data,target=/data"));
    }
    if (f.key == "source" || f.key == "src") {
      m.set_source(f.value);
    } else if (f.key == "target" || f.key == "destination" || f.key == "dst") {
      m.set_target(f.value);
      has_target = !f.value.empty();
    } else if (f.key == "bind-propagation") {
      SHOAL_RETURN_IF_ERROR(only_for(f, api::Mount::BIND, "bind"));
      api::Mount::BindOptions::Propagation p;
      if (!api::Mount::BindOptions::Propagation_Parse(absl::AsciiStrToUpper(f.value), &p)) {
        return Invalid(absl::StrCat("invalid bind-propagation \"", f.value,
                                    "\": use rprivate, private, rshared, shared, rslave or slave"));
      }
      m.mutable_bind_options()->set_propagation(p);
    } else if (f.key == "volume-label") {
      SHOAL_RETURN_IF_ERROR(only_for(f, api::Mount::VOLUME, "volume"));
      std::string key, value;
      absl::Status s = SplitKeyValue(f.value, &key, &value, "volume-label=KEY=VALUE");
      if (!s.ok()) return s;
      (*m.mutable_volume_options()->mutable_labels())[key] = value;
    } else if (f.key == "volume-driver") {
      SHOAL_RETURN_IF_ERROR(only_for(f, api::Mount::VOLUME, "volume"));
      m.mutable_volume_options()->mutable_driver_config()->set_name(f.value);
    } else if (f.key == "volume-opt") {
      SHOAL_RETURN_IF_ERROR(only_for(f, api::Mount::VOLUME, "volume"));
      std::string key, value;
      absl::Status s = SplitKeyValue(f.value, &key, &value, "volume-opt=KEY=VALUE");
      if (!s.ok()) return s;
      (*m.mutable_volume_options()->mutable_driver_config()->mutable_options())[key] = value;
    } else if (f.key == "tmpfs-size") {
      SHOAL_RETURN_IF_ERROR(only_for(f, api::Mount::TMPFS, "tmpfs"));
      absl::StatusOr<int64_t> size = ParseMemoryBytes(f.value);
      if (!size.ok()) return Invalid(absl::StrCat("tmpfs-size: ", size.status().message()));
      m.mutable_tmpfs_options()->set_size_bytes(*size);
    } else if (f.key == "tmpfs-mode") {
      SHOAL_RETURN_IF_ERROR(only_for(f, api::Mount::TMPFS, "tmpfs"));
      absl::StatusOr<uint32_t> mode = ParseFileMode(f.value);
      if (!mode.ok()) return Invalid(absl::StrCat("tmpfs-mode: ", mode.status().message()));
      m.mutable_tmpfs_options()->set_mode(*mode);
    } else {
      return Invalid(absl::StrCat(
          "unknown mount option \"", f.key,
          "\": use type, source, target, readonly, bind-propagation, bind-nonrecursive, "
          "volume-nocopy, volume-label, volume-driver, volume-opt, tmpfs-size or tmpfs-mode"));
    }
  }
  if (!has_target) {
    return Invalid(absl::StrCat("missing target in \"", text, "\": add target=/path/in/container"));
  }
  if (m.type() == api::Mount::BIND && m.source().empty()) {
    return Invalid(absl::StrCat("a bind mount needs a source (the path on the node) in \"", text,
                                "\": add source=/path"));
  }
  if (m.type() == api::Mount::TMPFS && !m.source().empty()) {
    return Invalid(absl::StrCat("a tmpfs mount takes no source, in \"", text, "\""));
  }
  return m;
}

absl::StatusOr<api::NetworkAttachmentConfig> ParseNetworkAttachment(const std::string& text) {
  api::NetworkAttachmentConfig n;
  if (text.empty()) return Invalid("empty network name; use NAME or name=NAME,alias=ALIAS");
  if (text.find('=') == std::string::npos) {
    n.set_target(text);
    return n;
  }
  for (const Field& f : SplitFields(text)) {
    if (!f.has_value) {
      return Invalid(absl::StrCat("invalid field \"", f.key, "\" in \"", text,
                                  "\": use name=NAME,alias=ALIAS,driver-opt=KEY=VALUE"));
    }
    if (f.key == "name" || f.key == "target") {
      n.set_target(f.value);
    } else if (f.key == "alias") {
      n.add_aliases(f.value);
    } else if (f.key == "driver-opt") {
      std::string key, value;
      absl::Status s = SplitKeyValue(f.value, &key, &value, "driver-opt=KEY=VALUE");
      if (!s.ok()) return s;
      (*n.mutable_driver_attachment_opts())[key] = value;
    } else {
      return Invalid(absl::StrCat("unknown field \"", f.key, "\" in \"", text,
                                  "\": use name, alias and driver-opt"));
    }
  }
  if (n.target().empty()) {
    return Invalid(absl::StrCat("missing network name in \"", text, "\": add name=NETWORK"));
  }
  return n;
}

absl::StatusOr<api::PlacementPreference> ParsePlacementPreference(const std::string& text) {
  const size_t eq = text.find('=');
  const std::string strategy = absl::AsciiStrToLower(text.substr(0, eq));
  if (eq == std::string::npos || strategy != "spread" || eq + 1 == text.size()) {
    return Invalid(absl::StrCat("invalid placement preference \"", text,
                                "\": use spread=node.labels.KEY (spread is the only strategy)"));
  }
  api::PlacementPreference p;
  p.mutable_spread()->set_spread_descriptor(text.substr(eq + 1));
  return p;
}

absl::StatusOr<int64_t> ParseNanoCpus(const std::string& text) {
  auto invalid = [&] {
    return Invalid(absl::StrCat("invalid number of CPUs \"", text,
                                "\": use a decimal number, "
                                "e.g. 0.5 or 2"));
  };
  const size_t dot = text.find('.');
  const std::string whole = text.substr(0, dot);
  const std::string frac = dot == std::string::npos ? "" : text.substr(dot + 1);
  if ((whole.empty() && frac.empty()) || whole.size() > 9) return invalid();
  for (char ch : whole + frac) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(ch))) return invalid();
  }
  if (frac.size() > 9) {
    return Invalid(
        absl::StrCat("number of CPUs \"", text, "\" is too precise: use at most 9 decimal places"));
  }
  int64_t w = 0, f = 0;
  if (!whole.empty() && !absl::SimpleAtoi(whole, &w)) return invalid();
  if (!frac.empty() && !absl::SimpleAtoi(frac + std::string(9 - frac.size(), '0'), &f)) {
    return invalid();
  }
  return w * 1000000000 + f;
}

absl::StatusOr<int64_t> ParseMemoryBytes(const std::string& text) {
  auto invalid = [&] {
    return Invalid(absl::StrCat("invalid size \"", text,
                                "\": use a number of bytes with an optional unit (b, k, m, g, t, "
                                "p), e.g. 512m or 1g"));
  };
  size_t i = 0;
  while (i < text.size() &&
         (absl::ascii_isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  const std::string number = text.substr(0, i);
  std::string unit = absl::AsciiStrToLower(text.substr(i));
  if (!unit.empty() && unit[0] == ' ') unit = unit.substr(1);
  double value = 0;
  if (number.empty() || std::count(number.begin(), number.end(), '.') > 1 ||
      !absl::SimpleAtod(number, &value)) {
    return invalid();
  }
  double multiplier = 1;
  if (!unit.empty() && std::string("kmgtp").find(unit[0]) != std::string::npos) {
    const size_t power = std::string("kmgtp").find(unit[0]) + 1;
    for (size_t p = 0; p < power; ++p) multiplier *= 1024;
    unit = unit.substr(1);
    if (!unit.empty() && unit[0] == 'i') unit = unit.substr(1);
  }
  if (unit == "b") unit.clear();
  if (!unit.empty()) return invalid();
  const double bytes = value * multiplier;
  if (bytes >= 9.2e18) return invalid();
  return static_cast<int64_t>(bytes);
}

absl::StatusOr<std::vector<std::string>> SplitShellWords(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  size_t i = 0;
  while (i < text.size()) {
    const char ch = text[i];
    if (ch == ' ' || ch == '\t' || ch == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      ++i;
    } else if (ch == '\'') {
      const size_t end = text.find('\'', i + 1);
      if (end == std::string::npos) {
        return Invalid(absl::StrCat("unterminated single quote in \"", text, "\""));
      }
      word += text.substr(i + 1, end - i - 1);
      in_word = true;
      i = end + 1;
    } else if (ch == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '"') {
          closed = true;
          ++i;
          break;
        }
        if (text[i] == '\\' && i + 1 < text.size() &&
            std::string("\"\\$`").find(text[i + 1]) != std::string::npos) {
          ++i;
        }
        word += text[i++];
      }
      if (!closed) return Invalid(absl::StrCat("unterminated double quote in \"", text, "\""));
      in_word = true;
    } else if (ch == '\\') {
      if (i + 1 >= text.size()) {
        return Invalid(absl::StrCat("trailing backslash in \"", text, "\""));
      }
      word += text[i + 1];
      in_word = true;
      i += 2;
    } else {
      word += ch;
      in_word = true;
      ++i;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

#undef SHOAL_RETURN_IF_ERROR

}  // namespace shoal::cli
