// shoal: the command-line client. Everything lives in cli/; this is only the entry point.
#include <iostream>

#include "cli/app.h"

int main(int argc, char** argv) { return shoal::cli::Run(argc, argv, std::cout, std::cerr); }
