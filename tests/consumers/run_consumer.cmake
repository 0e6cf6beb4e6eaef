# Builds and runs one consumer project (cmake -P, from ctest):
#   -DMODE=find_package      installs tnn from TNN_BINARY_DIR into a fresh prefix, checks
#                            what the install holds (headers, CMake package, tnn.pc,
#                            LICENSE, and bin/tnn, which must run --version, when
#                            TNN_CLI=ON), then builds consumers/find_package against that
#                            prefix only;
#   -DMODE=add_subdirectory  builds consumers/add_subdirectory on TNN_SOURCE_DIR;
#   -DMODE=default_build_type  configures tnn top-level without a build type: Release;
#   -DMODE=pkg_config        installs as find_package does, then compiles and links
#                            consumer_main.cpp with one compiler command from
#                            `pkg-config --cflags --libs tnn` (PKG_CONFIG_PATH = the prefix only).
# Every consumer is compiled with -Wall -Wextra -Wpedantic -Wshadow -Werror, tnn's headers
# not treated as system headers, so a warning in them fails the test.
# Other inputs: TNN_SOURCE_DIR, TNN_BINARY_DIR, WORK_DIR, GENERATOR, MAKE_PROGRAM,
# CXX_COMPILER, BUILD_TYPE (may be empty), PKG_CONFIG (pkg_config mode), TNN_CLI (bin/tnn
# installed), EXPECT_BLAS (the top-level build uses BLAS; add_subdirectory must too).
foreach(var MODE TNN_SOURCE_DIR TNN_BINARY_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: expected -D${var}=..., got nothing")
  endif()
endforeach()
if(NOT MODE MATCHES "^(find_package|add_subdirectory|pkg_config|default_build_type)$")
  message(FATAL_ERROR "run_consumer.cmake: MODE: expected find_package, add_subdirectory, pkg_config or "
    "default_build_type, got '${MODE}'")
endif()
set(warning_flags -Wall -Wextra -Wpedantic -Wshadow -Werror)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer ${MODE}: ${what} failed (${rc}):\n${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "consumer ${MODE}: ${what}: ok")
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

set(build_dir ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})
set(config_args)
if(BUILD_TYPE)
  set(config_args --config ${BUILD_TYPE})
endif()
set(configure_args -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON -DEXPECT_COMPILED=${EXPECT_COMPILED})
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()

if(MODE STREQUAL "default_build_type")
  # tnn configured as the top-level project with no build type (and no CMAKE_BUILD_TYPE
  # in the environment) must build Release, not CMake's flagless default.
  unset(ENV{CMAKE_BUILD_TYPE})
  run("configure tnn without a build type" ${CMAKE_COMMAND} -S ${TNN_SOURCE_DIR} -B ${build_dir} -G ${GENERATOR}
      -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DTNN_BUILD_TESTS=OFF -DTNN_BUILD_BENCHMARKS=OFF
      -DTNN_BUILD_EXAMPLES=OFF -DTNN_BUILD_TOOLS=OFF)
  file(STRINGS ${build_dir}/CMakeCache.txt build_type REGEX "^CMAKE_BUILD_TYPE:")
  if(NOT build_type STREQUAL "CMAKE_BUILD_TYPE:STRING=Release")
    message(FATAL_ERROR "consumer default_build_type: expected CMAKE_BUILD_TYPE:STRING=Release, got '${build_type}'")
  endif()
  return()
endif()

if(MODE MATCHES "^(find_package|pkg_config)$")
  set(prefix ${WORK_DIR}/prefix)
  run("install to ${prefix}" ${CMAKE_COMMAND} --install ${TNN_BINARY_DIR} --prefix ${prefix} ${config_args})
  set(expected include/tnn/tnn.hpp share/tnn/cmake/tnnConfig.cmake share/tnn/cmake/tnnConfigVersion.cmake
      share/tnn/cmake/tnnTargets.cmake share/tnn/cmake/FindFFTW3.cmake lib/pkgconfig/tnn.pc share/doc/tnn/LICENSE)
  if(TNN_CLI)
    list(APPEND expected bin/tnn)
  endif()
  foreach(f IN LISTS expected)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "consumer ${MODE}: expected ${prefix}/${f} after install, not there")
    endif()
  endforeach()
  file(READ ${prefix}/share/tnn/cmake/tnnConfig.cmake config_text)
  if(NOT config_text MATCHES "find_dependency\\(nlohmann_json")
    message(FATAL_ERROR "consumer ${MODE}: the installed tnnConfig.cmake does not find_dependency(nlohmann_json)")
  endif()
  if(TNN_CLI)
    run("installed bin/tnn --version" ${prefix}/bin/tnn --version)
    if(NOT last_output MATCHES "[0-9]+\\.[0-9]+\\.[0-9]+")
      message(FATAL_ERROR "consumer ${MODE}: expected a version number from bin/tnn --version, got '${last_output}'")
    endif()
  endif()
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${prefix})
else()
  list(APPEND configure_args -DTNN_SOURCE_DIR=${TNN_SOURCE_DIR} -DTNN_EXPECT_BLAS=${EXPECT_BLAS})
endif()

if(MODE STREQUAL "pkg_config")
  # A plain compiler command, as a Makefile user would write it.
  if(NOT PKG_CONFIG)
    message(FATAL_ERROR "consumer pkg_config: expected -DPKG_CONFIG=<pkg-config program>, got nothing")
  endif()
  set(ENV{PKG_CONFIG_PATH} ${prefix}/lib/pkgconfig)
  run("pkg-config --cflags --libs tnn" ${PKG_CONFIG} --cflags --libs tnn)
  string(STRIP "${last_output}" pc_flags)
  message(STATUS "consumer pkg_config: ${pc_flags}")
  string(FIND "${pc_flags}" "-I${prefix}/" at)
  if(at LESS 0)
    message(FATAL_ERROR "consumer pkg_config: expected -I${prefix}/... (tnn's headers) from tnn.pc, got '${pc_flags}'")
  endif()
  separate_arguments(pc_args UNIX_COMMAND "${pc_flags}")
  file(MAKE_DIRECTORY ${build_dir})
  set(opt -O2)
  if(BUILD_TYPE STREQUAL "Debug")
    set(opt -O0 -g)
  endif()
  run("compile and link" ${CXX_COMPILER} -std=c++17 ${opt} ${warning_flags}
      ${TNN_SOURCE_DIR}/tests/consumers/consumer_main.cpp -o ${build_dir}/consumer ${pc_args})
  run("run" ${build_dir}/consumer)
  message(STATUS "${last_output}")
  return()
endif()

run("configure" ${CMAKE_COMMAND} -S ${TNN_SOURCE_DIR}/tests/consumers/${MODE} -B ${build_dir} ${configure_args})
if(MODE STREQUAL "find_package")
  # The package must come from the fresh prefix, not from a build tree or the system.
  file(STRINGS ${build_dir}/CMakeCache.txt tnn_dir REGEX "^tnn_DIR:")
  if(NOT tnn_dir MATCHES "^tnn_DIR:PATH=${prefix}/")
    message(FATAL_ERROR "consumer find_package: expected tnn_DIR under ${prefix}, got '${tnn_dir}'")
  endif()
endif()
run("build" ${CMAKE_COMMAND} --build ${build_dir} ${config_args})
set(exe ${build_dir}/consumer)
if(BUILD_TYPE AND EXISTS ${build_dir}/${BUILD_TYPE}/consumer)  # multi-config generators
  set(exe ${build_dir}/${BUILD_TYPE}/consumer)
endif()
run("run" ${exe})
message(STATUS "${last_output}")
get_filename_component(exe_dir ${exe} DIRECTORY)
if(EXISTS ${exe_dir}/consumer_compiled)  # find_package of a package built with TNN_COMPILED_LIB
  run("run with tnn::compiled" ${exe_dir}/consumer_compiled)
  message(STATUS "${last_output}")
elseif(MODE STREQUAL "find_package" AND EXPECT_COMPILED)
  message(FATAL_ERROR "consumer find_package: expected the program consumer_compiled (tnn::compiled), not built")
endif()
