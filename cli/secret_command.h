// `shoal secret …` and `shoal config …`: create NAME FILE|-, ls, inspect [--pretty], rm. Both
// kinds are immutable: to change one, create another and point the services at it.
#ifndef SHOAL_CLI_SECRET_COMMAND_H_
#define SHOAL_CLI_SECRET_COMMAND_H_

#include <cstddef>
#include <istream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cli/context.h"

namespace shoal::cli {

// The managers' limits (manager/controlapi/spec_validation.h), checked here too so that a large
// file is refused before it is sent.
inline constexpr size_t kMaxSecretBytes = 500 * 1024;
inline constexpr size_t kMaxConfigBytes = 1000 * 1024;

void AddSecretCommand(CLI::App& app, Context& ctx);
void AddConfigCommand(CLI::App& app, Context& ctx);

// The data of `create NAME FILE|-`: the file's bytes, or all of `in` for "-". INVALID_ARGUMENT
// for more than `max_bytes` (saying the limit), NOT_FOUND/PERMISSION_DENIED style errors naming
// the file when it cannot be read. `kind` is "secret" or "config".
absl::StatusOr<std::string> ReadObjectData(std::istream& in, const std::string& path,
                                           size_t max_bytes, const std::string& kind);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SECRET_COMMAND_H_
