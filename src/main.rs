use clap::Parser;
use pgdrill::cli::Cli;
use pgdrill::exit;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    pgdrill::cli::init_tracing(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::ERROR);
        }
    };
    let code = runtime.block_on(pgdrill::cli::run(cli));
    std::process::exit(code);
}
