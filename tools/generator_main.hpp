// What the data generators (tnn-listops, tnn-pathfinder) share: their splits, --out-dir, and the
// end of main: the flags parsed, the generator run, and every failure one line on stderr after
// "<program>: error: ", with exit code 1 (2 for bad flags, as CLI11 says).
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <new>
#include <string>
#include <system_error>

#include <CLI/CLI.hpp>
#include <tnn/core/error.hpp>

// One of the files a generator writes: its name ("train", "valid", "test") and its examples.
struct Split {
  const char* name;
  std::int64_t count;
};

// --out-dir, created if it does not exist (an IoError otherwise).
inline void create_out_dir(const std::string& dir) {
  if (dir.empty()) tnn::fail<tnn::IoError>("--out-dir: expected a directory, got an empty string");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    tnn::fail<tnn::IoError>("--out-dir ", tnn::quote_path(dir), ": expected a directory that can be created, got: ",
                            ec ? ec.message() : std::string("not a directory"));
}

// `out_of_memory` says what to ask for instead ("fewer examples need less").
template <class Run>
int run_generator(CLI::App& app, int argc, char** argv, const char* program, const char* out_of_memory, Run&& run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error.
    std::cerr << program << ": error: " << tnn::detail::one_line(e.what(), 300) << " (see " << program << " --help)\n";
    return e.get_exit_code() != 0 ? e.get_exit_code() : 2;
  }
  try {
    run();
  } catch (const std::bad_alloc&) {
    std::cerr << program << ": error: out of memory (" << out_of_memory << ")\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << tnn::detail::one_line(e.what(), 600) << "\n";
    return 1;
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::cerr << program << ": error: writing to standard output failed\n";
    return 1;
  }
  return 0;
}
