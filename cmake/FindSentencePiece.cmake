# FindSentencePiece: Debian's libsentencepiece-dev ships a pkg-config file but no CMake config.
# Defines SentencePiece_FOUND and the imported targets
#   SentencePiece::sentencepiece        the tokenizer (encode, decode): what tnn::tnn links
#   SentencePiece::sentencepiece_train  the trainer (SentencePieceTrainer), when installed
find_path(SentencePiece_INCLUDE_DIR sentencepiece_processor.h)
find_library(SentencePiece_LIBRARY NAMES sentencepiece)
find_library(SentencePiece_TRAIN_LIBRARY NAMES sentencepiece_train)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(SentencePiece REQUIRED_VARS SentencePiece_INCLUDE_DIR SentencePiece_LIBRARY)

if(SentencePiece_FOUND)
  include(${CMAKE_CURRENT_LIST_DIR}/tnn_import_library.cmake)
  tnn_import_library(SentencePiece::sentencepiece "${SentencePiece_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${SentencePiece_INCLUDE_DIR}")
  if(SentencePiece_TRAIN_LIBRARY)
    tnn_import_library(SentencePiece::sentencepiece_train "${SentencePiece_TRAIN_LIBRARY}"
      INTERFACE_LINK_LIBRARIES SentencePiece::sentencepiece)
  endif()
endif()
mark_as_advanced(SentencePiece_INCLUDE_DIR SentencePiece_LIBRARY SentencePiece_TRAIN_LIBRARY)
