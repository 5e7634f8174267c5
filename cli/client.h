// Connecting the CLI to a shoald: host parsing and channel creation.
#ifndef SHOAL_CLI_CLIENT_H_
#define SHOAL_CLI_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace shoal::cli {

inline constexpr char kDefaultHost[] = "unix:///run/shoal/shoal.sock";

// Resolves the daemon address: the -H flag if given, else $SHOAL_HOST, else the default.
std::string ResolveHost(const std::string& flag_value);

// Turns "unix:///path" (or "unix:/path", or a bare absolute path) into a gRPC target.
// Returns INVALID_ARGUMENT naming the accepted forms for anything else.
absl::StatusOr<std::string> GrpcTarget(const std::string& host);

// A channel to the daemon's control socket. Connection happens lazily on the first call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const std::string& host);

// Turns a failed RPC into the message a user sees. UNAVAILABLE becomes "cannot reach shoald at
// HOST: is it running? ..." so that the fix is obvious.
std::string DescribeRpcError(const grpc::Status& status, const std::string& host);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_CLIENT_H_
