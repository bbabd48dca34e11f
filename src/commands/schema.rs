//! `provision schema [environment|events]`: the JSON Schema of a kind of file or of the
//! `--output json` lines, on stdout. Generated from the code that reads or writes them, so an
//! editor or a pipeline checking against it agrees with `provision`.

use super::ExitStatus;
use crate::cli::{GlobalArgs, SchemaArgs, SchemaKind};
use crate::config;
use crate::output::Printer;
use crate::render::{TemplateSet, vars};

pub fn run(global: &GlobalArgs, args: SchemaArgs, printer: &Printer) -> anyhow::Result<ExitStatus> {
    let schema = match args.kind {
        SchemaKind::Environment => {
            // `policy.vars` is described by the declarations in --templates-dir: the shipped ones
            // for the checked-in schema, a project's own for its editors.
            let templates = TemplateSet::load(&global.templates_dir)?;
            config::environment_schema(vars::schema_of_all(templates.all_declarations()))
        }
        SchemaKind::Events => crate::output::events::schema(),
    };
    let mut text = serde_json::to_string_pretty(&schema)?;
    text.push('\n');
    printer.out_raw(&text);
    Ok(ExitStatus::Success)
}
