"""The tests' name for tools/tnn_safetensors.py, the one safetensors reader/writer of the Python
side (the converter in tools/ uses it too, and tools must not import tests)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from tnn_safetensors import load, save  # noqa: E402,F401
