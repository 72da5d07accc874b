//! `status`: a workspace's counts and runs, and what a run on some inputs would do now.

use super::args::{input_files, ColumnArgs, EncoderArgs};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use vocmine::pipeline::plan;
use vocmine::workspace::status_text;

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The workspace (the --out folder of score)
    workspace: PathBuf,
    /// Inputs to check against the workspace: what a run would do now (nothing is written)
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    enc: EncoderArgs,
    #[command(flatten)]
    cols: ColumnArgs,
    /// Tasks, as given to score [default: every default task of the model]
    #[arg(long, value_delimiter = ',')]
    tasks: Option<Vec<String>>,
}

pub(crate) fn cmd_status(a: StatusArgs) -> Result<()> {
    out!("{}", status_text(&a.workspace)?)?;
    if a.inputs.is_empty() {
        return Ok(());
    }
    // what a run would do now: decide every comment without scoring
    let spec = a.enc.spec()?;
    let encoder = a.enc.load(&spec)?;
    let (_, model) = spec.heads_and_version(a.tasks.as_deref(), &encoder)?;
    let inputs = input_files(&a.inputs)?;
    let sum = plan(&a.workspace, &inputs, &a.cols.config()?, &model)?;
    outln!("{}", sum.plan_text())?;
    Ok(())
}
