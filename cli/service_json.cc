#include "cli/service_json.h"

#include <map>

#include "absl/strings/ascii.h"
#include "cli/duration.h"
#include "cli/json_util.h"

namespace shoal::cli {
namespace {

using Json = nlohmann::ordered_json;

int64_t Nanos(const google::protobuf::Duration& d) {
  return absl::ToInt64Nanoseconds(FromProto(d));
}

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

Json StringList(const google::protobuf::RepeatedPtrField<std::string>& list) {
  Json out = Json::array();
  for (const std::string& s : list) out.push_back(s);
  return out;
}

Json DriverJson(const api::Driver& d) {
  Json out = {{"Name", d.name()}};
  if (!d.options().empty()) out["Options"] = LabelsJson(d.options());
  return out;
}

Json FileTargetJson(const api::FileTarget& f) {
  return {{"Name", f.name()},
          {"UID", f.uid().empty() ? "0" : f.uid()},
          {"GID", f.gid().empty() ? "0" : f.gid()},
          {"Mode", f.mode() == 0 ? 0444 : f.mode()}};
}

Json MountJson(const api::Mount& m) {
  Json out = {{"Type", MountTypeName(m.type())}};
  if (!m.source().empty()) out["Source"] = m.source();
  out["Target"] = m.target();
  if (m.readonly()) out["ReadOnly"] = true;
  if (m.has_bind_options()) {
    Json b = {{"Propagation",
               Lower(api::Mount::BindOptions::Propagation_Name(m.bind_options().propagation()))}};
    if (m.bind_options().non_recursive()) b["NonRecursive"] = true;
    out["BindOptions"] = b;
  }
  if (m.has_volume_options()) {
    const api::Mount::VolumeOptions& v = m.volume_options();
    Json vo = Json::object();
    if (v.nocopy()) vo["NoCopy"] = true;
    if (!v.labels().empty()) vo["Labels"] = LabelsJson(v.labels());
    if (v.has_driver_config()) vo["DriverConfig"] = DriverJson(v.driver_config());
    out["VolumeOptions"] = vo;
  }
  if (m.has_tmpfs_options()) {
    Json t = Json::object();
    if (m.tmpfs_options().size_bytes() != 0) t["SizeBytes"] = m.tmpfs_options().size_bytes();
    if (m.tmpfs_options().mode() != 0) t["Mode"] = m.tmpfs_options().mode();
    out["TmpfsOptions"] = t;
  }
  return out;
}

Json HealthJson(const api::HealthConfig& h) {
  Json out = Json::object();
  if (h.test_size() > 0) out["Test"] = StringList(h.test());
  if (h.has_interval()) out["Interval"] = Nanos(h.interval());
  if (h.has_timeout()) out["Timeout"] = Nanos(h.timeout());
  if (h.has_start_period()) out["StartPeriod"] = Nanos(h.start_period());
  if (h.has_start_interval()) out["StartInterval"] = Nanos(h.start_interval());
  if (h.retries() != 0) out["Retries"] = h.retries();
  return out;
}

Json ContainerSpecJson(const api::ContainerSpec& c) {
  Json out = {{"Image", c.image()}};
  if (!c.labels().empty()) out["Labels"] = LabelsJson(c.labels());
  if (c.command_size() > 0) out["Command"] = StringList(c.command());
  if (c.args_size() > 0) out["Args"] = StringList(c.args());
  if (!c.hostname().empty()) out["Hostname"] = c.hostname();
  if (c.env_size() > 0) out["Env"] = StringList(c.env());
  if (!c.dir().empty()) out["Dir"] = c.dir();
  if (!c.user().empty()) out["User"] = c.user();
  if (c.groups_size() > 0) out["Groups"] = StringList(c.groups());
  if (c.has_init()) out["Init"] = c.init().value();
  if (!c.stop_signal().empty()) out["StopSignal"] = c.stop_signal();
  if (c.tty()) out["TTY"] = true;
  if (c.open_stdin()) out["OpenStdin"] = true;
  if (c.read_only()) out["ReadOnly"] = true;
  if (c.mounts_size() > 0) {
    Json mounts = Json::array();
    for (const api::Mount& m : c.mounts()) mounts.push_back(MountJson(m));
    out["Mounts"] = mounts;
  }
  if (c.has_stop_grace_period()) out["StopGracePeriod"] = Nanos(c.stop_grace_period());
  if (c.has_healthcheck()) out["Healthcheck"] = HealthJson(c.healthcheck());
  if (c.hosts_size() > 0) out["Hosts"] = StringList(c.hosts());
  if (c.has_dns_config()) {
    const api::ContainerSpec::DNSConfig& d = c.dns_config();
    Json dns = Json::object();
    if (d.nameservers_size() > 0) dns["Nameservers"] = StringList(d.nameservers());
    if (d.search_size() > 0) dns["Search"] = StringList(d.search());
    if (d.options_size() > 0) dns["Options"] = StringList(d.options());
    out["DNSConfig"] = dns;
  }
  if (c.secrets_size() > 0) {
    Json secrets = Json::array();
    for (const api::SecretReference& s : c.secrets()) {
      secrets.push_back({{"File", FileTargetJson(s.file())},
                         {"SecretID", s.secret_id()},
                         {"SecretName", s.secret_name()}});
    }
    out["Secrets"] = secrets;
  }
  if (c.configs_size() > 0) {
    Json configs = Json::array();
    for (const api::ConfigReference& s : c.configs()) {
      configs.push_back({{"File", FileTargetJson(s.file())},
                         {"ConfigID", s.config_id()},
                         {"ConfigName", s.config_name()}});
    }
    out["Configs"] = configs;
  }
  out["Isolation"] = "default";
  if (!c.sysctls().empty()) out["Sysctls"] = LabelsJson(c.sysctls());
  if (c.capability_add_size() > 0) out["CapabilityAdd"] = StringList(c.capability_add());
  if (c.capability_drop_size() > 0) out["CapabilityDrop"] = StringList(c.capability_drop());
  if (c.ulimits_size() > 0) {
    Json ulimits = Json::array();
    for (const api::ContainerSpec::Ulimit& u : c.ulimits()) {
      ulimits.push_back({{"Name", u.name()}, {"Soft", u.soft()}, {"Hard", u.hard()}});
    }
    out["Ulimits"] = ulimits;
  }
  return out;
}

Json ResourcesJson(const api::Resources& r, int64_t pids) {
  Json out = Json::object();
  if (r.nano_cpus() != 0) out["NanoCPUs"] = r.nano_cpus();
  if (r.memory_bytes() != 0) out["MemoryBytes"] = r.memory_bytes();
  if (pids != 0) out["Pids"] = pids;
  if (r.generic_size() > 0) {
    Json generic = Json::array();
    for (const api::GenericResource& g : r.generic()) {
      if (g.has_named()) {
        generic.push_back(
            {{"NamedResourceSpec", {{"Kind", g.named().kind()}, {"Value", g.named().value()}}}});
      } else if (g.has_discrete()) {
        generic.push_back({{"DiscreteResourceSpec",
                            {{"Kind", g.discrete().kind()}, {"Value", g.discrete().value()}}}});
      }
    }
    out["GenericResources"] = generic;
  }
  return out;
}

Json PlacementJson(const api::Placement& p) {
  Json out = Json::object();
  if (p.constraints_size() > 0) out["Constraints"] = StringList(p.constraints());
  if (p.preferences_size() > 0) {
    Json prefs = Json::array();
    for (const api::PlacementPreference& pref : p.preferences()) {
      prefs.push_back({{"Spread", {{"SpreadDescriptor", pref.spread().spread_descriptor()}}}});
    }
    out["Preferences"] = prefs;
  }
  if (p.max_replicas() != 0) out["MaxReplicas"] = p.max_replicas();
  if (p.platforms_size() > 0) {
    Json platforms = Json::array();
    for (const api::Platform& pl : p.platforms()) {
      platforms.push_back({{"Architecture", pl.architecture()}, {"OS", pl.os()}});
    }
    out["Platforms"] = platforms;
  }
  return out;
}

Json TaskTemplateJson(const api::TaskSpec& t) {
  Json out;
  out["ContainerSpec"] = ContainerSpecJson(t.container_spec());
  out["Resources"] = {{"Limits", ResourcesJson(t.resources().limits(), t.resources().pids_limit())},
                      {"Reservations", ResourcesJson(t.resources().reservations(), 0)}};
  const api::RestartPolicy rp = EffectiveRestartPolicy(t);
  out["RestartPolicy"] = {{"Condition", RestartConditionName(rp.condition())},
                          {"Delay", Nanos(rp.delay())},
                          {"MaxAttempts", rp.max_attempts()}};
  if (rp.has_window()) out["RestartPolicy"]["Window"] = Nanos(rp.window());
  out["Placement"] = PlacementJson(t.placement());
  if (t.networks_size() > 0) {
    Json nets = Json::array();
    for (const api::NetworkAttachmentConfig& n : t.networks()) {
      Json nj = {{"Target", n.target()}};
      if (n.aliases_size() > 0) nj["Aliases"] = StringList(n.aliases());
      if (!n.driver_attachment_opts().empty()) {
        nj["DriverOpts"] = LabelsJson(n.driver_attachment_opts());
      }
      nets.push_back(nj);
    }
    out["Networks"] = nets;
  }
  if (t.has_log_driver()) out["LogDriver"] = DriverJson(t.log_driver());
  out["ForceUpdate"] = t.force_update();
  out["Runtime"] = "container";
  return out;
}

Json UpdateConfigJson(const api::UpdateConfig& u) {
  Json out = {{"Parallelism", u.parallelism()}};
  if (Nanos(u.delay()) != 0) out["Delay"] = Nanos(u.delay());
  out["FailureAction"] = FailureActionName(u.failure_action());
  out["Monitor"] = Nanos(u.monitor());
  out["MaxFailureRatio"] = u.max_failure_ratio();
  out["Order"] = UpdateOrderName(u.order());
  return out;
}

Json PortJson(const api::PortConfig& p) {
  Json out = Json::object();
  if (!p.name().empty()) out["Name"] = p.name();
  out["Protocol"] = PortProtocolName(p.protocol());
  out["TargetPort"] = p.target_port();
  if (p.published_port() != 0) out["PublishedPort"] = p.published_port();
  out["PublishMode"] = PublishModeName(p.publish_mode());
  return out;
}

Json EndpointSpecJson(const api::EndpointSpec& e) {
  Json out = {{"Mode", EndpointModeName(e.mode())}};
  if (e.ports_size() > 0) {
    Json ports = Json::array();
    for (const api::PortConfig& p : e.ports()) ports.push_back(PortJson(p));
    out["Ports"] = ports;
  }
  return out;
}

Json ModeJson(const api::ServiceSpec& s) {
  switch (s.mode_case()) {
    case api::ServiceSpec::kReplicated:
      return {{"Replicated", {{"Replicas", s.replicated().replicas()}}}};
    case api::ServiceSpec::kGlobal:
      return {{"Global", Json::object()}};
    case api::ServiceSpec::kReplicatedJob:
      return {{"ReplicatedJob",
               {{"MaxConcurrent", s.replicated_job().max_concurrent()},
                {"TotalCompletions", s.replicated_job().total_completions()}}}};
    case api::ServiceSpec::kGlobalJob:
      return {{"GlobalJob", Json::object()}};
    default:
      return Json::object();
  }
}

Json MetaJson(const std::string& id, const api::Meta& meta) {
  Json out;
  out["ID"] = id;
  out["Version"] = {{"Index", meta.version().index()}};
  out["CreatedAt"] = Rfc3339Nano(meta.created_at());
  out["UpdatedAt"] = Rfc3339Nano(meta.updated_at());
  return out;
}

}  // namespace

std::string RestartConditionName(api::RestartPolicy::Condition c) {
  switch (c) {
    case api::RestartPolicy::ON_FAILURE:
      return "on-failure";
    case api::RestartPolicy::NONE:
      return "none";
    default:
      return "any";
  }
}

std::string FailureActionName(api::UpdateConfig::FailureAction a) {
  return Lower(api::UpdateConfig::FailureAction_Name(a));
}

std::string UpdateOrderName(api::UpdateConfig::Order o) {
  return o == api::UpdateConfig::START_FIRST ? "start-first" : "stop-first";
}

std::string EndpointModeName(api::EndpointSpec::Mode m) {
  return Lower(api::EndpointSpec::Mode_Name(m));
}

std::string PortProtocolName(api::PortConfig::Protocol p) {
  return Lower(api::PortConfig::Protocol_Name(p));
}

std::string PublishModeName(api::PortConfig::PublishMode m) {
  return Lower(api::PortConfig::PublishMode_Name(m));
}

std::string MountTypeName(api::Mount::Type t) { return Lower(api::Mount::Type_Name(t)); }

std::string UpdateStateName(api::UpdateStatus::State s) {
  return Lower(api::UpdateStatus::State_Name(s));
}

api::RestartPolicy EffectiveRestartPolicy(const api::TaskSpec& task) {
  api::RestartPolicy p = task.restart_policy();
  if (!p.has_delay()) *p.mutable_delay() = ToProto(absl::Seconds(5));
  return p;
}

api::UpdateConfig EffectiveUpdateConfig(const api::ServiceSpec& spec, bool rollback) {
  const bool has = rollback ? spec.has_rollback_config() : spec.has_update_config();
  api::UpdateConfig u = rollback ? spec.rollback_config() : spec.update_config();
  if (!has) u.set_parallelism(1);
  if (!u.has_monitor() || Nanos(u.monitor()) == 0) *u.mutable_monitor() = ToProto(absl::Seconds(5));
  return u;
}

nlohmann::ordered_json ServiceSpecJson(const api::ServiceSpec& spec) {
  Json out;
  out["Name"] = spec.annotations().name();
  out["Labels"] = LabelsJson(spec.annotations().labels());
  out["TaskTemplate"] = TaskTemplateJson(spec.task_template());
  out["Mode"] = ModeJson(spec);
  if (spec.mode_case() != api::ServiceSpec::kReplicatedJob &&
      spec.mode_case() != api::ServiceSpec::kGlobalJob) {
    out["UpdateConfig"] = UpdateConfigJson(EffectiveUpdateConfig(spec, false));
    out["RollbackConfig"] = UpdateConfigJson(EffectiveUpdateConfig(spec, true));
  }
  out["EndpointSpec"] = EndpointSpecJson(spec.endpoint_spec());
  return out;
}

nlohmann::ordered_json ServiceJson(const api::Service& service) {
  Json out = MetaJson(service.id(), service.meta());
  out["Spec"] = ServiceSpecJson(service.spec());
  if (service.has_previous_spec()) out["PreviousSpec"] = ServiceSpecJson(service.previous_spec());
  Json endpoint = {{"Spec", EndpointSpecJson(service.endpoint().spec())}};
  if (service.endpoint().ports_size() > 0) {
    Json ports = Json::array();
    for (const api::PortConfig& p : service.endpoint().ports()) ports.push_back(PortJson(p));
    endpoint["Ports"] = ports;
  }
  if (service.endpoint().virtual_ips_size() > 0) {
    Json vips = Json::array();
    for (const api::VirtualIP& v : service.endpoint().virtual_ips()) {
      vips.push_back({{"NetworkID", v.network_id()}, {"Addr", v.addr()}});
    }
    endpoint["VirtualIPs"] = vips;
  }
  out["Endpoint"] = endpoint;
  if (service.has_update_status()) {
    const api::UpdateStatus& u = service.update_status();
    Json us = {{"State", UpdateStateName(u.state())}};
    if (u.has_started_at()) us["StartedAt"] = Rfc3339Nano(u.started_at());
    if (u.has_completed_at()) us["CompletedAt"] = Rfc3339Nano(u.completed_at());
    us["Message"] = u.message();
    out["UpdateStatus"] = us;
  }
  if (service.has_job_status()) {
    out["JobStatus"] = {{"JobIteration", {{"Index", service.job_status().job_iteration().index()}}},
                        {"LastExecution", Rfc3339Nano(service.job_status().last_execution())}};
  }
  return out;
}

nlohmann::ordered_json SecretJson(const api::Secret& secret) {
  Json out = MetaJson(secret.id(), secret.meta());
  out["Spec"] = {{"Name", secret.spec().annotations().name()},
                 {"Labels", LabelsJson(secret.spec().annotations().labels())}};
  return out;
}

nlohmann::ordered_json ConfigJson(const api::Config& config) {
  Json out = MetaJson(config.id(), config.meta());
  out["Spec"] = {{"Name", config.spec().annotations().name()},
                 {"Labels", LabelsJson(config.spec().annotations().labels())},
                 {"Data", Base64(config.spec().data())}};
  return out;
}

}  // namespace shoal::cli
