fn main() {
    eprintln!("tessera-bench: not built yet");
    std::process::exit(2);
}
