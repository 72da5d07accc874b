//! The `vocmine` command line: a thin layer over the library. Flags map to the library's
//! config structs; errors carry what to do next.

mod cli;

fn main() {
    if let Err(e) = cli::run() {
        if cli::is_broken_pipe(&e) {
            // stdout was closed by its reader (`| head`): the work is done, nothing to report
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
