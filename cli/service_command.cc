#include "cli/service_command.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/json_util.h"
#include "cli/logs_command.h"
#include "cli/node_format.h"
#include "cli/output.h"
#include "cli/resolve.h"
#include "cli/service_format.h"
#include "cli/service_json.h"
#include "cli/service_progress.h"
#include "cli/service_spec.h"
#include "cli/task_format.h"

namespace shoal::cli {
namespace {

constexpr int kUsageError = 2;

[[noreturn]] void UsageError(const std::string& message) {
  throw CommandError{message, kUsageError};
}

Format FormatFlag(const std::string& text) {
  Format f;
  if (!ParseFormat(text, &f)) {
    UsageError("unknown --format \"" + text + "\"; use json, or omit it");
  }
  return f;
}

std::vector<api::Task> ListTasks(Context& ctx, const api::ListTasksRequest& req) {
  api::ListTasksResponse resp;
  auto call = CallContext();
  ctx.Check(ctx.control().ListTasks(call.get(), req, &resp));
  return {resp.tasks().begin(), resp.tasks().end()};
}

std::vector<api::Task> ServiceTasks(Context& ctx, const std::string& service_id) {
  api::ListTasksRequest req;
  req.mutable_filters()->add_service_ids(service_id);
  return ListTasks(ctx, req);
}

std::vector<api::Node> ListAllNodes(Context& ctx) {
  api::ListNodesResponse resp;
  auto call = CallContext();
  ctx.Check(ctx.control().ListNodes(call.get(), api::ListNodesRequest(), &resp));
  return {resp.nodes().begin(), resp.nodes().end()};
}

// The spec flags of one command, registered from ServiceFlagTable().
class SpecFlags {
 public:
  void Register(CLI::App* cmd, bool update) {
    for (const ServiceFlagInfo& info : ServiceFlagTable()) {
      if (!(update ? info.update : info.create)) continue;
      auto e = std::make_unique<Entry>();
      e->info = &info;
      std::string names = absl::StrCat("--", info.name);
      if (*info.short_name != '\0') names = absl::StrCat("-", info.short_name, ",", names);
      switch (info.kind) {
        case FlagKind::kValue:
          e->opt = cmd->add_option(names, e->value, info.help);
          break;
        case FlagKind::kList:
          e->opt = cmd->add_option(names, e->list, info.help)
                       ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
                       ->allow_extra_args(false);
          break;
        case FlagKind::kBool:
          e->opt = cmd->add_flag(names, e->flag, info.help);
          break;
      }
      entries_.push_back(std::move(e));
    }
  }

  // The flags that were given.
  ServiceFlags Collect() const {
    ServiceFlags f;
    for (const auto& e : entries_) {
      if (e->opt->count() == 0) continue;
      switch (e->info->kind) {
        case FlagKind::kValue:
          f.values[e->info->name] = e->value;
          break;
        case FlagKind::kList:
          f.lists[e->info->name] = e->list;
          break;
        case FlagKind::kBool:
          f.bools[e->info->name] = e->flag;
          break;
      }
    }
    return f;
  }

 private:
  struct Entry {
    const ServiceFlagInfo* info = nullptr;
    std::string value;
    std::vector<std::string> list;
    bool flag = false;
    CLI::Option* opt = nullptr;
  };
  std::vector<std::unique_ptr<Entry>> entries_;
};

// Reads the service, lets `modify` change the update request (spec or rollback), and writes it
// with the version read; again while that version is stale. `modify` returns false to stop
// without writing. Returns the service as written (or as read, when nothing was written).
api::Service UpdateService(
    Context& ctx, const std::string& service_id,
    const std::function<bool(const api::Service&, api::UpdateServiceRequest*)>& modify) {
  api::Service result;
  ctx.Check(RetryOnAborted([&] {
    api::GetServiceRequest get;
    get.set_service_id(service_id);
    api::GetServiceResponse got;
    auto call = CallContext();
    grpc::Status s = ctx.control().GetService(call.get(), get, &got);
    if (!s.ok()) return s;
    result = got.service();
    api::UpdateServiceRequest req;
    req.set_service_id(service_id);
    *req.mutable_version() = got.service().meta().version();
    *req.mutable_spec() = got.service().spec();
    if (!modify(got.service(), &req)) return grpc::Status::OK;
    api::UpdateServiceResponse resp;
    auto update_call = CallContext();
    s = ctx.control().UpdateService(update_call.get(), req, &resp);
    if (s.ok()) result = resp.service();
    return s;
  }));
  return result;
}

void Wait(Context& ctx, const api::Service& service, const std::string& name, bool rollback,
          bool quiet, const std::set<std::string>& failed_before) {
  WaitOptions options;
  options.rollback = rollback;
  options.quiet = quiet;
  options.failed_before = failed_before;
  WaitForService(ctx, service.id(), name, options);
}

void AddCreate(CLI::App& service, Context& ctx) {
  struct Options {
    SpecFlags flags;
    bool detach = false, quiet = false;
    std::string image;
    std::vector<std::string> args;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = service.add_subcommand("create", "Create a new service");
  cmd->positionals_at_end();  // what follows IMAGE is the command, options included
  o->flags.Register(cmd, /*update=*/false);
  cmd->add_flag("-d,--detach", o->detach,
                "Exit immediately instead of waiting for the service to converge (shoal waits "
                "at most 5 minutes)");
  cmd->add_flag("-q,--quiet", o->quiet, "Suppress progress output");
  cmd->add_option("IMAGE", o->image, "Image the tasks run")->required();
  cmd->add_option("COMMAND", o->args, "Command and arguments (the image's CMD is replaced)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, o] {
    ServiceFlags flags = o->flags.Collect();
    flags.image = o->image;
    flags.args = o->args;
    absl::StatusOr<api::ServiceSpec> spec = BuildServiceSpec(flags);
    if (!spec.ok()) UsageError(std::string(spec.status().message()));
    api::CreateServiceRequest req;
    *req.mutable_spec() = *spec;
    api::CreateServiceResponse resp;
    auto call = CallContext();
    ctx.Check(ctx.control().CreateService(call.get(), req, &resp));
    ctx.out() << resp.service().id() << "\n" << std::flush;
    if (o->detach) return;
    const std::string name = resp.service().spec().annotations().name().empty()
                                 ? resp.service().id()
                                 : resp.service().spec().annotations().name();
    Wait(ctx, resp.service(), name, /*rollback=*/false, o->quiet, {});
  });
}

void Rollback(Context& ctx, const std::string& ref, bool detach, bool quiet) {
  const api::Service service = ResolveService(ctx, ref);
  const std::set<std::string> failed_before =
      detach ? std::set<std::string>{} : FailedTaskIds(ServiceTasks(ctx, service.id()));
  const api::Service updated =
      UpdateService(ctx, service.id(), [](const api::Service&, api::UpdateServiceRequest* req) {
        req->clear_spec();
        req->set_rollback(true);
        return true;
      });
  ctx.out() << ref << "\n" << std::flush;
  if (!detach) Wait(ctx, updated, ref, /*rollback=*/true, quiet, failed_before);
}

void AddUpdate(CLI::App& service, Context& ctx) {
  struct Options {
    SpecFlags flags;
    bool detach = false, quiet = false, rollback = false;
    std::string ref;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = service.add_subcommand("update", "Update a service");
  o->flags.Register(cmd, /*update=*/true);
  cmd->add_flag("--rollback", o->rollback, "Rollback to previous specification");
  cmd->add_flag("-d,--detach", o->detach,
                "Exit immediately instead of waiting for the service to converge (shoal waits "
                "at most 5 minutes)");
  cmd->add_flag("-q,--quiet", o->quiet, "Suppress progress output");
  cmd->add_option("SERVICE", o->ref, "Service name, ID or ID prefix")->required();
  cmd->callback([&ctx, o] {
    ServiceFlags flags = o->flags.Collect();
    if (o->rollback) {
      if (!flags.values.empty() || !flags.lists.empty() || !flags.bools.empty()) {
        UsageError(
            "--rollback returns to the previous spec and cannot be combined with other changes: "
            "roll back first, then update");
      }
      Rollback(ctx, o->ref, o->detach, o->quiet);
      return;
    }
    // Check the flags before anything is read or written.
    {
      api::ServiceSpec scratch;
      scratch.mutable_replicated();
      ServiceFlags syntax_only = flags;
      syntax_only.values.erase("replicas");  // depends on the service's mode
      syntax_only.values.erase("max-concurrent");
      syntax_only.values.erase("replicas-max-per-node");
      absl::Status s = UpdateServiceSpec(syntax_only, &scratch);
      if (!s.ok()) UsageError(std::string(s.message()));
    }
    const api::Service service = ResolveService(ctx, o->ref);
    auto rm = flags.lists.find("network-rm");
    if (rm != flags.lists.end()) {
      for (const std::string& n : rm->second) {
        api::Network net;
        if (Resolve(NetworkLookup(ctx.control()), n, &net).ok()) flags.network_ids[n] = net.id();
      }
    }
    const std::set<std::string> failed_before =
        o->detach ? std::set<std::string>{} : FailedTaskIds(ServiceTasks(ctx, service.id()));
    absl::Status apply_status;
    const api::Service updated =
        UpdateService(ctx, service.id(), [&](const api::Service&, api::UpdateServiceRequest* req) {
          apply_status = UpdateServiceSpec(flags, req->mutable_spec());
          return apply_status.ok();
        });
    if (!apply_status.ok()) UsageError(std::string(apply_status.message()));
    ctx.out() << o->ref << "\n" << std::flush;
    if (!o->detach) Wait(ctx, updated, o->ref, /*rollback=*/false, o->quiet, failed_before);
  });
}

void AddRollback(CLI::App& service, Context& ctx) {
  struct Options {
    bool detach = false, quiet = false;
    std::string ref;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = service.add_subcommand("rollback", "Revert changes to a service's configuration");
  cmd->add_flag("-d,--detach", o->detach,
                "Exit immediately instead of waiting for the service to converge (shoal waits "
                "at most 5 minutes)");
  cmd->add_flag("-q,--quiet", o->quiet, "Suppress progress output");
  cmd->add_option("SERVICE", o->ref, "Service name, ID or ID prefix")->required();
  cmd->callback([&ctx, o] { Rollback(ctx, o->ref, o->detach, o->quiet); });
}

void AddScale(CLI::App& service, Context& ctx) {
  struct Options {
    bool detach = false;
    std::vector<std::string> specs;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = service.add_subcommand("scale", "Scale one or multiple replicated services");
  cmd->add_flag("-d,--detach", o->detach,
                "Exit immediately instead of waiting for the services to converge (shoal waits "
                "at most 5 minutes each)");
  cmd->add_option("SERVICE=REPLICAS", o->specs, "Services and their replica counts, e.g. web=3")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, o] {
    std::vector<ScaleSpecifier> specs;
    for (const std::string& text : o->specs) {
      absl::StatusOr<ScaleSpecifier> s = ParseScaleSpecifier(text);
      if (!s.ok()) UsageError(std::string(s.status().message()));
      specs.push_back(*s);
    }
    struct Scaled {
      api::Service service;
      std::string name;
      std::set<std::string> failed_before;
    };
    std::vector<Scaled> scaled;
    std::vector<std::string> errors;
    for (const ScaleSpecifier& s : specs) {
      try {
        const api::Service service = ResolveService(ctx, s.service);
        if (!service.spec().has_replicated() && !service.spec().has_replicated_job()) {
          throw CommandError{absl::StrCat(
              "scale can only be used with replicated or replicated-job mode (service ", s.service,
              " is ", service.spec().has_global() ? "global" : "a global job", ")")};
        }
        // What failed before the change (not to be blamed on it), for the wait; -d needs none.
        const std::set<std::string> failed_before =
            o->detach ? std::set<std::string>{} : FailedTaskIds(ServiceTasks(ctx, service.id()));
        const api::Service updated = UpdateService(
            ctx, service.id(), [&s](const api::Service&, api::UpdateServiceRequest* req) {
              api::ServiceSpec* spec = req->mutable_spec();
              if (spec->has_replicated()) {
                spec->mutable_replicated()->set_replicas(s.replicas);
              } else {
                spec->mutable_replicated_job()->set_max_concurrent(s.replicas);
              }
              return true;
            });
        ctx.out() << s.service << " scaled to " << s.replicas << "\n" << std::flush;
        scaled.push_back({updated, s.service, failed_before});
      } catch (const CommandError& e) {
        errors.push_back(e.message);
      }
    }
    if (!o->detach) {
      for (const Scaled& s : scaled) {
        try {
          Wait(ctx, s.service, s.name, /*rollback=*/false, /*quiet=*/false, s.failed_before);
        } catch (const CommandError& e) {
          errors.push_back(e.message);
        }
      }
    }
    if (!errors.empty()) throw CommandError{absl::StrJoin(errors, "\n")};
  });
}

void AddLs(CLI::App& service, Context& ctx) {
  struct Options {
    bool quiet = false;
    std::string format;
    std::vector<std::string> filters;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = service.add_subcommand("ls", "List services");
  cmd->alias("list");
  cmd->add_flag("-q,--quiet", o->quiet, "Only display IDs");
  cmd->add_option("--format", o->format, "Output format: table (default) or json");
  cmd->add_option("-f,--filter", o->filters,
                  "Filter output based on conditions provided (id=, name=, label=, "
                  "mode=replicated|global|replicated-job|global-job)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->callback([&ctx, o] {
    const Format format = FormatFlag(o->format);
    api::ListServicesRequest req;
    req.set_include_status(true);
    std::set<std::string> modes;
    for (const std::string& f : o->filters) {
      const size_t eq = f.find('=');
      const std::string key = f.substr(0, eq);
      const std::string value = eq == std::string::npos ? "" : f.substr(eq + 1);
      if (key == "id" && !value.empty()) {
        req.mutable_filters()->add_id_prefixes(value);
      } else if (key == "name" && !value.empty()) {
        req.mutable_filters()->add_name_prefixes(value);
      } else if (key == "label" && !value.empty()) {
        const size_t leq = value.find('=');
        (*req.mutable_filters()->mutable_labels())[value.substr(0, leq)] =
            leq == std::string::npos ? "" : value.substr(leq + 1);
      } else if (key == "mode" && (value == "replicated" || value == "global" ||
                                   value == "replicated-job" || value == "global-job")) {
        modes.insert(value);
      } else {
        UsageError(absl::StrCat("invalid filter \"", f,
                                "\": use id=, name=, label=, or "
                                "mode=replicated|global|replicated-job|global-job"));
      }
    }
    api::ListServicesResponse resp;
    {
      auto call = CallContext();
      ctx.Check(ctx.control().ListServices(call.get(), req, &resp));
    }
    std::vector<api::Service> services;
    for (const api::Service& s : resp.services()) {
      const char* mode = s.spec().has_global()           ? "global"
                         : s.spec().has_replicated_job() ? "replicated-job"
                         : s.spec().has_global_job()     ? "global-job"
                                                         : "replicated";
      if (modes.empty() || modes.count(mode) > 0) services.push_back(s);
    }
    std::sort(services.begin(), services.end(), [](const api::Service& a, const api::Service& b) {
      return NaturalLess(a.spec().annotations().name(), b.spec().annotations().name());
    });
    if (o->quiet) {
      for (const api::Service& s : services) ctx.out() << s.id() << "\n";
      return;
    }
    // A daemon that does not count tasks itself: count them here.
    std::vector<api::Task> tasks;
    std::vector<api::Node> nodes;
    const bool need_counts = std::any_of(services.begin(), services.end(), [&](const auto& s) {
      return resp.statuses().count(s.id()) == 0;
    });
    if (need_counts) {
      api::ListTasksRequest treq;
      for (const api::Service& s : services) treq.mutable_filters()->add_service_ids(s.id());
      tasks = ListTasks(ctx, treq);
      nodes = ListAllNodes(ctx);
    }
    std::vector<ServiceListRow> rows;
    for (const api::Service& s : services) {
      auto it = resp.statuses().find(s.id());
      rows.push_back(MakeServiceListRow(
          s, it != resp.statuses().end() ? it->second : CountServiceTasks(s, tasks, nodes)));
    }
    if (format == Format::kJson) {
      for (const ServiceListRow& row : rows) PrintJsonLine(ctx.out(), ServiceListRowJson(row));
    } else {
      PrintServiceTable(ctx.out(), rows);
    }
  });
}

void AddPs(CLI::App& service, Context& ctx) {
  struct Options {
    bool quiet = false, no_trunc = false;
    std::string format;
    std::vector<std::string> refs;
    std::vector<std::string> filters;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = service.add_subcommand("ps", "List the tasks of one or more services");
  cmd->add_flag("-q,--quiet", o->quiet, "Only display task IDs");
  cmd->add_flag("--no-trunc", o->no_trunc, "Do not truncate output");
  cmd->add_option("--format", o->format, "Output format: table (default) or json");
  cmd->add_option("-f,--filter", o->filters,
                  "Filter output based on conditions provided (id=, name=, node=, "
                  "desired-state=running|shutdown|accepted)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->add_option("SERVICE", o->refs, "Service name, ID or ID prefix")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, o] {
    const Format format = FormatFlag(o->format);
    api::ListTasksRequest req;
    api::ListTasksRequest::Filters* filters = req.mutable_filters();
    std::vector<std::string> node_refs;
    for (const std::string& f : o->filters) {
      const size_t eq = f.find('=');
      const std::string key = f.substr(0, eq);
      const std::string value = eq == std::string::npos ? "" : f.substr(eq + 1);
      if (key == "id" && !value.empty()) {
        filters->add_id_prefixes(value);
      } else if (key == "name" && !value.empty()) {
        filters->add_name_prefixes(value);
      } else if (key == "node" && !value.empty()) {
        node_refs.push_back(value);
      } else if (key == "desired-state" && value == "running") {
        filters->add_desired_states(api::TASK_STATE_RUNNING);
      } else if (key == "desired-state" && value == "shutdown") {
        filters->add_desired_states(api::TASK_STATE_SHUTDOWN);
      } else if (key == "desired-state" && value == "accepted") {
        filters->add_desired_states(api::TASK_STATE_ACCEPTED);
      } else {
        UsageError(absl::StrCat("invalid filter \"", f,
                                "\": use id=, name=, node=, or "
                                "desired-state=running|shutdown|accepted"));
      }
    }
    for (const std::string& ref : o->refs) {
      filters->add_service_ids(ResolveService(ctx, ref).id());
    }
    for (const std::string& ref : node_refs) filters->add_node_ids(ResolveNode(ctx, ref).id());
    const std::vector<api::Task> tasks = ListTasks(ctx, req);
    std::map<std::string, std::string> hostnames;
    if (!o->quiet) {
      for (const api::Node& n : ListAllNodes(ctx)) hostnames[n.id()] = n.description().hostname();
    }
    const std::vector<TaskRow> rows = MakeTaskRows(
        tasks,
        [&hostnames](const std::string& id) {
          auto it = hostnames.find(id);
          return it == hostnames.end() || it->second.empty() ? id : it->second;
        },
        ctx.clock().Now(), !o->no_trunc);
    if (o->quiet) {
      for (const TaskRow& row : rows) ctx.out() << row.id << "\n";
    } else if (format == Format::kJson) {
      for (const TaskRow& row : rows) PrintJsonLine(ctx.out(), TaskRowJson(row));
    } else {
      PrintTaskTable(ctx.out(), rows);
    }
  });
}

void AddInspect(CLI::App& service, Context& ctx) {
  struct Options {
    bool pretty = false;
    std::vector<std::string> refs;
  };
  auto o = std::make_shared<Options>();
  auto* cmd =
      service.add_subcommand("inspect", "Display detailed information on one or more services");
  cmd->add_flag("--pretty", o->pretty, "Print the information in a human friendly format");
  cmd->add_option("SERVICE", o->refs, "Service name, ID or ID prefix")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, o] {
    std::vector<api::Service> found;
    std::vector<std::string> errors;
    for (const std::string& ref : o->refs) {
      try {
        found.push_back(ResolveService(ctx, ref));
      } catch (const CommandError& e) {
        errors.push_back(e.message);
      }
    }
    if (o->pretty) {
      std::map<std::string, std::string> network_names;
      auto network_name = [&](const std::string& id) {
        auto it = network_names.find(id);
        if (it != network_names.end()) return it->second;
        api::Network net;
        const std::string name =
            NetworkLookup(ctx.control()).get(id, &net).ok() ? net.spec().annotations().name() : id;
        network_names[id] = name;
        return name;
      };
      for (size_t i = 0; i < found.size(); ++i) {
        if (i > 0) ctx.out() << "\n";
        PrintServicePretty(ctx.out(), found[i], network_name, ctx.clock().Now());
      }
    } else if (!found.empty() || errors.empty()) {
      nlohmann::ordered_json all = nlohmann::ordered_json::array();
      for (const api::Service& s : found) all.push_back(ServiceJson(s));
      ctx.out() << all.dump(4) << "\n";
    }
    if (!errors.empty()) throw CommandError{absl::StrJoin(errors, "\n")};
  });
}

void AddRm(CLI::App& service, Context& ctx) {
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = service.add_subcommand("rm", "Remove one or more services");
  cmd->alias("remove");
  cmd->add_option("SERVICE", *refs, "Service name, ID or ID prefix")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, refs] {
    std::vector<std::string> errors;
    for (const std::string& ref : *refs) {
      try {
        const api::Service service = ResolveService(ctx, ref);
        api::RemoveServiceRequest req;
        req.set_service_id(service.id());
        api::RemoveServiceResponse resp;
        auto call = CallContext();
        ctx.Check(ctx.control().RemoveService(call.get(), req, &resp));
        ctx.out() << ref << "\n";
      } catch (const CommandError& e) {
        errors.push_back(e.message);
      }
    }
    if (!errors.empty()) throw CommandError{absl::StrJoin(errors, "\n")};
  });
}

}  // namespace

absl::StatusOr<ScaleSpecifier> ParseScaleSpecifier(const std::string& text) {
  const size_t eq = text.find('=');
  ScaleSpecifier s;
  if (eq != std::string::npos && eq > 0) {
    s.service = text.substr(0, eq);
    const std::string n = text.substr(eq + 1);
    if (!n.empty() &&
        std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        n.size() <= 18) {
      s.replicas = std::stoull(n);
      return s;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("invalid scale specifier \"", text, "\": use SERVICE=REPLICAS, e.g. web=3"));
}

void AddServiceCommand(CLI::App& app, Context& ctx) {
  auto* service = app.add_subcommand("service", "Manage swarm services");
  service->require_subcommand(1);
  AddCreate(*service, ctx);
  AddInspect(*service, ctx);
  AddServiceLogsCommand(*service, ctx);
  AddLs(*service, ctx);
  AddPs(*service, ctx);
  AddRm(*service, ctx);
  AddRollback(*service, ctx);
  AddScale(*service, ctx);
  AddUpdate(*service, ctx);
}

}  // namespace shoal::cli
