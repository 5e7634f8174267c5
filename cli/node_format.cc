#include "cli/node_format.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "cli/json_util.h"
#include "cli/output.h"

namespace shoal::cli {
namespace {

bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// "Label:" padded so that values line up, as docker's tabwriter lays out --pretty.
void Field(std::ostream& out, const std::string& label, const std::string& value) {
  constexpr size_t kValueColumn = 24;
  std::string line = label + ":";
  line += std::string(line.size() < kValueColumn ? kValueColumn - line.size() : 1, ' ');
  out << line << value << "\n";
}

void LabelList(std::ostream& out, const google::protobuf::Map<std::string, std::string>& labels) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  for (const auto& [k, v] : sorted) out << " - " << k << (v.empty() ? "" : "=" + v) << "\n";
}

}  // namespace

NodeListRow MakeNodeListRow(const api::Node& node, const std::string& self_node_id) {
  NodeListRow row;
  row.id = node.id();
  row.self = !self_node_id.empty() && node.id() == self_node_id;
  row.hostname = node.description().hostname();
  row.status = Capitalize(NodeStateName(node.status().state()));
  row.availability = Capitalize(AvailabilityName(node.spec().availability()));
  if (node.has_manager_status()) {
    row.manager_status = node.manager_status().leader()
                             ? "Leader"
                             : Capitalize(ReachabilityName(node.manager_status().reachability()));
  }
  row.engine_version = node.description().engine().engine_version();
  return row;
}

nlohmann::json NodeListRowJson(const NodeListRow& row) {
  return {{"ID", row.id},
          {"Self", row.self},
          {"Hostname", row.hostname},
          {"Status", row.status},
          {"Availability", row.availability},
          {"ManagerStatus", row.manager_status},
          {"EngineVersion", row.engine_version}};
}

void PrintNodeTable(std::ostream& out, const std::vector<NodeListRow>& rows) {
  Table table({"ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"});
  for (const NodeListRow& row : rows) {
    table.AddRow({row.id + (row.self ? " *" : ""), row.hostname, row.status, row.availability,
                  row.manager_status, row.engine_version});
  }
  table.Print(out);
}

bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (IsDigit(a[i]) && IsDigit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && IsDigit(a[ie])) ++ie;
      while (je < b.size() && IsDigit(b[je])) ++je;
      // Compare the numbers' values: without leading zeros, the shorter is smaller.
      size_t ia = i, jb = j;
      while (ia + 1 < ie && a[ia] == '0') ++ia;
      while (jb + 1 < je && b[jb] == '0') ++jb;
      const std::string na = a.substr(ia, ie - ia), nb = b.substr(jb, je - jb);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      // Same value: fewer leading zeros first.
      if (ie - i != je - j) return ie - i < je - j;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

void SortNodesForList(std::vector<api::Node>* nodes) {
  std::sort(nodes->begin(), nodes->end(), [](const api::Node& x, const api::Node& y) {
    const std::string& hx = x.description().hostname();
    const std::string& hy = y.description().hostname();
    if (hx != hy) return NaturalLess(hx, hy);
    return x.id() < y.id();
  });
}

std::string BytesSize(int64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double size = static_cast<double>(bytes);
  size_t unit = 0;
  while (size >= 1024 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    size /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.4g%s", size, kUnits[unit]);
}

void PrintNodePretty(std::ostream& out, const api::Node& node) {
  const api::NodeDescription& d = node.description();
  Field(out, "ID", node.id());
  if (!node.spec().annotations().name().empty()) {
    Field(out, "Name", node.spec().annotations().name());
  }
  if (!node.spec().annotations().labels().empty()) {
    out << "Labels:\n";
    LabelList(out, node.spec().annotations().labels());
  }
  Field(out, "Hostname", d.hostname());
  Field(out, "Joined at", GoTimeString(node.meta().created_at()));
  out << "Status:\n";
  Field(out, " State", Capitalize(NodeStateName(node.status().state())));
  if (!node.status().message().empty()) Field(out, " Message", node.status().message());
  Field(out, " Availability", Capitalize(AvailabilityName(node.spec().availability())));
  if (!node.status().addr().empty()) Field(out, " Address", node.status().addr());
  if (node.has_manager_status()) {
    const api::ManagerStatus& m = node.manager_status();
    out << "Manager Status:\n";
    Field(out, " Address", m.addr());
    Field(out, " Raft Status", Capitalize(ReachabilityName(m.reachability())));
    Field(out, " Leader", m.leader() ? "Yes" : "No");
  }
  out << "Platform:\n";
  Field(out, " Operating System", d.platform().os());
  Field(out, " Architecture", d.platform().architecture());
  out << "Resources:\n";
  Field(out, " CPUs", absl::StrFormat("%d", d.resources().nano_cpus() / 1000000000));
  Field(out, " Memory",
        d.resources().memory_bytes() == 0 ? "" : BytesSize(d.resources().memory_bytes()));
  if (d.engine().plugins_size() > 0) {
    std::map<std::string, std::vector<std::string>> by_type;
    for (const api::PluginDescription& p : d.engine().plugins()) {
      by_type[p.type()].push_back(p.name());
    }
    out << "Plugins:\n";
    for (const auto& [type, names] : by_type) Field(out, "  " + type, absl::StrJoin(names, ", "));
  }
  Field(out, "Engine Version", d.engine().engine_version());
  if (!d.engine().labels().empty()) {
    out << "Engine Labels:\n";
    LabelList(out, d.engine().labels());
  }
  const api::NodeTLSInfo& tls = d.tls_info();
  if (!tls.trust_root().empty() || !tls.cert_issuer_subject().empty()) {
    out << "TLS Info:\n"
        << " TrustRoot:\n"
        << absl::StripTrailingAsciiWhitespace(tls.trust_root()) << "\n\n";
    Field(out, " Issuer Subject", Base64(tls.cert_issuer_subject()));
    Field(out, " Issuer Public Key", Base64(tls.cert_issuer_public_key()));
  }
}

}  // namespace shoal::cli
