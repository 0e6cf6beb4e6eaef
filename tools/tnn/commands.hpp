// The commands of the `tnn` program (commands.cpp): each declares its flags on the CLI11 app and
// gives the function main() calls when it was chosen. Errors propagate as exceptions to main();
// the returned value is the exit code (a training run stopped by a signal: 128 + the signal).
#pragma once

#include <functional>
#include <vector>

#include <CLI/CLI.hpp>

namespace tnncli {

struct Command {
  CLI::App* app;
  std::function<int()> run;
};

// train, eval, generate, classify, grad, plot and help, in the order `tnn --help` lists them.
std::vector<Command> add_commands(CLI::App& app);

}  // namespace tnncli
