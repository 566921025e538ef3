//! Build script: compiles the vendored ONNX schema (`src/onnx/onnx.proto`, from the `onnx` Python
//! package 1.23.2, Apache-2.0) into prost types with `protox`, a pure-Rust protobuf compiler, so
//! building needs no system `protoc`.

fn main() {
    let proto = "src/onnx/onnx.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=src/onnx/build.rs");
    let descriptors = protox::compile([proto], ["src/onnx"]).expect("compile src/onnx/onnx.proto");
    prost_build::Config::new()
        .compile_fds(descriptors)
        .expect("generate the ONNX protobuf types");
}
