#include "cli/output.h"

#include <algorithm>

namespace shoal::cli {

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) {
    width[c] = headers_[c].size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < cells.size(); ++c) {
      line += cells[c];
      if (c + 1 < cells.size()) line += std::string(width[c] - cells[c].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  };
  print_row(headers_);
  for (const auto& row : rows_) print_row(row);
}

void PrintJsonLine(std::ostream& out, const nlohmann::json& value) { out << value.dump() << '\n'; }

bool ParseFormat(const std::string& text, Format* format) {
  if (text.empty() || text == "table") {
    *format = Format::kTable;
    return true;
  }
  if (text == "json" || text == "{{json .}}") {
    *format = Format::kJson;
    return true;
  }
  return false;
}

}  // namespace shoal::cli
