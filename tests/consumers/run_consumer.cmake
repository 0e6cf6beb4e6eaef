# Builds and runs one consumer project (cmake -P, from ctest):
#   -DMODE=find_package      installs tnn from TNN_BINARY_DIR into a fresh prefix,
#                            then builds consumers/find_package against that prefix only;
#   -DMODE=add_subdirectory  builds consumers/add_subdirectory on TNN_SOURCE_DIR.
# Other inputs: TNN_SOURCE_DIR, TNN_BINARY_DIR, WORK_DIR, GENERATOR, MAKE_PROGRAM,
# CXX_COMPILER, BUILD_TYPE (may be empty).
foreach(var MODE TNN_SOURCE_DIR TNN_BINARY_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: expected -D${var}=..., got nothing")
  endif()
endforeach()
if(NOT MODE MATCHES "^(find_package|add_subdirectory)$")
  message(FATAL_ERROR "run_consumer.cmake: MODE: expected find_package or add_subdirectory, got '${MODE}'")
endif()

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
    -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()

if(MODE STREQUAL "find_package")
  set(prefix ${WORK_DIR}/prefix)
  run("install to ${prefix}" ${CMAKE_COMMAND} --install ${TNN_BINARY_DIR} --prefix ${prefix} ${config_args})
  foreach(f include/tnn/tnn.hpp share/tnn/cmake/tnnConfig.cmake share/tnn/cmake/tnnConfigVersion.cmake
            share/tnn/cmake/tnnTargets.cmake share/tnn/cmake/FindFFTW3.cmake)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "consumer find_package: expected ${prefix}/${f} after install, not there")
    endif()
  endforeach()
  list(APPEND configure_args -DCMAKE_PREFIX_PATH=${prefix})
else()
  list(APPEND configure_args -DTNN_SOURCE_DIR=${TNN_SOURCE_DIR})
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
