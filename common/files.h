// files: small, crash-safe file helpers shared by the daemon's on-disk records.
//
// WriteFileAtomic replaces a file so that a crash at any point leaves either the old content or
// the new, never a torn mix: write <path>.tmp, fsync it, rename it over <path>, fsync the
// directory.
//
// Thread-safety: free functions; callers serialise writes to one path.
#ifndef SHOAL_COMMON_FILES_H_
#define SHOAL_COMMON_FILES_H_

#include <string>

#include "absl/status/statusor.h"

namespace shoal {

absl::Status WriteFileAtomic(const std::string& path, const std::string& data, unsigned mode);
// NOT_FOUND if the file does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);
bool FileExists(const std::string& path);
// Creates `dir` and its missing parents with `mode`.
absl::Status MakeDirectories(const std::string& dir, unsigned mode);

}  // namespace shoal

#endif  // SHOAL_COMMON_FILES_H_
