//! CPU features: detected once, here, and the one question every kernel dispatch asks.
//!
//! The crate is built for the baseline target (no `-C target-cpu`), so a binary built on one
//! x86-64 machine runs on any other. Kernels that need more than the baseline are
//! `#[target_feature]` functions, chosen at run time:
//!
//! - [`detected`] reads the CPU once (cached). No other `is_x86_feature_detected!` exists in the
//!   crate: every dispatch point asks [`allows`] (or [`Isa::allows`] for an explicit level, in
//!   `_with` entry points the tests call) whether the [`Features`] its kernel is compiled with
//!   may run, and each kernel's `Features` constant names exactly its `#[target_feature]` list.
//! - [`Isa`] is an ordered level: `Portable` (plain Rust for the baseline target), `Avx2`
//!   (x86-64-v3: AVX2, FMA, BMI2, POPCNT) and `Avx512` (x86-64-v4: adds AVX-512F/BW/DQ/VL
//!   and, where the CPU has them, VPOPCNTDQ and BITALG). A kernel runs at a level iff
//!   everything it needs belongs to the level *and* was detected; otherwise the dispatch falls
//!   back to a lower kernel.
//! - The environment variable [`ENV`] (`BBED_ISA`) caps the level for the whole process:
//!   `portable`, `avx2`, `avx512`, or `native` / `auto` / unset for the best the CPU has.
//!   `bbed` rejects any other value (or a level the CPU lacks) at start-up with an input
//!   error ([`check_env`]); the library, asked lazily, warns once on stderr and uses the best
//!   level.
//! - Every level computes the same bits: kernel tests run each level explicitly against a
//!   reference ([`test_levels`]), and an end-to-end test compares `bbed` logits under
//!   `BBED_ISA=portable` and native.
//!
//! The `gemm` and `matrixmultiply` crates behind the float GEMM choose their own kernels at
//! run time; `BBED_ISA` governs this crate's kernels only.

use std::sync::OnceLock;

use crate::{Error, Result};

/// The environment variable that caps the instruction-set level.
pub const ENV: &str = "BBED_ISA";

/// The values [`ENV`] accepts.
pub const ACCEPTED: &str = "portable, avx2, avx512, native, auto";

/// A set of x86-64 features beyond the baseline (SSE2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Features(u16);

impl Features {
    pub const NONE: Features = Features(0);
    pub const POPCNT: Features = Features(1);
    pub const BMI2: Features = Features(1 << 1);
    pub const AVX2: Features = Features(1 << 2);
    pub const FMA: Features = Features(1 << 3);
    pub const AVX512F: Features = Features(1 << 4);
    pub const AVX512BW: Features = Features(1 << 5);
    pub const AVX512VPOPCNTDQ: Features = Features(1 << 6);
    pub const AVX512BITALG: Features = Features(1 << 7);
    pub const AVX512DQ: Features = Features(1 << 8);
    pub const AVX512VL: Features = Features(1 << 9);

    /// Both sets.
    pub const fn with(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }

    /// Whether every feature of `other` is in `self`.
    pub const fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }
}

/// An instruction-set level, lowest first (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    Portable,
    Avx2,
    Avx512,
}

/// x86-64-v3's features that the kernels use.
const V3: Features = Features::POPCNT
    .with(Features::BMI2)
    .with(Features::AVX2)
    .with(Features::FMA);

/// x86-64-v4's features that the kernels use: the base of the AVX-512 level.
const V4: Features = V3
    .with(Features::AVX512F)
    .with(Features::AVX512BW)
    .with(Features::AVX512DQ)
    .with(Features::AVX512VL);

/// Every feature a kernel of this crate is compiled with.
const ALL: Features = V4
    .with(Features::AVX512VPOPCNTDQ)
    .with(Features::AVX512BITALG);

impl Isa {
    /// All levels, lowest first.
    pub const ALL: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

    /// The features a kernel may use at this level (if the CPU has them).
    pub const fn features(self) -> Features {
        match self {
            Isa::Portable => Features::NONE,
            Isa::Avx2 => V3,
            Isa::Avx512 => ALL,
        }
    }

    /// The features the CPU must have for the level to exist at all.
    const fn base(self) -> Features {
        match self {
            Isa::Portable => Features::NONE,
            Isa::Avx2 => V3,
            Isa::Avx512 => V4,
        }
    }

    /// Whether this CPU has the level.
    pub fn is_available(self) -> bool {
        detected().contains(self.base())
    }

    /// The levels this CPU has, lowest first.
    pub fn available() -> Vec<Isa> {
        Self::ALL.into_iter().filter(|l| l.is_available()).collect()
    }

    /// Whether a kernel compiled with `need` may run at this level on this CPU.
    pub fn allows(self, need: Features) -> bool {
        self.features().contains(need) && detected().contains(need)
    }

    /// The `BBED_ISA` spelling of the level.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// The features this CPU has (of those the kernels use), read once.
pub fn detected() -> Features {
    static DETECTED: OnceLock<Features> = OnceLock::new();
    *DETECTED.get_or_init(read_cpu)
}

#[cfg(target_arch = "x86_64")]
fn read_cpu() -> Features {
    use std::arch::is_x86_feature_detected as has;
    let mut f = Features::NONE;
    for (yes, feat) in [
        (has!("popcnt"), Features::POPCNT),
        (has!("bmi2"), Features::BMI2),
        (has!("avx2"), Features::AVX2),
        (has!("fma"), Features::FMA),
        (has!("avx512f"), Features::AVX512F),
        (has!("avx512bw"), Features::AVX512BW),
        (has!("avx512dq"), Features::AVX512DQ),
        (has!("avx512vl"), Features::AVX512VL),
        (has!("avx512vpopcntdq"), Features::AVX512VPOPCNTDQ),
        (has!("avx512bitalg"), Features::AVX512BITALG),
    ] {
        if yes {
            f = f.with(feat);
        }
    }
    f
}

#[cfg(not(target_arch = "x86_64"))]
fn read_cpu() -> Features {
    Features::NONE
}

/// The best level this CPU has.
pub fn best() -> Isa {
    *Isa::available().last().unwrap_or(&Isa::Portable)
}

/// The level a value of [`ENV`] asks for (`None`: unset), checked against this CPU.
pub fn resolve(value: Option<&str>) -> Result<Isa> {
    let want = match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("native") | Some("auto") => return Ok(best()),
        Some("portable") => Isa::Portable,
        Some("avx2") => Isa::Avx2,
        Some("avx512") => Isa::Avx512,
        Some(_) => {
            return Err(Error::input(
                ENV,
                format!(
                    "unknown value {:?} (accepted: {ACCEPTED})",
                    value.unwrap_or_default()
                ),
            ))
        }
    };
    if !want.is_available() {
        return Err(Error::input(
            ENV,
            format!(
                "{} is not supported by this CPU (best available: {})",
                want.name(),
                best().name()
            ),
        ));
    }
    Ok(want)
}

fn env_value() -> Option<String> {
    std::env::var_os(ENV).map(|v| v.to_string_lossy().into_owned())
}

/// Checks [`ENV`] and returns the level it selects: the binary calls this at start-up so a bad
/// value is an input error, not a warning.
pub fn check_env() -> Result<Isa> {
    resolve(env_value().as_deref())
}

/// The level this process runs its kernels at: [`ENV`]'s cap, read once. An invalid value
/// (which `bbed` has already rejected) is reported once on stderr and the best level used.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        check_env().unwrap_or_else(|e| {
            eprintln!("warning: {e}; using {}", best().name());
            best()
        })
    })
}

/// Whether this CPU has every feature of `need` (whatever `BBED_ISA` says): what a kernel
/// asserts before it runs code compiled with `need`, so that no caller can make it undefined
/// behaviour. Choosing a kernel is [`allows`]'s job.
pub fn has(need: Features) -> bool {
    detected().contains(need)
}

/// Whether a kernel compiled with `need` may run in this process (its level and CPU): the
/// question every dispatch point asks.
pub fn allows(need: Features) -> bool {
    isa().allows(need)
}

/// The levels a kernel test runs explicitly, lowest first: every level this CPU has. A level
/// (or an AVX-512 feature a kernel uses) the CPU lacks prints a skip notice, and fails the test
/// under `CI` (CI machines have AVX-512, so no path may go untested there).
#[doc(hidden)]
pub fn test_levels() -> Vec<Isa> {
    let missing = |have: Features| -> Vec<&'static str> {
        [
            (Features::POPCNT, "popcnt"),
            (Features::BMI2, "bmi2"),
            (Features::AVX2, "avx2"),
            (Features::FMA, "fma"),
            (Features::AVX512F, "avx512f"),
            (Features::AVX512BW, "avx512bw"),
            (Features::AVX512DQ, "avx512dq"),
            (Features::AVX512VL, "avx512vl"),
            (Features::AVX512VPOPCNTDQ, "avx512vpopcntdq"),
            (Features::AVX512BITALG, "avx512bitalg"),
        ]
        .into_iter()
        .filter(|&(f, _)| !have.contains(f))
        .map(|(_, n)| n)
        .collect()
    };
    let lacking = missing(detected());
    if !lacking.is_empty() {
        let msg = format!(
            "this CPU lacks {}: the kernels needing them are not tested",
            lacking.join(", ")
        );
        assert!(std::env::var_os("CI").is_none(), "{msg} (CI requires them)");
        eprintln!("skipped: {msg}");
    }
    Isa::available()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_nested_and_portable_allows_nothing() {
        assert!(Isa::Portable.is_available());
        assert!(!Isa::Portable.allows(Features::POPCNT));
        assert!(Isa::Portable.allows(Features::NONE));
        for w in Isa::ALL.windows(2) {
            assert!(w[1].features().contains(w[0].features()), "{w:?}");
            assert!(w[1].base().contains(w[0].base()), "{w:?}");
        }
        for l in Isa::ALL {
            assert!(l.features().contains(l.base()), "{l:?}");
        }
        // A level never allows what the CPU lacks.
        for l in Isa::available() {
            assert!(!l.allows(ALL) || detected().contains(ALL));
        }
    }

    #[test]
    fn env_values_resolve_or_name_the_variable() {
        assert_eq!(resolve(Some("portable")).unwrap(), Isa::Portable);
        assert_eq!(resolve(Some(" Portable ")).unwrap(), Isa::Portable);
        assert_eq!(resolve(None).unwrap(), best());
        assert_eq!(resolve(Some("native")).unwrap(), best());
        assert_eq!(resolve(Some("auto")).unwrap(), best());
        let e = resolve(Some("sse9")).unwrap_err().to_string();
        assert!(e.contains("BBED_ISA") && e.contains("\"sse9\""), "{e}");
        assert!(e.contains(ACCEPTED), "{e}");
        for l in Isa::ALL {
            let r = resolve(Some(l.name()));
            assert_eq!(r.is_ok(), l.is_available(), "{l:?}");
            if let Err(e) = r {
                assert!(e.to_string().contains("not supported by this CPU"), "{e}");
            }
        }
    }
}
