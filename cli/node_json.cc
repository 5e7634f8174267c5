#include "cli/node_json.h"

#include "cli/json_util.h"

namespace shoal::cli {
namespace {

using Json = nlohmann::ordered_json;

Json DescriptionJson(const api::NodeDescription& d) {
  Json out;
  out["Hostname"] = d.hostname();
  out["Platform"] = {{"Architecture", d.platform().architecture()}, {"OS", d.platform().os()}};
  Json resources = {{"NanoCPUs", d.resources().nano_cpus()},
                    {"MemoryBytes", d.resources().memory_bytes()}};
  if (d.resources().generic_size() > 0) {
    Json generic = Json::array();
    for (const api::GenericResource& g : d.resources().generic()) {
      if (g.has_named()) {
        generic.push_back(
            {{"NamedResourceSpec", {{"Kind", g.named().kind()}, {"Value", g.named().value()}}}});
      } else if (g.has_discrete()) {
        generic.push_back({{"DiscreteResourceSpec",
                            {{"Kind", g.discrete().kind()}, {"Value", g.discrete().value()}}}});
      }
    }
    resources["GenericResources"] = generic;
  }
  out["Resources"] = resources;
  Json engine = {{"EngineVersion", d.engine().engine_version()}};
  if (!d.engine().labels().empty()) engine["Labels"] = LabelsJson(d.engine().labels());
  if (d.engine().plugins_size() > 0) {
    Json plugins = Json::array();
    for (const api::PluginDescription& p : d.engine().plugins()) {
      plugins.push_back({{"Type", p.type()}, {"Name", p.name()}});
    }
    engine["Plugins"] = plugins;
  }
  out["Engine"] = engine;
  const api::NodeTLSInfo& tls = d.tls_info();
  Json tls_json = Json::object();
  if (!tls.trust_root().empty()) tls_json["TrustRoot"] = tls.trust_root();
  if (!tls.cert_issuer_subject().empty()) {
    tls_json["CertIssuerSubject"] = Base64(tls.cert_issuer_subject());
  }
  if (!tls.cert_issuer_public_key().empty()) {
    tls_json["CertIssuerPublicKey"] = Base64(tls.cert_issuer_public_key());
  }
  out["TLSInfo"] = tls_json;
  return out;
}

}  // namespace

nlohmann::ordered_json NodeJson(const api::Node& node) {
  Json out;
  out["ID"] = node.id();
  out["Version"] = {{"Index", node.meta().version().index()}};
  out["CreatedAt"] = Rfc3339Nano(node.meta().created_at());
  out["UpdatedAt"] = Rfc3339Nano(node.meta().updated_at());
  Json spec;
  if (!node.spec().annotations().name().empty()) spec["Name"] = node.spec().annotations().name();
  spec["Labels"] = LabelsJson(node.spec().annotations().labels());
  spec["Role"] = RoleName(node.spec().desired_role());
  spec["Availability"] = AvailabilityName(node.spec().availability());
  out["Spec"] = spec;
  out["Description"] = DescriptionJson(node.description());
  Json status = {{"State", NodeStateName(node.status().state())}};
  if (!node.status().message().empty()) status["Message"] = node.status().message();
  if (!node.status().addr().empty()) status["Addr"] = node.status().addr();
  out["Status"] = status;
  if (node.has_manager_status()) {
    const api::ManagerStatus& m = node.manager_status();
    out["ManagerStatus"] = {{"Leader", m.leader()},
                            {"Reachability", ReachabilityName(m.reachability())},
                            {"Addr", m.addr()}};
  }
  return out;
}

}  // namespace shoal::cli
