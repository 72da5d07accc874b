//! The `vocmine` command line: a thin layer over the library. Flags map to the library's
//! config structs; errors carry what to do next.

mod cli;

fn main() {
    if let Err(e) = cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
