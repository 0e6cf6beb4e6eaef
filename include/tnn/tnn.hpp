// Umbrella header: everything the tnn library offers.
#pragma once

#include "tnn/core/error.hpp"
#include "tnn/core/fft.hpp"
#include "tnn/core/tensor.hpp"
#include "tnn/core/toeplitz.hpp"
