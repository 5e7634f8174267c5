// Process-wide logging setup. Code logs through spdlog's default logger (spdlog::info(...));
// this decides where it goes and how it looks. Call once from main() before starting threads.
#ifndef SHOAL_COMMON_LOGGING_H_
#define SHOAL_COMMON_LOGGING_H_

#include <string>

#include "absl/status/status.h"

namespace shoal {

// level: debug|info|warn|error. format: text|json (one JSON object per line: time, level, msg).
// Logs go to stderr. Returns INVALID_ARGUMENT naming the accepted values on a bad argument.
absl::Status InitLogging(const std::string& level, const std::string& format);

// Escapes `in` for use inside a JSON string literal (without the surrounding quotes).
std::string JsonEscape(std::string_view in);

}  // namespace shoal

#endif  // SHOAL_COMMON_LOGGING_H_
