//! Load benchmarks of the gateway against nginx and HAProxy. Not built yet: the benchmark
//! issue adds the harness; this binary only says so.

fn main() {
    eprintln!("bench: not implemented yet (see the benchmark issue); nothing was measured");
    std::process::exit(2);
}
