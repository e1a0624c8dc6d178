//! `testbed`: the lab in which the whole BRSKI flow runs: the loopback demo, the
//! network-namespace lab and the load generator.
#![forbid(unsafe_code)]

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "testbed",
    version,
    about = "BRSKI testbed: loopback demo, network-namespace lab, load generator",
    long_about = "BRSKI testbed. The demo, lab and bench subcommands arrive with the daemons; \
                  this build has none yet."
)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    println!("testbed: no subcommands yet (the demo arrives with the daemons)");
}
