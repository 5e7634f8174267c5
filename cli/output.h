// Output helpers for the shoal CLI: docker-style tables and JSON lines.
#ifndef SHOAL_CLI_OUTPUT_H_
#define SHOAL_CLI_OUTPUT_H_

#include <ostream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace shoal::cli {

// A table printed like docker's: upper-case headers, columns padded to the widest cell and
// separated by three spaces, no trailing blanks.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  // REQUIRES: cells.size() == number of headers.
  void AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Prints `value` as one line of compact JSON.
void PrintJsonLine(std::ostream& out, const nlohmann::json& value);

// Output formats accepted by --format. Returns false for anything else.
enum class Format { kTable, kJson };
bool ParseFormat(const std::string& text, Format* format);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_OUTPUT_H_
