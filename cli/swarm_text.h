// The texts `shoal swarm …` prints, as docker's (with `shoal` for `docker`), kept apart from the
// commands so that they are tested to the character.
#ifndef SHOAL_CLI_SWARM_TEXT_H_
#define SHOAL_CLI_SWARM_TEXT_H_

#include <string>

#include "types.pb.h"

namespace shoal::cli {

// "To add a worker to this swarm, run the following command:\n\n    shoal swarm join --token T
// ADDR\n\n" (or "a manager").
std::string JoinCommandText(api::NodeRole role, const std::string& token,
                            const std::string& manager_addr);

// What `swarm init` prints: the node that became manager, the worker join command, how to get
// the manager's, and, when autolock is on (`unlock_key` non-empty), the unlock key paragraph.
std::string InitText(const std::string& node_id, const std::string& worker_token,
                     const std::string& manager_addr, const std::string& unlock_key);

// The paragraph that hands out an unlock key ("To unlock a swarm manager after it restarts, …").
std::string UnlockKeyText(const std::string& unlock_key);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SWARM_TEXT_H_
