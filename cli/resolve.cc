#include "cli/resolve.h"

namespace shoal::cli {

ObjectLookup<api::Node> NodeLookup(api::Control::Stub& control) {
  ObjectLookup<api::Node> lookup;
  lookup.kind = "node";
  lookup.list_command = "shoal node ls";
  lookup.get = [&control](const std::string& id, api::Node* out) {
    api::GetNodeRequest req;
    req.set_node_id(id);
    api::GetNodeResponse resp;
    auto call = CallContext();
    grpc::Status s = control.GetNode(call.get(), req, &resp);
    if (s.ok()) *out = std::move(*resp.mutable_node());
    return s;
  };
  auto list = [&control](const api::ListNodesRequest& req, std::vector<api::Node>* out) {
    api::ListNodesResponse resp;
    auto call = CallContext();
    grpc::Status s = control.ListNodes(call.get(), req, &resp);
    if (s.ok()) out->assign(resp.nodes().begin(), resp.nodes().end());
    return s;
  };
  lookup.list_by_name = [list](const std::string& name, std::vector<api::Node>* out) {
    api::ListNodesRequest req;
    req.mutable_filters()->add_names(name);
    return list(req, out);
  };
  lookup.list_by_id_prefix = [list](const std::string& prefix, std::vector<api::Node>* out) {
    api::ListNodesRequest req;
    req.mutable_filters()->add_id_prefixes(prefix);
    return list(req, out);
  };
  return lookup;
}

std::string LocalNodeId(Context& ctx) {
  api::GetInfoResponse info;
  auto call = CallContext();
  ctx.Check(ctx.control().GetInfo(call.get(), api::GetInfoRequest(), &info));
  if (info.node_id().empty()) {
    throw CommandError{
        "this node is not part of a swarm: run `shoal swarm init` or `shoal swarm join` first"};
  }
  return info.node_id();
}

api::Node ResolveNode(Context& ctx, const std::string& ref) {
  api::Node node;
  const std::string target = ref == "self" ? LocalNodeId(ctx) : ref;
  ctx.Check(Resolve(NodeLookup(ctx.control()), target, &node));
  return node;
}

}  // namespace shoal::cli
