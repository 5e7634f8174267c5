// How `shoal secret ls|inspect --pretty` and `shoal config ls|inspect --pretty` show their
// objects, as docker does.
#ifndef SHOAL_CLI_SECRET_FORMAT_H_
#define SHOAL_CLI_SECRET_FORMAT_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "objects.pb.h"

namespace shoal::cli {

// One line of `secret ls` / `config ls`.
struct SecretListRow {
  std::string id;  // in full, as docker shows them
  std::string name;
  std::string created;  // "5 minutes ago"
  std::string updated;
  std::string labels;  // "k=v,k2=v2" (JSON only)
};

SecretListRow MakeSecretListRow(const std::string& id, const api::Annotations& annotations,
                                const api::Meta& meta, absl::Time now);

// `--format json`: {"ID", "Name", "CreatedAt", "UpdatedAt", "Labels"}.
nlohmann::json SecretListRowJson(const SecretListRow& row);

// Columns ID, NAME, CREATED, UPDATED; rows sorted by name as given.
void PrintSecretTable(std::ostream& out, const std::vector<SecretListRow>& rows);

// `inspect --pretty`. A secret's data is never shown (the managers never return it); a config's
// is, as text.
void PrintSecretPretty(std::ostream& out, const api::Secret& secret);
void PrintConfigPretty(std::ostream& out, const api::Config& config);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SECRET_FORMAT_H_
