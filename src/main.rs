fn main() {
    eprintln!("tessera: no subcommands yet");
    std::process::exit(2);
}
