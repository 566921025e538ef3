//! Hardware descriptions (DSP48 slices, popcount trees, devices) read from `hw/*.toml`.
