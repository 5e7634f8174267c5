#include "cli/resolve.h"

namespace shoal::cli {
namespace {

// A lookup for a kind whose Get/List calls have the usual shape: Get<Kind>Request{<kind>_id},
// List<Kind>sRequest{filters{names, id_prefixes}}. `get` and `list` issue the calls.
template <typename T, typename ListRequest>
ObjectLookup<T> MakeLookup(const std::string& kind, const std::string& list_command,
                           std::function<grpc::Status(const std::string&, T*)> get,
                           std::function<grpc::Status(const ListRequest&, std::vector<T>*)> list) {
  ObjectLookup<T> lookup;
  lookup.kind = kind;
  lookup.list_command = list_command;
  lookup.get = std::move(get);
  lookup.list_by_name = [list](const std::string& name, std::vector<T>* out) {
    ListRequest req;
    req.mutable_filters()->add_names(name);
    return list(req, out);
  };
  lookup.list_by_id_prefix = [list](const std::string& prefix, std::vector<T>* out) {
    ListRequest req;
    req.mutable_filters()->add_id_prefixes(prefix);
    return list(req, out);
  };
  return lookup;
}

}  // namespace

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

ObjectLookup<api::Service> ServiceLookup(api::Control::Stub& control) {
  return MakeLookup<api::Service, api::ListServicesRequest>(
      "service", "shoal service ls",
      [&control](const std::string& id, api::Service* out) {
        api::GetServiceRequest req;
        req.set_service_id(id);
        api::GetServiceResponse resp;
        auto call = CallContext();
        grpc::Status s = control.GetService(call.get(), req, &resp);
        if (s.ok()) *out = std::move(*resp.mutable_service());
        return s;
      },
      [&control](const api::ListServicesRequest& req, std::vector<api::Service>* out) {
        api::ListServicesResponse resp;
        auto call = CallContext();
        grpc::Status s = control.ListServices(call.get(), req, &resp);
        if (s.ok()) out->assign(resp.services().begin(), resp.services().end());
        return s;
      });
}

ObjectLookup<api::Secret> SecretLookup(api::Control::Stub& control) {
  return MakeLookup<api::Secret, api::ListSecretsRequest>(
      "secret", "shoal secret ls",
      [&control](const std::string& id, api::Secret* out) {
        api::GetSecretRequest req;
        req.set_secret_id(id);
        api::GetSecretResponse resp;
        auto call = CallContext();
        grpc::Status s = control.GetSecret(call.get(), req, &resp);
        if (s.ok()) *out = std::move(*resp.mutable_secret());
        return s;
      },
      [&control](const api::ListSecretsRequest& req, std::vector<api::Secret>* out) {
        api::ListSecretsResponse resp;
        auto call = CallContext();
        grpc::Status s = control.ListSecrets(call.get(), req, &resp);
        if (s.ok()) out->assign(resp.secrets().begin(), resp.secrets().end());
        return s;
      });
}

ObjectLookup<api::Config> ConfigLookup(api::Control::Stub& control) {
  return MakeLookup<api::Config, api::ListConfigsRequest>(
      "config", "shoal config ls",
      [&control](const std::string& id, api::Config* out) {
        api::GetConfigRequest req;
        req.set_config_id(id);
        api::GetConfigResponse resp;
        auto call = CallContext();
        grpc::Status s = control.GetConfig(call.get(), req, &resp);
        if (s.ok()) *out = std::move(*resp.mutable_config());
        return s;
      },
      [&control](const api::ListConfigsRequest& req, std::vector<api::Config>* out) {
        api::ListConfigsResponse resp;
        auto call = CallContext();
        grpc::Status s = control.ListConfigs(call.get(), req, &resp);
        if (s.ok()) out->assign(resp.configs().begin(), resp.configs().end());
        return s;
      });
}

ObjectLookup<api::Network> NetworkLookup(api::Control::Stub& control) {
  return MakeLookup<api::Network, api::ListNetworksRequest>(
      "network", "shoal network ls",
      [&control](const std::string& id, api::Network* out) {
        api::GetNetworkRequest req;
        req.set_network_id(id);
        api::GetNetworkResponse resp;
        auto call = CallContext();
        grpc::Status s = control.GetNetwork(call.get(), req, &resp);
        if (s.ok()) *out = std::move(*resp.mutable_network());
        return s;
      },
      [&control](const api::ListNetworksRequest& req, std::vector<api::Network>* out) {
        api::ListNetworksResponse resp;
        auto call = CallContext();
        grpc::Status s = control.ListNetworks(call.get(), req, &resp);
        if (s.ok()) out->assign(resp.networks().begin(), resp.networks().end());
        return s;
      });
}

api::Service ResolveService(Context& ctx, const std::string& ref) {
  api::Service out;
  ctx.Check(Resolve(ServiceLookup(ctx.control()), ref, &out));
  return out;
}

api::Secret ResolveSecret(Context& ctx, const std::string& ref) {
  api::Secret out;
  ctx.Check(Resolve(SecretLookup(ctx.control()), ref, &out));
  return out;
}

api::Config ResolveConfig(Context& ctx, const std::string& ref) {
  api::Config out;
  ctx.Check(Resolve(ConfigLookup(ctx.control()), ref, &out));
  return out;
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
