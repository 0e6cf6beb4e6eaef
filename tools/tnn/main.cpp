// The `tnn` program: train, evaluate, generate, and check gradients against an
// external reference. Every library error becomes one line on stderr and exit 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <string>

#include <tnn/version.hpp>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tnn: Toeplitz Neural Network language models (train, eval, generate, grad)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tnn ") + tnn::kVersion);
  tnncli::add_grad_command(app);
  tnncli::add_train_command(app);
  tnncli::add_eval_command(app);
  tnncli::add_generate_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error: what was wrong, and where to look.
    std::cerr << "tnn: error: " << e.what() << " (see tnn --help)\n";
    return e.get_exit_code() != 0 ? e.get_exit_code() : 2;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    std::cerr << "tnn: error: out of memory: a buffer could not be allocated (a smaller model, --batch, "
                 "--seq-len or --tokens needs less)\n";
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "tnn: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
