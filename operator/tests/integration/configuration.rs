//! docs/configuration.md is generated from the two binaries' clap definitions (what `--help`
//! prints): every flag, its environment variable, default and help. A flag added without
//! regenerating the page fails here.

use std::path::Path;

use clap::CommandFactory;

use crate::common::assert_matches_file;

fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// One table of a command's own flags (help and version left out).
fn table(command: &clap::Command) -> String {
    let mut out =
        String::from("| Flag | Environment variable | Default | Meaning |\n|---|---|---|---|\n");
    let mut rows = 0;
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let flag = match (arg.get_long(), arg.get_short()) {
            (Some(long), Some(short)) => format!("`-{short}`, `--{long}`"),
            (Some(long), None) => format!("`--{long}`"),
            (None, _) => format!("`<{}>`", id.to_uppercase()),
        };
        let env = arg.get_env().map_or("—".to_owned(), |env| {
            format!("`{}`", env.to_string_lossy())
        });
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy().into_owned())
            .collect();
        let default = if defaults.is_empty() {
            "—".to_owned()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let mut help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|help| cell(&help.to_string()))
            .unwrap_or_default();
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|value| !value.is_hide_set())
            .map(|value| format!("`{}`", value.get_name()))
            .collect();
        let boolish = matches!(arg.get_action(), clap::ArgAction::Set)
            && values.len() == 2
            && values.iter().any(|v| v == "`true`");
        if !values.is_empty() && !boolish {
            if !help.is_empty() && !help.ends_with('.') {
                help.push('.');
            }
            help.push_str(&format!(" One of {}.", values.join(", ")));
        }
        out.push_str(&format!("| {flag} | {env} | {default} | {help} |\n"));
        rows += 1;
    }
    if rows == 0 {
        return "No flags.\n".to_owned();
    }
    out
}

fn section(out: &mut String, path: &str, command: &clap::Command, depth: usize) {
    let heading = "#".repeat(depth);
    out.push_str(&format!("\n{heading} `{path}`\n\n"));
    if let Some(about) = command.get_long_about().or_else(|| command.get_about()) {
        out.push_str(&cell(&about.to_string()));
        out.push_str("\n\n");
    }
    out.push_str(&table(command));
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        section(out, &format!("{path} {}", sub.get_name()), sub, depth + 1);
    }
}

#[test]
fn configuration_reference_is_generated_from_the_binaries() {
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from the clap definitions of both binaries (what --help prints). \
         Regenerate with COLLAB_OPERATOR_BLESS=1 cargo test -p collab-operator. -->\n\n\
         Every flag of `collab-server` and `collab-operator`, with its environment variable and\n\
         default. A flag given on the command line wins over its variable. Boolean variables\n\
         take `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`). `collab-server` also reads\n\
         `RUST_LOG` when set (it wins over `LOG_LEVEL`). How the operator sets these for a pod is\n\
         in [operator.md](operator.md); what they mean in depth: the README, [api.md](api.md),\n\
         [security.md](security.md), [reliability.md](reliability.md).\n",
    );
    section(
        &mut out,
        "collab-server",
        &collab_server::config::Cli::command(),
        2,
    );
    section(
        &mut out,
        "collab-operator",
        &collab_operator::cli::Cli::command(),
        2,
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    assert_matches_file(&path, &out);
}
