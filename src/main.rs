use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;

use latchkey::cli::Cli;
use latchkey::{commands, telemetry};

/// Clap's error on one line, naming the flag and its environment variable,
/// with the rejected value left out when it may hold a secret (a database
/// password, the pepper, a service key).
fn one_line(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let rendered = error.render().to_string();
    let line = rendered
        .lines()
        .next()
        .unwrap_or("error: invalid arguments")
        .to_owned();
    let secret_arg = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => [
            "DATABASE_URL",
            "LATCHKEY_PEPPER",
            "LATCHKEY_INTROSPECT_KEYS",
            "LATCHKEY_MAIL_URL",
            "LATCHKEY_WEBHOOK_SECRET",
        ]
        .iter()
        .any(|name| arg.contains(name)),
        _ => false,
    };
    match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) if secret_arg && !value.is_empty() => {
            line.replace(value, "[redacted]")
        }
        _ => line,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let log = telemetry::init(cli.log_format);
    let outcome = commands::run(cli);
    // Every queued log line is out before the last word.
    drop(log);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            e.exit_code()
        }
    }
}
