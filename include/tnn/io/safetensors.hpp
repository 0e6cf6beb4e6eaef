// The safetensors file format (8-byte little-endian header length N, N bytes of JSON header,
// then raw little-endian row-major tensor data), read as if every file were hostile and
// written deterministically and atomically. Checkpoints (checkpoint.hpp), `tnn grad` batches
// and golden files all go through here.
//
// Reader guarantees: every malformed input is a FormatError naming the file (label), the
// tensor, what was expected and what came. Memory is bounded by the file size: the file itself
// plus the parsed header (streamed, no JSON DOM: at most ~10x the header for hostile headers of
// tiny metadata pairs, ~3x for tensor entries), and nothing is allocated from a size the header
// claims before it is checked against the bytes really present.
// Rules, as in the reference implementation: header length <= 100 MB; the header is a JSON
// object without duplicate keys; each entry is an object with exactly the keys dtype, shape,
// data_offsets; shapes have at most 64 dims, integers >= 0 whose product fits in int64; the
// byte ranges of all tensors tile the data area exactly (no overlap, no hole, no trailing
// bytes); "__metadata__" maps strings to strings; tensor names are non-empty.
//
// Writer guarantees: tensors in byte order of their names, fixed compact JSON (ASCII-escaped,
// metadata last, padded with spaces so the data starts 8-byte aligned; the same bytes as
// tests/pytorch/safetensors_io.py writes when given metadata in sorted key order), so
// save-load-save is byte-identical; the file is written to a temporary in the same directory,
// fsynced and renamed over the target, so a crash or an exception midway never destroys the
// previous file. POSIX only.
#pragma once
// The parts, one job each: safetensors_header.hpp (dtypes, tensor table, header parser),
// file.hpp (bounded reads, atomic writes), safetensors_reader.hpp, safetensors_writer.hpp.
#include "tnn/io/file.hpp"
#include "tnn/io/safetensors_header.hpp"
#include "tnn/io/safetensors_reader.hpp"
#include "tnn/io/safetensors_writer.hpp"
