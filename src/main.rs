fn main() {
    // A bad `BBED_ISA` is an input error up front, not a warning from inside a kernel.
    if let Err(e) = breakingbed::engine::cpu::check_env() {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
    std::process::exit(breakingbed::cli::run());
}
