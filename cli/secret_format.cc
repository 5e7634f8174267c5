#include "cli/secret_format.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/duration.h"
#include "cli/json_util.h"
#include "cli/output.h"

namespace shoal::cli {
namespace {

std::string Ago(const google::protobuf::Timestamp& ts, absl::Time now) {
  return HumanDuration(now - FromProto(ts)) + " ago";
}

void PrintHeader(std::ostream& out, const std::string& id, const api::Annotations& a) {
  out << "ID:              " << id << "\n";
  out << "Name:            " << a.name() << "\n";
  if (!a.labels().empty()) {
    out << "Labels:\n";
    std::map<std::string, std::string> labels(a.labels().begin(), a.labels().end());
    for (const auto& [k, v] : labels) out << " - " << k << (v.empty() ? "" : "=" + v) << "\n";
  }
}

void PrintTimes(std::ostream& out, const api::Meta& meta) {
  out << "Created at:      " << GoTimeString(meta.created_at()) << "\n";
  out << "Updated at:      " << GoTimeString(meta.updated_at()) << "\n";
}

}  // namespace

SecretListRow MakeSecretListRow(const std::string& id, const api::Annotations& annotations,
                                const api::Meta& meta, absl::Time now) {
  SecretListRow row;
  row.id = id;
  row.name = annotations.name();
  row.created = Ago(meta.created_at(), now);
  row.updated = Ago(meta.updated_at().seconds() != 0 ? meta.updated_at() : meta.created_at(), now);
  std::map<std::string, std::string> labels(annotations.labels().begin(),
                                            annotations.labels().end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : labels) parts.push_back(absl::StrCat(k, "=", v));
  row.labels = absl::StrJoin(parts, ",");
  return row;
}

nlohmann::json SecretListRowJson(const SecretListRow& row) {
  return {{"ID", row.id},
          {"Name", row.name},
          {"CreatedAt", row.created},
          {"UpdatedAt", row.updated},
          {"Labels", row.labels}};
}

void PrintSecretTable(std::ostream& out, const std::vector<SecretListRow>& rows) {
  Table table({"ID", "NAME", "CREATED", "UPDATED"});
  for (const SecretListRow& r : rows) table.AddRow({r.id, r.name, r.created, r.updated});
  table.Print(out);
}

void PrintSecretPretty(std::ostream& out, const api::Secret& secret) {
  PrintHeader(out, secret.id(), secret.spec().annotations());
  out << "Driver:\n";
  PrintTimes(out, secret.meta());
}

void PrintConfigPretty(std::ostream& out, const api::Config& config) {
  PrintHeader(out, config.id(), config.spec().annotations());
  PrintTimes(out, config.meta());
  out << "Data:\n" << config.spec().data();
  if (!config.spec().data().empty() && config.spec().data().back() != '\n') out << "\n";
}

}  // namespace shoal::cli
