#include "cli/node_command.h"

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/json_util.h"
#include "cli/node_format.h"
#include "cli/node_json.h"
#include "cli/output.h"
#include "cli/resolve.h"
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

std::vector<api::Node> ListNodes(Context& ctx, const api::ListNodesRequest& req) {
  api::ListNodesResponse resp;
  auto call = CallContext();
  ctx.Check(ctx.control().ListNodes(call.get(), req, &resp));
  return {resp.nodes().begin(), resp.nodes().end()};
}

// The ID of the node the CLI talks to, or "" when it is not in a swarm (then no row is "self").
std::string SelfNodeId(Context& ctx) {
  api::GetInfoResponse info;
  auto call = CallContext();
  ctx.Check(ctx.control().GetInfo(call.get(), api::GetInfoRequest(), &info));
  return info.node_id();
}

// Reads the node, lets `modify` change its spec, and writes it back with the version read; again
// while that version is stale. `modify` returns false to skip the write (nothing to change).
// Returns whether a write happened.
bool UpdateNodeSpec(Context& ctx, const std::string& node_id,
                    const std::function<bool(const api::Node&, api::NodeSpec*)>& modify) {
  bool wrote = false;
  ctx.Check(RetryOnAborted([&] {
    api::GetNodeRequest get;
    get.set_node_id(node_id);
    api::GetNodeResponse got;
    auto call = CallContext();
    grpc::Status s = ctx.control().GetNode(call.get(), get, &got);
    if (!s.ok()) return s;
    api::UpdateNodeRequest req;
    req.set_node_id(node_id);
    *req.mutable_version() = got.node().meta().version();
    *req.mutable_spec() = got.node().spec();
    wrote = modify(got.node(), req.mutable_spec());
    if (!wrote) return grpc::Status::OK;
    api::UpdateNodeResponse resp;
    auto update_call = CallContext();
    return ctx.control().UpdateNode(update_call.get(), req, &resp);
  }));
  return wrote;
}

void AddLs(CLI::App& node, Context& ctx) {
  struct Options {
    bool quiet = false;
    std::string format;
    std::vector<std::string> filters;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = node.add_subcommand("ls", "List nodes in the swarm");
  cmd->alias("list");
  cmd->add_flag("-q,--quiet", o->quiet, "Only display IDs");
  cmd->add_option("--format", o->format, "Output format: table (default) or json");
  cmd->add_option("-f,--filter", o->filters,
                  "Filter output based on conditions provided (id=, name=, node.label=, "
                  "role=, membership=)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->callback([&ctx, o] {
    const Format format = FormatFlag(o->format);
    api::ListNodesRequest req;
    for (const std::string& f : o->filters) {
      absl::Status s = AddNodeFilter(f, req.mutable_filters());
      if (!s.ok()) UsageError(std::string(s.message()));
    }
    std::vector<api::Node> nodes = ListNodes(ctx, req);
    SortNodesForList(&nodes);
    if (o->quiet) {
      for (const api::Node& n : nodes) ctx.out() << n.id() << "\n";
      return;
    }
    const std::string self = SelfNodeId(ctx);
    std::vector<NodeListRow> rows;
    for (const api::Node& n : nodes) rows.push_back(MakeNodeListRow(n, self));
    if (format == Format::kJson) {
      for (const NodeListRow& row : rows) PrintJsonLine(ctx.out(), NodeListRowJson(row));
    } else {
      PrintNodeTable(ctx.out(), rows);
    }
  });
}

void AddInspect(CLI::App& node, Context& ctx) {
  struct Options {
    bool pretty = false;
    std::vector<std::string> refs;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = node.add_subcommand("inspect", "Display detailed information on one or more nodes");
  cmd->add_flag("--pretty", o->pretty, "Print the information in a human friendly format");
  cmd->add_option("NODE", o->refs, "Node ID, ID prefix or hostname (\"self\": this node)")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, o] {
    std::vector<api::Node> found;
    std::vector<std::string> errors;
    for (const std::string& ref : o->refs) {
      try {
        found.push_back(ResolveNode(ctx, ref));
      } catch (const CommandError& e) {
        errors.push_back(e.message);
      }
    }
    if (o->pretty) {
      for (size_t i = 0; i < found.size(); ++i) {
        if (i > 0) ctx.out() << "\n";
        PrintNodePretty(ctx.out(), found[i]);
      }
    } else if (!found.empty() || errors.empty()) {
      nlohmann::ordered_json all = nlohmann::ordered_json::array();
      for (const api::Node& n : found) all.push_back(NodeJson(n));
      ctx.out() << all.dump(4) << "\n";
    }
    if (!errors.empty()) throw CommandError{absl::StrJoin(errors, "\n")};
  });
}

void AddUpdate(CLI::App& node, Context& ctx) {
  struct Options {
    std::string ref, availability, role;
    std::vector<std::string> label_add, label_rm;
    CLI::Option* availability_opt = nullptr;
    CLI::Option* role_opt = nullptr;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = node.add_subcommand("update", "Update a node");
  o->availability_opt = cmd->add_option("--availability", o->availability,
                                        "Availability of the node (active|pause|drain)");
  o->role_opt = cmd->add_option("--role", o->role, "Role of the node (worker|manager)");
  cmd->add_option("--label-add", o->label_add, "Add or update a node label (key=value)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->add_option("--label-rm", o->label_rm, "Remove a node label if exists")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->add_option("NODE", o->ref, "Node ID, ID prefix or hostname (\"self\": this node)")
      ->required();
  cmd->callback([&ctx, o] {
    NodeSpecChanges changes;
    if (o->availability_opt->count() > 0) {
      absl::StatusOr<api::NodeAvailability> a = ParseAvailability(o->availability);
      if (!a.ok()) UsageError(absl::StrCat("--availability: ", a.status().message()));
      changes.availability = *a;
    }
    if (o->role_opt->count() > 0) {
      absl::StatusOr<api::NodeRole> r = ParseRole(o->role);
      if (!r.ok()) UsageError(absl::StrCat("--role: ", r.status().message()));
      changes.role = *r;
    }
    changes.label_add = o->label_add;
    changes.label_rm = o->label_rm;
    const api::Node node = ResolveNode(ctx, o->ref);
    absl::Status apply_status;
    UpdateNodeSpec(ctx, node.id(), [&](const api::Node&, api::NodeSpec* spec) {
      apply_status = ApplyNodeSpecChanges(changes, spec);
      return apply_status.ok();
    });
    if (!apply_status.ok()) {
      throw CommandError{absl::StrCat(apply_status.message(), " (node ", o->ref, ")")};
    }
    ctx.out() << o->ref << "\n";
  });
}

void AddRoleChange(CLI::App& node, Context& ctx, api::NodeRole role) {
  const bool promote = role == api::NODE_ROLE_MANAGER;
  auto refs = std::make_shared<std::vector<std::string>>();
  auto* cmd = node.add_subcommand(promote ? "promote" : "demote",
                                  promote ? "Promote one or more nodes to manager in the swarm"
                                          : "Demote one or more nodes from manager in the swarm");
  cmd->add_option("NODE", *refs, "Node ID, ID prefix or hostname (\"self\": this node)")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, refs, role, promote] {
    for (const std::string& ref : *refs) {
      const api::Node node = ResolveNode(ctx, ref);
      const bool changed =
          UpdateNodeSpec(ctx, node.id(), [&](const api::Node&, api::NodeSpec* spec) {
            if (spec->desired_role() == role) return false;
            spec->set_desired_role(role);
            return true;
          });
      if (!changed) {
        ctx.out() << "Node " << ref << " is already a " << (promote ? "manager" : "worker")
                  << ".\n";
      } else if (promote) {
        ctx.out() << "Node " << ref << " promoted to a manager in the swarm.\n";
      } else {
        ctx.out() << "Manager " << ref << " demoted in the swarm.\n";
      }
    }
  });
}

void AddRm(CLI::App& node, Context& ctx) {
  struct Options {
    bool force = false;
    std::vector<std::string> refs;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = node.add_subcommand("rm", "Remove one or more nodes from the swarm");
  cmd->alias("remove");
  cmd->add_flag("-f,--force", o->force, "Force remove a node from the swarm");
  cmd->add_option("NODE", o->refs, "Node ID, ID prefix or hostname")
      ->required()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, o] {
    std::vector<std::string> errors;
    for (const std::string& ref : o->refs) {
      try {
        const api::Node node = ResolveNode(ctx, ref);
        api::RemoveNodeRequest req;
        req.set_node_id(node.id());
        req.set_force(o->force);
        api::RemoveNodeResponse resp;
        auto call = CallContext();
        ctx.Check(ctx.control().RemoveNode(call.get(), req, &resp));
        ctx.out() << ref << "\n";
      } catch (const CommandError& e) {
        errors.push_back(e.message);
      }
    }
    if (!errors.empty()) throw CommandError{absl::StrJoin(errors, "\n")};
  });
}

void AddPs(CLI::App& node, Context& ctx) {
  struct Options {
    bool quiet = false, no_trunc = false;
    std::string format;
    std::vector<std::string> refs;
    std::vector<std::string> filters;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = node.add_subcommand(
      "ps", "List tasks running on one or more nodes, defaults to current node");
  cmd->add_flag("-q,--quiet", o->quiet, "Only display task IDs");
  cmd->add_flag("--no-trunc", o->no_trunc, "Do not truncate output");
  cmd->add_option("--format", o->format, "Output format: table (default) or json");
  cmd->add_option("-f,--filter", o->filters,
                  "Filter output based on conditions provided (id=, name=, label=, "
                  "desired-state=running|shutdown|accepted)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  cmd->add_option("NODE", o->refs, "Node ID, ID prefix or hostname (default: self)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([&ctx, o] {
    const Format format = FormatFlag(o->format);
    api::ListTasksRequest req;
    api::ListTasksRequest::Filters* filters = req.mutable_filters();
    for (const std::string& f : o->filters) {
      const size_t eq = f.find('=');
      const std::string key = f.substr(0, eq);
      const std::string value = eq == std::string::npos ? "" : f.substr(eq + 1);
      if (key == "id" && !value.empty()) {
        filters->add_id_prefixes(value);
      } else if (key == "name" && !value.empty()) {
        filters->add_name_prefixes(value);
      } else if (key == "label" && !value.empty()) {
        const size_t leq = value.find('=');
        (*filters->mutable_labels())[value.substr(0, leq)] =
            leq == std::string::npos ? "" : value.substr(leq + 1);
      } else if (key == "desired-state" && value == "running") {
        filters->add_desired_states(api::TASK_STATE_RUNNING);
      } else if (key == "desired-state" && value == "shutdown") {
        filters->add_desired_states(api::TASK_STATE_SHUTDOWN);
      } else if (key == "desired-state" && value == "accepted") {
        filters->add_desired_states(api::TASK_STATE_ACCEPTED);
      } else {
        UsageError(absl::StrCat("invalid filter \"", f,
                                "\": use id=, name=, label=, or "
                                "desired-state=running|shutdown|accepted"));
      }
    }
    std::map<std::string, std::string> hostnames;
    const std::vector<std::string> refs =
        o->refs.empty() ? std::vector<std::string>{"self"} : o->refs;
    for (const std::string& ref : refs) {
      const api::Node node = ResolveNode(ctx, ref);
      if (hostnames.count(node.id()) > 0) continue;
      hostnames[node.id()] = node.description().hostname();
      filters->add_node_ids(node.id());
    }
    api::ListTasksResponse resp;
    auto call = CallContext();
    ctx.Check(ctx.control().ListTasks(call.get(), req, &resp));
    const std::vector<TaskRow> rows = MakeTaskRows(
        {resp.tasks().begin(), resp.tasks().end()},
        [&hostnames](const std::string& id) {
          auto it = hostnames.find(id);
          return it == hostnames.end() || it->second.empty() ? id : it->second;
        },
        absl::Now(), !o->no_trunc);
    if (o->quiet) {
      for (const TaskRow& row : rows) ctx.out() << row.id << "\n";
    } else if (format == Format::kJson) {
      for (const TaskRow& row : rows) PrintJsonLine(ctx.out(), TaskRowJson(row));
    } else {
      PrintTaskTable(ctx.out(), rows);
    }
  });
}

}  // namespace

absl::Status ApplyNodeSpecChanges(const NodeSpecChanges& changes, api::NodeSpec* spec) {
  if (changes.availability) spec->set_availability(*changes.availability);
  if (changes.role) spec->set_desired_role(*changes.role);
  auto* labels = spec->mutable_annotations()->mutable_labels();
  for (const std::string& kv : changes.label_add) {
    const size_t eq = kv.find('=');
    const std::string key = kv.substr(0, eq);
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --label-add \"", kv, "\": use key=value or key"));
    }
    (*labels)[key] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  for (const std::string& key : changes.label_rm) {
    if (labels->erase(key) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--label-rm: key ", key, " doesn't exist in node's labels"));
    }
  }
  return absl::OkStatus();
}

absl::Status AddNodeFilter(const std::string& filter, api::ListNodesRequest::Filters* filters) {
  const size_t eq = filter.find('=');
  const std::string key = filter.substr(0, eq);
  const std::string value = eq == std::string::npos ? "" : filter.substr(eq + 1);
  auto invalid = [&filter](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid filter \"", filter, "\": ", why));
  };
  if (eq == std::string::npos || value.empty()) return invalid("use key=value");
  if (key == "id") {
    filters->add_id_prefixes(value);
  } else if (key == "name") {
    filters->add_name_prefixes(value);
  } else if (key == "label") {
    return invalid(
        "engine labels cannot be filtered on; node.label=KEY[=VALUE] filters node labels");
  } else if (key == "node.label") {
    const size_t leq = value.find('=');
    (*filters->mutable_labels())[value.substr(0, leq)] =
        leq == std::string::npos ? "" : value.substr(leq + 1);
  } else if (key == "role") {
    absl::StatusOr<api::NodeRole> role = ParseRole(value);
    if (!role.ok()) return invalid("role is worker or manager");
    filters->add_roles(*role);
  } else if (key == "membership") {
    if (value == "accepted") {
      filters->add_memberships(api::NodeSpec::ACCEPTED);
    } else if (value == "pending") {
      filters->add_memberships(api::NodeSpec::PENDING);
    } else {
      return invalid("membership is accepted or pending");
    }
  } else {
    return invalid("the filters are id, name, node.label, role and membership");
  }
  return absl::OkStatus();
}

void AddNodeCommand(CLI::App& app, Context& ctx) {
  auto* node = app.add_subcommand("node", "Manage Swarm nodes");
  node->require_subcommand(1);
  AddLs(*node, ctx);
  AddInspect(*node, ctx);
  AddUpdate(*node, ctx);
  AddRoleChange(*node, ctx, api::NODE_ROLE_MANAGER);
  AddRoleChange(*node, ctx, api::NODE_ROLE_WORKER);
  AddRm(*node, ctx);
  AddPs(*node, ctx);
}

}  // namespace shoal::cli
