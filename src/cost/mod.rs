//! Cost model: MACs, binary ops, parameters, memory (MB = 10^6 bytes) and NCC (10^6).
