fn main() {
    std::process::exit(breakingbed::cli::run());
}
