# tnn_import_library(TARGET LIBRARY [PROPERTY VALUE]...): the imported target TARGET for a library
# file found by find_library, with the properties given, unless TARGET exists already (a second
# find_package). Used by the Find modules beside it, installed with them.
function(tnn_import_library target library)
  if(NOT TARGET ${target})
    add_library(${target} UNKNOWN IMPORTED)
    set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${library}" ${ARGN})
  endif()
endfunction()
