// The shoal command: builds the command tree and runs one command.
#ifndef SHOAL_CLI_APP_H_
#define SHOAL_CLI_APP_H_

#include <iosfwd>

#include "common/clock.h"

namespace shoal::cli {

// Runs the CLI with the process's arguments; returns the exit status. Normal output goes to
// `out`, errors to `err` ("Error: ..." with what to do about it). Input (`swarm unlock`'s key)
// comes from the process's stdin.
int Run(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// The same with input read from `in`; neither `in` nor `out` is treated as a terminal (for
// tests). `clock` (default: the real one) paces and times the waits for convergence.
int Run(int argc, const char* const* argv, std::istream& in, std::ostream& out, std::ostream& err);
int Run(int argc, const char* const* argv, std::istream& in, std::ostream& out, std::ostream& err,
        Clock& clock);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_APP_H_
