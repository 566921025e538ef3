//! Weight files (safetensors) and datasets (CIFAR-10 binary, IDX).
