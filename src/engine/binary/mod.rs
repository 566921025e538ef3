//! Bit-exact binarized kernels: packing, XNOR + popcount dot products and convolutions.
