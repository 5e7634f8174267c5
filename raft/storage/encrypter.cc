#include "raft/storage/encrypter.h"

namespace shoal::raft {

absl::StatusOr<std::string> NoEncryption::Seal(absl::string_view plaintext,
                                               absl::string_view /*associated_data*/) {
  return std::string(plaintext);
}

absl::StatusOr<std::string> NoEncryption::Open(absl::string_view sealed,
                                               absl::string_view /*associated_data*/) {
  return std::string(sealed);
}

}  // namespace shoal::raft
