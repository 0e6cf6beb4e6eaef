// tnn::compiled, the library of the optional compiled mode (include/tnn/compiled.hpp): the
// explicit instantiation definitions of the float language-model stack, compiled once. CMake
// builds it with the TNN_* switches of tnn::tnn, which its users get too.
#define TNN_COMPILED_EXTERN
#ifndef TNN_COMPILED_LIB
#define TNN_COMPILED_LIB
#endif
#include "tnn/tnn.hpp"
