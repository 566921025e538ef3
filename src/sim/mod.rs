//! Cycle-level DSP48 array simulator.
//!
//! - [`layer`]: the simulator's plain layer description ([`LayerSpec`]).
//! - [`slice`](mod@slice): one DSP48, bit-exact (packed MAC lanes on a P register; XNOR + popcount tree).
//! - [`schedule`]: output-stationary mapping onto `dsp_count` slices and cycle counting (closed
//!   form and cycle by cycle).
//! - [`report`]: per-layer / network reports ([`simulate_layers`]).
//! - [`data`], [`functional`]: input tensors and the layer outputs computed through the slice model.
//! - [`reference`](mod@reference): naive implementations the simulator is tested against.
//! - [`vectors`]: golden vectors for RTL testbenches.
//! - [`network`]: a compressed network's conv/linear layers as [`LayerSpec`]s.
//! - [`resources`]: DSP/LUT/FF/BRAM18/URAM per layer and in total, capacity and fit, DDR traffic.
//! - [`fold`]: FINN-style PE x SIMD folding, the dataflow execution style and the folding search.
//! - [`random`], [`check`]: seeded random layer inputs, and the functional check of simulated
//!   layers against the reference.
//! - [`real`]: a layer's trained weights and real input activations (engine forward pass).
//! - [`stress`], [`testbench`]: corner-case vector sets and the self-checking Verilog testbench
//!   with its reference PE.
//!
//! Conventions are the crate's (sign(0) = +1; +1 -> bit 0, -1 -> bit 1; zero padding skipped in
//! binary layers); fixed-point formats are described in [`data`].

pub mod check;
pub mod data;
pub mod fold;
pub mod functional;
pub mod layer;
pub mod network;
pub mod random;
pub mod real;
pub mod reference;
pub mod report;
pub mod resources;
pub mod schedule;
pub mod slice;
pub mod stress;
pub mod testbench;
pub mod vectors;

pub use data::{quantize, FixedFormat, PackedActs, PackedWeights};
pub use fold::{dataflow, DataflowReport, Fold, Target};
pub use functional::{acc_to_f32, run_binary, run_fixed, BinaryInputs, BinaryOutput};
pub use layer::{LayerKind, LayerSpec, Precision};
pub use network::layer_specs;
pub use report::{simulate_layer, simulate_layers, LayerReport, SimReport};
pub use schedule::{grouped_cycles, step_cycles, CycleCount, Mapping, Mode};
