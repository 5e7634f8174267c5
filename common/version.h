// The version of Shoal that every binary reports (`shoal version`, `shoal info`).
#ifndef SHOAL_COMMON_VERSION_H_
#define SHOAL_COMMON_VERSION_H_

namespace shoal {

inline constexpr char kVersion[] = "0.1.0-dev";
// The API version of proto/: bumped when a message changes incompatibly.
inline constexpr char kApiVersion[] = "1";

}  // namespace shoal

#endif  // SHOAL_COMMON_VERSION_H_
