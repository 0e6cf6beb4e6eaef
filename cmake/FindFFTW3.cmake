# FindFFTW3: Debian's libfftw3-dev ships pkg-config files but no CMake config.
# Defines FFTW3_FOUND and the imported targets FFTW3::fftw3 (double) and
# FFTW3::fftw3f (float).
find_path(FFTW3_INCLUDE_DIR fftw3.h)
find_library(FFTW3_LIBRARY NAMES fftw3)
find_library(FFTW3F_LIBRARY NAMES fftw3f)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(FFTW3 REQUIRED_VARS FFTW3_INCLUDE_DIR FFTW3_LIBRARY FFTW3F_LIBRARY)

if(FFTW3_FOUND)
  include(${CMAKE_CURRENT_LIST_DIR}/tnn_import_library.cmake)
  tnn_import_library(FFTW3::fftw3 "${FFTW3_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${FFTW3_INCLUDE_DIR}")
  tnn_import_library(FFTW3::fftw3f "${FFTW3F_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${FFTW3_INCLUDE_DIR}")
endif()
mark_as_advanced(FFTW3_INCLUDE_DIR FFTW3_LIBRARY FFTW3F_LIBRARY)
