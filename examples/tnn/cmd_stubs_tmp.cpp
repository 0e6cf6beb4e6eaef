#include "commands.hpp"
namespace tnncli {
void add_train_command(CLI::App&) {}
void add_eval_command(CLI::App&) {}
void add_generate_command(CLI::App&) {}
}
