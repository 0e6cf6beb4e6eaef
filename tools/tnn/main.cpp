// The `tnn` program: train, evaluate, generate, classify, check gradients against an external
// reference, plot a training log. `tnn`, `tnn help` and `tnn --help` list the commands. Every
// error becomes one line on stderr and exit 1 (2 for a command line that does not parse); a
// training run stopped by a signal exits with 128 + the signal, once it has saved.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include <tnn/core/error.hpp>
#include <tnn/version.hpp>

#include "commands.hpp"
#include "processes.hpp"

namespace {

// " (did you mean --steps? see tnn train --help)" for a command line that did not parse: the
// subcommand named in argv[1] (if any), a near miss for the first unknown flag of that
// command or for an unknown command, and that command's own help.
std::string parse_error_hint(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> commands;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) commands.push_back(sub->get_name());
  std::string suggestion, help = "tnn --help";
  const std::string first = argc > 1 ? argv[1] : "";
  CLI::App* sub = nullptr;
  for (CLI::App* s : app.get_subcommands([](CLI::App*) { return true; }))
    if (s->get_name() == first) sub = s;
  if (sub) {
    help = "tnn " + first + " --help";
    std::vector<std::string> flags;
    std::function<void(CLI::App*)> collect = [&](CLI::App* a) {
      for (const CLI::Option* opt : a->get_options())
        for (const std::string& n : opt->get_lnames()) flags.push_back("--" + n);
      for (CLI::App* g : a->get_subcommands([](CLI::App* x) { return x->get_name().empty(); })) collect(g);
    };
    collect(sub);
    for (int i = 2; i < argc && suggestion.empty(); ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) continue;
      a = a.substr(0, a.find('='));
      if (std::find(flags.begin(), flags.end(), a) != flags.end()) continue;
      const std::string best = tnn::closest_word(a, flags);
      if (!best.empty()) suggestion = best;
    }
  } else if (!first.empty() && first[0] != '-') {
    std::vector<std::string> prefixed;  // "gen" -> "generate": a unique prefix is a near miss too
    for (const std::string& c : commands)
      if (c.rfind(first, 0) == 0) prefixed.push_back(c);
    suggestion = prefixed.size() == 1 ? prefixed.front() : tnn::closest_word(first, commands);
    if (!suggestion.empty()) help = "tnn " + suggestion + " --help";
  }
  return " (" + (suggestion.empty() ? std::string() : "did you mean " + suggestion + "? ") + "see " + help + ")";
}

// Standard output flushed and checked: a full disk (/dev/full) or a closed pipe is an error,
// not a silent exit 0 with the output lost.
bool stdout_ok() {
  std::cout.flush();
  return std::fflush(stdout) == 0 && !std::ferror(stdout) && !std::cout.fail();
}

}  // namespace

int main(int argc, char** argv) {
  // A closed pipe (tnn eval --json | head -c1) makes writes fail with EPIPE, reported below,
  // instead of killing the program with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  tnncli::quiet_unless_rank0();  // under mpirun: one report for the job (rank 0's)
  CLI::App app{"tnn: Toeplitz Neural Networks: train and use language models, text and image classifiers", "tnn"};
  app.require_subcommand(0, 1);
  app.set_version_flag("-V,--version", std::string("tnn ") + tnn::kVersion);
  app.footer("`tnn help COMMAND` or `tnn COMMAND --help` lists a command's flags.");
  std::vector<tnncli::Command> commands;
  int code = 0;
  try {
    commands = tnncli::add_commands(app);
    app.parse(argc, argv);
    code = -1;
    for (const tnncli::Command& c : commands)
      if (c.app->parsed()) code = c.run();
    if (code == -1) {  // no command: what there is to do
      std::cout << app.help();
      code = 0;
    }
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error: what was wrong, and where to look. Through
    // report_error: under mpirun it may be this rank's alone.
    return tnncli::report_error("tnn: error: " + tnn::detail::one_line(e.what(), 300) + parse_error_hint(app, argc, argv),
                                e.get_exit_code() != 0 ? e.get_exit_code() : 2);
  } catch (const std::bad_alloc&) {
    return tnncli::report_error("tnn: error: out of memory: a buffer could not be allocated (a smaller model, "
                                "--batch, --seq-len or --tokens needs less)", 1);
  } catch (const std::exception& e) {
    // one_line: whatever a message holds, the error stays one bounded line. Under mpirun
    // report_error also ends the job (tools/tnn/processes.hpp).
    return tnncli::report_error("tnn: error: " + tnn::detail::one_line(e.what(), 600), 1);
  }
  if (!stdout_ok()) {
    const int err = errno;
    std::cerr << "tnn: error: writing the output to standard output failed: " << std::strerror(err) << "\n";
    return 1;
  }
  return code;
}
