#include "cli/service_format.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/duration.h"
#include "cli/json_util.h"
#include "cli/node_format.h"
#include "cli/output.h"
#include "cli/service_json.h"

namespace shoal::cli {
namespace {

constexpr size_t kTruncatedIdLength = 12;

std::string ModeText(const api::ServiceSpec& spec) {
  switch (spec.mode_case()) {
    case api::ServiceSpec::kReplicated:
      return "replicated";
    case api::ServiceSpec::kGlobal:
      return "global";
    case api::ServiceSpec::kReplicatedJob:
      return "replicated job";
    case api::ServiceSpec::kGlobalJob:
      return "global job";
    default:
      return "";
  }
}

std::string ImageWithoutDigest(const std::string& image) {
  return image.substr(0, image.find('@'));
}

// Go's fmt of a []string: "[a b]".
std::string GoList(const google::protobuf::RepeatedPtrField<std::string>& list) {
  return absl::StrCat("[", absl::StrJoin(list, " "), "]");
}

// Go's %v of a float64 for the CPU counts: shortest form ("0.5", "2").
std::string CpuText(int64_t nano_cpus) { return absl::StrCat(nano_cpus / 1e9); }

void PrintUpdateConfig(std::ostream& out, const api::UpdateConfig& u, bool rollback) {
  out << (rollback ? "RollbackConfig:\n" : "UpdateConfig:\n");
  out << " Parallelism:\t" << u.parallelism() << "\n";
  const absl::Duration delay = FromProto(u.delay());
  if (delay > absl::ZeroDuration()) out << " Delay:\t\t" << GoDurationString(delay) << "\n";
  out << " On failure:\t" << FailureActionName(u.failure_action()) << "\n";
  const absl::Duration monitor = FromProto(u.monitor());
  if (monitor > absl::ZeroDuration()) {
    out << " Monitoring Period: " << GoDurationString(monitor) << "\n";
  }
  out << " Max failure ratio: " << absl::StrCat(u.max_failure_ratio()) << "\n";
  out << (rollback ? " Rollback order:    " : " Update order:      ") << UpdateOrderName(u.order())
      << "\n";
}

}  // namespace

std::string ReplicasText(const api::ServiceSpec& spec, const api::ServiceStatus& status) {
  const uint64_t running = status.running_tasks();
  const uint64_t desired = status.desired_tasks();
  const uint64_t completed = status.completed_tasks();
  if (spec.has_replicated_job()) {
    const api::ReplicatedJob& j = spec.replicated_job();
    const uint64_t total = j.total_completions() != 0 ? j.total_completions()
                                                      : std::max<uint64_t>(j.max_concurrent(), 1);
    return absl::StrCat(running, "/", desired, " (", completed, "/", total, " completed)");
  }
  if (spec.has_global_job()) {
    return absl::StrCat(running, "/", desired, " (", completed, "/", desired + completed,
                        " completed)");
  }
  const uint64_t max = spec.task_template().placement().max_replicas();
  if (spec.has_replicated() && max > 0) {
    return absl::StrCat(running, "/", desired, " (max ", max, " per node)");
  }
  return absl::StrCat(running, "/", desired);
}

std::string IngressPortsText(const api::Endpoint& endpoint) {
  std::vector<api::PortConfig> ports;
  for (const api::PortConfig& p : endpoint.ports()) {
    if (p.publish_mode() == api::PortConfig::INGRESS) ports.push_back(p);
  }
  std::sort(ports.begin(), ports.end(), [](const api::PortConfig& a, const api::PortConfig& b) {
    if (a.protocol() != b.protocol()) return a.protocol() < b.protocol();
    if (a.published_port() != b.published_port()) return a.published_port() < b.published_port();
    return a.target_port() < b.target_port();
  });
  struct Range {
    uint32_t p_first, p_last, t_first, t_last;
    api::PortConfig::Protocol protocol;
  };
  std::vector<Range> ranges;
  for (const api::PortConfig& p : ports) {
    if (!ranges.empty()) {
      Range& r = ranges.back();
      // Extend the range when both sides continue it (80->80, 81->81).
      if (r.protocol == p.protocol() && p.published_port() == r.p_last + 1 &&
          p.target_port() == r.t_last + 1) {
        r.p_last = p.published_port();
        r.t_last = p.target_port();
        continue;
      }
    }
    ranges.push_back(
        {p.published_port(), p.published_port(), p.target_port(), p.target_port(), p.protocol()});
  }
  std::vector<std::string> parts;
  for (const Range& r : ranges) {
    const std::string pub =
        r.p_last > r.p_first ? absl::StrCat(r.p_first, "-", r.p_last) : absl::StrCat(r.p_first);
    const std::string tgt =
        r.t_last > r.t_first ? absl::StrCat(r.t_first, "-", r.t_last) : absl::StrCat(r.t_first);
    parts.push_back(absl::StrCat("*:", pub, "->", tgt, "/", PortProtocolName(r.protocol)));
  }
  return absl::StrJoin(parts, ", ");
}

ServiceListRow MakeServiceListRow(const api::Service& service, const api::ServiceStatus& status) {
  ServiceListRow row;
  row.id = service.id().substr(0, kTruncatedIdLength);
  row.name = service.spec().annotations().name();
  row.mode = ModeText(service.spec());
  row.replicas = ReplicasText(service.spec(), status);
  row.image = ImageWithoutDigest(service.spec().task_template().container_spec().image());
  row.ports = IngressPortsText(service.endpoint());
  return row;
}

api::ServiceStatus CountServiceTasks(const api::Service& service,
                                     const std::vector<api::Task>& tasks,
                                     const std::vector<api::Node>& nodes) {
  std::set<std::string> down;
  for (const api::Node& n : nodes) {
    if (n.status().state() == api::NodeStatus::DOWN) down.insert(n.id());
  }
  const api::ServiceSpec& spec = service.spec();
  const bool job = spec.has_replicated_job() || spec.has_global_job();
  const uint64_t iteration = service.job_status().job_iteration().index();
  api::ServiceStatus st;
  std::set<std::string> holding;  // nodes with a task meant to run
  for (const api::Task& t : tasks) {
    if (t.service_id() != service.id()) continue;
    if (job && t.job_iteration().index() != iteration) continue;
    const bool node_up = !t.node_id().empty() && down.count(t.node_id()) == 0;
    const api::TaskState run = job ? api::TASK_STATE_COMPLETE : api::TASK_STATE_RUNNING;
    if (t.desired_state() <= run && t.status().state() == api::TASK_STATE_RUNNING && node_up) {
      st.set_running_tasks(st.running_tasks() + 1);
    }
    if (job && t.status().state() == api::TASK_STATE_COMPLETE) {
      st.set_completed_tasks(st.completed_tasks() + 1);
    }
    if (t.desired_state() <= run && node_up && t.status().state() <= api::TASK_STATE_RUNNING) {
      holding.insert(t.node_id());
    }
  }
  switch (spec.mode_case()) {
    case api::ServiceSpec::kReplicated:
      st.set_desired_tasks(spec.replicated().replicas());
      break;
    case api::ServiceSpec::kReplicatedJob: {
      const uint64_t concurrent = std::max<uint64_t>(spec.replicated_job().max_concurrent(), 1);
      const uint64_t total = spec.replicated_job().total_completions() != 0
                                 ? spec.replicated_job().total_completions()
                                 : concurrent;
      const uint64_t left = total > st.completed_tasks() ? total - st.completed_tasks() : 0;
      st.set_desired_tasks(std::min(concurrent, left));
      break;
    }
    case api::ServiceSpec::kGlobal:
    case api::ServiceSpec::kGlobalJob:
      st.set_desired_tasks(holding.size());
      break;
    default:
      break;
  }
  return st;
}

nlohmann::json ServiceListRowJson(const ServiceListRow& row) {
  return {{"ID", row.id},       {"Name", row.name},  {"Mode", row.mode}, {"Replicas", row.replicas},
          {"Image", row.image}, {"Ports", row.ports}};
}

void PrintServiceTable(std::ostream& out, const std::vector<ServiceListRow>& rows) {
  Table table({"ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"});
  for (const ServiceListRow& r : rows) {
    table.AddRow({r.id, r.name, r.mode, r.replicas, r.image, r.ports});
  }
  table.Print(out);
}

void PrintServicePretty(std::ostream& out, const api::Service& service,
                        const std::function<std::string(const std::string&)>& network_name,
                        absl::Time now) {
  const api::ServiceSpec& spec = service.spec();
  const api::TaskSpec& task = spec.task_template();
  const api::ContainerSpec& c = task.container_spec();
  out << "ID:\t\t" << service.id() << "\n";
  out << "Name:\t\t" << spec.annotations().name() << "\n";
  if (!spec.annotations().labels().empty()) {
    out << "Labels:\n";
    std::map<std::string, std::string> labels(spec.annotations().labels().begin(),
                                              spec.annotations().labels().end());
    for (const auto& [k, v] : labels) out << " " << k << (v.empty() ? "" : "=" + v) << "\n";
  }
  out << "Service Mode:";
  switch (spec.mode_case()) {
    case api::ServiceSpec::kGlobal:
      out << "\tGlobal\n";
      break;
    case api::ServiceSpec::kReplicated:
      out << "\tReplicated\n Replicas:\t" << spec.replicated().replicas() << "\n";
      break;
    case api::ServiceSpec::kReplicatedJob:
      out << "\tReplicated job\n Max Concurrent:\t" << spec.replicated_job().max_concurrent()
          << "\n Total Completions:\t" << spec.replicated_job().total_completions() << "\n";
      break;
    case api::ServiceSpec::kGlobalJob:
      out << "\tGlobal job\n";
      break;
    default:
      out << "\n";
  }
  if (service.has_update_status() &&
      service.update_status().state() != api::UpdateStatus::UNKNOWN) {
    const api::UpdateStatus& u = service.update_status();
    out << "UpdateStatus:\n State:\t\t" << UpdateStateName(u.state()) << "\n";
    if (u.has_started_at()) {
      out << " Started:\t" << HumanDuration(now - FromProto(u.started_at())) << " ago\n";
    }
    if (u.state() == api::UpdateStatus::COMPLETED && u.has_completed_at()) {
      out << " Completed:\t" << HumanDuration(now - FromProto(u.completed_at())) << " ago\n";
    }
    out << " Message:\t" << u.message() << "\n";
  }
  out << "Placement:\n";
  const api::Placement& p = task.placement();
  if (p.constraints_size() > 0) out << " Constraints:\t" << GoList(p.constraints()) << "\n";
  if (p.preferences_size() > 0) {
    google::protobuf::RepeatedPtrField<std::string> prefs;
    for (const api::PlacementPreference& pref : p.preferences()) {
      *prefs.Add() = "spread=" + pref.spread().spread_descriptor();
    }
    out << " Preferences:   " << GoList(prefs) << "\n";
  }
  if (p.max_replicas() > 0) out << " Max Replicas Per Node:   " << p.max_replicas() << "\n";
  if (spec.has_update_config()) PrintUpdateConfig(out, spec.update_config(), false);
  if (spec.has_rollback_config()) PrintUpdateConfig(out, spec.rollback_config(), true);

  out << "ContainerSpec:\n Image:\t\t" << c.image() << "\n";
  if (c.args_size() > 0) out << " Args:\t\t" << absl::StrJoin(c.args(), " ") << " \n";
  if (c.env_size() > 0) out << " Env:\t\t" << absl::StrJoin(c.env(), " ") << " \n";
  if (!c.dir().empty()) out << " Dir:\t\t" << c.dir() << "\n";
  if (c.has_init()) out << " Init:\t\t" << (c.init().value() ? "true" : "false") << "\n";
  if (!c.user().empty()) out << " User: " << c.user() << "\n";
  if (c.capability_add_size() > 0 || c.capability_drop_size() > 0) {
    out << "Capabilities:\n";
    if (c.capability_add_size() > 0)
      out << " Add: " << absl::StrJoin(c.capability_add(), ", ") << "\n";
    if (c.capability_drop_size() > 0) {
      out << " Drop: " << absl::StrJoin(c.capability_drop(), ", ") << "\n";
    }
  }
  if (!c.sysctls().empty()) {
    out << "SysCtls:\n";
    std::map<std::string, std::string> sysctls(c.sysctls().begin(), c.sysctls().end());
    for (const auto& [k, v] : sysctls) out << " " << k << (v.empty() ? "" : ": " + v) << "\n";
  }
  if (c.mounts_size() > 0) {
    out << "Mounts:\n";
    for (const api::Mount& m : c.mounts()) {
      out << " Target:\t" << m.target() << "\n  Source:\t" << m.source() << "\n  ReadOnly:\t"
          << (m.readonly() ? "true" : "false") << "\n  Type:\t\t" << MountTypeName(m.type())
          << "\n";
    }
  }
  if (c.configs_size() > 0) {
    out << "Configs:\n";
    for (const api::ConfigReference& r : c.configs()) {
      out << " Target:\t" << r.file().name() << "\n  Source:\t" << r.config_name() << "\n";
    }
  }
  if (c.secrets_size() > 0) {
    out << "Secrets:\n";
    for (const api::SecretReference& r : c.secrets()) {
      out << " Target:\t" << r.file().name() << "\n  Source:\t" << r.secret_name() << "\n";
    }
  }
  if (task.has_log_driver()) {
    out << "Log Driver:\n";
    if (!task.log_driver().name().empty()) out << " Name:\t\t" << task.log_driver().name() << "\n";
    if (!task.log_driver().options().empty()) {
      out << " LogOpts:\n";
      std::map<std::string, std::string> opts(task.log_driver().options().begin(),
                                              task.log_driver().options().end());
      for (const auto& [k, v] : opts) {
        out << "  " << k << (v.empty() ? "" : ":       " + v) << "\n";
      }
    }
    out << "\n";
  }
  const api::ResourceRequirements& res = task.resources();
  const bool has_reservations =
      res.reservations().nano_cpus() > 0 || res.reservations().memory_bytes() > 0;
  const bool has_limits =
      res.limits().nano_cpus() > 0 || res.limits().memory_bytes() > 0 || res.pids_limit() > 0;
  if (has_reservations || has_limits) {
    out << "Resources:\n";
    if (has_reservations) {
      out << " Reservations:\n";
      if (res.reservations().nano_cpus() > 0) {
        out << "  CPU:\t\t" << CpuText(res.reservations().nano_cpus()) << "\n";
      }
      if (res.reservations().memory_bytes() > 0) {
        out << "  Memory:\t" << BytesSize(res.reservations().memory_bytes()) << "\n";
      }
    }
    if (has_limits) {
      out << " Limits:\n";
      if (res.limits().nano_cpus() > 0) {
        out << "  CPU:\t\t" << CpuText(res.limits().nano_cpus()) << "\n";
      }
      if (res.limits().memory_bytes() > 0) {
        out << "  Memory:\t" << BytesSize(res.limits().memory_bytes()) << "\n";
      }
      if (res.pids_limit() > 0) out << "  PIDs:\t\t" << res.pids_limit() << "\n";
    }
  }
  if (task.networks_size() > 0) {
    out << "Networks:";
    for (const api::NetworkAttachmentConfig& n : task.networks()) {
      out << " " << network_name(n.target());
    }
    out << " \n";
  }
  out << "Endpoint Mode:\t" << EndpointModeName(spec.endpoint_spec().mode()) << "\n";
  if (service.endpoint().ports_size() > 0) {
    out << "Ports:\n";
    for (const api::PortConfig& port : service.endpoint().ports()) {
      out << " PublishedPort = " << port.published_port()
          << "\n  Protocol = " << PortProtocolName(port.protocol())
          << "\n  TargetPort = " << port.target_port()
          << "\n  PublishMode = " << PublishModeName(port.publish_mode()) << "\n";
    }
  }
  if (c.has_healthcheck()) {
    const api::HealthConfig& h = c.healthcheck();
    out << " Healthcheck:\n  Interval = " << GoDurationString(FromProto(h.interval()))
        << "\n  Retries = " << h.retries() << "\n  StartPeriod =\t"
        << GoDurationString(FromProto(h.start_period())) << "\n  Timeout =\t"
        << GoDurationString(FromProto(h.timeout())) << "\n";
    if (h.test_size() > 0) {
      out << "  Tests:\n";
      for (const std::string& t : h.test()) out << "\t Test = " << t << "\n";
    }
  }
}

}  // namespace shoal::cli
