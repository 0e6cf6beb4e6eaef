#!/usr/bin/env bash
# The one-way dependency cut of include/tnn/: a header may include only from its
# own folder or from folders below it in
#     core < io < layers < model < infer < train < dist
# (train may include infer, infer may not include train; dist may include anything
# below it). Files directly in include/tnn/ (the umbrella tnn.hpp) are above every
# folder, and no folder header may include them, except the generated version.hpp
# which includes nothing.
#
#   include_direction.sh INCLUDE_DIR            check the tree (exit 1 on any violation)
#   include_direction.sh --self-test INCLUDE_DIR  the check fails on a copy of the
#                                               tree given one bad include, passes on the copy
set -u

rank() {
  case "$1" in
    core) echo 0 ;; io) echo 1 ;; layers) echo 2 ;; model) echo 3 ;;
    infer) echo 4 ;; train) echo 5 ;; dist) echo 6 ;;
    *) echo -1 ;;
  esac
}

check() {
  local root="$1/tnn" bad=0 n=0
  if [ ! -d "$root" ]; then
    echo "include_direction: expected a directory $root, got none" >&2
    return 2
  fi
  while IFS= read -r -d '' header; do
    local rel="${header#"$root"/}"
    local folder="${rel%%/*}"
    [ "$folder" = "$rel" ] && continue  # include/tnn/*.hpp: the umbrella, may include everything
    local own
    own=$(rank "$folder")
    if [ "$own" -lt 0 ]; then
      echo "include_direction: $rel: folder '$folder' is not in the cut core < io < layers < model < infer < train < dist" >&2
      bad=1
      continue
    fi
    n=$((n + 1))
    local line text
    while IFS=: read -r line text; do
      [[ "$text" =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"\<]([^\"\>]+)[\"\>] ]] || continue
      local inc="${BASH_REMATCH[1]}" target
      if [[ "$inc" == tnn/* ]]; then
        target="${inc#tnn/}"
      elif [ -f "$(dirname "$header")/$inc" ]; then  # relative to the header
        target=$(realpath -m --relative-to="$root" "$(dirname "$header")/$inc")
      else
        continue  # a system or third-party header
      fi
      local to="${target%%/*}"
      if [ "$to" = "$target" ]; then
        [ "$target" = "version.hpp" ] && continue
        echo "include_direction: $rel:$line includes $inc, the top-level header above every folder" >&2
        bad=1
        continue
      fi
      local r
      r=$(rank "$to")
      if [ "$r" -lt 0 ] || [ "$r" -gt "$own" ]; then
        echo "include_direction: $rel:$line includes $inc: $folder/ may include only from its own folder or below it (core < io < layers < model < infer < train < dist)" >&2
        bad=1
      fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$header")
  done < <(find "$root" -name '*.hpp' -print0 | sort -z)
  if [ "$bad" -ne 0 ]; then return 1; fi
  if [ "$n" -eq 0 ]; then
    echo "include_direction: no headers found under $root/<folder>/" >&2
    return 2
  fi
  echo "include_direction: $n headers, every include points down the cut"
}

if [ "${1:-}" = "--self-test" ]; then
  src="${2:?usage: include_direction.sh --self-test INCLUDE_DIR}"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp -r "$src/tnn" "$tmp/"
  check "$tmp" >/dev/null || { echo "self-test: the clean copy should pass" >&2; exit 1; }
  for bad in 'tnn/model/config.hpp' 'tnn/tnn.hpp'; do
    cp "$tmp/tnn/core/tensor.hpp" "$tmp/orig.hpp"
    echo "#include \"$bad\"" >>"$tmp/tnn/core/tensor.hpp"
    if out=$(check "$tmp" 2>&1); then
      echo "self-test: core/tensor.hpp including $bad should fail, passed: $out" >&2
      exit 1
    fi
    grep -q "core/tensor.hpp" <<<"$out" || { echo "self-test: the message should name core/tensor.hpp: $out" >&2; exit 1; }
    cp "$tmp/orig.hpp" "$tmp/tnn/core/tensor.hpp"
  done
  # infer/ must not include train/, train/ may include infer/.
  echo '#include "tnn/train/optimizer.hpp"' >>"$tmp/tnn/infer/sampling.hpp"
  if check "$tmp" >/dev/null 2>&1; then echo "self-test: infer including train should fail" >&2; exit 1; fi
  echo "self-test: every deliberately bad include was reported"
  exit 0
fi

check "${1:?usage: include_direction.sh INCLUDE_DIR}"
