#include "cli/swarm_text.h"

#include "absl/strings/str_cat.h"

namespace shoal::cli {

std::string JoinCommandText(api::NodeRole role, const std::string& token,
                            const std::string& manager_addr) {
  return absl::StrCat("To add a ", role == api::NODE_ROLE_MANAGER ? "manager" : "worker",
                      " to this swarm, run the following command:\n\n    shoal swarm join --token ",
                      token, " ", manager_addr, "\n\n");
}

std::string InitText(const std::string& node_id, const std::string& worker_token,
                     const std::string& manager_addr, const std::string& unlock_key) {
  std::string text =
      absl::StrCat("Swarm initialized: current node (", node_id, ") is now a manager.\n\n",
                   JoinCommandText(api::NODE_ROLE_WORKER, worker_token, manager_addr),
                   "To add a manager to this swarm, run 'shoal swarm join-token manager' and "
                   "follow the instructions.\n\n");
  if (!unlock_key.empty()) text += UnlockKeyText(unlock_key);
  return text;
}

std::string UnlockKeyText(const std::string& unlock_key) {
  return absl::StrCat(
      "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\n"
      "command and provide the following key:\n\n    ",
      unlock_key,
      "\n\nRemember to store this key in a password manager, since without it you\n"
      "will not be able to restart the manager.\n");
}

}  // namespace shoal::cli
