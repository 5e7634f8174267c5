#include "cli/client.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shoal::cli {

std::string ResolveHost(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  const char* env = std::getenv("SHOAL_HOST");
  if (env != nullptr && *env != '\0') return env;
  return kDefaultHost;
}

absl::StatusOr<std::string> GrpcTarget(const std::string& host) {
  std::string path;
  if (absl::StartsWith(host, "unix://")) {
    path = host.substr(7);
  } else if (absl::StartsWith(host, "unix:")) {
    path = host.substr(5);
  } else if (absl::StartsWith(host, "/")) {
    path = host;
  }
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid host \"", host, "\": use unix:///absolute/path/to/shoal.sock (the default is ",
        kDefaultHost, ")"));
  }
  return absl::StrCat("unix://", path);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> Connect(const std::string& host) {
  absl::StatusOr<std::string> target = GrpcTarget(host);
  if (!target.ok()) return target.status();
  grpc::ChannelArguments args;
  // No limit: the daemon is local and trusted, and a listing of 100,000 tasks is ~90 MB.
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(*target, grpc::InsecureChannelCredentials(), args);
}

std::string DescribeRpcError(const grpc::Status& status, const std::string& host) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::StrCat("cannot reach shoald at ", host,
                          ": is it running? Start it (shoald), or point -H/SHOAL_HOST at its "
                          "socket (",
                          status.error_message(), ")");
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StrCat("shoald at ", host, " did not answer in time: ", status.error_message());
    case grpc::StatusCode::UNIMPLEMENTED:
      return absl::StrCat("shoald at ", host, " does not support this request (",
                          status.error_message(), "); is it an older version?");
    default:
      return status.error_message();
  }
}

}  // namespace shoal::cli
