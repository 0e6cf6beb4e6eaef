# ctest example_compiled_matches_header_only: train_lm built with tnn::compiled (COMPILED) and
# header-only (HEADER_ONLY) each train 12 steps on TEXT in a directory of their own under
# WORK_DIR; the saved models and training states must be the same bytes.
foreach(var COMPILED HEADER_ONLY TEXT WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "compare_compiled.cmake: expected -D${var}=..., got nothing")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
foreach(mode COMPILED HEADER_ONLY)
  file(MAKE_DIRECTORY ${WORK_DIR}/${mode})
  execute_process(COMMAND ${${mode}} ${TEXT} 12 WORKING_DIRECTORY ${WORK_DIR}/${mode}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${mode} train_lm failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${mode}:\n${out}")
endforeach()
foreach(file train_lm.safetensors train_lm.optim.safetensors)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK_DIR}/COMPILED/${file} ${WORK_DIR}/HEADER_ONLY/${file}
    RESULT_VARIABLE differ)
  if(differ)
    message(FATAL_ERROR "${file}: the compiled-mode build and the header-only build wrote different bytes")
  endif()
endforeach()
message(STATUS "the same model and training state, byte for byte")
