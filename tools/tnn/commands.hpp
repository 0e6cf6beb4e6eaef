// Subcommands of the `tnn` program; each registers itself on the CLI11 app and
// runs from its callback, so errors propagate as exceptions to main().
#pragma once

#include <CLI/CLI.hpp>

namespace tnncli {
void add_grad_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_classify_command(CLI::App& app);  // cmd_classify.cpp (classify_cli.hpp)
}  // namespace tnncli
