use clap::Parser;

use facetv::cli::{main_with, Cli, Outcome};

fn main() {
    let cli = Cli::parse();
    let code = match main_with(cli) {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::SomeInputsFailed) => 1,
        Ok(Outcome::Interrupted) => 130,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
