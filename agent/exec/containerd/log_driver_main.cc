// shoal_log_driver: the task log driver as a binary of its own (see log_driver.h), for tests and
// for nodes that prefer a separate binary to `shoald`'s hidden subcommand.
#include "agent/exec/containerd/log_driver.h"

int main(int argc, char** argv) { return shoal::agent::exec::containerd::RunLogDriver(argc, argv); }
